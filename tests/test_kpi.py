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


def test_availability_with_a_scripted_breakdown_is_uptime_over_planned_time():
    events = [
        ev(0, "station_activity", "st", activity="execute"),
        ev(100, "station_activity", "st", activity="down"),
        ev(130, "station_activity", "st", activity="execute"),
        ev(400, "station_activity", "st", activity="down"),
        ev(420, "station_activity", "st", activity="execute"),
    ]
    k = KpiTracker({"st": 5.0})
    k.consume(events)
    st = k.snapshot(500)["stations"]["st"]
    assert st["availability"] == pytest.approx((500 - 50) / 500)
    assert st["time_s"]["down"] == pytest.approx(50)


def test_quality_is_good_over_total_and_oee_is_the_product():
    events, end = steady_station(cycle=6.0, parts=20, gap=2.0, rejects={3, 7, 11, 15})
    events.append(ev(end, "station_activity", "st", activity="down"))
    k = KpiTracker({"st": 6.0})
    k.consume(events)
    snap = k.snapshot(end + 20)
    st = snap["stations"]["st"]
    assert st["quality"] == pytest.approx(16 / 20)
    assert st["availability"] == pytest.approx(end / (end + 20))
    assert st["performance"] == pytest.approx(6.0 * 20 / end)
    assert st["oee"] == pytest.approx(st["availability"] * st["performance"] * st["quality"])
    line = snap["oee"]
    assert line["quality"] == pytest.approx(16 / 20)
    assert line["oee"] == pytest.approx(
        line["availability"] * line["performance"] * line["quality"]
    )


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
