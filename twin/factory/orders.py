"""The order book: orders from the config and a seeded arrival process, and the release
policy that decides which order's part enters the factory next.

An order asks for `quantity` good parts of a product. Parts are released one at a time (the
receiving store puts one on an AMR); a part that is lost or shipped as a reject is replaced
by another release, so an order completes when `quantity` good parts are shipped.

Release policies:
- push: parts are released as soon as their order has arrived (the factory's capacity, a
  free station at the first cell of the routing, is what holds them back);
- conwip: as push, but only while the parts in the factory (released, not yet shipped,
  lost or scrapped; releases under way count too) are fewer than `wip_cap`.

Among releasable orders the highest priority goes first, then the earliest due, then the
earliest arrival. Nothing here reads the physics: times and part outcomes are handed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.config import OrdersConfig, ProductConfig
from twin.control.port import CommandPort
from twin.devices.base import CommandError

Emit = Callable[..., None]
"""Called as ``(kind, **data)`` for each order event; the composing code stamps and logs it."""


@dataclass
class Order:
    id: str
    product: str  # the product's part type
    quantity: int  # good parts to ship
    due: float  # s
    priority: int
    arrived: float  # s: when it entered the book
    released: int = 0  # parts released for it
    shipped: int = 0  # good parts shipped
    failed: int = 0  # released parts lost, scrapped or shipped as rejects (to be replaced)
    completed_at: float | None = None
    late_reported: bool = False

    @property
    def to_release(self) -> int:
        """Parts still to release: what is neither shipped good nor on its way."""
        return self.quantity - self.released + self.failed

    @property
    def open(self) -> bool:
        return self.completed_at is None

    def summary(self) -> dict[str, Any]:
        return {
            "order": self.id,
            "product": self.product,
            "quantity": self.quantity,
            "due": self.due,
            "priority": self.priority,
            "arrived": self.arrived,
            "released": self.released,
            "shipped": self.shipped,
            "completed": self.completed_at,
        }


@dataclass
class _PartOfOrder:
    order: Order
    released_at: float


@dataclass
class OrderBook:
    """Orders, their parts in the factory and the release decision.

    Call `advance(now)` once per scan (arrivals, late orders); `next_release()` says which
    order the next part is for (None: nothing may be released now); `reserve(order)` when a
    release is under way, `released(order, part)` when the part exists, and `shipped`,
    `lost` as parts leave the factory.
    """

    cfg: OrdersConfig
    rng: np.random.Generator
    emit: Emit
    orders: dict[str, Order] = field(default_factory=dict)
    parts: dict[int, _PartOfOrder] = field(default_factory=dict)  # released, in the factory
    pending: dict[str, int] = field(default_factory=dict)  # order -> releases under way
    _book: list[tuple[float, int, Any]] = field(default_factory=list)  # (arrival, seq, order cfg)
    _next_arrival: float = math.inf
    _arrivals: int = 0
    _seq: int = 0
    _products: dict[str, ProductConfig] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._products = {p.type: p for p in self.cfg.products}
        self._book = sorted(
            ((o.release, i, o) for i, o in enumerate(self.cfg.book)), key=lambda t: t[:2]
        )
        arrivals = self.cfg.arrivals
        if arrivals is not None:
            self._next_arrival = arrivals.first_at
        mix = arrivals.products if arrivals is not None else []
        weights = np.array([m.weight for m in mix], dtype=float)
        self._mix = [m.type for m in mix]
        self._weights = weights / weights.sum() if len(mix) else weights

    # time --------------------------------------------------------------------------
    def advance(self, now: float) -> None:
        """Orders that arrive by `now` enter the book; open orders past due are reported."""
        while self._book and self._book[0][0] <= now + 1e-9:
            _, _, o = self._book.pop(0)
            self._arrive(o.id, o.product, o.quantity, o.due, o.priority, max(o.release, 0.0))
        arrivals = self.cfg.arrivals
        while arrivals is not None and self._next_arrival <= now + 1e-9:
            at = self._next_arrival
            self._arrivals += 1
            lo, hi = arrivals.quantity
            quantity = int(self.rng.integers(lo, hi + 1))
            product = self._mix[int(self.rng.choice(len(self._mix), p=self._weights))]
            order_id = self._new_id(f"a{self._arrivals}")
            self._arrive(order_id, product, quantity, at + arrivals.due_in, 0, at)
            if arrivals.count and self._arrivals >= arrivals.count:
                self._next_arrival = math.inf
            else:
                self._next_arrival = at + float(self.rng.exponential(arrivals.interval))
        for order in self.orders.values():
            if order.open and not order.late_reported and now >= order.due - 1e-9:
                order.late_reported = True
                self.emit("order_late", order=order.id, due=order.due)

    def _new_id(self, wanted: str) -> str:
        order_id, n = wanted, 1
        while order_id in self.orders:  # a book order may already use the name
            n += 1
            order_id = f"{wanted}_{n}"
        return order_id

    def _arrive(
        self, order_id: str, product: str, quantity: int, due: float, priority: int, at: float
    ) -> None:
        self._seq += 1
        self.orders[order_id] = Order(order_id, product, quantity, due, priority, at)
        self.emit(
            "order_arrived",
            order=order_id,
            product=product,
            quantity=quantity,
            due=due,
            priority=priority,
        )

    # release -----------------------------------------------------------------------
    @property
    def wip(self) -> int:
        """Parts in the factory for orders, with the releases under way."""
        return len(self.parts) + sum(self.pending.values())

    def releasable(self) -> list[Order]:
        """Orders with parts to release now, best first (the policy's cap not applied)."""
        ready = [
            o
            for o in self.orders.values()
            if o.open and o.to_release - self.pending.get(o.id, 0) > 0
        ]
        ready.sort(key=lambda o: (-o.priority, o.due, o.arrived))
        return ready

    def may_release(self) -> bool:
        release = self.cfg.release
        return release.policy == "push" or self.wip < release.wip_cap

    def next_release(self) -> Order | None:
        """The order the next part is released for, if the policy lets one go now."""
        if not self.may_release():
            return None
        ready = self.releasable()
        return ready[0] if ready else None

    def routing(self, product: str) -> ProductConfig:
        return self._products[product]

    def reserve(self, order: Order) -> None:
        """A release for `order` is under way (an AMR goes to fetch it): it counts as WIP."""
        self.pending[order.id] = self.pending.get(order.id, 0) + 1

    def cancel(self, order: Order) -> None:
        """A release under way was given up before the part existed."""
        left = self.pending.get(order.id, 0) - 1
        if left > 0:
            self.pending[order.id] = left
        else:
            self.pending.pop(order.id, None)

    def released(self, order: Order, part: int, now: float) -> None:
        """The part for a release under way exists (on an AMR at the receiving store)."""
        self.cancel(order)
        first = order.released == 0
        order.released += 1
        self.parts[part] = _PartOfOrder(order, now)
        if first:
            self.emit("order_started", order=order.id)
        self.emit("order_released", order=order.id, part=part)

    def order_of(self, part: int) -> Order | None:
        entry = self.parts.get(part)
        return entry.order if entry is not None else None

    # parts leave -------------------------------------------------------------------
    def shipped(self, part: int, good: bool, now: float) -> None:
        """A part of an order reached shipping; a reject is replaced by a new release."""
        entry = self.parts.pop(part, None)
        if entry is None:
            return
        order = entry.order
        if not good:
            order.failed += 1
            return
        order.shipped += 1
        if order.open and order.shipped >= order.quantity:
            order.completed_at = now
            self.emit(
                "order_completed",
                order=order.id,
                lead_time=now - order.arrived,
                late=now > order.due + 1e-9,
            )

    def lost(self, part: int) -> None:
        """A part of an order left the factory without being shipped: it is replaced."""
        entry = self.parts.pop(part, None)
        if entry is not None:
            entry.order.failed += 1

    # reading -----------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        orders = list(self.orders.values())
        return {
            "arrived": len(orders),
            "released": sum(1 for o in orders if o.released > 0),
            "completed": sum(1 for o in orders if not o.open),
            "late": sum(1 for o in orders if o.late_reported),
            "open": sum(1 for o in orders if o.open),
            "wip": self.wip,
        }


class ReleaseDesk:
    """Releases parts at the receiving stores when no built-in fleet manager brings AMRs for
    given releases (an external fleet manager runs the AMRs): whenever an empty AMR is docked
    at a receiving store and the policy lets a part go, the store's source is told to put
    the next order's part on it."""

    def __init__(
        self,
        book: OrderBook,
        port: CommandPort,
        stores: list[tuple[str, str]],  # (dock, source) of each receiving store
        log: Callable[[str], None],
    ) -> None:
        self.book = book
        self.port = port
        self.stores = stores
        self.log = log
        # dock -> (order, the source's spawned count when asked) while a release is under way
        self._asked: dict[str, tuple[Order, int]] = {}
        self._retry_at: dict[str, float] = {}

    def tick(self, now: float, signals: Mapping[str, Mapping[str, Any]]) -> None:
        for dock, source in self.stores:
            d, src = signals[dock], signals[source]
            asked = self._asked.get(dock)
            if asked is not None:
                asked_for, before = asked
                # the request waits in the source until an empty AMR is docked there
                if int(src.get("spawned", 0)) > before and src.get("last_part") is not None:
                    del self._asked[dock]
                    self.book.released(asked_for, int(src["last_part"]), now)
                continue
            if not d.get("empty_amr") or now < self._retry_at.get(dock, 0.0):
                continue
            order = self.book.next_release()
            if order is None:
                continue
            try:
                self.port.send(source, "spawn", {"type": order.product, "order": order.id})
            except CommandError as e:
                self._retry_at[dock] = now + 1.0
                self.log(f"{source}: spawn refused: {e.message}")
                continue
            self.book.reserve(order)
            self._asked[dock] = (order, int(src.get("spawned", 0)))
