"""Helpers for the HMI tests: the system's Chromium, the HMI's printed URLs, `twin hmi`."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from processes import ROOT, ServeProcess

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--enable-unsafe-swiftshader"]
SKIP_REASON = (
    "browser tests need Chromium (apt-get install chromium) and Playwright for Python; "
    "they were skipped"
)


def wait_for_line(lines: queue.Queue, prefix: str, what: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        if line.startswith(prefix):
            return line
    raise TimeoutError(f"no '{prefix}' line from {what}")


def hmi_urls(server: ServeProcess) -> tuple[str, str]:
    """(observer URL, controller URL) that `twin serve --hmi` printed."""
    observer = wait_for_line(server._lines, "hmi ", "twin serve --hmi").split()[1]
    controller = wait_for_line(server._lines, "hmi-control ", "twin serve --hmi").split()[1]
    return observer, controller


class HmiProcess:
    """`twin hmi` against a running twin, as its own protocol client; always killed."""

    def __init__(self, server: ServeProcess, *args: str) -> None:
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "twin.cli", "hmi", "--control", server.control,
             "--telemetry", server.telemetry, "--address", "127.0.0.1:0", *args],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.stderr,
            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self.url = wait_for_line(self._lines, "hmi ", "twin hmi").split()[1]
            self.controller_url = wait_for_line(self._lines, "hmi-control ", "twin hmi").split()[1]
        except TimeoutError:
            self.kill()
            self.stderr.seek(0)
            raise TimeoutError(f"twin hmi did not start: {self.stderr.read()}") from None

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> HmiProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.stderr.close()
