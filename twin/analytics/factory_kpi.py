"""Factory KPIs from the event stream alone: what a factory adds to a line's KPIs.

- Throughput: parts shipped (completed at a shipping cell's sink) per hour.
- Orders (from `order_*` events): arrived, released (first part released), completed, late
  (completed after their due time, or open past it: `order_late`), open; lead time from
  arrival to completion (mean, p90); on-time delivery = completed on time / completed.
- Transports (`transport_*`): how long parts wait for an AMR and how long a transport takes.
- AMR utilisation: each AMR's time split by what it was doing, from `amr_state` (its state)
  and `amr_loaded`/`amr_unloaded` (whether its deck carries a part): driving loaded,
  driving empty, handling (docking, docked, undocking: at a dock while a part goes on or
  off), charging, blocked, idle, stopped (e-stop, halted, battery empty). The shares add up
  to 1 over the observed period; the fleet's are the mean over its AMRs.
- Parts: where every spawned part is: spawned = completed + scrapped (lost) + on AMRs +
  in cells.
- The bottleneck: the resource with the largest active share among stations, robots and
  the fleet (one pooled resource: its AMRs serve every transport). An AMR is active unless
  idle or stopped (driving, at a dock, charging or blocked all keep it from new work), as a
  station is active while it executes or is down.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable
from typing import Any, NamedTuple

from twin.analytics.kpi import percentile
from twin.analytics.transports import TransportMatcher
from twin.events import (
    AmrLoaded,
    AmrMoveDone,
    AmrState,
    AmrUnloaded,
    BatteryLow,
    Event,
    OrderArrived,
    OrderCompleted,
    OrderLate,
    OrderReleased,
    OrderStarted,
    PartCompleted,
    PartLost,
    PartSpawned,
    TransportAssigned,
    TransportDone,
    TransportRequested,
)

# what an AMR's time is split into (its utilisation), in report order
AMR_ACTIVITIES = (
    "driving_loaded",
    "driving_empty",
    "handling",
    "charging",
    "blocked",
    "idle",
    "stopped",
)
AMR_BUSY = frozenset(AMR_ACTIVITIES) - {"idle", "stopped"}
_BY_STATE = {
    "idle": "idle",
    "docking": "handling",
    "docked": "handling",
    "undocking": "handling",
    "charging": "charging",
    "blocked": "blocked",
    "stopped": "stopped",
    "battery_empty": "stopped",
}


def amr_activity(state: str, loaded: bool) -> str:
    """The utilisation bucket of an AMR in `state`, with or without a part on its deck."""
    if state == "driving":
        return "driving_loaded" if loaded else "driving_empty"
    return _BY_STATE.get(state, "idle")


class AmrActivity:
    """One AMR's state and load, as its events tell them."""

    def __init__(self, state: str = "idle") -> None:
        self.state = state
        self.load: int | None = None

    @property
    def activity(self) -> str:
        return amr_activity(self.state, self.load is not None)


class FleetActivity:
    """Every AMR's state and load from the events; `feed` says whose activity (utilisation
    bucket) an event changed. A part that leaves the factory from a deck (lost off it,
    taken by a sink) leaves the deck too, whether or not an `amr_unloaded` said so."""

    def __init__(self, amrs: dict[str, str]) -> None:
        self.amrs = {a: AmrActivity(state) for a, state in amrs.items()}
        self.carrying: dict[int, str] = {}  # part -> the AMR whose deck it rides

    def feed(self, e: Event) -> tuple[str, str, str] | None:
        """Apply one event: (AMR, activity before, activity after) if it changed one."""
        if isinstance(e, (AmrState, AmrLoaded, AmrUnloaded)):
            amr_id = e.device
            amr = self.amrs.get(amr_id)
            if amr is None:  # an AMR nobody announced: idle until told otherwise
                amr = self.amrs[amr_id] = AmrActivity()
            before = amr.activity
            if isinstance(e, AmrState):
                amr.state = e.new
            elif isinstance(e, AmrLoaded):
                if amr.load is not None:
                    self.carrying.pop(amr.load, None)
                amr.load = e.part
                self.carrying[e.part] = amr_id
            elif amr.load == e.part:
                amr.load = None
                self.carrying.pop(e.part, None)
        elif isinstance(e, (PartLost, PartCompleted)) and e.part in self.carrying:
            amr_id = self.carrying.pop(e.part)
            amr = self.amrs[amr_id]
            before = amr.activity
            amr.load = None
        else:
            return None
        after = amr.activity
        return (amr_id, before, after) if after != before else None


