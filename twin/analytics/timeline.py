"""Time series for plots, from events: parts completed, WIP, each station's activity; in a
factory also each AMR's activity and the orders completed on time and late."""

from __future__ import annotations

from collections.abc import Iterable

from twin.analytics.factory_kpi import FleetActivity
from twin.events import (
    Event,
    OrderCompleted,
    PartCompleted,
    PartLost,
    PartSpawned,
    StationActivity,
)


class Timeline:
    def __init__(
        self, stations: list[str], start: float = 0.0, amrs: dict[str, str] | None = None
    ) -> None:
        self.completed: list[tuple[float, int]] = [(start, 0)]
        self.wip: list[tuple[float, int]] = [(start, 0)]
        self.activity: dict[str, list[tuple[float, str]]] = {
            s: [(start, "stopped")] for s in stations
        }
        # AMR id -> (its state and load, [(time, activity)]); amrs maps id -> starting state
        self._fleet = FleetActivity(amrs or {})
        self.amr_activity: dict[str, list[tuple[float, str]]] = {
            a: [(start, t.activity)] for a, t in self._fleet.amrs.items()
        }
        self.orders_on_time: list[tuple[float, int]] = [(start, 0)]
        self.orders_late: list[tuple[float, int]] = [(start, 0)]

    def consume(self, events: Iterable[Event]) -> None:
        for e in events:
            changed = self._fleet.feed(e)
            if changed is not None:
                amr, before, after = changed
                spans = self.amr_activity.setdefault(amr, [(self.completed[0][0], before)])
                spans.append((e.time, after))
            if isinstance(e, OrderCompleted):
                series = self.orders_late if e.late else self.orders_on_time
                series.append((e.time, series[-1][1] + 1))
            elif isinstance(e, PartSpawned):
                self.wip.append((e.time, self.wip[-1][1] + 1))
            elif isinstance(e, PartLost):
                self.wip.append((e.time, self.wip[-1][1] - 1))
            elif isinstance(e, PartCompleted):
                self.wip.append((e.time, self.wip[-1][1] - 1))
                self.completed.append((e.time, self.completed[-1][1] + 1))
            elif isinstance(e, StationActivity) and e.device in self.activity:
                self.activity[e.device].append((e.time, e.activity))

    def intervals(self, station: str, end: float) -> list[tuple[float, float, str]]:
        """(start, duration, activity) spans of one station up to `end`."""
        return _spans(self.activity[station], end)

    def amr_intervals(self, amr: str, end: float) -> list[tuple[float, float, str]]:
        """(start, duration, activity) spans of one AMR up to `end`."""
        return _spans(self.amr_activity[amr], end)


def _spans(changes: list[tuple[float, str]], end: float) -> list[tuple[float, float, str]]:
    out = []
    for (t0, act), (t1, _) in zip(changes, [*changes[1:], (end, "")]):
        if t1 > t0:
            out.append((t0, t1 - t0, act))
    return out
