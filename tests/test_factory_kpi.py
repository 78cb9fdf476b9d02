"""Factory KPIs against answers worked out by hand, from scripted event streams: AMR
utilisation, orders, transports, shipping throughput, where every part is, the bottleneck,
and the order records of the genealogy."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from twin.analytics.factory_kpi import AMR_ACTIVITIES, CellInfo, FactoryKpiTracker
from twin.analytics.genealogy import Genealogy
from twin.analytics.kpi import KpiTracker
from twin.analytics.monitor import ProductionMonitor
from twin.analytics.plot import plot_run
from twin.analytics.timeline import Timeline
from twin.automation import build_line
from twin.config import load
from twin.events import EVENT_TYPES, Event, make_event
from twin.run import factory_lines
from twin.telemetry import TelemetryStepper, state_message

ROOT = Path(__file__).resolve().parents[1]

ROOT = Path(__file__).resolve().parents[1]

_BLANK = {int: 0, float: 0.0, str: "", bool: False}

CELLS = {
    "recv": CellInfo("receiving", "receiving", [], ["recv_source", "recv_dock"]),
    "mill1": CellInfo("mill", "process", ["mill1_mill"], ["mill1_mill", "mill1_robot"]),
    "ship": CellInfo("shipping", "shipping", [], ["ship_sink", "ship_dock"]),
}


def ev(t: float, kind: str, device: str = "line", **data) -> Event:
    """A typed event; the fields a scenario does not care about get blank values."""
    for f in msgspec.structs.fields(EVENT_TYPES[kind]):
        if f.required and f.name not in ("step", "time", "device") and f.name not in data:
            data[f.name] = _BLANK.get(f.type)
    return make_event(kind, device, round(t * 100), t, **data)


def state(t: float, amr: str, old: str, new: str) -> Event:
    return ev(t, "amr_state", amr, old=old, new=new, cause="test")


def one_transport_and_a_charge() -> list[Event]:
    """a1 starts docked at receiving, takes part 1 to the mill, drives back empty (blocked on
    the way), waits, then goes to charge; a2 idles but for a 10 s e-stop."""
    return [
        ev(2, "amr_loaded", "a1", part=1, type="a", mass=2.0),
        state(4, "a1", "docked", "undocking"),
        state(6, "a1", "undocking", "driving"),
        state(26, "a1", "driving", "docking"),
        state(28, "a1", "docking", "docked"),
        ev(28, "amr_move_done", "a1", goal="mill1_in", result="ok", distance=12.0),
        ev(30, "amr_unloaded", "a1", part=1),
        state(32, "a1", "docked", "undocking"),
        state(34, "a1", "undocking", "driving"),
        state(44, "a1", "driving", "blocked"),
        state(49, "a1", "blocked", "driving"),
        state(50, "a2", "idle", "stopped"),
        state(54, "a1", "driving", "idle"),
        ev(54, "amr_move_done", "a1", goal="p1", result="ok", distance=6.5),
        state(60, "a2", "stopped", "idle"),
        ev(65, "battery_low", "a1", level=0.24),
        state(70, "a1", "idle", "driving"),
        state(80, "a1", "driving", "charging"),
        ev(80, "amr_move_done", "a1", goal="c1", result="ok", distance=5.5),
    ]


def tracker(**kw) -> FactoryKpiTracker:
    return FactoryKpiTracker({"a1": "docked", "a2": "idle"}, cells=CELLS, **kw)


def test_amr_time_splits_into_what_it_was_doing_and_adds_up_to_the_run():
    k = tracker()
    k.consume(one_transport_and_a_charge())
    snap = k.snapshot(100.0, {})
    a1 = snap["amrs"]["a1"]
    assert a1["time_s"] == pytest.approx(
        {
            "driving_loaded": 20.0,  # 6-26
            "driving_empty": 25.0,  # 34-44, 49-54, 70-80
            "handling": 14.0,  # docked from the start to 6 (undocking included), 26-34
            "charging": 20.0,  # 80-100
            "blocked": 5.0,  # 44-49
            "idle": 16.0,  # 54-70
            "stopped": 0.0,
        }
    )
    assert sum(a1["utilisation"].values()) == pytest.approx(1.0)
    assert a1["busy"] == pytest.approx(0.84)  # all but idle (and stopped)
    assert (a1["distance_m"], a1["moves"], a1["battery_low"]) == (24.0, 3, 1)
    assert a1["state"] == "charging"
    a2 = snap["amrs"]["a2"]
    assert a2["time_s"]["idle"] == pytest.approx(90.0)
    assert a2["time_s"]["stopped"] == pytest.approx(10.0)
    assert a2["busy"] == 0.0
    fleet = snap["fleet"]
    assert fleet["amrs"] == 2
    assert fleet["busy"] == pytest.approx(0.42)
    assert fleet["utilisation"] == pytest.approx(
        {
            "driving_loaded": 0.10,
            "driving_empty": 0.125,
            "handling": 0.07,
            "charging": 0.10,
            "blocked": 0.025,
            "idle": 0.53,
            "stopped": 0.05,
        }
    )
    assert sum(fleet["utilisation"].values()) == pytest.approx(1.0)
    assert list(fleet["utilisation"]) == list(AMR_ACTIVITIES)
    assert fleet["distance_m"] == 24.0


def test_a_part_that_slides_off_while_driving_turns_the_drive_empty():
    k = tracker()
    k.consume(
        [
            state(0, "a2", "idle", "docked"),
            ev(1, "amr_loaded", "a2", part=7, type="a", mass=2.0),
            state(2, "a2", "docked", "driving"),
            ev(5, "amr_unloaded", "a2", part=7),  # it fell off braking
            ev(5.2, "part_lost", "line", part=7, type="a", reason="on_floor"),
            state(9, "a2", "driving", "idle"),
        ]
    )
    a2 = k.snapshot(10.0, {})["amrs"]["a2"]
    assert a2["time_s"]["driving_loaded"] == pytest.approx(3.0)
    assert a2["time_s"]["driving_empty"] == pytest.approx(4.0)
    assert a2["time_s"]["handling"] == pytest.approx(2.0)
    assert a2["time_s"]["idle"] == pytest.approx(1.0)


def order_book() -> list[Event]:
    """Five orders: o1 on time, o2 late (20 s past due), o3 on time, o4 past due and open,
    o5 not released yet."""
    out = []
    for t, order, due, qty in [(0, "o1", 100, 2), (10, "o2", 50, 1), (20, "o3", 200, 1)]:
        out += [
            ev(t, "order_arrived", "orders", order=order, product="a", quantity=qty, due=due),
            ev(t, "order_started", "orders", order=order),
        ]
        out += [ev(t, "order_released", "orders", order=order, part=0) for _ in range(qty)]
    out += [
        ev(30, "order_arrived", "orders", order="o4", product="b", quantity=1, due=60),
        ev(35, "order_started", "orders", order="o4"),
        ev(35, "order_released", "orders", order="o4", part=9),
        ev(40, "order_arrived", "orders", order="o5", product="b", quantity=3, due=500),
        ev(50, "order_late", "orders", order="o2", due=50.0),
        ev(60, "order_late", "orders", order="o4", due=60.0),
        ev(70, "order_completed", "orders", order="o2", lead_time=60.0, late=True),
        ev(80, "order_completed", "orders", order="o1", lead_time=80.0, late=False),
        ev(150, "order_completed", "orders", order="o3", lead_time=130.0, late=False),
    ]
    return sorted(out, key=lambda e: e.time)


def test_order_counts_lead_time_and_on_time_delivery():
    k = tracker()
    k.consume(order_book())
    o = k.snapshot(300.0, {})["orders"]
    assert (o["arrived"], o["released"], o["completed"], o["late"], o["open"]) == (5, 4, 3, 2, 2)
    assert o["parts_released"] == 5
    assert o["on_time_delivery"] == pytest.approx(2 / 3)
    assert o["lead_time_s"]["mean"] == pytest.approx(90.0)
    # p90 of [60, 80, 130], linear: 80 + 0.8 x 50
    assert o["lead_time_s"]["p90"] == pytest.approx(120.0)
    assert o["lead_time_s"]["max"] == 130.0
    assert o["tardiness_s"] == pytest.approx(20.0)  # o2: completed at 70, due at 50


def test_no_orders_yet_reads_as_nothing_rather_than_zero():
    o = tracker().snapshot(10.0, {})["orders"]
    assert o["arrived"] == 0 and o["on_time_delivery"] is None and o["lead_time_s"] is None


def parts_everywhere() -> list[Event]:
    """Seven parts: three shipped (one a reject), one completed at a cell's own reject bin,
    one lost, one riding an AMR, one in a cell; and one lost off an AMR's deck."""
    out = [ev(i, "part_spawned", "recv_source", part=i, type="a") for i in range(1, 9)]
    out += [
        ev(20, "part_completed", "ship_sink", part=1, type="a", quality="good"),
        ev(30, "part_completed", "ship_sink", part=2, type="a", quality="reject"),
        ev(40, "part_completed", "ship_sink", part=3, type="a", quality="good"),
        ev(41, "part_completed", "mill1_bin", part=4, type="a", quality="reject"),
        ev(42, "part_lost", "line", part=5, type="a", reason="on_floor"),
        ev(43, "amr_loaded", "a2", part=6, type="a", mass=2.0),
        ev(44, "amr_loaded", "a1", part=8, type="a", mass=2.0),
        ev(45, "part_lost", "line", part=8, type="a", reason="on_floor"),
    ]
    return out  # part 7 sits in a cell


