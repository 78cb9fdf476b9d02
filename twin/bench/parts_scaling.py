"""parts_scaling: steps/s of a line of long running belts carrying 10, 100 and 500 parts
(spawned from the pool, no controller) against bare stepSimulation of the same bodies.

The belts and sensors are the same for every count, so what changes is only the parts; the
cost per part per step should stay flat (no super-linear growth).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from twin.bench.hosted import bare_rate, line_rate
from twin.bench.result import BenchResult, interleave, median
from twin.config import ConveyorConfig, LineConfig, PartType, PhotoEyeConfig
from twin.line import Line

COUNTS = (10, 100, 500)
QUICK_COUNTS = (10, 50, 150)
STEPS_PER_BLOCK = {10: 200, 50: 100, 100: 100, 150: 60, 500: 40}  # ~same wall time per block
BELTS = 8
BELT_LENGTH = 6.0  # m
BELT_PITCH = 0.5  # m between belt centres
BELT_SPEED = 0.1  # m/s
LANES = (-0.07, 0.07)  # m across the belt
SPACING = 0.15  # m between parts along a lane
HEAD_MARGIN = 0.8  # m kept free at the downstream end so no part runs off during the run
SETTLE_STEPS = 40
PART = PartType(name="box", size=[0.08, 0.08, 0.05], mass=0.3)


def scaling_config() -> LineConfig:
    devices: list = []
    for i in range(BELTS):
        belt = f"belt{i}"
        devices.append(
            ConveyorConfig(
                id=belt,
                position=[0.0, i * BELT_PITCH, 0.0],
                length=BELT_LENGTH,
                width=0.3,
                speed=BELT_SPEED,
                max_speed=1.0,
                running=True,
                end_stop=False,
            )
        )
        devices.append(PhotoEyeConfig(id=f"{belt}_eye", conveyor=belt, offset=0.0))
    return LineConfig(name="parts_scaling", part_types=[PART], devices=devices)


def slots() -> list[list[float]]:
    """Part positions: round robin over belts, filling each from the upstream end."""
    per_lane = int((BELT_LENGTH - HEAD_MARGIN - 0.3) / SPACING)
    z = 0.75 + PART.size[2] / 2 + 0.002
    out = []
    for k in range(per_lane):
        along = -BELT_LENGTH / 2 + 0.3 + k * SPACING
        for lane in LANES:
            for belt in range(BELTS):
                out.append([along, belt * BELT_PITCH + lane, z])
    return out


def build(count: int) -> Line:
    places = slots()
    if count > len(places):
        raise ValueError(f"room for {len(places)} parts, asked for {count}")
    line = Line(
        scaling_config(),
    )
    for position in places[:count]:
        line.pool.spawn(PART.name, position, 0.0, line.sim_time)
    line.step(SETTLE_STEPS)
    return line


def parts_scaling(config: str, *, quick: bool) -> BenchResult:
    """`config` is unused: the line is built in code so the part count is the only variable."""
    reps = 2 if quick else 7
    counts = QUICK_COUNTS if quick else COUNTS
    per_count: dict[str, dict[str, float]] = {}
    for count in counts:
        block = STEPS_PER_BLOCK[count] // (5 if quick else 1)
        line = build(count)
        try:
            ours, baseline = interleave(
                [partial(line_rate, line, block), partial(bare_rate, line, block)], reps
            )
            wip = len(line.pool.active)
        finally:
            line.close()
        ours_rate, bare = median(ours), median(baseline)
        per_count[str(count)] = {
            "steps_per_s": ours_rate,
            "bare_steps_per_s": bare,
            "us_per_step": 1e6 / ours_rate,
            "us_per_part_step": 1e6 / ours_rate / count,
            "bare_us_per_part_step": 1e6 / bare / count,
            "parts_on_line": wip,
            "steps_per_block": block,
        }
    return BenchResult(
        name="parts_scaling",
        ours=per_count[str(counts[-1])]["steps_per_s"],
        baseline=per_count[str(counts[-1])]["bare_steps_per_s"],
        unit="steps/s",
        details={
            "parts": counts[-1],
            **_marginal_costs(counts, per_count),
            "per_count": per_count,
            "repetitions": reps,
        },
    )


def _marginal_costs(
    counts: tuple[int, ...], per_count: dict[str, dict[str, float]]
) -> dict[str, float]:
    """us each extra part adds to a step, between consecutive counts; flat means linear."""
    out: dict[str, Any] = {}
    for a, b in zip(counts, counts[1:]):
        extra = per_count[str(b)]["us_per_step"] - per_count[str(a)]["us_per_step"]
        out[f"marginal_us_per_part_{a}_{b}"] = extra / (b - a)
    first, last = (out[f"marginal_us_per_part_{a}_{b}"] for a, b in zip(counts, counts[1:]))
    # > 1 would mean each part costs more when there are more of them (super-linear)
    out["marginal_growth"] = last / first if first > 0 else None
    return out
