"""A line with a queue keeps producing: the source is faster than the station, parts queue on
the zoned infeed one zone apart, the robot keeps loading, and throughput follows the cycle
time. Every shipped config runs with its source sped up so that its belts queue."""

from __future__ import annotations

import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conservation import assert_parts_conserved

from twin.analytics.monitor import ProductionMonitor
from twin.automation import build_line
from twin.config import ConveyorConfig, SourceConfig, StationConfig, loads

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = (ROOT / "configs" / "default_line.toml").read_text()
CYCLES = (6.0, 9.0, 12.0)  # s, mill cycle times; the source sends a part every 5 s
DURATION = 300.0  # s simulated per cycle time
SAMPLE_EVERY = 2.0  # s between two looks at the parts on the belts
# a load may wait for the station's cycle plus one robot round (unload, place, pick, load)
ROBOT_ROUND = 15.0  # s, generous: about 10 s on the default line


@dataclass
class QueueRun:
    loads: dict[str, list[float]] = field(default_factory=dict)  # station -> load times
    down: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    most_queued: dict[str, int] = field(default_factory=dict)  # zoned belt -> most parts held
    min_gap: float = math.inf  # m, smallest free space between two parts on a zoned belt
    max_tilt: float = 0.0  # degrees, the most a part on a zoned belt leant
    trouble: list[str] = field(default_factory=list)  # alarms, misloads, lost parts
    # PackML states each station passed through once it first reached Execute
    states: dict[str, set[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    kpis: dict = field(default_factory=dict)


def run_with_queue(text: str, duration: float) -> QueueRun:
    cfg = loads(text, "queue.toml")
    stations = [d.id for d in cfg.devices if isinstance(d, StationConfig)]
    zoned = [d.id for d in cfg.devices if isinstance(d, ConveyorConfig) and d.zones > 1]
    out = QueueRun(loads={s: [] for s in stations}, down={s: [] for s in stations})
    with build_line(cfg) as line:
        monitor = ProductionMonitor(line.line)
        c = line.world.client
        every = round(SAMPLE_EVERY / line.dt)
        for _ in range(round(duration / SAMPLE_EVERY)):
            line.step(every)
            events = line.drain_events()
            monitor.consume(events)
            for e in events:
                if e.kind == "station_state":
                    seen = out.states.setdefault(e.device, set())
                    if seen or e.data["new"] == "Execute":
                        seen.add(e.data["new"])
                elif e.kind == "process_started":
                    out.loads[e.device].append(e.time)
                elif e.kind == "fault" and e.device in out.down:
                    if e.data["active"]:
                        out.down[e.device].append((e.time, math.inf))
                    else:
                        out.down[e.device][-1] = (out.down[e.device][-1][0], e.time)
                elif e.kind in ("alarm", "part_not_seated", "part_lost", "pick_failed"):
                    out.trouble.append(f"{e.time:.1f} {e.kind} {e.device} {e.data}")
            for belt_id in zoned:
                belt = line.devices[belt_id]
                out.most_queued[belt_id] = max(out.most_queued.get(belt_id, 0), belt.queued)
                on_belt = []
                for part in line.pool.active.values():
                    pos, orn = c.getBasePositionAndOrientation(part.body)
                    along, across = _along_across(belt.cfg, pos)
                    top = belt.cfg.height
                    if abs(along) <= belt.cfg.length / 2 and abs(across) <= belt.cfg.width / 2:
                        if abs(pos[2] - top - part.size[2] / 2) < 0.03:
                            tilt = math.degrees(
                                math.acos(min(1.0, c.getMatrixFromQuaternion(orn)[8]))
                            )
                            out.max_tilt = max(out.max_tilt, tilt)
                            on_belt.append((along, part.size[0]))
                on_belt.sort()
                for (a0, l0), (a1, l1) in zip(on_belt, on_belt[1:]):
                    out.min_gap = min(out.min_gap, a1 - a0 - (l0 + l1) / 2)
        out.counts = line.counts()
        out.kpis = monitor.kpis.snapshot(line.sim_time)
    return out


def _along_across(cfg: ConveyorConfig, pos) -> tuple[float, float]:
    x0, y0, _ = cfg.position
    c, s = math.cos(cfg.yaw), math.sin(cfg.yaw)
    dx, dy = pos[0] - x0, pos[1] - y0
    return c * dx + s * dy, -s * dx + c * dy


def longest_wait(loads: list[float], down: list[tuple[float, float]], end: float) -> float:
    """The longest time between two loads (and from the last one to the end of the run), not
    counting the time the station was broken down."""
    times = [*loads, end]
    worst = 0.0
    for a, b in zip(times, times[1:]):
        lost = sum(max(0.0, min(b, d1) - max(a, d0)) for d0, d1 in down)
        worst = max(worst, b - a - lost)
    return worst


def default_with(cycle: float) -> str:
    text = DEFAULT.replace("interval = 18.0", "interval = 5.0")
    return text.replace("cycle_time = 8.0", f"cycle_time = {cycle}")


def _cycle_run(cycle: float) -> QueueRun:
    return run_with_queue(default_with(cycle), DURATION)


@pytest.fixture(scope="module")
def cycle_runs() -> dict[float, QueueRun]:
    # independent runs: one process each, as many at once as there are cores
    workers = min(len(CYCLES), os.cpu_count() or 1)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        return dict(zip(CYCLES, pool.map(_cycle_run, CYCLES, timeout=1200)))


def test_loads_never_stall_with_the_source_faster_than_the_mill(cycle_runs):
    for cycle, run in cycle_runs.items():
        loads = run.loads["mill"]
        assert loads and loads[0] < 30.0, (cycle, loads[:3])
        wait = longest_wait(loads, [], DURATION)
        assert wait <= cycle + ROBOT_ROUND, f"mill {cycle} s: {wait:.1f} s without a load"
        assert run.trouble == [], (cycle, run.trouble)
        assert_parts_conserved(run.counts)


def test_the_mill_stays_in_execute_or_suspended_across_parts(cycle_runs):
    for run in cycle_runs.values():
        assert len(run.loads["mill"]) >= 10
        assert run.states["mill"] == {"Execute", "Suspending", "Suspended", "Unsuspending"}


def test_throughput_falls_as_the_cycle_time_rises(cycle_runs):
    per_hour = [len(cycle_runs[c].loads["mill"]) / DURATION * 3600 for c in CYCLES]
    assert per_hour == sorted(per_hour, reverse=True) and len(set(per_hour)) == len(per_hour)
    for cycle, rate in zip(CYCLES, per_hour):
        # never faster than the mill alone, never slower than mill plus a full robot round
        assert 3600 / (cycle + ROBOT_ROUND) <= rate <= 3600 / cycle, (cycle, rate)


def test_queued_parts_wait_apart_and_upright(cycle_runs):
    for cycle, run in cycle_runs.items():
        assert run.most_queued["infeed"] >= 3, "the infeed really queued"
        assert run.min_gap >= 0.05, f"{cycle} s: parts {run.min_gap:.3f} m apart on the infeed"
        assert run.max_tilt < 5.0, f"{cycle} s: a part on the infeed leant {run.max_tilt:.1f} deg"


def test_the_kpis_name_the_robot_and_the_mill_waiting_for_it(cycle_runs):
    k = cycle_runs[CYCLES[0]].kpis
    robot = k["robots"]["robot"]
    assert robot["busy"] > k["stations"]["mill"]["utilisation"]["execute"]
    assert k["bottleneck"]["kind"] == "robot" and k["bottleneck"]["resource"] == "robot"
    assert robot["utilisation"]["picking"] > 0 and robot["utilisation"]["placing"] > 0


def _sped_up(path: Path) -> str:
    """The config with each source three times as fast, so that its belts queue."""
    text = path.read_text()
    cfg = loads(text, path.name)
    for d in cfg.devices:
        if isinstance(d, SourceConfig):
            old = f"interval = {d.interval}"
            assert old in text, f"{path.name}: write the source interval as '{old}'"
            text = text.replace(old, f"interval = {d.interval / 3:.1f}")
    return text


SHIPPED = [
    p
    for p in sorted((ROOT / "configs").glob("*.toml"))
    if "[[devices]]" in p.read_text() and p.name != "default_line.toml"  # that one is above
]


SHIPPED_DURATION = 120.0  # s


def _shipped_run(path: Path) -> QueueRun:
    return run_with_queue(_sped_up(path), SHIPPED_DURATION)


@pytest.fixture(scope="module")
def shipped_runs() -> dict[Path, QueueRun]:
    workers = min(len(SHIPPED), os.cpu_count() or 1)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        return dict(zip(SHIPPED, pool.map(_shipped_run, SHIPPED, timeout=1200)))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_config_keeps_producing_with_a_queue(path, shipped_runs):
    duration = SHIPPED_DURATION
    run = shipped_runs[path]
    cfg = loads(path.read_text(), path.name)
    cycles = {d.id: d.cycle_time for d in cfg.devices if isinstance(d, StationConfig)}
    for station, loads_ in run.loads.items():
        assert loads_, f"{path.name}: {station} was never loaded"
        wait = longest_wait(loads_[1:], run.down[station], duration)
        assert wait <= cycles[station] + 2 * ROBOT_ROUND, f"{station}: {wait:.1f} s idle"
    assert max(run.most_queued.values()) >= 2, run.most_queued
    assert run.min_gap >= 0.05 and run.max_tilt < 5.0, (run.min_gap, run.max_tilt)
    assert [t for t in run.trouble if "part_lost" in t or "alarm" in t] == []
    assert_parts_conserved(run.counts)


def test_zones_too_short_for_the_parts_are_a_config_error():
    from twin.config import ConfigError

    with pytest.raises(ConfigError) as err:
        loads(DEFAULT.replace("zones = 4 ", "zones = 12"), "short.toml")
    assert "short.toml: devices[0] (device 'infeed').zones: 12 zones of 0.133 m" in str(err.value)