def test_throughput_counts_parts_shipped_and_every_part_is_somewhere():
    k = tracker(shipping=["ship_sink"])
    k.consume(parts_everywhere())
    snap = k.snapshot(1800.0, {})
    assert snap["throughput_per_hour"] == pytest.approx(3 / 1800 * 3600)
    p = snap["parts"]
    assert p == {
        "spawned": 8,
        "completed": 4,
        "shipped": 3,
        "scrapped": 2,
        "on_amrs": 1,
        "in_cells": 1,
    }
    assert p["spawned"] == p["completed"] + p["scrapped"] + p["on_amrs"] + p["in_cells"]


def test_without_a_shipping_cell_every_sink_ships():
    k = tracker()
    k.consume(parts_everywhere())
    assert k.snapshot(1800.0, {})["parts"]["shipped"] == 4


def transports() -> list[Event]:
    return [
        ev(1, "transport_requested", "fleet", part=1, from_cell="recv", to_cell="mill1"),
        ev(3, "transport_assigned", "fleet", part=1, amr="a1"),
        ev(5, "transport_requested", "fleet", part=2, from_cell="recv", to_cell="mill1"),
        ev(11, "transport_assigned", "fleet", part=2, amr="a2"),
        ev(28, "transport_done", "fleet", part=1, amr="a1", from_cell="recv", to_cell="mill1"),
        ev(40, "transport_done", "fleet", part=2, amr="a2", from_cell="recv", to_cell="mill1"),
        ev(50, "transport_requested", "fleet", part=1, from_cell="mill1", to_cell="ship"),
        ev(52, "transport_requested", "fleet", part=2, from_cell="mill1", to_cell="ship"),
        ev(56, "transport_assigned", "fleet", part=1, amr="a1"),
    ]


