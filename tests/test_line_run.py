"""The default cell run as a whole with its built-in controller: counting, no lost parts,
body reuse, and bit-identical determinism. Real pybullet; one long run shared by the tests."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from twin.automation import AutomatedLine, build_line
from twin.config import load

DEFAULT_LINE = Path(__file__).resolve().parents[1] / "configs" / "default_line.toml"
RUN_SECONDS = 300.0
CHUNK = 2000  # steps between samples (10 s)
DET_STEPS = 6000  # steps compared bit for bit (30 s: two parts spawned, transfers running)


def snapshot(line: AutomatedLine) -> dict:
    """Every float of the physical state a user could observe: parts, arm, belts."""
    c = line.world.client
    parts = {
        pid: tuple(c.getBasePositionAndOrientation(p.body)) + tuple(c.getBaseVelocity(p.body))
        for pid, p in sorted(line.pool.active.items())
    }
    bodies = {}
    for dev_id, dev in line.devices.items():
        body = getattr(dev, "body", None)
        if body is not None and c.getNumJoints(body):
            states = c.getJointStates(body, range(c.getNumJoints(body)))
            bodies[dev_id] = [tuple(s[:2]) for s in states]
    return {"parts": parts, "joints": bodies, "step": line.step_index}


def event_list(events) -> list:
    return [(e.step, e.kind, e.device, sorted(e.data.items())) for e in events]


def footprint_of(line: AutomatedLine, pos) -> str | None:
    """Which belt or station table a point lies on (within its footprint, above its top)."""
    for dev_id, dev in line.devices.items():
        cfg = dev.cfg
        if dev.kind == "conveyor":
            half_l, half_w, top = cfg.length / 2, cfg.width / 2, cfg.height
        elif dev.kind == "station":
            half_l, half_w, top = cfg.size[0] / 2, cfg.size[1] / 2, cfg.size[2]
        else:
            continue
        x0, y0, _ = cfg.position
        c, s = math.cos(cfg.yaw), math.sin(cfg.yaw)
        dx, dy = pos[0] - x0, pos[1] - y0
        along, across = c * dx + s * dy, -s * dx + c * dy
        if (
            abs(along) <= half_l + 0.005
            and abs(across) <= half_w + 0.005
            and top < pos[2] < top + 0.1
        ):
            return dev_id
    return None


@pytest.fixture(scope="module")
def long_run():
    rec: dict = {"events": [], "lowest_z": math.inf, "max_active": 0, "max_of_type": {}}
    with build_line(load(DEFAULT_LINE)) as line:
        for _ in range(round(RUN_SECONDS / line.dt / CHUNK)):
            for _ in range(CHUNK // 50):  # peaks of parts alive, per type, every 0.5 s
                line.step(50)
                alive: dict[str, int] = {}
                for p in line.pool.active.values():
                    alive[p.type] = alive.get(p.type, 0) + 1
                for t, n in alive.items():
                    rec["max_of_type"][t] = max(rec["max_of_type"].get(t, 0), n)
            rec["events"] += line.drain_events()
            if line.step_index == DET_STEPS:
                rec["det_snapshot"] = snapshot(line)
                rec["det_events"] = event_list(rec["events"])
            for pid in line.pool.active:
                rec["lowest_z"] = min(rec["lowest_z"], line.pool.pose(pid)[0][2])
            rec["max_active"] = max(rec["max_active"], len(line.pool.active))
        rec["counts"] = line.counts()
        rec["active"] = {pid: line.pool.pose(pid)[0] for pid in line.pool.active}
        rec["where"] = {pid: footprint_of(line, pos) for pid, pos in rec["active"].items()}
        rec["holding"] = line.signals()["robot"]["holding"]
        rec["tool"] = line.signals()["robot"]["tool_position"]
        rec["bodies_created"] = line.pool.bodies_created
        rec["sequencer_errors"] = list(line.controller.errors)
    return rec


def test_parts_are_conserved(long_run):
    counts = long_run["counts"]
    assert counts["parts_completed"] > 0
    # 300 s at an 18 s (+/- 2 s) interval: about 16 parts, nearly all of them finished
    assert counts["parts_spawned"] >= 14
    assert counts["parts_completed"] >= counts["parts_spawned"] - 4
    assert counts["parts_spawned"] == counts["parts_completed"] + len(long_run["active"])
    assert counts["wip"] == len(long_run["active"])


def test_events_match_counters(long_run):
    ev = long_run["events"]
    spawned = [e.data["part"] for e in ev if e.kind == "part_spawned"]
    completed = [e.data["part"] for e in ev if e.kind == "part_completed"]
    assert len(spawned) == long_run["counts"]["parts_spawned"]
    assert len(completed) == long_run["counts"]["parts_completed"]
    assert len(set(spawned)) == len(spawned) and len(set(completed)) == len(completed)
    # every part spawned is either completed or still on the line, never both
    assert set(completed) | set(long_run["active"]) == set(spawned)
    assert not set(completed) & set(long_run["active"])
    for e in ev:
        if e.kind == "part_completed":
            assert e.data["lead_time"] > 8.0  # at least the mill's cycle time


def test_no_part_ends_on_the_floor(long_run):
    assert long_run["lowest_z"] > 0.5  # sampled every 10 s over the whole run
    for pid, pos in long_run["active"].items():
        assert pos[2] > 0.5
        on_cup = long_run["holding"] == pid and math.dist(pos, long_run["tool"]) < 0.1
        assert on_cup or long_run["where"][pid] is not None, (pid, pos)


def test_pool_reuses_bodies(long_run):
    spawned = long_run["counts"]["parts_spawned"]
    # a body per part of a type alive at once, never more (sampled every 0.5 s)
    assert long_run["bodies_created"] <= sum(long_run["max_of_type"].values())
    assert long_run["bodies_created"] <= spawned // 2


def test_sequencer_commands_were_all_accepted(long_run):
    assert long_run["sequencer_errors"] == []


def test_same_seed_is_bit_identical(long_run):
    with build_line(load(DEFAULT_LINE)) as line:
        line.step(DET_STEPS)
        snap = snapshot(line)
        events = event_list(line.drain_events())
    assert snap["parts"], "nothing to compare: no parts on the line"
    assert snap == long_run["det_snapshot"]  # exact floats
    assert events == long_run["det_events"]


def test_different_seed_changes_the_random_source(long_run):
    cfg = load(DEFAULT_LINE)
    with build_line(cfg, seed=cfg.physics.seed + 1) as line:
        line.step(DET_STEPS)
        events = event_list(line.drain_events())
    assert events != long_run["det_events"]
    mine = [(e[0], e[3]) for e in events if e[1] == "part_spawned"]
    theirs = [(e[0], e[3]) for e in long_run["det_events"] if e[1] == "part_spawned"]
    assert mine != theirs  # jitter moves the spawn times (and the type mix may differ)


def test_two_lines_in_one_process_do_not_disturb_each_other():
    # stepped alternately, two same-seed lines stay bit-identical: no shared global state
    with build_line(load(DEFAULT_LINE)) as a, build_line(load(DEFAULT_LINE)) as b:
        for _ in range(40):
            a.step(50)
            b.step(50)
        assert a.pool.active, "nothing to compare: no parts on the line"
        assert snapshot(a) == snapshot(b)
        assert event_list(a.drain_events()) == event_list(b.drain_events())


def test_every_completed_part_was_processed_and_no_transfer_failed(long_run):
    ev = long_run["events"]
    finished = {e.data["part"]: e.data["cycle_time"] for e in ev if e.kind == "process_finished"}
    for e in ev:
        if e.kind == "part_completed":
            assert e.data["part"] in finished  # no part bypasses the mill
    for cycle in finished.values():
        assert cycle == pytest.approx(8.0, abs=0.006)  # the mill's cycle time, within a step
    results = [e.data["result"] for e in ev if e.kind == "arm_job_done"]
    assert results and set(results) == {"ok"}
