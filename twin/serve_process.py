"""`twin serve` in a subprocess: the one launcher the tests (through their fixtures), the
benchmarks and the gym benchmark use.

The server binds wildcard loopback ports ("tcp://127.0.0.1:*") and prints the real
addresses; every wait has a timeout, and the process is always ended (SIGTERM, then SIGKILL)
when the context exits or `close` is called.
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
SERVE = [sys.executable, "-m", "twin.cli", "serve"]  # how to start the server
START_TIMEOUT_S = 30.0
WILDCARD = "tcp://127.0.0.1:*"


def serve_command(*args: str) -> list[str]:
    """The argv of `twin serve ARGS` on wildcard loopback ports."""
    return [*SERVE, "--control", WILDCARD, "--telemetry", WILDCARD, *args]


class ServeProcess:
    """A running `twin serve`; `control` and `telemetry` are its addresses once started."""

    def __init__(self, *args: str, start_timeout: float = START_TIMEOUT_S) -> None:
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            serve_command(*args),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.seen: list[str] = []  # stdout lines taken off the queue so far
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        try:
            self.control = self.wait_for("control", start_timeout).split()[1]
            self.telemetry = self.wait_for("telemetry", start_timeout).split()[1]
        except BaseException:
            self.close()
            raise

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, prefix: str | tuple[str, ...], timeout: float = START_TIMEOUT_S) -> str:
        """The first stdout line starting with `prefix` (seen before, or arriving within
        `timeout` s); raises if the server exits or stays silent."""
        for line in self.seen:
            if line.startswith(prefix):
                return line
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(
                    f"twin serve printed no '{prefix}' within {timeout} s: {self.stderr_text()}"
                ) from None
            if got is None:
                self._lines.put(None)  # keep the end visible to the next reader
                raise RuntimeError(f"twin serve exited: {self.stderr_text()}")
            line = got.rstrip("\n")
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def has_line(self, prefix: str) -> bool:
        """True if a line starting with `prefix` has arrived (does not wait)."""
        try:
            self.wait_for(prefix, timeout=0.0)
        except TimeoutError:
            return False
        return True

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

    def close(self) -> None:
        """Kill the process (if `stop` has not ended it) and release its pipes; idempotent."""
        self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.stderr.close()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