def test_transport_waits_and_durations():
    k = tracker()
    k.consume(transports())
    snap = k.snapshot(60.0, {})
    t = snap["transports"]
    assert (t["requested"], t["assigned"], t["done"], t["waiting"]) == (4, 3, 2, 1)
    assert t["wait_s"] == pytest.approx((2 + 6 + 6) / 3)
    assert t["duration_s"] == pytest.approx((27 + 35) / 2)
    assert snap["amrs"]["a1"]["transports"] == 1 and snap["amrs"]["a2"]["transports"] == 1
    assert snap["fleet"]["transports"] == 2


def station_events(active_until: float) -> list[Event]:
    return [
        ev(0, "station_activity", "mill1_mill", activity="execute"),
        ev(active_until, "station_activity", "mill1_mill", activity="starved"),
    ]


def kpis_with(events: list[Event], end: float) -> dict:
    k = KpiTracker({"mill1_mill": 5.0}, robots=["mill1_robot"], factory=tracker())
    k.consume(events)
    return k.snapshot(end)


def test_the_bottleneck_is_the_fleet_when_its_amrs_are_the_busiest():
    events = station_events(50.0) + one_transport_and_a_charge()
    events.append(ev(0, "arm_activity", "mill1_robot", activity="moving"))
    events.append(ev(30, "arm_activity", "mill1_robot", activity="idle"))
    snap = kpis_with(sorted(events, key=lambda e: e.time), 100.0)
    b = snap["bottleneck"]
    # the fleet is busy 42%, the mill executes 50%: a single busy AMR does not make the fleet
    # the constraint
    assert (b["resource"], b["kind"], b["cell"]) == ("mill1_mill", "station", "mill1")
    assert "in cell 'mill1'" in b["reason"] and "50%" in b["reason"]
    assert [(r["resource"], round(r["active_share"], 3)) for r in b["ranking"]] == [
        ("mill1_mill", 0.5),
        ("fleet", 0.42),
        ("mill1_robot", 0.3),
    ]
    # the same fleet with the mill executing 30% of the time is the bottleneck
    snap = kpis_with(sorted(station_events(30.0) + one_transport_and_a_charge(), key=_t), 100.0)
    b = snap["bottleneck"]
    assert (b["resource"], b["kind"], b["station"], b["cell"]) == ("fleet", "fleet", None, None)
    assert b["active_share"] == pytest.approx(0.42)
    assert "fleet of 2 AMRs is busy 42%" in b["reason"]
    assert "driving loaded 10%" in b["reason"] and "idle 53%" in b["reason"]