class _AmrClock:
    def __init__(self, start: float, activity: str) -> None:
        self.activity = activity
        self.since = start
        self.totals = dict.fromkeys(AMR_ACTIVITIES, 0.0)
        self.distance = 0.0
        self.moves: Counter[str] = Counter()  # ended moves by result
        self.transports = 0
        self.battery_low = 0

    def switch(self, activity: str, now: float) -> None:
        self.totals[self.activity] += now - self.since
        self.activity, self.since = activity, now

    def totals_at(self, now: float) -> dict[str, float]:
        out = dict(self.totals)
        out[self.activity] += max(0.0, now - self.since)
        return out


class CellInfo(NamedTuple):
    kind: str
    role: str  # "process", "receiving" or "shipping"
    stations: list[str]
    devices: list[str]


class FactoryKpiTracker:
    """Feed it every event; `snapshot` gives the factory section of the KPIs.

    `amrs` maps each AMR id to the state it starts in ("idle", or "docked" for one that
    starts at a dock); `shipping` names the sinks whose parts count as shipped (None: every
    sink); `cells` describes each cell for the per-cell figures and the bottleneck's cell."""

    def __init__(
        self,
        amrs: dict[str, str],
        *,
        start: float = 0.0,
        shipping: Iterable[str] | None = None,
        cells: dict[str, CellInfo] | None = None,
    ) -> None:
        self.start = start
        self.fleet = FleetActivity(amrs)
        self.amrs = {a: _AmrClock(start, t.activity) for a, t in self.fleet.amrs.items()}
        self.shipping = set(shipping) if shipping is not None else None
        self.cells = dict(cells or {})
        self.spawned = 0
        self.completed = 0
        self.shipped = 0
        self.lost = 0
        # orders
        self.due: dict[str, float] = {}  # order -> due time, of every order that arrived
        self.released: set[str] = set()
        self.parts_released = 0
        self.orders_completed = 0
        self.orders_on_time = 0
        self.late: set[str] = set()
        self._order_leads: list[float] = []  # sorted
        self._order_lead_sum = 0.0
        self._tardiness_sum = 0.0  # s past due, over late completed orders
        self._tardiness_n = 0
        self.transports = TransportMatcher()
        self.transports_requested = 0
        self.transports_assigned = 0
        self.transports_done = 0
        self._wait_sum = 0.0  # s from request to assignment
        self._wait_n = 0
        self._transport_sum = 0.0  # s from request to delivery
        self._transport_done_timed = 0

    def _amr(self, amr: str) -> _AmrClock:
        clock = self.amrs.get(amr)
        if clock is None:  # an AMR the tracker was not told about: from the start, idle
            clock = self.amrs[amr] = _AmrClock(self.start, "idle")
        return clock

    def consume(self, events: Iterable[Event]) -> None:
        for e in events:
            changed = self.fleet.feed(e)
            if changed is not None:
                amr, _before, after = changed
                self._amr(amr).switch(after, e.time)
            if isinstance(e, AmrMoveDone):
                clock = self._amr(e.device)
                clock.moves[e.result] += 1
                clock.distance += e.distance
            elif isinstance(e, BatteryLow):
                self._amr(e.device).battery_low += 1
            elif isinstance(e, PartSpawned):
                self.spawned += 1
            elif isinstance(e, PartCompleted):
                self.completed += 1
                if self.shipping is None or e.device in self.shipping:
                    self.shipped += 1
            elif isinstance(e, PartLost):
                self.lost += 1
            elif isinstance(e, OrderArrived):
                self.due[e.order] = e.due
            elif isinstance(e, OrderReleased):
                self.parts_released += 1
                self.released.add(e.order)
            elif isinstance(e, OrderStarted):
                self.released.add(e.order)
            elif isinstance(e, OrderLate):
                self.late.add(e.order)
            elif isinstance(e, OrderCompleted):
                self._order_completed(e)
            elif isinstance(e, (TransportRequested, TransportAssigned, TransportDone)):
                self._transport(e)

    def _transport(self, e: TransportRequested | TransportAssigned | TransportDone) -> None:
        if isinstance(e, TransportRequested):
            self.transports_requested += 1
        elif isinstance(e, TransportAssigned):
            self.transports_assigned += 1
        else:
            self.transports_done += 1
            self._amr(e.amr).transports += 1
        matched = self.transports.feed(e)
        if matched is None:
            return
        what, leg = matched
        if leg.requested is None:
            return
        if what == "assigned" and leg.assigned is not None:
            self._wait_sum += leg.assigned - leg.requested
            self._wait_n += 1
        elif what == "done" and leg.done is not None:
            self._transport_sum += leg.done - leg.requested
            self._transport_done_timed += 1

    def _order_completed(self, e: OrderCompleted) -> None:
        self.orders_completed += 1
        lead = float(e.lead_time)
        bisect.insort(self._order_leads, lead)
        self._order_lead_sum += lead
        due = self.due.get(e.order)
        if e.late:
            self.late.add(e.order)
            if due is not None:
                self._tardiness_sum += max(0.0, e.time - due)
                self._tardiness_n += 1
        else:
            self.orders_on_time += 1

    # ------------------------------------------------------------------ snapshots
    def amr_kpis(self, now: float) -> dict[str, dict[str, Any]]:
        pbt = max(now - self.start, 1e-12)
        out = {}
        for amr, clock in self.amrs.items():
            totals = clock.totals_at(now)
            out[amr] = {
                "utilisation": {k: v / pbt for k, v in totals.items()},
                "time_s": totals,
                "busy": sum(v for k, v in totals.items() if k in AMR_BUSY) / pbt,
                "state": self.fleet.amrs[amr].state,
                "distance_m": clock.distance,
                "moves": sum(clock.moves.values()),
                "moves_blocked": clock.moves["blocked"],
                "transports": clock.transports,
                "battery_low": clock.battery_low,
            }
        return out

    @staticmethod
    def fleet_kpis(amrs: dict[str, dict[str, Any]]) -> dict[str, Any]:
        n = len(amrs)
        if not n:
            return {"amrs": 0, "utilisation": dict.fromkeys(AMR_ACTIVITIES, 0.0), "busy": 0.0}
        return {
            "amrs": n,
            "utilisation": {
                k: sum(a["utilisation"][k] for a in amrs.values()) / n for k in AMR_ACTIVITIES
            },
            "busy": sum(a["busy"] for a in amrs.values()) / n,
            "distance_m": sum(a["distance_m"] for a in amrs.values()),
            "transports": sum(a["transports"] for a in amrs.values()),
        }

    def order_kpis(self) -> dict[str, Any]:
        leads = self._order_leads
        done = self.orders_completed
        tardy = self._tardiness_n
        arrived = len(self.due)
        return {
            "arrived": arrived,
            "released": len(self.released),
            "completed": done,
            "late": len(self.late),
            "open": arrived - done,
            "parts_released": self.parts_released,
            "on_time_delivery": self.orders_on_time / done if done else None,
            "lead_time_s": {
                "mean": self._order_lead_sum / len(leads),
                "p90": percentile(leads, 90),
                "max": leads[-1],
            }
            if leads
            else None,
            "tardiness_s": self._tardiness_sum / tardy if tardy else None,
        }

    def transport_kpis(self) -> dict[str, Any]:
        waits, timed = self._wait_n, self._transport_done_timed
        return {
            "requested": self.transports_requested,
            "assigned": self.transports_assigned,
            "done": self.transports_done,
            "waiting": self.transports.waiting,  # for an AMR, now
            "wait_s": self._wait_sum / waits if waits else None,
            "duration_s": self._transport_sum / timed if timed else None,
        }

    def parts(self) -> dict[str, int]:
        on_amrs = len(self.fleet.carrying)
        return {
            "spawned": self.spawned,
            "completed": self.completed,
            "shipped": self.shipped,
            "scrapped": self.lost,
            "on_amrs": on_amrs,
            "in_cells": self.spawned - self.completed - self.lost - on_amrs,
        }

    def cell_kpis(self, stations: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        out = {}
        for cid, cell in self.cells.items():
            mine = [stations[s] for s in cell.stations if s in stations]
            active = [s["utilisation"]["execute"] + s["utilisation"]["down"] for s in mine]
            out[cid] = {
                "kind": cell.kind,
                "role": cell.role,
                "processed": sum(s["processed"] for s in mine),
                "active_share": sum(active) / len(active) if active else None,
            }
        return out

    def snapshot(self, now: float, stations: dict[str, dict[str, Any]]) -> dict[str, Any]:
        elapsed = max(now - self.start, 1e-12)
        amrs = self.amr_kpis(now)
        return {
            "throughput_per_hour": self.shipped / elapsed * 3600,
            "parts": self.parts(),
            "orders": self.order_kpis(),
            "transports": self.transport_kpis(),
            "amrs": amrs,
            "fleet": self.fleet_kpis(amrs),
            "cells": self.cell_kpis(stations),
        }

    def bottleneck(
        self,
        stations: dict[str, dict[str, Any]],
        robots: dict[str, dict[str, Any]],
        factory: dict[str, Any],
    ) -> dict[str, Any] | None:
        """The most utilised resource among stations, robots and the fleet (ties: stations,
        then robots, then the fleet), with the figures that make it so and a ranking of
        every resource by active share."""
        ranking: list[dict[str, Any]] = []
        for sid, st in stations.items():
            u = st["utilisation"]
            ranking.append(
                {"resource": sid, "kind": "station", "active_share": u["execute"] + u["down"]}
            )
        for rid, r in robots.items():
            ranking.append({"resource": rid, "kind": "robot", "active_share": r["busy"]})
        fleet = factory["fleet"]
        if fleet["amrs"]:
            ranking.append({"resource": "fleet", "kind": "fleet", "active_share": fleet["busy"]})
        if not ranking:
            return None
        top = max(ranking, key=lambda r: r["active_share"])  # max keeps the first of equals
        ranking.sort(key=lambda r: -r["active_share"])  # stable: ties keep their order
        kind, rid, share = top["kind"], top["resource"], top["active_share"]
        cell = self._cell_of(rid)
        where = f" in cell '{cell}'" if cell else ""
        if kind == "station":
            u = stations[rid]["utilisation"]
            reason = (
                f"station '{rid}'{where} is active {share:.0%} of the time "
                f"(executing {u['execute']:.0%}, down {u['down']:.0%}); "
                f"it waits least: starved {u['starved']:.0%}, blocked {u['blocked']:.0%}"
            )
        elif kind == "robot":
            u = robots[rid]["utilisation"]
            handling = u.get("picking", 0.0) + u.get("placing", 0.0)
            reason = (
                f"robot '{rid}'{where} is busy {share:.0%} of the time (handling parts "
                f"{handling:.0%}, travelling {share - handling:.0%}); it waits least: "
                f"idle {u.get('idle', 0.0):.0%}, waiting with a part {u.get('waiting', 0.0):.0%}"
            )
        else:
            u = fleet["utilisation"]
            wait = factory["transports"]["wait_s"]
            waited = (
                f"; parts waited {wait:.1f} s on average for an AMR" if wait is not None else ""
            )
            reason = (
                f"the fleet of {fleet['amrs']} AMR{'s' if fleet['amrs'] != 1 else ''} is busy "
                f"{share:.0%} of the time (driving loaded {u['driving_loaded']:.0%}, "
                f"empty {u['driving_empty']:.0%}, at docks {u['handling']:.0%}, "
                f"charging {u['charging']:.0%}, blocked {u['blocked']:.0%}); "
                f"idle {u['idle']:.0%}{waited}"
            )
        return {
            "resource": rid,
            "kind": kind,
            "station": rid if kind == "station" else None,
            "cell": cell,
            "active_share": share,
            "reason": reason,
            "ranking": ranking,
        }

    def _cell_of(self, device: str) -> str | None:
        for cid, cell in self.cells.items():
            if device in cell.devices or device in cell.stations:
                return cid
        return None
