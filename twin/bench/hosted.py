"""A `twin serve` server inside the benchmark process, stepped by the fast-mode loop body.

In-process so the benchmark can alternate the served line with bare stepSimulation of the
very same bodies; the sockets are real (ROUTER + PUB on loopback TCP), the subscribers are
other processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from twin.automation import AutomatedLine
from twin.config import LineConfig
from twin.line import Line
from twin.server.loop import FAST_STEPS_PER_POLL, ServeOptions, Server

WILDCARD = "tcp://127.0.0.1:*"


def open_server(
    cfg: LineConfig, *, state_rate: float = 10.0, builtin_controller: bool = True
) -> Server:
    opts = ServeOptions(
        mode="fast",
        control=WILDCARD,
        telemetry=WILDCARD,
        builtin_controller=builtin_controller,
        state_rate=state_rate,
    )
    return Server(cfg, opts)


def run_fast(server: Server, steps: int) -> None:
    """What Server._run_fast does, for `steps` steps (a multiple of FAST_STEPS_PER_POLL)."""
    host = server.host
    for _ in range(max(1, steps // FAST_STEPS_PER_POLL)):
        server.serve_requests(0)
        server.check_watchdog()
        host.advance(FAST_STEPS_PER_POLL)


def served_rate(server: Server, steps: int) -> float:
    """Steps per wall second of the fast loop over `steps` steps."""
    start_step = server.host.line.step_index
    t0 = time.perf_counter()
    run_fast(server, steps)
    return (server.host.line.step_index - start_step) / (time.perf_counter() - t0)


def line_rate(line: Line | AutomatedLine, steps: int) -> float:
    """Steps per wall second of Line.step alone: devices and controller, no server."""
    t0 = time.perf_counter()
    line.step(steps)
    return steps / (time.perf_counter() - t0)


def bare_rate(line: Line | AutomatedLine, steps: int) -> float:
    """Steps per wall second of bare stepSimulation of the line's bodies (nothing else)."""
    step = line.world.client.stepSimulation
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - t0)


def step_until(server: Server, ready: Callable[[], bool], timeout: float = 30.0) -> None:
    """Run the fast loop until `ready()` is true (e.g. a subscriber got its first message)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError("the subscriber never got a message")
        run_fast(server, 20)
