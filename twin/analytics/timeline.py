"""Time series for plots, from events: parts completed, WIP, and each station's activity."""

from __future__ import annotations

from collections.abc import Iterable

from twin.events import Event, PartCompleted, PartLost, PartSpawned, StationActivity


class Timeline:
    def __init__(self, stations: list[str], start: float = 0.0) -> None:
        self.completed: list[tuple[float, int]] = [(start, 0)]
        self.wip: list[tuple[float, int]] = [(start, 0)]
        self.activity: dict[str, list[tuple[float, str]]] = {
            s: [(start, "stopped")] for s in stations
        }

    def consume(self, events: Iterable[Event]) -> None:
        for e in events:
            if isinstance(e, PartSpawned):
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
        changes = self.activity[station]
        out = []
        for (t0, act), (t1, _) in zip(changes, [*changes[1:], (end, "")]):
            if t1 > t0:
                out.append((t0, t1 - t0, act))
        return out
