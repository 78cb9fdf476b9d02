"""Lockstep's short look for the next request (twin.server.spin): it looks only while the
controller answers within the window, and a slow controller costs the server no CPU for it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from twin.bench.processes import cpu_s
from twin.client import Client
from twin.serve_process import ServeProcess
from twin.server.spin import SpinWait

WINDOW_S = 0.01  # the longest a server may look
ROOT = Path(__file__).resolve().parents[1]


class Ready:
    """A `ready` callable that turns true after `after` calls, counting its calls."""

    def __init__(self, after: int | None) -> None:
        self.after = after
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.after is not None and self.calls > self.after


def test_a_request_within_the_window_is_found_by_looking() -> None:
    spin = SpinWait(WINDOW_S)
    spin.sent()
    ready = Ready(after=3)
    assert spin.wait(ready) is True
    assert ready.calls == 4 and spin.armed


def test_no_request_within_the_window_stops_the_looking_until_one_comes_in_time() -> None:
    spin = SpinWait(WINDOW_S)
    spin.sent()
    t0 = time.perf_counter()
    assert spin.wait(Ready(after=None)) is False
    assert time.perf_counter() - t0 >= WINDOW_S  # it looked for the whole window
    # the controller is slow: after the next replies the server sleeps at once
    spin.sent()
    time.sleep(2 * WINDOW_S)
    spin.woke()  # that request came after the window
    spin.sent()
    idle = Ready(after=None)
    assert spin.wait(idle) is False and idle.calls == 0
    # a request that comes within the window again: looking resumes after the next reply
    spin.woke()
    assert spin.armed
    spin.sent()
    assert spin.wait(Ready(after=0)) is True


def test_a_zero_window_never_looks() -> None:
    spin = SpinWait(0.0)
    spin.sent()
    spin.woke()
    ready = Ready(after=0)
    assert spin.wait(ready) is False and ready.calls == 0


def test_a_window_out_of_range_is_refused() -> None:
    for bad in (-1e-6, 0.011, float("nan")):
        with pytest.raises(ValueError, match="spin window"):
            SpinWait(bad)


@pytest.mark.parametrize("bad", ["-1", "20000", "nan", "inf", "soon"])
def test_serve_refuses_a_spin_window_out_of_range(bad: str) -> None:
    """Longer than the loop's idle wait, a look would hold off lease and watchdog checks."""
    proc = subprocess.run(
        [sys.executable, "-m", "twin.cli", "serve", "--mode", "lockstep", "--spin-us", bad],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert "--spin-us" in proc.stderr and bad in proc.stderr, proc.stderr


def test_a_slow_controller_costs_the_server_no_cpu_for_looking(
    serve: Callable[..., ServeProcess],
) -> None:
    """A window of 10 ms and a controller that steps every 40 ms: the server looks once for
    10 ms, then sleeps after every reply. Looking after each reply would burn 10 ms a cycle."""
    server = serve("--mode", "lockstep", "--no-builtin-controller", "--spin-us", "10000")
    cycles = 15
    with Client(server.control, timeout=10) as client:
        client.hello()
        client.take_control()
        client.step(1)
        before = cpu_s(server.proc.pid)
        if before is None:
            pytest.skip("no per-thread CPU times in /proc here")
        for _ in range(cycles):
            time.sleep(0.04)
            client.step(1)
        used = cpu_s(server.proc.pid) - before
    assert used < cycles * WINDOW_S / 2, f"the server used {used * 1e3:.0f} ms of CPU"
