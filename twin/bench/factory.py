"""factory_scaling: the step cost of factories of 1, 2, 4 and 8 process cells (one AMR per
cell) against bare stepSimulation of the same bodies, and configs/factory_6cell.toml's
real-time factor in fast mode; where a factory step's time goes.

The factories are built in code: N copies of configs/cells/mill_cell.toml in a row north of
a one-way loop aisle, a receiving and a shipping store at its west end, a parking spot per
AMR south of the aisle, and one order large enough to keep every cell busy (CONWIP, two parts
per cell in the factory). Each is stepped as `twin run` steps it (built-in controller,
events to the KPIs) after a warm-up, so AMRs drive and arms work while it is timed. The
bare blocks step the same bodies with nothing else, from a saved physics state that is
restored afterwards, so the factory's trajectory is not disturbed by them.

Times are CPU seconds of the benchmark's process (the cost on one core, steady when other
jobs share the machine); factory_6cell also reports its wall-clock real-time factor.
Targets: the 8-cell step costs at most 8.5 times the 1-cell step (cost per cell flat), and
factory_6cell runs at least 2 times real time in fast mode on one core.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from typing import Any

from twin.analytics.monitor import ProductionMonitor
from twin.automation import AutomatedLine, build_line
from twin.bench.processes import ROOT
from twin.bench.result import BenchResult, interleave, median
from twin.config import LineConfig, load, loads
from twin.telemetry import TelemetryStepper, state_message

# The CPU time of this process, not the wall clock: the step cost on one core, whatever else
# the machine runs (pybullet steps on the calling thread; nothing here waits on I/O).
CLOCK = time.process_time
CELLS = (1, 2, 4, 8)
QUICK_CELLS = (1, 2)
TARGET_RATIO = 8.5  # the 8-cell step over the 1-cell step
TARGET_RTF = 2.0  # factory_6cell, fast mode
FACTORY_6CELL = ROOT / "configs" / "factory_6cell.toml"
CELL_PITCH = 3.0  # m between cells along the aisle
CYCLE_TIME = 12.0  # s per part at a mill: short, so arms work often while timed


def factory_text(cells: int) -> str:
    """A factory file: `cells` mill cells, receiving, shipping, one AMR per cell."""
    east = CELL_PITCH * cells + 2.05
    nodes = [
        ("nw", -1.5, 0.6),
        ("ne", east, 0.6),
        ("se", east, -0.6),
        ("sw", -1.5, -0.6),
        ("j_receiving", 0.0, 0.6),
        ("j_shipping", 0.0, -0.6),
    ]
    lanes = [
        ("j_receiving", "receiving_approach", True),
        ("j_shipping", "shipping_approach", True),
        ("nw", "j_receiving", False),
    ]
    north = "j_receiving"
    south = ["se"]
    cell_entries = []
    for i in range(1, cells + 1):
        x = CELL_PITCH * i
        cell = f"mill{i}"
        nodes += [(f"j_{cell}_in", x - 0.55, 0.6), (f"j_{cell}_out", x + 0.55, 0.6)]
        nodes += [(f"j_park{i}", x, -0.6), (f"park{i}", x, -2.0)]
        lanes += [
            (north, f"j_{cell}_in", False),
            (f"j_{cell}_in", f"j_{cell}_out", False),
            (f"j_{cell}_in", f"{cell}_in_approach", True),
            (f"j_{cell}_out", f"{cell}_out_approach", True),
            (f"j_park{i}", f"park{i}", True),
        ]
        north = f"j_{cell}_out"
        south.insert(1, f"j_park{i}")  # westbound: the easternmost first after se
        cell_entries.append(
            f'[[cells]]\nid = "{cell}"\ntemplate = "cells/mill_cell.toml"\n'
            f"position = [{x}, 3.1]\nyaw = 1.5707963267949\n"
        )
    lanes.append((north, "ne", False))
    lanes.append(("ne", "se", False))
    south += ["j_shipping", "sw", "nw"]
    lanes += [(a, b, False) for a, b in zip(south, south[1:])]
    node_text = ",\n".join(f'  {{ id = "{n}", position = [{x}, {y}] }}' for n, x, y in nodes)
    lane_text = ",\n".join(
        f'  {{ from = "{a}", to = "{b}", two_way = {str(two).lower()} }}' for a, b, two in lanes
    )
    parks = ", ".join(f'"park{i}"' for i in range(1, cells + 1))
    return f"""