def _t(e: Event) -> float:
    return e.time


def test_a_plain_line_has_no_factory_figures():
    k = KpiTracker({"mill": 5.0})
    k.consume(station_events(10.0))
    snap = k.snapshot(20.0)
    assert snap["factory"] is None
    assert snap["bottleneck"]["kind"] == "station" and "ranking" not in snap["bottleneck"]


def test_factory_figures_sit_beside_the_line_kpis():
    events = station_events(40.0) + one_transport_and_a_charge() + order_book() + transports()
    snap = kpis_with(sorted((e for e in events if e.time <= 100), key=_t), 100.0)
    f = snap["factory"]
    assert f["cells"]["mill1"] == {
        "kind": "mill",
        "role": "process",
        "processed": 0,
        "active_share": pytest.approx(0.4),
    }
    assert f["cells"]["recv"]["active_share"] is None  # no station: no share
    text = "\n".join(factory_lines(f))
    assert (
        "orders          arrived 5, released 4, completed 2 (50% on time), late 2, open 3" in text
    )
    assert "busy 84%  loaded 20%  empty 25%  at docks 14%  charging 20%" in text
    assert "mean wait for an AMR 4.7 s, request to delivery 31.0 s" in text
    msgspec.json.encode(snap)  # the report and the wire carry it as it is


