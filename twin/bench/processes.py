"""Child processes for the benchmarks: started with a pipe on stdin and stdout, read with
timeouts, always ended (stdin closed, then SIGTERM, then SIGKILL)."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from twin.serve_process import ServeProcess

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = str(ROOT / "configs" / "default_line.toml")
WAIT_S = 30.0


class Child:
    """A subprocess whose stdout lines are queued; use as a context manager."""

    def __init__(self, argv: list[str], *, exits_on_stdin_close: bool = True) -> None:
        self.exits_on_stdin_close = exits_on_stdin_close
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_for(self, prefix: str | tuple[str, ...], timeout: float = WAIT_S) -> str:
        """The first stdout line starting with `prefix`; raises on timeout or exit."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.001, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise TimeoutError(
                    f"{self.proc.args!r}: no '{prefix}' within {timeout} s"
                ) from None
            if line is None:
                raise RuntimeError(f"{self.proc.args!r}: exited with {self.proc.wait(5)}")
            if line.startswith(prefix):
                return line

    def tell(self, text: str, answer: str = "ok", timeout: float = WAIT_S) -> None:
        """Write one line to the child's stdin and wait for its answer line."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        self.wait_for(answer, timeout)

    def has_line(self, prefix: str) -> bool:
        """True if a line starting with `prefix` has arrived (does not wait)."""
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return False
            if line is None:
                raise RuntimeError(f"{self.proc.args!r}: exited with {self.proc.wait(5)}")
            if line.startswith(prefix):
                return True

    def rss_kib(self) -> int:
        return rss_kib(self.proc.pid)

    def stop_input(self) -> None:
        """Close the child's stdin: peers finish (and print their last words) on that."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def stop(self, timeout: float = 10.0) -> None:
        """Close stdin (peers exit on that), then SIGTERM, then SIGKILL."""
        self.stop_input()
        first = [None] if self.exits_on_stdin_close else []
        for end in (*first, self.proc.terminate, self.proc.kill):
            if self.proc.poll() is not None:
                break
            if end is not None:
                end()
            try:
                self.proc.wait(timeout / 2)
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def peer(role: str, arg: str) -> Child:
    return Child([sys.executable, "-m", "twin.bench.peers", role, arg])


def twin_serve(*args: str) -> ServeProcess:
    """`twin serve` on wildcard loopback ports (addresses: `control`, `telemetry`, or
    wait_for("control"))."""
    return ServeProcess(*args)


def rss_kib(pid: int | None = None) -> int:
    """Resident memory of a process (this one by default) in KiB, from /proc."""
    path = f"/proc/{pid or 'self'}/status"
    with open(path) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float | None:
    """CPU seconds a process's threads have run so far (Linux /proc, ns resolution), or None
    where /proc does not say."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    total = 0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            continue  # a thread that ended meanwhile
        except (OSError, ValueError, IndexError):
            return None
    return total * 1e-9


class CpuPerStep:
    """The CPU a process (the server, a baseline peer) spends per step over the timed blocks
    it is told of: what a rate alone does not show, such as a server that looks for the next
    request rather than sleeping."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cpu_s = 0.0
        self.steps = 0
        self.known = True

    def of(self, rate: Callable[[int], float], steps: int) -> Callable[[], float]:
        """`rate(steps)` as a measurement, with the process's CPU over it counted."""

        def measure() -> float:
            before = cpu_s(self.pid)
            value = rate(steps)
            after = cpu_s(self.pid)
            if before is None or after is None:
                self.known = False
            else:
                self.cpu_s += after - before
                self.steps += steps
            return value

        return measure

    @property
    def us_per_step(self) -> float | None:
        return self.cpu_s / self.steps * 1e6 if self.known and self.steps else None
