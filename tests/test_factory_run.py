"""A factory run by its built-in controller (cells' sequencer, orders, fleet and traffic
manager) in real physics: AMRs never overlap and never get stuck, every part is accounted
for, the same seed gives the same trajectory bit for bit (throughput: test_fleet_throughput)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from tests.factory_mini import mini_factory
from tests.fake_amrs import rectangles_overlap
from twin.automation import AutomatedLine, build_line
from twin.config import AmrConfig, LineConfig

SAMPLE_EVERY = 10  # steps between two looks at the AMRs' poses (0.1 s)


def run(cfg: LineConfig, seconds: float, watch: bool = False) -> dict[str, Any]:
    """Run the factory; with `watch`, check at every sample that no two AMRs overlap and
    record how long each has been standing still with somewhere to go."""
    amrs = [d for d in cfg.devices if isinstance(d, AmrConfig)]
    length, width = amrs[0].size[0], amrs[0].size[1]
    kinds: Counter[str] = Counter()
    longest_stand = dict.fromkeys((a.id for a in amrs), 0.0)
    standing = dict.fromkeys((a.id for a in amrs), 0.0)
    with build_line(cfg) as line:
        steps = round(seconds / line.dt)
        for i in range(steps):
            line.step()
            if i % SAMPLE_EVERY:
                continue
            for e in line.drain_events():
                kinds[e.kind] += 1
            if watch:
                sig = {a.id: line.devices[a.id].signals() for a in amrs}
                poses = [(s["x"], s["y"], s["yaw"]) for s in sig.values()]
                for k, p in enumerate(poses):
                    for q in poses[k + 1 :]:
                        assert not rectangles_overlap(p, q, length, width), (line.sim_time, sig)
                _stand_times(line, sig, standing, longest_stand)
        for e in line.drain_events():
            kinds[e.kind] += 1
        return {
            "kinds": kinds,
            "counts": line.line.counts(),
            "where": _where_parts_are(line, amrs),
            "longest_stand": longest_stand,
            "errors": line.controller.fleet.errors + line.controller.fleet.traffic.errors,
        }


def _stand_times(
    line: AutomatedLine,
    sig: dict[str, dict[str, Any]],
    standing: dict[str, float],
    longest: dict[str, float],
) -> None:
    """Seconds each AMR has stood still while the traffic manager had a place for it to go
    to that it was not at (waiting at a dock for a part to be loaded is not standing)."""
    traffic = line.controller.fleet.traffic
    dt = SAMPLE_EVERY * line.dt
    for amr, s in sig.items():
        t = traffic.amrs[amr]
        stuck = t.goal is not None and t.place != t.goal and abs(s["speed"]) < 0.01
        standing[amr] = standing[amr] + dt if stuck else 0.0
        longest[amr] = max(longest[amr], standing[amr])


def _where_parts_are(line: AutomatedLine, amrs: list[AmrConfig]) -> dict[str, int]:
    on_amrs = [p for a in amrs if (p := line.devices[a.id].signals()["load"]) is not None]
    active = set(line.pool.active)
    return {"on_amrs": len(on_amrs), "in_cells": len(active - set(on_amrs))}


def test_a_factory_runs_without_collisions_or_deadlock_and_every_part_is_accounted_for(
    tmp_path: Path,
) -> None:
    cfg = mini_factory(tmp_path, amrs=2, mills=2, cycle_time=8.0)
    result = run(cfg, 160.0, watch=True)
    kinds, counts, where = result["kinds"], result["counts"], result["where"]
    # parts went receiving -> mill -> shipping, carried by both AMRs
    assert kinds["transport_done"] >= 4, kinds
    assert counts["parts_completed"] >= 1, counts
    assert kinds["order_released"] == counts["parts_spawned"]
    # nothing lost, nothing left anywhere unknown
    assert counts["parts_lost"] == 0
    assert counts["parts_spawned"] == (
        counts["parts_completed"]
        + counts["parts_scrapped"]
        + counts["parts_lost"]
        + where["on_amrs"]
        + where["in_cells"]
    )
    assert kinds["amr_move_done"] > 10
    # never waiting long for the way to clear
    assert max(result["longest_stand"].values()) < 30.0, result
    assert kinds["alarm"] == 0


def test_same_config_and_seed_same_factory_trajectory(tmp_path: Path) -> None:
    cfg = mini_factory(tmp_path, amrs=2, mills=1, cycle_time=5.0)

    def trajectory() -> tuple[list[Any], list[Any]]:
        poses, events = [], []
        with build_line(cfg) as line:
            amrs = [d.id for d in cfg.devices if isinstance(d, AmrConfig)]
            for i in range(round(40.0 / line.dt)):
                line.step()
                if i % 25 == 0:
                    sig = [line.devices[a].signals() for a in amrs]
                    poses.append([(s["x"], s["y"], s["yaw"], s["speed"]) for s in sig])
                    poses.append([p.id for p in line.pool.active.values()])
                    events += [(e.step, e.kind, e.device, e.data) for e in line.drain_events()]
        return poses, events

    first, second = trajectory(), trajectory()
    assert first == second
    assert any(k == "transport_done" for _, k, _, _ in first[1])


def test_after_an_emergency_stop_the_amrs_carry_on_where_they_were(tmp_path: Path) -> None:
    """E-stops while AMRs drive and dock: they stop at once; after the reset each finishes
    the move it was on (from wherever it stopped, mid-lane too) and the parts keep moving."""
    cfg = mini_factory(
        tmp_path,
        amrs=2,
        mills=1,
        cycle_time=5.0,
        estops="[{ at = 20.0, duration = 4.0 }, { at = 47.0, duration = 3.0 }]",
    )
    result = run(cfg, 100.0)
    kinds = result["kinds"]
    assert kinds["estop"] == 2 and kinds["estop_reset"] == 2
    assert kinds["transport_done"] >= 3, kinds  # receiving -> mill -> shipping, and more
    assert not [e for e in result["errors"] if "refused" in e], result["errors"]
