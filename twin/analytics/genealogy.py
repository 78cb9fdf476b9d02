"""Part genealogy from events: every part's type, spawn, station visits, completion, quality."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from twin.events import (
    Event,
    PartCompleted,
    PartEntered,
    PartLeft,
    PartLost,
    PartSpawned,
    ProcessFinished,
)


class StationVisit(msgspec.Struct, kw_only=True):
    station: str
    entered: float
    left: float | None = None
    processed: bool = False


class PartRecord(msgspec.Struct, kw_only=True):
    id: int
    type: str
    spawned: float
    order: str | None = None  # the order it was released for (a factory)
    visits: list[StationVisit] = msgspec.field(default_factory=list)
    completed: float | None = None
    lost: float | None = None  # s: when it fell off the line (scrapped)
    lost_where: str | None = None  # e.g. "on_floor near 'infeed' at [x, y, z]"
    quality: str = "good"  # "good" or "reject"; a lost part is scrap: "reject"
    defect: str | None = None  # why it is a reject


class Genealogy:
    """Keeps the record of every part seen; bounded by `keep_completed` finished records."""

    def __init__(self, keep_completed: int = 100_000) -> None:
        self.parts: dict[int, PartRecord] = {}
        self.keep_completed = keep_completed
        self._completed_order: list[int] = []

    def consume(self, events: Iterable[Event]) -> None:
        for e in events:
            if isinstance(e, PartSpawned):
                self.parts[e.part] = PartRecord(
                    id=e.part, type=e.type, spawned=e.time, order=e.order
                )
                if e.quality == "reject":
                    self._reject(e.part, e.defect or "defective material")
                continue
            if not isinstance(e, (PartEntered, PartLeft, ProcessFinished, PartCompleted, PartLost)):
                continue
            record = self.parts.get(e.part)
            if record is None:
                continue
            if isinstance(e, PartEntered):
                record.visits.append(StationVisit(station=e.device, entered=e.time))
            elif isinstance(e, PartLeft):
                for visit in reversed(record.visits):
                    if visit.station == e.device and visit.left is None:
                        visit.left = e.time
                        break
            elif isinstance(e, ProcessFinished):
                for visit in reversed(record.visits):
                    if visit.station == e.device:
                        visit.processed = True
                        break
                if e.quality == "reject":
                    self._reject(e.part, e.defect or f"defect at {e.device}")
            elif isinstance(e, PartLost):
                record.lost = e.time
                record.lost_where = f"{e.reason} near '{e.near}' at {e.position}"
                self._reject(e.part, f"lost: {e.reason} near '{e.near}'")
                self._finished(e.part)
            else:
                record.completed = e.time
                self._finished(e.part)

    def _finished(self, part: int) -> None:
        """Keep at most `keep_completed` records of parts that left the line."""
        self._completed_order.append(part)
        if len(self._completed_order) > self.keep_completed:
            self.parts.pop(self._completed_order.pop(0), None)

    def _reject(self, part: int, why: str) -> None:
        record = self.parts[part]
        record.quality = "reject"
        record.defect = record.defect or why

    def get(self, part: int) -> PartRecord | None:
        return self.parts.get(part)

    def as_list(self) -> list[dict[str, Any]]:
        return [msgspec.to_builtins(r) for r in self.parts.values()]