def test_genealogy_keeps_each_order_with_its_parts_and_transports():
    g = Genealogy()
    events = [
        ev(0, "order_arrived", "orders", order="o1", product="a", quantity=2, due=100.0),
        ev(0, "order_started", "orders", order="o1"),
        ev(0, "part_spawned", "recv_source", part=1, type="a", order="o1"),
        ev(0, "order_released", "orders", order="o1", part=1),
        ev(5, "order_released", "orders", order="o1", part=2),  # released before it spawned
        ev(5.5, "part_spawned", "recv_source", part=2, type="a"),
        *transports(),
        ev(90, "part_completed", "ship_sink", part=1, type="a", quality="good"),
        ev(110, "order_late", "orders", order="o1", due=100.0),
        ev(120, "part_completed", "ship_sink", part=2, type="a", quality="good"),
        ev(120, "order_completed", "orders", order="o1", lead_time=120.0, late=True),
    ]
    g.consume(sorted(events, key=_t))
    (order,) = g.orders_list()
    assert order == {
        "id": "o1",
        "product": "a",
        "quantity": 2,
        "due": 100.0,
        "priority": 0,
        "arrived": 0.0,
        "started": 0.0,
        "completed": 120.0,
        "lead_time": 120.0,
        "late": True,
        "parts": [1, 2],
        "shipped": 2,
    }
    part1 = msgspec.to_builtins(g.get(1))
    assert part1["order"] == "o1"
    assert part1["transports"] == [
        {
            "from_cell": "recv",
            "to_cell": "mill1",
            "requested": 1.0,
            "amr": "a1",
            "assigned": 3.0,
            "done": 28.0,
        },
        {
            "from_cell": "mill1",
            "to_cell": "ship",
            "requested": 50.0,
            "amr": "a1",
            "assigned": 56.0,
            "done": None,
        },
    ]
    assert g.get(2).order == "o1"  # from its order_released, though it spawned without one


def test_the_plot_shows_each_amr_as_the_kpis_count_it(tmp_path):
    events = sorted(station_events(40.0) + one_transport_and_a_charge() + order_book(), key=_t)
    timeline = Timeline(["mill1_mill"], amrs={"a1": "docked", "a2": "idle"})
    timeline.consume(events)
    k = tracker()
    k.consume(events)
    kpis = k.snapshot(160.0, {})
    for amr in ("a1", "a2"):
        spans: dict[str, float] = {}
        for _start, length, activity in timeline.amr_intervals(amr, 160.0):
            spans[activity] = spans.get(activity, 0.0) + length
        counted = {a: t for a, t in kpis["amrs"][amr]["time_s"].items() if t}
        assert spans == pytest.approx(counted)
    assert timeline.orders_on_time[-1] == (150.0, 2) and timeline.orders_late[-1] == (70.0, 1)
    png = plot_run(timeline, 160.0, tmp_path / "factory.png")
    plain = Timeline(["mill1_mill"])
    plain.consume(station_events(40.0))
    plain_png = plot_run(plain, 160.0, tmp_path / "line.png")
    # two more panels (AMRs, orders): a taller picture
    assert _png_height(png) > _png_height(plain_png) * 1.3


def _png_height(path) -> int:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(header[20:24], "big")


def test_a_transport_requested_before_its_part_is_released_is_timed_from_the_request():
    """The fleet sends an AMR to the receiving store before the part exists (part null);
    the leg is the AMR's from its assignment and the part's once delivered."""
    events = [
        ev(10, "transport_requested", "fleet", part=None, from_cell="recv", to_cell="mill1"),
        ev(12, "transport_requested", "fleet", part=None, from_cell="recv", to_cell="mill1"),
        ev(15, "transport_assigned", "fleet", part=None, amr="a2"),
        ev(30, "part_spawned", "recv_source", part=4, type="a"),
        ev(50, "transport_done", "fleet", part=4, amr="a2", from_cell="recv", to_cell="mill1"),
    ]
    k = tracker()
    k.consume(events)
    t = k.snapshot(60.0, {})["transports"]
    assert (t["requested"], t["assigned"], t["done"], t["waiting"]) == (2, 1, 1, 1)
    assert t["wait_s"] == pytest.approx(5.0)  # the first request, 10 -> 15
    assert t["duration_s"] == pytest.approx(40.0)  # 10 -> 50
    g = Genealogy()
    g.consume(events)
    (leg,) = g.get(4).transports
    assert (leg.requested, leg.amr, leg.assigned, leg.done) == (10.0, "a2", 15.0, 50.0)


