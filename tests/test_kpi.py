"""KPI arithmetic against answers worked out by hand, from scripted event streams."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from twin.analytics.genealogy import Genealogy
from twin.analytics.kpi import KpiTracker
from twin.events import EVENT_TYPES, Event, make_event

_BLANK = {int: 0, float: 0.0, str: "", bool: False}


def ev(t: float, kind: str, device: str = "line", **data) -> Event:
    """A typed event; the fields a scenario does not care about get blank values."""
    for f in msgspec.structs.fields(EVENT_TYPES[kind]):
        if f.required and f.name not in ("step", "time", "device") and f.name not in data:
            data[f.name] = _BLANK.get(f.type)  # None for the optional (union) types
    return make_event(kind, device, round(t * 200), t, **data)


def steady_station(cycle: float, parts: int, gap: float = 0.0, rejects: set[int] = frozenset()):
    """A station that processes one part every cycle + gap seconds, each part spawned just before."""
    events = [ev(0.0, "station_activity", "st", activity="starved")]
    t = 0.0
    for i in range(1, parts + 1):
        events.append(ev(t, "part_spawned", "src", part=i, type="a"))
        events.append(ev(t, "station_activity", "st", activity="execute"))
        t += cycle
        quality = "reject" if i in rejects else "good"
        events.append(ev(t, "process_finished", "st", part=i, quality=quality))
        events.append(ev(t, "station_activity", "st", activity="starved"))
        events.append(
            ev(t, "part_completed", "sink", part=i, type="a", lead_time=cycle, quality=quality)
        )
        t += gap
    return events, t


def test_station_fed_faster_than_its_cycle_produces_at_one_over_c():
    events, end = steady_station(cycle=8.0, parts=45)
    k = KpiTracker({"st": 8.0})
    k.consume(events)
    snap = k.snapshot(end)
    assert snap["throughput_per_hour"] == pytest.approx(3600 / 8.0)
    st = snap["stations"]["st"]
    assert st["utilisation"]["execute"] == pytest.approx(1.0)
    assert st["performance"] == pytest.approx(1.0)
    assert snap["bottleneck"]["station"] == "st"


def test_line_throughput_is_the_slowest_station_rate():
    # two stations in series; the slow one (10 s) paces the line, the fast one (4 s) starves
    events, t = [], 0.0
    events += [
        ev(0, "station_activity", "fast", activity="starved"),
        ev(0, "station_activity", "slow", activity="starved"),
    ]
    for i in range(1, 31):
        events += [
            ev(t, "part_spawned", "src", part=i, type="a"),
            ev(t, "station_activity", "fast", activity="execute"),
        ]
        events += [
            ev(t + 4, "process_finished", "fast", part=i),
            ev(t + 4, "station_activity", "fast", activity="starved"),
        ]
        events += [ev(t + 4, "station_activity", "slow", activity="execute")]
        events += [
            ev(t + 14, "process_finished", "slow", part=i),
            ev(t + 14, "station_activity", "slow", activity="starved"),
        ]
        events += [ev(t + 14, "part_completed", "sink", part=i, lead_time=14.0)]
        t += 10.0
    events.sort(key=lambda e: e.time)
    k = KpiTracker({"fast": 4.0, "slow": 10.0})
    k.consume(events)
    snap = k.snapshot(t + 4)
    assert snap["throughput_per_hour"] == pytest.approx(3600 / 10.0, rel=0.02)
    assert snap["bottleneck"]["station"] == "slow"
    assert "slow" in snap["bottleneck"]["reason"]


def test_quality_is_good_over_total_and_oee_is_the_product():
    events, end = steady_station(cycle=6.0, parts=20, gap=2.0, rejects={3, 7, 11, 15})
    events.append(ev(end, "station_activity", "st", activity="down"))
    k = KpiTracker({"st": 6.0})
    k.consume(events)
    snap = k.snapshot(end + 20)
    st = snap["stations"]["st"]
    assert st["quality"] == pytest.approx(16 / 20)
    assert st["availability"] == pytest.approx(6.0 * 20 / (end + 20))
    assert st["performance"] == pytest.approx(1.0)
    assert st["oee"] == pytest.approx(st["availability"] * st["performance"] * st["quality"])
    line = snap["oee"]
    assert line["quality"] == pytest.approx(16 / 20)
    assert line["oee"] == pytest.approx(
        line["availability"] * line["performance"] * line["quality"]
    )


def test_uptime_is_time_not_broken_down_and_availability_is_production_time():
    events = [
        ev(0, "station_activity", "st", activity="execute"),
        ev(100, "station_activity", "st", activity="down"),
        ev(130, "station_activity", "st", activity="execute"),
        ev(300, "station_activity", "st", activity="starved"),
        ev(350, "station_activity", "st", activity="execute"),
        ev(400, "station_activity", "st", activity="down"),
        ev(420, "station_activity", "st", activity="execute"),
    ]
    k = KpiTracker({"st": 5.0})
    k.consume(events)
    st = k.snapshot(500)["stations"]["st"]
    assert st["time_s"]["down"] == pytest.approx(50)
    assert st["uptime"] == pytest.approx((500 - 50) / 500)
    # ISO 22400: A = APT / PBT, and starved time is not production time either
    assert st["availability"] == pytest.approx((500 - 50 - 50) / 500)


def test_station_oee_factors_per_iso_22400_by_hand():
    # PBT 120 s: 10 parts of PTU 6 s in 70 s of execute (slower than ideal), 8 of them good,
    # then 20 s starved, 20 s down, 10 s blocked
    events = [ev(0, "station_activity", "st", activity="execute")]
    for i in range(1, 11):
        quality = "reject" if i in (4, 9) else "good"
        events.append(ev(7.0 * i, "process_finished", "st", part=i, quality=quality))
    events += [
        ev(70, "station_activity", "st", activity="starved"),
        ev(90, "station_activity", "st", activity="down"),
        ev(110, "station_activity", "st", activity="blocked"),
    ]
    k = KpiTracker({"st": 6.0})
    k.consume(events)
    st = k.snapshot(120.0)["stations"]["st"]
    assert st["availability"] == pytest.approx(70 / 120)  # APT / PBT
    assert st["performance"] == pytest.approx(6.0 * 10 / 70)  # PTU x PQ / APT
    assert st["quality"] == pytest.approx(8 / 10)  # GQ / PQ
    assert st["oee"] == pytest.approx(6.0 * 8 / 120)  # = PTU x GQ / PBT
    assert st["uptime"] == pytest.approx(100 / 120)


def test_line_oee_per_iso_22400_is_paced_by_the_slowest_station_and_counts_the_sink():
    # the slow station (PTU 10 s) executes 100 s of a 200 s period; 9 parts reach the sink,
    # 7 good. Not the mean of the stations' figures: the line is one work unit.
    events = [
        ev(0, "station_activity", "fast", activity="execute"),
        ev(40, "station_activity", "fast", activity="starved"),
        ev(0, "station_activity", "slow", activity="starved"),
        ev(50, "station_activity", "slow", activity="execute"),
        ev(150, "station_activity", "slow", activity="starved"),
    ]
    for i in range(1, 10):
        events.append(ev(5.0 * i, "part_spawned", "src", part=i, type="a"))
    for i in range(1, 10):
        quality = "reject" if i in (2, 5) else "good"
        events.append(ev(150 + i, "part_completed", "sink", part=i, quality=quality))
    events.sort(key=lambda e: e.time)
    k = KpiTracker({"fast": 4.0, "slow": 10.0})
    k.consume(events)
    oee = k.snapshot(200.0)["oee"]
    assert oee["pacing_station"] == "slow"
    assert oee["availability"] == pytest.approx(100 / 200)
    assert oee["performance"] == pytest.approx(10.0 * 9 / 100)
    assert oee["quality"] == pytest.approx(7 / 9)
    assert oee["oee"] == pytest.approx(10.0 * 7 / 200)


def test_robot_utilisation_by_activity_from_its_events():
    events = [
        ev(10, "arm_activity", "robot", activity="moving_to_pick"),
        ev(12, "arm_activity", "robot", activity="picking"),
        ev(13, "arm_activity", "robot", activity="moving_to_place"),
        ev(15, "arm_activity", "robot", activity="placing"),
        ev(16, "arm_activity", "robot", activity="waiting"),
        ev(20, "arm_activity", "robot", activity="idle"),
    ]
    k = KpiTracker({}, robots=["robot"])
    k.consume(events)
    r = k.snapshot(40.0)["robots"]["robot"]
    assert r["time_s"]["idle"] == pytest.approx(10 + 20)
    assert r["time_s"]["waiting"] == pytest.approx(4)
    assert r["utilisation"]["picking"] == pytest.approx(1 / 40)
    assert r["busy"] == pytest.approx((2 + 1 + 2 + 1) / 40)


def test_bottleneck_names_a_robot_when_it_is_busier_than_every_station():
    events = [
        ev(0, "station_activity", "mill", activity="execute"),
        ev(30, "station_activity", "mill", activity="starved"),
        ev(0, "arm_activity", "robot", activity="moving_to_pick"),
        ev(60, "arm_activity", "robot", activity="idle"),
    ]
    k = KpiTracker({"mill": 8.0}, robots=["robot"])
    k.consume(events)
    b = k.snapshot(100.0)["bottleneck"]
    assert (b["resource"], b["kind"], b["station"]) == ("robot", "robot", None)
    assert b["active_share"] == pytest.approx(0.6)
    assert "robot 'robot' is busy 60%" in b["reason"]


def test_alarms_and_pick_failures_are_counted():
    events = [
        ev(1, "pick_failed", "robot", reason="not found", attempts=3, part=None),
        ev(2, "alarm", "infeed_pick_eye", alarm="pick_failed", active=True, tries=3),
        ev(3, "alarm", "infeed_pick_eye", alarm="pick_failed", active=False),
        ev(4, "alarm", "mill", alarm="part_not_seated", active=True, tries=3),
    ]
    k = KpiTracker({})
    k.consume(events)
    snap = k.snapshot(5.0)
    assert snap["pick_failures"] == 1
    assert snap["alarms"] == {"pick_failed": 1, "place_failed": 0, "part_not_seated": 1}


def test_wip_and_lead_time_obey_littles_law_on_a_steady_stream():
    # a part arrives every 5 s and stays 12 s: L = lambda * W = 12 / 5 = 2.4
    events = []
    for i in range(1, 401):
        events += [ev(5.0 * i, "part_spawned", "src", part=i, type="a")]
        events += [ev(5.0 * i + 12.0, "part_completed", "sink", part=i, lead_time=12.0)]
    events.sort(key=lambda e: (e.time, e.kind != "part_completed"))
    k = KpiTracker({})
    k.consume(events)
    snap = k.snapshot(2000.0)
    rate = snap["parts_completed"] / 2000.0
    assert snap["wip_mean"] == pytest.approx(rate * snap["lead_time_s"]["mean"], rel=0.02)
    assert snap["lead_time_s"]["p90"] == pytest.approx(12.0)


def test_lead_time_statistics_match_numpy_on_scattered_completions():
    rng = np.random.default_rng(3)
    leads = rng.uniform(5.0, 60.0, size=97)
    k = KpiTracker({})
    for i, lead in enumerate(leads, start=1):  # completion order is not lead-time order
        k.consume([ev(0.0, "part_spawned", "src", part=i, type="a")])
        k.consume([ev(float(lead), "part_completed", "sink", part=i, lead_time=float(lead))])
    stats = k.snapshot(100.0)["lead_time_s"]
    for q in (50, 90, 95):
        assert stats[f"p{q}"] == float(np.percentile(leads, q))
    assert stats["mean"] == pytest.approx(float(leads.mean()), rel=1e-12)
    assert stats["max"] == float(leads.max())


def test_no_lead_time_before_the_first_part_completes():
    assert KpiTracker({}).snapshot(10.0)["lead_time_s"] is None


def test_genealogy_records_visits_completion_and_quality():
    g = Genealogy()
    g.consume(
        [
            ev(1, "part_spawned", "src", part=5, type="cover"),
            ev(10, "part_entered", "mill", part=5),
            ev(18, "process_finished", "mill", part=5, quality="reject", defect="burr"),
            ev(19, "part_left", "mill", part=5),
            ev(30, "part_completed", "sink", part=5),
        ]
    )
    r = g.get(5)
    assert (r.type, r.spawned, r.completed, r.quality, r.defect) == (
        "cover",
        1,
        30,
        "reject",
        "burr",
    )
    assert [(v.station, v.entered, v.left, v.processed) for v in r.visits] == [
        ("mill", 10, 19, True)
    ]
