"""Lockstep's short look for the next request (twin.server.spin): it looks only while the
controller answers within the window, and a slow controller costs the server no CPU for it."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from twin.bench.processes import cpu_s
from twin.client import Client
from twin.serve_process import ServeProcess
from twin.server.spin import SpinWait

WINDOW_S = 0.02


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


def test_a_negative_window_is_refused() -> None:
    with pytest.raises(ValueError, match="spin window"):
        SpinWait(-1e-6)


def test_a_slow_controller_costs_the_server_no_cpu_for_looking(
    serve: Callable[..., ServeProcess],
) -> None:
    """A window of 20 ms and a controller that steps every 60 ms: the server looks once for
    20 ms, then sleeps after every reply. Looking after each reply would burn 20 ms a cycle."""
    server = serve("--mode", "lockstep", "--no-builtin-controller", "--spin-us", "20000")
    cycles = 15
    with Client(server.control, timeout=10) as client:
        client.hello()
        client.take_control()
        client.step(1)
        before = cpu_s(server.proc.pid)
        if before is None:
            pytest.skip("no per-thread CPU times in /proc here")
        for _ in range(cycles):
            time.sleep(0.06)
            client.step(1)
        used = cpu_s(server.proc.pid) - before
    assert used < cycles * WINDOW_S / 2, f"the server used {used * 1e3:.0f} ms of CPU"