name = "factory_{cells}cell"
[physics]
timestep = 0.01
substeps = 4
seed = 8
[part_pool]
capacity = 300
[[part_types]]
name = "housing"
size = [0.08, 0.08, 0.05]
mass = 0.35
[[cells]]
id = "receiving"
template = "cells/receiving.toml"
position = [0.0, 3.1]
yaw = 1.5707963267949
[[cells]]
id = "shipping"
template = "cells/shipping.toml"
position = [0.0, -3.1]
yaw = -1.5707963267949
{"".join(cell_entries)}
[network]
nodes = [
{node_text}
]
lanes = [
{lane_text}
]
[fleet]
count = {cells}
park = [{parks}]
amr = {{ max_speed = 1.2, dock_speed = 0.25 }}
[orders]
products = [{{ type = "housing", routing = [{{ cell = "mill", cycle_time = {CYCLE_TIME} }}] }}]
book = [{{ id = "bulk", product = "housing", quantity = 100000, due = 1.0e9 }}]
release = {{ policy = "conwip", wip_cap = {2 * cells + 1} }}
"""


def factory_config(cells: int) -> LineConfig:
    return loads(factory_text(cells), f"<factory_scaling {cells} cells>", ROOT / "configs")


class RunningFactory:
    """A factory stepped as `twin run` steps it: built-in controller, events to the KPIs."""

    def __init__(self, cfg: LineConfig) -> None:
        self.automated: AutomatedLine = build_line(cfg)
        self.line = self.automated.line
        self.monitor = ProductionMonitor(self.line)
        line = self.line
        self.stepper = TelemetryStepper(
            self.automated,
            state_rate=0.0,  # no state messages, as `twin run` without a recording
            state=lambda: state_message(line, "fast"),
            monitor=self.monitor,
        )

    def advance(self, steps: int) -> tuple[float, float]:
        """Step `steps` times; the CPU seconds (see CLOCK) and wall seconds it took."""
        cpu, wall = CLOCK(), time.perf_counter()
        self.stepper.advance(steps)
        self.stepper.flush_events()
        return CLOCK() - cpu, time.perf_counter() - wall

    def rate(self, steps: int) -> float:
        """Steps per CPU second of `steps` steps."""
        return steps / self.advance(steps)[0]

    def bare_rate(self, steps: int) -> float:
        """Steps per CPU second of bare stepSimulation of the same bodies, from a saved
        state restored afterwards (so the factory goes on where it was)."""
        client = self.line.world.client
        saved = client.saveState()
        step = client.stepSimulation
        try:
            t0 = CLOCK()
            for _ in range(steps):
                step()
            return steps / (CLOCK() - t0)
        finally:
            client.restoreState(stateId=saved)
            client.removeState(saved)

    def close(self) -> None:
        self.line.close()


def _warm_up(factory: RunningFactory, seconds: float) -> None:
    factory.stepper.advance(max(1, round(seconds / factory.line.dt)))


def factory_scaling(config: str, *, quick: bool) -> list[BenchResult]:
    """`config` is unused: the factories are built in code, the cell count the variable."""
    counts = QUICK_CELLS if quick else CELLS
    reps, block = (2, 20) if quick else (5, 100)
    warm = 3.0 if quick else 60.0  # s simulated before timing: AMRs out, parts in cells
    per_cells: dict[str, dict[str, Any]] = {}
    for cells in counts:
        factory = RunningFactory(factory_config(cells))
        try:
            _warm_up(factory, warm)
            ours, bare = interleave(
                [partial(factory.rate, block), partial(factory.bare_rate, block)], reps
            )
            where = time_split(factory, block * (1 if quick else 2))
            per_cells[str(cells)] = _figures(factory, median(ours), median(bare), where)
        finally:
            factory.close()
    first, last = per_cells[str(counts[0])], per_cells[str(counts[-1])]
    n_first, n_last = counts[0], counts[-1]
    scaling = BenchResult(
        name="factory_scaling",
        ours=last["us_per_step"],
        baseline=first["us_per_step"],
        unit="us/step",
        better="lower",
        target=TARGET_RATIO if n_last == 8 and n_first == 1 else None,
        details={
            "cells": f"{n_last} against {n_first}",
            "marginal_us_per_cell": (last["us_per_step"] - first["us_per_step"])
            / max(1, n_last - n_first),
            "per_cells": per_cells,
            "repetitions": reps,
            "steps_per_block": block,
            "warm_up_s": warm,
        },
    )
    return [scaling, factory_6cell(quick=quick)]


def factory_6cell(*, quick: bool) -> BenchResult:
    """configs/factory_6cell.toml in fast mode, as `twin run` steps it: simulated seconds
    per CPU second (and per wall second) over a stretch after a warm-up, and bare stepping
    of the same bodies."""
    warm, measured = (2.0, 3.0) if quick else (30.0, 60.0)
    factory = RunningFactory(load(FACTORY_6CELL))
    try:
        _warm_up(factory, warm)
        steps = round(measured / factory.line.dt)
        cpu, wall = factory.advance(steps)
        rate = steps / cpu
        bare = factory.bare_rate(min(steps, 1000))
        where = time_split(factory, 100 if quick else 400)
        figures = _figures(factory, rate, bare, where)
    finally:
        factory.close()
    rtf = rate * factory.line.dt
    return BenchResult(
        name="factory_6cell",
        ours=rtf,
        baseline=1.0,
        unit="x real time",
        target=TARGET_RTF,
        details={
            "simulated_s": measured,
            "warm_up_s": warm,
            "bare_real_time_factor": bare * factory.line.dt,
            "wall_real_time_factor": measured / wall,  # on a busy machine, below the CPU's
            **figures,
        },
    )


def _figures(
    factory: RunningFactory, rate: float, bare: float, where: dict[str, float]
) -> dict[str, Any]:
    line = factory.line
    kpis = factory.monitor.kpis.snapshot(line.sim_time)
    fleet = kpis["factory"]["fleet"] if kpis.get("factory") else {}
    return {
        "us_per_step": 1e6 / rate,
        "bare_us_per_step": 1e6 / bare,
        "steps_per_s": rate,
        "real_time_factor": rate * line.dt,
        "devices": len(line.devices),
        "amrs": fleet.get("amrs", 0),
        "fleet_busy": fleet.get("busy"),
        "parts_in_factory": len(line.pool.active),
        "parts_completed": kpis["parts_completed"],
        "where_us_per_step": where,
    }


# ---------------------------------------------------------------- where the time goes
def time_split(factory: RunningFactory, steps: int) -> dict[str, float]:
    """µs per step of each piece of a factory step over `steps` timed steps: bullet's
    stepSimulation, the ray batch (safety fields, photo-eyes), the device hooks by device
    kind, the lost-part check, the controller (and its parts), and the events and KPIs."""
    seconds: dict[str, float] = defaultdict(float)
    clock = CLOCK
    undo: list[Callable[[], None]] = []

    def timed(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[label] += clock() - t0

        return wrapper

    def patch(obj: Any, name: str, label: str) -> None:
        had = name in vars(obj)
        original = getattr(obj, name)
        setattr(obj, name, timed(label, original))
        undo.append(lambda: setattr(obj, name, original) if had else delattr(obj, name))

    line = factory.line
    world = line.world
    client_id = world._id
    physics = timed("physics (stepSimulation)", world.client.stepSimulation)
    rays = timed("ray batch (safety fields, eyes)", world.rays.cast)

    def world_step() -> None:
        physics(physicsClientId=client_id)
        world.step_index += 1
        rays(client_id)

    world.step = world_step  # type: ignore[method-assign]
    undo.append(lambda: delattr(world, "step"))
    for hooks in (line._before, line._after):
        original_hooks = list(hooks)
        hooks[:] = [timed(f"devices: {hook.__self__.kind}", hook) for hook in original_hooks]  # type: ignore[attr-defined]
        undo.append(partial(hooks.__setitem__, slice(None), original_hooks))
    patch(line.lost_parts, "check", "lost-part check")
    controller = factory.automated.controller
    if controller is not None:
        patch(controller, "tick", "controller")
        for name, part in vars(controller).items():  # a composite's own controllers
            if hasattr(part, "tick") and callable(part.tick):
                patch(part, "tick", f"controller > {name}")
    patch(factory.stepper, "flush_events", "events and KPIs")
    t0 = clock()
    try:
        factory.stepper.advance(steps)
    finally:
        total = clock() - t0
        for fn in reversed(undo):
            fn()
    out = {label: s / steps * 1e6 for label, s in seconds.items()}
    top = sum(v for label, v in out.items() if " > " not in label)
    out["rest (step loop, line state)"] = total / steps * 1e6 - top
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))