def test_a_running_factory_s_figures_match_its_parts_and_amrs():
    """configs/factory_small.toml for two simulated minutes: the KPIs, from events alone,
    agree with where the line says every part is and with what the AMRs carry."""
    automated = build_line(load(ROOT / "configs" / "factory_small.toml"))
    line = automated.line
    monitor = ProductionMonitor(line)
    stepper = TelemetryStepper(
        automated, state_rate=0.0, state=lambda: state_message(line, "fast"), monitor=monitor
    )
    try:
        stepper.advance(round(120.0 / line.dt))
        stepper.flush_events()
        kpis = monitor.kpis.snapshot(line.sim_time)
        signals = line.signals()
        counts = line.counts()
    finally:
        line.close()
    f = kpis["factory"]
    p = f["parts"]
    assert p["spawned"] >= 2, "the factory released parts in two minutes"
    assert p["spawned"] == counts["parts_spawned"] == f["orders"]["parts_released"]
    assert p["completed"] == counts["parts_completed"]
    assert p["scrapped"] == counts["parts_lost"] + counts["parts_scrapped"]
    loads = {a for a in ("amr1", "amr2") if signals[a]["load"] is not None}
    assert p["on_amrs"] == len(loads)
    assert p["on_amrs"] + p["in_cells"] == counts["wip"]
    for amr in ("amr1", "amr2"):
        a = f["amrs"][amr]
        assert sum(a["utilisation"].values()) == pytest.approx(1.0)
        assert a["state"] == signals[amr]["state"]
        assert a["distance_m"] > 1.0  # both AMRs were sent somewhere
    assert f["transports"]["done"] >= 1
    assert f["orders"]["arrived"] >= 1 and f["orders"]["released"] >= 1
    assert kpis["bottleneck"]["ranking"][0]["active_share"] == kpis["bottleneck"]["active_share"]


def test_a_factory_s_oee_pools_its_parallel_stations():
    """Two mills in parallel, 10 s a part: one works 60 of 100 s (6 parts, one a reject),
    the other 20 s (2 parts). Five parts shipped would make a paced line's performance
    exceed 1; pooled, the factory is the stations' time-weighted mean."""
    events = [ev(0, "station_activity", m, activity="starved") for m in ("m1", "m2")]
    for i in range(1, 9):
        events.append(ev(0, "part_spawned", "src", part=i, type="a"))
    events += [ev(0, "station_activity", "m1", activity="execute")]
    events += [ev(10 * i, "process_finished", "m1", part=i, quality="good") for i in (1, 2, 3)]
    events += [ev(40, "process_finished", "m1", part=4, quality="reject")]
    events += [ev(10 * i, "process_finished", "m1", part=i, quality="good") for i in (5, 6)]
    events += [ev(60, "station_activity", "m1", activity="starved")]
    events += [ev(0, "station_activity", "m2", activity="execute")]
    events += [
        ev(t, "process_finished", "m2", part=p, quality="good") for t, p in ((10, 7), (20, 8))
    ]
    events += [ev(20, "station_activity", "m2", activity="starved")]
    events += [ev(90, "part_completed", "ship_sink", part=i, type="a") for i in (1, 2, 3, 5, 6)]
    k = KpiTracker({"m1": 10.0, "m2": 10.0}, factory=tracker())
    k.consume(sorted(events, key=_t))
    oee = k.snapshot(100.0)["oee"]
    assert oee["pacing_station"] is None
    assert oee["availability"] == pytest.approx(80 / 200)
    assert oee["performance"] == pytest.approx(1.0)
    assert oee["quality"] == pytest.approx(7 / 8)
    assert oee["oee"] == pytest.approx(0.4 * 7 / 8)
