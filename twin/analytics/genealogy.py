"""Part genealogy from events: every part's type, spawn, station visits, completion, quality;
in a factory also its order and its AMR transports, and every order's record."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from twin.analytics.transports import Leg, TransportMatcher
from twin.events import (
    Event,
    OrderArrived,
    OrderCompleted,
    OrderLate,
    OrderReleased,
    OrderStarted,
    PartCompleted,
    PartEntered,
    PartLeft,
    PartLost,
    PartSpawned,
    ProcessFinished,
    TransportAssigned,
    TransportDone,
    TransportRequested,
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
    visits: list[StationVisit] = msgspec.field(default_factory=list)
    completed: float | None = None
    lost: float | None = None  # s: when it fell off the line (scrapped)
    lost_where: str | None = None  # e.g. "on_floor near 'infeed' at [x, y, z]"
    quality: str = "good"  # "good" or "reject"; a lost part is scrap: "reject"
    defect: str | None = None  # why it is a reject
    order: str | None = None  # the order it was released for (a factory)
    transports: list[Leg] = msgspec.field(default_factory=list)  # AMR legs (a factory)


class OrderRecord(msgspec.Struct, kw_only=True):
    id: str
    product: str
    quantity: int
    due: float
    priority: int
    arrived: float
    started: float | None = None  # its first part released
    completed: float | None = None  # its last part shipped
    lead_time: float | None = None  # s from arrival to completion
    late: bool = False  # past due before it was completed
    parts: list[int] = msgspec.field(default_factory=list)  # released for it
    shipped: int = 0  # of those, completed


class Genealogy:
    """Keeps the record of every part seen; bounded by `keep_completed` finished records."""

    def __init__(self, keep_completed: int = 100_000) -> None:
        self.parts: dict[int, PartRecord] = {}
        self.orders: dict[str, OrderRecord] = {}
        self.keep_completed = keep_completed
        self._completed_order: list[int] = []
        self._completed_orders: list[str] = []
        self._released_early: dict[int, str] = {}  # part -> order, until the part spawns
        self._transports = TransportMatcher()

    def consume(self, events: Iterable[Event]) -> None:
        for e in events:
            if isinstance(e, PartSpawned):
                order = e.order or self._released_early.pop(e.part, None)
                self.parts[e.part] = PartRecord(id=e.part, type=e.type, spawned=e.time, order=order)
                if order is not None:
                    self._order_part(order, e.part)
                if e.quality == "reject":
                    self._reject(e.part, e.defect or "defective material")
                continue
            if isinstance(
                e, (OrderArrived, OrderReleased, OrderStarted, OrderCompleted, OrderLate)
            ):
                self._order_event(e)
                continue
            if isinstance(e, (TransportRequested, TransportAssigned, TransportDone)):
                self._transport_event(e)
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
                shipped_for = self.orders.get(record.order) if record.order is not None else None
                if shipped_for is not None:
                    shipped_for.shipped += 1

    def _order_part(self, order_id: str, part: int) -> None:
        order = self.orders.get(order_id)
        if order is not None and part not in order.parts:
            order.parts.append(part)

    def _order_event(
        self, e: OrderArrived | OrderReleased | OrderStarted | OrderCompleted | OrderLate
    ) -> None:
        if isinstance(e, OrderArrived):
            self.orders[e.order] = OrderRecord(
                id=e.order,
                product=e.product,
                quantity=e.quantity,
                due=e.due,
                priority=e.priority,
                arrived=e.time,
            )
            return
        order = self.orders.get(e.order)
        if order is None:
            return
        if isinstance(e, OrderReleased):
            self._order_part(e.order, e.part)
            part = self.parts.get(e.part)
            if part is not None:
                part.order = e.order
            else:  # released before its part_spawned
                self._released_early[e.part] = e.order
        elif isinstance(e, OrderStarted):
            order.started = e.time
        elif isinstance(e, OrderLate):
            order.late = True
        else:
            order.completed, order.lead_time = e.time, e.lead_time
            order.late = order.late or e.late
            self._completed_orders.append(e.order)
            if len(self._completed_orders) > self.keep_completed:
                self.orders.pop(self._completed_orders.pop(0), None)

    def _transport_event(self, e: TransportRequested | TransportAssigned | TransportDone) -> None:
        matched = self._transports.feed(e)
        if matched is None or e.part is None:  # a part still to be released: no record yet
            return
        record = self.parts.get(e.part)
        leg = matched[1]
        if record is not None and not any(t is leg for t in record.transports):
            record.transports.append(leg)

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

    def orders_list(self) -> list[dict[str, Any]]:
        return [msgspec.to_builtins(r) for r in self.orders.values()]
