"""`twin bench --breakdown`: where the free run's wall time goes, per step.

The free-run benchmark's setup (the default line served in fast mode, one subscriber in
another process) with a timer around every piece of the step: bullet's stepSimulation, the
ray batch, each device hook (the arm's inverse kinematics on its own line), the controller
scan, and the server's telemetry and polling. Blocks of the timed run alternate with bare
stepSimulation of the same bodies, as in the benchmark, so both see the same phase of
production. A timer costs about 0.5 µs called in a loop and more between physics steps; with
about 25 of them a step, the timed run is slower than the benchmark's.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pybullet

from twin.bench.hosted import bare_rate, open_server, run_fast, served_rate, step_until
from twin.bench.processes import peer
from twin.config import load
from twin.devices.arm import Arm
from twin.server import host as host_module
from twin.server.loop import Server

WARMUP_STEPS = 200
SUB = " > "  # a timer inside another: "parent > part"


class Timers:
    """Accumulated seconds per label."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.running = False  # only the timed blocks count, not the warm-up or bare blocks

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        seconds, clock = self.seconds, time.perf_counter

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                if self.running:
                    seconds[label] += clock() - t0

        return timed


def _owner(hook: Callable[[], None]) -> str:
    """The id of the device whose bound method `hook` is."""
    device: Any = getattr(hook, "__self__", None)
    return device.id


def _instrument(server: Server, timers: Timers) -> Callable[[], None]:
    """Put timers around the pieces of a step; returns the function that takes them off."""
    host, line = server.host, server.host.line
    world = line.world
    client_id = world._id
    undo: list[Callable[[], None]] = []

    def set_attr(obj: Any, name: str, value: Any) -> None:
        had = name in vars(obj)
        old = vars(obj).get(name)
        setattr(obj, name, value)
        undo.append(lambda: setattr(obj, name, old) if had else delattr(obj, name))

    physics = timers.wrap("bullet stepSimulation", pybullet.stepSimulation)
    rays = timers.wrap("ray batch (all beam sensors)", world.rays.cast)

    def step() -> None:
        physics(physicsClientId=client_id)
        world.step_index += 1
        rays(client_id)

    set_attr(world, "step", step)
    for hooks, when in ((line._before, "before_step"), (line._after, "after_step")):
        original = list(hooks)
        hooks[:] = [timers.wrap(f"{_owner(hook)}.{when}", hook) for hook in original]

        def restore(hooks: list[Callable[[], None]] = hooks, original: list = original) -> None:
            hooks[:] = original

        undo.append(restore)
    for device in line.devices.values():
        if isinstance(device, Arm):
            label = f"{device.id}{SUB}inverse kinematics (tracking and job planning)"
            set_attr(device.model, "ik", timers.wrap(label, device.model.ik))
    controller = host.automation.controller
    if controller is not None:
        set_attr(controller, "tick", timers.wrap("controller scan", controller.tick))
    set_attr(host, "state", timers.wrap("server: state message built", host.state))
    stepper = host.stepper
    set_attr(stepper, "kpis", timers.wrap("server: KPI snapshot", stepper.kpis))
    # event sends are timed as part of "server: events", not a second time as sends
    publish, timed_publish = host._publish, timers.wrap("server: telemetry sends", host._publish)
    timed_flush = timers.wrap("server: events", stepper.flush_events)
    in_flush = False

    def flush_events() -> None:
        nonlocal in_flush
        in_flush = True
        try:
            timed_flush()
        finally:
            in_flush = False

    set_attr(stepper, "flush_events", flush_events)
    set_attr(host, "_publish", lambda *a: publish(*a) if in_flush else timed_publish(*a))
    set_attr(server, "serve_requests", timers.wrap("server: polling", server.serve_requests))
    encode = host_module.encode
    host_module.encode = timers.wrap("server: telemetry encoding", encode)
    undo.append(lambda: setattr(host_module, "encode", encode))

    def remove() -> None:
        for fn in reversed(undo):
            fn()

    return remove


def breakdown(config: str, *, block: int = 40, reps: int = 100) -> dict[str, Any]:
    """µs per step of each piece of the served free run, and of bare stepSimulation."""
    server = open_server(load(config))
    timers = Timers()
    try:
        with peer("subscriber", server.endpoints.telemetry_addr) as sub:
            step_until(server, lambda: sub.has_line("ready"))
            served_rate(server, WARMUP_STEPS)
            remove = _instrument(server, timers)
            served_wall = bare_wall = 0.0
            try:
                for _ in range(reps):
                    timers.running = True
                    t0 = time.perf_counter()
                    run_fast(server, block)
                    served_wall += time.perf_counter() - t0
                    timers.running = False
                    bare_wall += block / bare_rate(server.host.line, block)
            finally:
                remove()
            sub.stop_input()
    finally:
        server.close()
    steps = block * reps
    per_step = {label: s / steps * 1e6 for label, s in timers.seconds.items()}
    top_level = sum(v for label, v in per_step.items() if SUB not in label)
    total = served_wall / steps * 1e6
    return {
        "steps": steps,
        "served_us_per_step": total,
        "bare_us_per_step": bare_wall / steps * 1e6,
        "parts_us_per_step": dict(sorted(per_step.items(), key=lambda kv: -kv[1])),
        "rest_us_per_step": total - top_level,  # the step loop itself, PackML, timers
    }


def print_breakdown(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result), flush=True)
        return
    total = result["served_us_per_step"]
    bare = result["bare_us_per_step"]
    print(f"free run, {result['steps']} steps: {total:.0f} µs a step served, {bare:.0f} µs bare")
    parts = result["parts_us_per_step"]
    rows = [(label, us) for label, us in parts.items() if SUB not in label]
    for label, us in [*rows, ("the rest (step loop, PackML, timers)", result["rest_us_per_step"])]:
        print(f"  {us:7.1f} µs  {us / total:6.1%}  {label}")
        for sub, sub_us in parts.items():
            if sub.startswith(label + SUB):
                print(f"  {sub_us:7.1f} µs  {sub_us / total:6.1%}    of which {sub.split(SUB)[1]}")
    for sub, sub_us in parts.items():  # inside several of the above (the arm's IK)
        parent, _, what = sub.partition(SUB)
        if what and parent not in parts:
            print(f"  {sub_us:7.1f} µs  {sub_us / total:6.1%}  within the above: {parent} {what}")
    print(f"  ratio bare / served: {bare / total:.3f}", flush=True)
