"""Production KPIs computed from the event stream alone (never from the physics).

Definitions (per ISO 22400 / the usual OEE literature):
- planned time   = the observed period (no planned stops are modelled)
- down time      = time a station is broken down (fault active)
- run time       = planned - down
- availability   = run time / planned time
- performance    = ideal cycle time x parts processed / run time (capped at 1)
- quality        = good parts / all parts processed
- OEE            = availability x performance x quality
For the line: availability is the mean availability of its stations weighted equally,
performance uses the bottleneck's ideal cycle time and the parts completed at the sink,
quality is good / completed at the sink.
WIP is the time average of parts in the line; lead time is sink time minus spawn time.
The bottleneck is the station with the largest active share (execute + down), the
"active period" method: the station that is least often waiting for others.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from twin.events import (
    ACTIVITIES,
    Event,
    PartCompleted,
    PartLost,
    PartSpawned,
    ProcessFinished,
    StationActivity,
)


class _StationClock:
    """Time spent in each activity, integrated between activity-change events."""

    def __init__(self, ideal_cycle_time: float, start: float) -> None:
        self.ideal_cycle_time = ideal_cycle_time
        self.activity = "stopped"
        self.since = start
        self.totals = dict.fromkeys(ACTIVITIES, 0.0)
        self.processed = 0
        self.good = 0

    def switch(self, activity: str, now: float) -> None:
        self.totals[self.activity] += now - self.since
        self.activity, self.since = activity, now

    def totals_at(self, now: float) -> dict[str, float]:
        out = dict(self.totals)
        out[self.activity] += now - self.since
        return out


class KpiTracker:
    """Feed it every event; ask it for KPIs at any simulated time."""

    def __init__(self, ideal_cycle_times: dict[str, float], start: float = 0.0) -> None:
        self.start = start
        self.stations = {sid: _StationClock(c, start) for sid, c in ideal_cycle_times.items()}
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

    def _wip_change(self, delta: int, now: float) -> None:
        self._wip_area += self._wip * (now - self._wip_since)
        self._wip += delta
        self._wip_since = now

    def consume(self, events: Iterable[Event]) -> None:
        for e in events:
            if isinstance(e, PartSpawned):
                self.spawned += 1
                self._spawn_time[e.part] = e.time
                self._wip_change(+1, e.time)
            elif isinstance(e, PartLost):
                self.lost += 1
                self._spawn_time.pop(e.part, None)
                self._wip_change(-1, e.time)
            elif isinstance(e, PartCompleted):
                self.completed += 1
                if e.quality == "good":
                    self.good += 1
                self._spawn_time.pop(e.part, None)
                lead = float(e.lead_time)
                bisect.insort(self._leads_sorted, lead)
                self._lead_sum += lead
                self._wip_change(-1, e.time)
            elif isinstance(e, StationActivity) and e.device in self.stations:
                self.stations[e.device].switch(e.activity, e.time)
            elif isinstance(e, ProcessFinished) and e.device in self.stations:
                clock = self.stations[e.device]
                clock.processed += 1
                clock.good += e.quality == "good"

    def station_kpis(self, now: float) -> dict[str, dict[str, Any]]:
        out = {}
        for sid, clock in self.stations.items():
            totals = clock.totals_at(now)
            planned = max(now - self.start, 1e-12)
            down = totals["down"]
            run = max(planned - down, 1e-12)
            availability = run / planned
            performance = min(1.0, clock.ideal_cycle_time * clock.processed / run)
            quality = clock.good / clock.processed if clock.processed else 1.0
            out[sid] = {
                "utilisation": {k: v / planned for k, v in totals.items()},
                "time_s": totals,
                "processed": clock.processed,
                "good": clock.good,
                "availability": availability,
                "performance": performance,
                "quality": quality,
                "oee": availability * performance * quality,
            }
        return out

    def bottleneck(self, stations: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
        if not stations:
            return None

        def active(s: dict[str, Any]) -> float:
            return s["utilisation"]["execute"] + s["utilisation"]["down"]

        sid = max(stations, key=lambda k: active(stations[k]))
        u = stations[sid]["utilisation"]
        reason = (
            f"'{sid}' is active {active(stations[sid]):.0%} of the time "
            f"(executing {u['execute']:.0%}, down {u['down']:.0%}); "
            f"it waits least: starved {u['starved']:.0%}, blocked {u['blocked']:.0%}"
        )
        return {"station": sid, "active_share": active(stations[sid]), "reason": reason}

    def snapshot(self, now: float) -> dict[str, Any]:
        elapsed = max(now - self.start, 1e-12)
        stations = self.station_kpis(now)
        wip_area = self._wip_area + self._wip * (now - self._wip_since)
        leads = self._leads_sorted
        bottleneck = self.bottleneck(stations)
        if stations:
            availability = sum(s["availability"] for s in stations.values()) / len(stations)
            ideal = self.stations[bottleneck["station"]].ideal_cycle_time
            run = elapsed * availability
            performance = min(1.0, ideal * self.completed / run) if run > 0 else 0.0
        else:
            availability, performance = 1.0, 0.0
        quality = self.good / self.completed if self.completed else 1.0
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
            "oee": {
                "availability": availability,
                "performance": performance,
                "quality": quality,
                "oee": availability * performance * quality,
            },
            "stations": stations,
            "bottleneck": bottleneck,
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
