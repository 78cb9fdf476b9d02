"""Parts that leave the line are found, scrapped and pooled: a reversed belt fed every step
costs no more at the end than at the start, WIP stays true, a full pool makes the source wait."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from conservation import assert_events_conserved, assert_parts_conserved

from twin.analytics.monitor import ProductionMonitor
from twin.config import loads
from twin.line import Line

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = (ROOT / "configs" / "default_line.toml").read_text()


def default_line(pool: str = "") -> Line:
    text = DEFAULT.replace("[physics]", pool + "\n[physics]") if pool else DEFAULT
    return Line(loads(text, "default_line.toml"))


def reverse_infeed(line: Line) -> None:
    line.apply("infeed", "set_direction", {"reverse": True})
    line.apply("infeed", "set_speed", {"speed": 0.6})
    line.apply("infeed", "run")


def feed_every_step(line: Line, steps: int) -> float:
    """Ask the source for a part every step; returns the CPU time per step in ms (CPU time:
    other processes on the machine do not count), the median of blocks of 100 steps."""
    blocks = []
    for _ in range(max(1, steps // 100)):
        start = time.process_time()
        for _ in range(100):
            if not line.devices["source"]._requested:  # one request waiting at a time
                line.apply("source", "spawn")
            line.step()
        blocks.append((time.process_time() - start) / 100 * 1000)
    return statistics.median(blocks)


def test_parts_fed_off_a_reversed_belt_are_lost_and_the_step_cost_stays_flat():
    with default_line() as line:
        monitor = ProductionMonitor(line)
        events = []
        reverse_infeed(line)
        feed_every_step(line, 300)  # the first parts reach the floor
        early = feed_every_step(line, 500)
        events += line.drain_events()
        monitor.consume(events)
        feed_every_step(line, 1500)
        late = feed_every_step(line, 500)
        tail = line.drain_events()
        monitor.consume(tail)
        events += tail
        counts = line.counts()

        lost = [e for e in events if e.kind == "part_lost"]
        assert counts["parts_spawned"] > 60 and counts["parts_completed"] == 0
        assert len(lost) == counts["parts_lost"] >= counts["parts_spawned"] - 6
        for e in lost:
            assert e.data["reason"] == "on_floor" and e.device == "line"
            x, _, z = e.data["position"]
            assert x < -1.5 and z < 0.45  # off the upstream end, its bottom below 0.375 m
            assert e.data["near"] in ("source", "infeed", "infeed_entry_eye")
        # the few parts on the line are the ones still riding the belt or falling
        assert counts["wip"] <= 6 and line.pool.bodies_created <= 12
        # WIP is the truth in the KPIs too, and the lost parts are scrap in the genealogy
        assert monitor.kpis.snapshot(line.sim_time)["wip"] == counts["wip"]
        record = monitor.genealogy.get(lost[-1].data["part"])
        assert record.lost == lost[-1].time and record.quality == "reject"
        assert "on_floor near" in record.lost_where
        # before lost parts were scrapped, 108 parts piled up and a step cost 20x more
        assert late < 2.5 * early + 0.1, (early, late)
        assert_events_conserved(events, counts)


def test_a_part_out_of_the_cell_is_lost_wherever_it_is():
    with default_line() as line:
        for position in ([40.0, 0.0, 0.5], [0.0, -40.0, 0.5], [0.0, 0.0, 30.0]):
            line.pool.spawn("housing", position, 0.0, line.sim_time)
        line.step(round(0.2 / line.dt))
        lost = [e for e in line.drain_events() if e.kind == "part_lost"]
        assert sorted(e.data["part"] for e in lost) == [1, 2, 3]
        assert {e.data["reason"] for e in lost} == {"out_of_cell"}
        assert line.counts()["wip"] == 0 and not line.pool.active
        assert_parts_conserved(line.counts())


def test_a_part_on_a_belt_or_a_table_is_not_lost():
    with default_line() as line:
        line.apply("source", "disable")
        line.pool.spawn("housing", line.devices["infeed"].point(0.0, 0.0, 0.03), 0.0, 0.0)
        line.pool.spawn("cover", [0.55, 0.0, 0.75 + 0.02], 0.0, 0.0)  # on the mill's table
        line.step(round(3.0 / line.dt))
        assert not [e for e in line.drain_events() if e.kind == "part_lost"]
        assert line.counts()["wip"] == 2


def test_a_full_pool_makes_the_source_wait_and_say_so():
    pool = "[part_pool]\ncapacity = 3\n"
    with default_line(pool) as line:
        events = []
        line.apply("infeed", "set_speed", {"speed": 0.6})
        line.apply("infeed", "run")  # parts ride to the end stop and queue there
        line.apply("source", "enable")
        for _ in range(5):
            line.apply("source", "spawn")
        line.step(round(4.0 / line.dt))
        events += line.drain_events()
        source = line.signals()["source"]
        assert source["pool_full"] is True and source["spawned"] == 3
        waiting = [e for e in events if e.kind == "source_waiting"]
        assert [(e.data["waiting"], e.data["capacity"]) for e in waiting] == [(True, 3)]
        assert line.counts()["wip"] == 3

        reverse_infeed(line)  # the queue goes off the other end: the pool has room again
        line.step(round(8.0 / line.dt))
        events += line.drain_events()
        waiting = [e.data["waiting"] for e in events if e.kind == "source_waiting"]
        assert waiting[:2] == [True, False]
        assert line.counts()["parts_lost"] >= 3 and line.counts()["parts_spawned"] > 3
        assert_events_conserved(events, line.counts())
