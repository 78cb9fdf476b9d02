"""Production KPIs computed from the event stream alone (never from the physics).

OEE factors follow ISO 22400-2:2014, for each station (a work unit) and for the line:
- PBT, planned busy time = the observed period (no planned down time is modelled)
- APT, actual production time = time spent processing parts (activity "execute")
- ADOT, actual unit down time = time broken down (activity "down")
- PQ, produced quantity; GQ, good quantity; PTU, planned run time per unit (cycle time)
- availability  A  = APT / PBT
- effectiveness E  = PTU x PQ / APT  (reported as "performance")
- quality ratio QR = GQ / PQ
- OEE              = A x E x QR  (= PTU x GQ / PBT)
Each station also reports uptime = (PBT - ADOT) / PBT, the share of time it was not broken
down (what availability meant before ISO 22400: it ignores starved and blocked time).
The line is one work unit paced by its constraint, the station with the longest PTU: the
line's APT is that station's, PQ and GQ are the parts completed (and good) at the sinks.

Robots are resources too: each arm's time per activity (from `arm_activity` events) gives
its utilisation; its busy share is the time it moves or handles a part.
The bottleneck is the resource (station or robot) with the largest active share, the
"active period" method: the one that is least often waiting for others. A station is
active while it executes or is down, a robot while it is busy.
WIP is the time average of parts in the line; lead time is sink time minus spawn time.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from twin.events import (
    ACTIVITIES,
    Alarm,
    ArmActivity,
    Event,
    InspectionFailed,
    PartCompleted,
    PartInspected,
    PartLost,
    PartSpawned,
    PickFailed,
    ProcessFinished,
    StationActivity,
)

if TYPE_CHECKING:
    from twin.analytics.factory_kpi import FactoryKpiTracker

ROBOT_ACTIVITIES = (
    "idle",
    "moving",
    "moving_to_pick",
    "picking",
    "moving_to_place",
    "placing",
    "waiting",
    "halted",
)
# alarms the built-in sequencer raises (see twin.control.sequencer), counted when raised
ALARMS = ("pick_failed", "place_failed", "part_not_seated")
ROBOT_BUSY = frozenset({"moving", "moving_to_pick", "picking", "moving_to_place", "placing"})


class _Clock:
    """Time spent in each activity, integrated between activity-change events."""

    def __init__(self, activities: tuple[str, ...], first: str, start: float) -> None:
        self.activity = first
        self.since = start
        self.totals = dict.fromkeys(activities, 0.0)

    def switch(self, activity: str, now: float) -> None:
        self.totals[self.activity] = self.totals.get(self.activity, 0.0) + now - self.since
        self.activity, self.since = activity, now

    def totals_at(self, now: float) -> dict[str, float]:
        out = dict(self.totals)
        out[self.activity] = out.get(self.activity, 0.0) + now - self.since
        return out


class _StationClock(_Clock):
    def __init__(self, ideal_cycle_time: float, start: float, by_type: dict[str, float]) -> None:
        super().__init__(ACTIVITIES, "stopped", start)
        self.ideal_cycle_time = ideal_cycle_time
        self.by_type = by_type  # part type -> its own cycle time (StationConfig.cycle_times)
        self.ideal_time = 0.0  # s: the ideal cycle times of the parts processed, summed
        self.processed = 0
        self.good = 0


def oee_factors(pbt: float, apt: float, ptu: float, pq: int, gq: int) -> dict[str, float]:
    """ISO 22400-2 availability, effectiveness (performance), quality ratio and OEE."""
    availability = apt / pbt if pbt > 0 else 0.0
    performance = ptu * pq / apt if apt > 0 else 0.0
    quality = gq / pq if pq else 1.0
    return {
        "availability": availability,
        "performance": performance,
        "quality": quality,
        "oee": availability * performance * quality,
    }


class KpiTracker:
    """Feed it every event; ask it for KPIs at any simulated time."""

    def __init__(
        self,
        ideal_cycle_times: dict[str, float],
        start: float = 0.0,
        robots: Iterable[str] = (),
        factory: FactoryKpiTracker | None = None,
        type_cycle_times: dict[str, dict[str, float]] | None = None,
    ) -> None:
        """`type_cycle_times`: station -> part type -> cycle time, where a station's cycle
        time depends on the part (the ideal time of each part processed counts for OEE)."""
        self.start = start
        self.factory = factory  # a factory's figures (twin.analytics.factory_kpi), if one
        by_type = type_cycle_times or {}
        self.stations = {
            sid: _StationClock(c, start, by_type.get(sid, {}))
            for sid, c in ideal_cycle_times.items()
        }
        self._part_types: dict[int, str] | None = {} if any(by_type.values()) else None
        self.robots = {rid: _Clock(ROBOT_ACTIVITIES, "idle", start) for rid in robots}
        self.alarms: Counter[str] = Counter(dict.fromkeys(ALARMS, 0))  # raised, by name
        self.pick_failures = 0  # picks an arm gave up on after its own retries
        self.spawned = 0
        self.completed = 0
        self.good = 0
        self.lost = 0  # parts that fell off the line: scrapped, out of WIP
        # kept sorted as parts complete, so a snapshot reads percentiles without sorting
        self._leads_sorted: list[float] = []
        self._lead_sum = 0.0
        self._wip = 0
        self._wip_since = start
        self._wip_area = 0.0
        self._spawn_time: dict[int, float] = {}
        # inspection station -> parts passed, rejected, and judged by on_error (failed)
        self.inspections: dict[str, dict[str, int]] = {}

    def _wip_change(self, delta: int, now: float) -> None:
        self._wip_area += self._wip * (now - self._wip_since)
        self._wip += delta
        self._wip_since = now

    def consume(self, events: Iterable[Event]) -> None:
        if self.factory is not None:
            events = list(events)
            self.factory.consume(events)
        for e in events:
            if isinstance(e, PartSpawned):
                self.spawned += 1
                self._spawn_time[e.part] = e.time
                if self._part_types is not None:
                    self._part_types[e.part] = e.type
                self._wip_change(+1, e.time)
            elif isinstance(e, PartLost):
                self.lost += 1
                self._spawn_time.pop(e.part, None)
                if self._part_types is not None:
                    self._part_types.pop(e.part, None)
                self._wip_change(-1, e.time)
            elif isinstance(e, PartCompleted):
                self.completed += 1
                if e.quality == "good":
                    self.good += 1
                self._spawn_time.pop(e.part, None)
                if self._part_types is not None:
                    self._part_types.pop(e.part, None)
                lead = float(e.lead_time)
                bisect.insort(self._leads_sorted, lead)
                self._lead_sum += lead
                self._wip_change(-1, e.time)
            elif isinstance(e, StationActivity) and e.device in self.stations:
                self.stations[e.device].switch(e.activity, e.time)
            elif isinstance(e, ArmActivity):
                clock = self.robots.get(e.device)
                if clock is None:
                    clock = self.robots[e.device] = _Clock(ROBOT_ACTIVITIES, "idle", self.start)
                clock.switch(e.activity, e.time)
            elif isinstance(e, Alarm) and e.active:
                self.alarms[e.alarm] += 1
            elif isinstance(e, PickFailed):
                self.pick_failures += 1
            elif isinstance(e, (PartInspected, InspectionFailed)):
                counts = self.inspections.setdefault(
                    e.device, {"passed": 0, "rejected": 0, "failed": 0}
                )
                if isinstance(e, InspectionFailed):
                    counts["failed"] += 1
                else:
                    counts["passed" if e.verdict == "pass" else "rejected"] += 1
            elif isinstance(e, ProcessFinished) and e.device in self.stations:
                clock = self.stations[e.device]
                clock.processed += 1
                clock.good += e.quality == "good"
                kind = self._part_types.get(e.part) if self._part_types is not None else None
                clock.ideal_time += clock.by_type.get(kind or "", clock.ideal_cycle_time)

    def station_kpis(self, now: float) -> dict[str, dict[str, Any]]:
        out = {}
        pbt = max(now - self.start, 1e-12)
        for sid, clock in self.stations.items():
            totals = clock.totals_at(now)
            # the mean ideal cycle time of the parts it processed (they may differ by type)
            ideal = clock.ideal_time / clock.processed if clock.processed else 0.0
            factors = oee_factors(pbt, totals["execute"], ideal, clock.processed, clock.good)
            out[sid] = {
                "utilisation": {k: v / pbt for k, v in totals.items()},
                "time_s": totals,
                "processed": clock.processed,
                "good": clock.good,
                "uptime": (pbt - totals["down"]) / pbt,
                **factors,
            }
        return out

    def robot_kpis(self, now: float) -> dict[str, dict[str, Any]]:
        out = {}
        pbt = max(now - self.start, 1e-12)
        for rid, clock in self.robots.items():
            totals = clock.totals_at(now)
            busy = sum(v for k, v in totals.items() if k in ROBOT_BUSY)
            out[rid] = {
                "utilisation": {k: v / pbt for k, v in totals.items()},
                "time_s": totals,
                "busy": busy / pbt,
            }
        return out

    @staticmethod
    def bottleneck(
        stations: dict[str, dict[str, Any]], robots: dict[str, dict[str, Any]] | None = None
    ) -> dict[str, Any] | None:
        """The resource with the largest active share (ties: stations first, config order)."""
        shares: list[tuple[float, str, str]] = []
        for sid, st in stations.items():
            u = st["utilisation"]
            shares.append((u["execute"] + u["down"], "station", sid))
        for rid, r in (robots or {}).items():
            shares.append((r["busy"], "robot", rid))
        if not shares:
            return None
        share, kind, rid = max(shares, key=lambda x: x[0])  # max keeps the first of equals
        if kind == "station":
            u = stations[rid]["utilisation"]
            reason = (
                f"station '{rid}' is active {share:.0%} of the time "
                f"(executing {u['execute']:.0%}, down {u['down']:.0%}); "
                f"it waits least: starved {u['starved']:.0%}, blocked {u['blocked']:.0%}"
            )
        else:
            u = robots[rid]["utilisation"]  # type: ignore[index]
            handling = u.get("picking", 0.0) + u.get("placing", 0.0)
            reason = (
                f"robot '{rid}' is busy {share:.0%} of the time (handling parts "
                f"{handling:.0%}, travelling {share - handling:.0%}); it waits least: "
                f"idle {u.get('idle', 0.0):.0%}, waiting with a part {u.get('waiting', 0.0):.0%}"
            )
        return {
            "resource": rid,
            "kind": kind,
            "station": rid if kind == "station" else None,
            "cell": None,  # a line is one cell; a factory names it (twin.analytics.factory_kpi)
            "active_share": share,
            "reason": reason,
        }

    def _pooled_oee(self, elapsed: float, stations: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """A factory's cells work in parallel, so no one station paces it: its OEE pools its
        stations (PBT the elapsed time of each, APT, ideal times, PQ and GQ summed), the
        time-weighted mean of theirs."""
        clocks = self.stations.values()
        apt = sum(st["time_s"]["execute"] for st in stations.values())
        pq = sum(c.processed for c in clocks)
        ideal = sum(c.ideal_time for c in clocks)
        out: dict[str, Any] = oee_factors(
            elapsed * len(stations), apt, ideal / pq if pq else 0.0, pq, sum(c.good for c in clocks)
        )
        out["pacing_station"] = None
        return out

    def snapshot(self, now: float) -> dict[str, Any]:
        elapsed = max(now - self.start, 1e-12)
        stations = self.station_kpis(now)
        robots = self.robot_kpis(now)
        wip_area = self._wip_area + self._wip * (now - self._wip_since)
        leads = self._leads_sorted
        oee: dict[str, Any]
        if stations and self.factory is not None:
            oee = self._pooled_oee(elapsed, stations)
        elif stations:
            # the line is paced by its constraint: the station with the longest cycle time
            pacer = max(stations, key=lambda k: self.stations[k].ideal_cycle_time)
            oee = {
                **oee_factors(
                    elapsed,
                    stations[pacer]["time_s"]["execute"],
                    self.stations[pacer].ideal_cycle_time,
                    self.completed,
                    self.good,
                ),
                "pacing_station": pacer,
            }
        else:
            quality = self.good / self.completed if self.completed else 1.0
            oee = {"availability": 1.0, "performance": 0.0, "quality": quality, "oee": 0.0}
        factory = None
        if self.factory is not None:  # a factory's bottleneck may be its fleet
            factory = self.factory.snapshot(now, stations)
            bottleneck = self.factory.bottleneck(stations, robots, factory)
        else:
            bottleneck = self.bottleneck(stations, robots)
        return {
            "time_s": now,
            "parts_spawned": self.spawned,
            "parts_completed": self.completed,
            "parts_good": self.good,
            "parts_lost": self.lost,
            "throughput_per_hour": self.completed / elapsed * 3600,
            "wip": self._wip,
            "wip_mean": wip_area / elapsed,
            "lead_time_s": {
                "mean": self._lead_sum / len(leads),
                "p50": percentile(leads, 50),
                "p90": percentile(leads, 90),
                "p95": percentile(leads, 95),
                "max": leads[-1],
            }
            if leads
            else None,
            "oee": oee,
            "stations": stations,
            "robots": robots,
            "alarms": dict(self.alarms),
            "pick_failures": self.pick_failures,
            "inspections": {k: dict(v) for k, v in self.inspections.items()},
            "bottleneck": bottleneck,
            "factory": factory,
        }


def percentile(ordered: list[float], q: float) -> float:
    """The q-th percentile of sorted values, as numpy.percentile's default (linear) method
    computes it, to the last bit: a snapshot runs at telemetry rate, numpy's call would cost
    more than the rest of the snapshot."""
    index = q / 100 * (len(ordered) - 1)
    lo = int(index)
    hi = min(lo + 1, len(ordered) - 1)
    a, b, t = ordered[lo], ordered[hi], index - lo
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t
