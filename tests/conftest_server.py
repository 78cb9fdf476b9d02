"""Helpers for tests that run `twin serve` in a subprocess (kept free of `twin` imports so
the raw-client test can use them too).

Servers bind to wildcard loopback ports ("tcp://127.0.0.1:*") and print the real addresses;
every wait has a timeout and every process is killed when the test ends.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# how to start the server: switch here if the entry point moves
SERVE = [sys.executable, "-m", "twin.cli", "serve"]
START_TIMEOUT_S = 30.0


class ServerProcess:
    """A `twin serve` subprocess; use as a context manager so it is always killed."""

    def __init__(self, *args: str) -> None:
        self.stderr = tempfile.TemporaryFile(mode="w+")
        cmd = [
            *SERVE,
            "--control",
            "tcp://127.0.0.1:*",
            "--telemetry",
            "tcp://127.0.0.1:*",
            *args,
        ]
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        self.control, self.telemetry = self._wait_for_addresses()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _wait_for_addresses(self) -> tuple[str, str]:
        found: dict[str, str] = {}
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(found) < 2:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise TimeoutError(f"server did not start: {self.stderr_text()}") from None
            if line is None:
                self.kill()
                raise RuntimeError(f"server exited: {self.stderr_text()}")
            words = line.split()
            if len(words) >= 2 and words[0] in ("control", "telemetry"):
                found[words[0]] = words[1]
        return found["control"], found["telemetry"]

    def stderr_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait; kill if it does not go. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.stderr.close()


def run_script(code: str, *args: str, **kwargs) -> subprocess.Popen:
    """Start `python -c code args...` from the repo root (caller must kill it)."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )
