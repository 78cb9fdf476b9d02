"""The fleet manager: transport requests from the cells' signals, the best free AMR for each,
charging and parking; the traffic manager drives them.

Requests come from what a control engineer would see:
- a finished part waits at a station of a cell (one whose parts leave by the out dock), or
  will within `PREFETCH` s: it needs an AMR at that out dock;
- an order's part is due for release (the order book and its policy say so): it needs an
  empty AMR at a receiving store's dock, where the source puts it on the deck.
A request names its destination at once: the part's next routing step, a cell of that kind
(or id) with room, i.e. fewer parts in it or on their way to it than it has stations; after
the last step, a shipping store. A part is only fetched when its destination has room, so a
loaded AMR always has somewhere to go and AMRs waiting at in docks never deadlock the cells.

The best free AMR (empty deck, battery above the charge threshold) takes each request: the
nearest by route ("nearest") or the one idle longest ("longest_idle"). A free AMR below the
threshold goes to a free charger and charges; other free AMRs stay where they are for
`PARK_AFTER` s (the next job is often nearby), then go to a free park node; wherever they
wait, the traffic manager moves them out of anyone's way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twin.config import AmrConfig, LineConfig, ProductConfig, RoutingStep
from twin.control.port import CommandPort, Signals
from twin.devices.base import CommandError
from twin.factory.orders import Order, OrderBook
from twin.factory.traffic import TrafficManager, dock_place
from twin.routes import RouteNetwork

Emit = Callable[..., None]  # (kind, **data)

_RETRY = 1.0  # s before a refused command is sent again
_JOBS_PER_RECEIVING_DOCK = 2
PARK_AFTER = 20.0  # s a free AMR stays where it is before it goes to a park node
PREFETCH = 15.0  # s before a part's cycle ends that an AMR may be sent to fetch it  # releases on their way to one receiving dock at once


@dataclass
class Cell:
    id: str
    kind: str
    role: str
    in_dock: str | None
    out_dock: str | None
    exit_stations: list[str]  # stations whose finished parts leave by the out dock
    source: str | None
    capacity: int  # parts it can hold (its stations)


@dataclass
class Transport:
    part: int | None  # None: a part still to release at the receiving store
    product: str
    step: int  # routing index of the destination (len(routing): shipping)
    from_cell: str
    pickup: str  # dock
    to_cell: str
    drop: str  # dock
    order: Order | None = None  # a release: the order it is for
    amr: str | None = None
    phase: str = "waiting"  # waiting, to_pickup, loading, to_drop, unloading
    retry_at: float = 0.0
    spawn_sent: bool = False


@dataclass
class _PartState:
    product: str
    step: int  # routing index of the cell it is in or was last brought to (-1: none yet)
    cell: str | None = None


@dataclass
class _Charge:
    charger_node: str
    sent: bool = False
    retry_at: float = 0.0


@dataclass
class _Amr:
    cfg: AmrConfig
    transport: Transport | None = None
    charge: _Charge | None = None
    idle_since: float = 0.0
    load: int | None = None


def factory_cells(cfg: LineConfig) -> list[Cell]:
    """The cells of a factory with what the fleet needs of them."""
    assert cfg.factory is not None
    transfers = cfg.controller.transfers if cfg.controller is not None else []
    cells = []
    for c in cfg.factory.cells:
        exits = [
            t.pick.station
            for t in transfers
            if t.pick.station in c.stations
            and c.out_dock is not None
            and t.place.dock == c.out_dock
        ]
        exits = [s for s in dict.fromkeys(exits) if s is not None] or list(c.stations)
        cells.append(
            Cell(
                c.id,
                c.kind,
                c.role,
                c.in_dock,
                c.out_dock,
                exits,
                c.source,
                max(1, len(c.stations)),
            )
        )
    return cells


class FleetManager:
    """Scans every fleet period: transports, charging, parking, then traffic."""

    def __init__(
        self,
        cfg: LineConfig,
        port: CommandPort,
        orders: OrderBook | None,
        emit: Emit,
    ) -> None:
        assert cfg.factory is not None
        self.port = port
        self.orders = orders
        self.emit = emit
        self.fleet_cfg = cfg.factory.fleet
        self.net = RouteNetwork.from_config(cfg)
        amr_cfgs = [d for d in cfg.devices if isinstance(d, AmrConfig)]
        self.amrs = {a.id: _Amr(a) for a in amr_cfgs}
        self.traffic = TrafficManager(
            self.net, amr_cfgs, port, on_error=self._log, on_alarm=self._amr_alarm
        )
        self.cells = {c.id: c for c in factory_cells(cfg)}
        products = cfg.factory.orders.products if cfg.factory.orders is not None else []
        self.products: dict[str, ProductConfig] = {p.type: p for p in products}
        self.occupancy = {c: 0 for c in self.cells}  # parts in a cell or on their way to it
        self.parts: dict[int, _PartState] = {}
        self.transports: list[Transport] = []
        self.chargers = dict(self.net.chargers)  # charger id -> node
        self.now = 0.0
        self.errors: list[str] = []

    # scan --------------------------------------------------------------------------------
    def tick(self, now: float, s: Signals) -> None:
        self.now = now
        for a in self.amrs.values():
            self._watch_load(a, s[a.cfg.id])
        for t in list(self.transports):
            if t.amr is not None:
                self._progress(t, s)
        self._request_pickups(s)
        self._request_releases()
        self._assign(s)
        for a in self.amrs.values():
            if a.transport is None:
                self._look_after(a, s[a.cfg.id])
        self.traffic.tick(now, s)

    def restart(self) -> None:
        self.traffic.restart()
        for a in self.amrs.values():
            if a.charge is not None:
                a.charge.sent = False

    # parts ---------------------------------------------------------------------------
    def part_lost(self, part: int) -> None:
        """A part fell off or out of the factory (the `part_lost` event)."""
        state = self.parts.pop(part, None)
        for t in list(self.transports):
            if t.part == part:
                self._drop_transport(t)
                return
        if state is not None and state.cell in self.occupancy:
            self.occupancy[state.cell] -= 1

    def part_shipped(self, part: int) -> None:
        self.parts.pop(part, None)

    def _drop_transport(self, t: Transport) -> None:
        """A transport that cannot be finished (its part is gone): give back what it holds."""
        self.transports.remove(t)
        if t.phase in ("waiting", "to_pickup", "loading"):
            self._leave(t.from_cell)
        self._leave(t.to_cell)
        if t.order is not None and t.part is None and self.orders is not None:
            self.orders.cancel(t.order)
        if t.amr is not None:
            a = self.amrs[t.amr]
            a.transport, a.idle_since = None, self.now
            self.traffic.send(t.amr, None)

    def _leave(self, cell: str) -> None:
        if cell in self.occupancy and self.cells[cell].role == "process":
            self.occupancy[cell] = max(0, self.occupancy[cell] - 1)

    def routing(self, product: str) -> list[RoutingStep]:
        p = self.products.get(product)
        return p.routing if p is not None else []

    # requests --------------------------------------------------------------------------
    def _destination(self, product: str, step: int, near_dock: str) -> Cell | None:
        """A cell for routing step `step` of `product` with room, nearest to `near_dock`;
        past the last step, the nearest shipping store."""
        routing = self.routing(product)
        if step < len(routing):
            want = routing[step].cell
            options = [
                c
                for c in self.cells.values()
                if c.role == "process" and (c.kind == want or c.id == want) and self._room(c) > 0
            ]
        else:
            options = [c for c in self.cells.values() if c.role == "shipping"]
        if not options:
            return None
        here = self.net.docks[near_dock].node
        # a cell with a free station first: at one whose part is only on its way out, the
        # AMR would wait docked, loaded, until that part has left
        return min(
            options,
            key=lambda c: (
                c.role == "process" and self.occupancy[c.id] >= c.capacity,
                self.net.distance(here, self.net.docks[c.in_dock or ""].node),
                self.occupancy[c.id],
                c.id,
            ),
        )

    def _room(self, c: Cell) -> int:
        """Stations free for one more part. A finished part an AMR is on its way to fetch
        counts as gone when the cell has separate in and out docks: the next part may wait
        at the in dock while it leaves by the out dock (with one dock for both, it would
        block the AMR that comes to fetch)."""
        room = c.capacity - self.occupancy[c.id]
        if c.in_dock != c.out_dock:
            room += sum(
                1
                for t in self.transports
                if t.from_cell == c.id
                and t.part is not None
                and t.amr is not None
                and t.phase in ("to_pickup", "loading")
            )
        return room

    def _request_pickups(self, s: Signals) -> None:
        moving = {t.part for t in self.transports}
        stuck: list[tuple[Cell, int, str]] = []  # finished parts with no room downstream
        for cell in self.cells.values():
            if cell.role != "process" or cell.out_dock is None:
                continue
            for st in cell.exit_stations:
                sig = s[st]
                part = sig.get("part")
                if part is None or part in moving:
                    continue
                state = self.parts.get(part)
                if state is None:
                    continue  # not a part the fleet brought: it does not know its routing
                if not sig.get("part_done") and not self._nearly_done(cell, state, sig):
                    continue
                dest = self._destination(state.product, state.step + 1, cell.out_dock)
                if dest is not None:
                    self._new_transport(part, state.product, state.step + 1, cell, dest, None)
                    continue
                routing = self.routing(state.product)
                if sig.get("part_done") and state.step + 1 < len(routing):
                    stuck.append((cell, part, routing[state.step + 1].cell))
        self._break_circles(stuck)

    def _nearly_done(self, cell: Cell, state: _PartState, sig: Mapping[str, Any]) -> bool:
        """A part within `PREFETCH` s of the end of its cycle: the AMR may set off now and
        wait at the out dock (only where that does not block the in dock)."""
        routing = self.routing(state.product)
        if cell.in_dock == cell.out_dock or not 0 <= state.step < len(routing):
            return False
        if not sig.get("part_present") or sig.get("fault") or not sig.get("seated"):
            return False
        left = routing[state.step].cycle_time - float(sig.get("progress", 0.0))
        return 0.0 < left <= PREFETCH

    def _break_circles(self, stuck: list[tuple[Cell, int, str]]) -> None:
        """Parts wait for each other's cells (routings that cross, e.g. mill -> drill and
        drill -> mill, with every station full): take one onto an AMR that holds it until
        its next cell has room, so the other can move. One AMR always stays for that."""
        holding = sum(1 for t in self.transports if not t.to_cell)
        for cell, part, _ in stuck:
            if holding >= len(self.amrs) - 1:
                return
            if not any(c is not cell and want in (cell.kind, cell.id) for c, _, want in stuck):
                continue
            state = self.parts[part]
            t = Transport(
                part=part,
                product=state.product,
                step=state.step + 1,
                from_cell=cell.id,
                pickup=cell.out_dock or "",
                to_cell="",
                drop="",
            )
            self.transports.append(t)
            holding += 1
            self.emit("transport_requested", part=part, from_cell=cell.id, to_cell="")

    def _request_releases(self) -> None:
        orders = self.orders
        if orders is None:
            return
        receiving = [c for c in self.cells.values() if c.role == "receiving" and c.out_dock]
        if not receiving:
            return
        for order in orders.releasable():
            if not orders.may_release():
                return
            while order.to_release - orders.pending.get(order.id, 0) > 0 and orders.may_release():
                busy = self._release_jobs()
                stores = [c for c in receiving if busy.get(c.id, 0) < _JOBS_PER_RECEIVING_DOCK]
                if not stores:
                    return
                first = self._first_cell(order.product, stores)
                if first is None:
                    break  # its first cell is full: maybe another order's is not
                store, dest = first
                orders.reserve(order)
                self._new_transport(None, order.product, 0, store, dest, order)

    def _release_jobs(self) -> dict[str, int]:
        busy: dict[str, int] = {}
        for t in self.transports:
            if t.order is not None and t.part is None:
                busy[t.from_cell] = busy.get(t.from_cell, 0) + 1
        return busy

    def _first_cell(self, product: str, stores: list[Cell]) -> tuple[Cell, Cell] | None:
        best: tuple[float, Cell, Cell] | None = None
        for store in stores:
            dest = self._destination(product, 0, store.out_dock or "")
            if dest is None:
                return None
            d = self.net.distance(
                self.net.docks[store.out_dock or ""].node, self.net.docks[dest.in_dock or ""].node
            )
            if best is None or d < best[0]:
                best = (d, store, dest)
        return (best[1], best[2]) if best is not None else None

    def _new_transport(
        self, part: int | None, product: str, step: int, src: Cell, dest: Cell, order: Order | None
    ) -> Transport:
        t = Transport(
            part=part,
            product=product,
            step=step,
            from_cell=src.id,
            pickup=src.out_dock or "",
            to_cell=dest.id,
            drop=dest.in_dock or "",
            order=order,
        )
        self.transports.append(t)
        if dest.role == "process":
            self.occupancy[dest.id] += 1
        extra = {"order": order.id} if order is not None else {}
        self.emit("transport_requested", part=part, from_cell=src.id, to_cell=dest.id, **extra)
        return t

    # assignment --------------------------------------------------------------------------
    def _threshold(self, a: _Amr) -> float:
        below = self.fleet_cfg.charge_below
        return a.cfg.battery.low if below is None else below

    def _free(self, a: _Amr, sig: Mapping[str, Any]) -> bool:
        return (
            a.transport is None
            and a.charge is None
            and sig.get("load") is None
            and sig.get("state") not in ("battery_empty", "charging")
            and (float(sig.get("battery", 1.0)) >= self._threshold(a) or not self.chargers)
        )

    def _assign(self, s: Signals) -> None:
        waiting = [t for t in self.transports if t.amr is None]
        if not waiting:
            return
        waiting.sort(key=lambda t: t.part is None)  # finished parts first: they free cells
        free = [a for a in self.amrs.values() if self._free(a, s[a.cfg.id])]
        for t in waiting:
            if not free:
                return
            target = dock_place(t.pickup)
            if self.fleet_cfg.dispatch == "longest_idle":
                best = min(free, key=lambda a: (a.idle_since, a.cfg.id))
            else:
                best = min(
                    free,
                    key=lambda a: (
                        self.traffic.distance(a.cfg.id, target),
                        -float(s[a.cfg.id].get("battery", 1.0)),
                        a.cfg.id,
                    ),
                )
            free.remove(best)
            t.amr, t.phase = best.cfg.id, "to_pickup"
            best.transport = t
            extra = {"order": t.order.id} if t.order is not None else {}
            self.emit("transport_assigned", part=t.part, amr=best.cfg.id, **extra)
            self.traffic.send(best.cfg.id, target)

    # a transport under way -------------------------------------------------------------
    def _progress(self, t: Transport, s: Signals) -> None:
        amr = t.amr or ""
        sig = s[amr]
        if t.phase == "to_pickup":
            self.traffic.send(amr, dock_place(t.pickup))
            if self.traffic.arrived(amr) and sig.get("dock") == t.pickup:
                t.phase = "loading"
        if t.phase == "loading" and t.part is None and t.order is not None:
            self._spawn_for(t)
        elif t.phase == "to_drop" and not t.to_cell:
            self._hold(t, s)
        elif t.phase == "to_drop":
            self.traffic.send(amr, dock_place(t.drop))
            if self.traffic.arrived(amr) and sig.get("dock") == t.drop:
                t.phase = "unloading"
        elif t.phase == "unloading" and sig.get("load") is None:
            self._delivered(t)

    def _hold(self, t: Transport, s: Signals) -> None:
        """A part on an AMR waiting for room downstream: it waits at a park node until a
        cell has room, then goes there."""
        amr = t.amr or ""
        dest = self._destination(t.product, t.step, t.pickup)
        if dest is not None:
            t.to_cell, t.drop = dest.id, dest.in_dock or ""
            if dest.role == "process":
                self.occupancy[dest.id] += 1
            self.traffic.send(amr, dock_place(t.drop))
            return
        goal = self.traffic.amrs[amr].goal
        park = self.fleet_cfg.park
        if park and goal not in park:
            node = self._free_spot(amr, park, claimed=self._park_claims(amr))
            if node is not None:
                self.traffic.send(amr, node)

    def _spawn_for(self, t: Transport) -> None:
        if t.spawn_sent or self.now < t.retry_at or t.order is None:
            return
        source = self.cells[t.from_cell].source or ""
        try:
            self.port.send(source, "spawn", {"type": t.product, "order": t.order.id})
        except CommandError as e:
            t.retry_at = self.now + _RETRY
            self._log(f"{source}: spawn refused: {e.message}")
            return
        t.spawn_sent = True

    def _watch_load(self, a: _Amr, sig: Mapping[str, Any]) -> None:
        """A part came onto or left the deck: what that means for its transport."""
        load = sig.get("load")
        if load == a.load:
            return
        a.load = load
        if load is None:
            t = a.transport
            if t is not None and t.phase in ("to_drop",) and t.part is not None:
                pass  # slid off on the way: the part_lost event ends the transport
            return
        self._loaded(a, load, str(sig.get("load_type") or ""), sig.get("dock") or "")

    def _loaded(self, a: _Amr, part: int, part_type: str, dock: str) -> None:
        t = a.transport
        if t is not None and t.phase == "loading" and t.part is None and t.order is not None:
            t.part = part  # the released part
            if self.orders is not None:
                self.orders.released(t.order, part, self.now)
            self.parts[part] = _PartState(t.product, -1)
            self._go_deliver(a, t)
            return
        if t is not None and t.phase == "loading" and t.part == part:
            self._left_cell(part, t.from_cell)
            self._go_deliver(a, t)
            return
        # not the part expected (or no transport): take over the transport of that part
        other = next((x for x in self.transports if x.part == part and x is not t), None)
        if other is not None and t is not None and t.phase == "loading":
            self._swap(t, other)
            self._left_cell(part, t.from_cell)
            self._go_deliver(a, t)
            return
        if other is not None:
            if other.amr is not None and other.amr != a.cfg.id:
                b = self.amrs[other.amr]
                b.transport, b.idle_since = None, self.now
                self.traffic.send(b.cfg.id, None)
            if t is not None:
                self._drop_transport(t)
            other.amr, a.transport = a.cfg.id, other
            self._left_cell(part, other.from_cell)
            self._go_deliver(a, other)
            return
        # a part the fleet did not ask for (an arm put it on an idle AMR): route it on
        cell = next((c for c in self.cells.values() if dock and c.out_dock == dock), None)
        state = self.parts.get(part) or _PartState(part_type, -1)
        self.parts[part] = state
        if t is not None:
            self._drop_transport(t)
        dest = self._destination(state.product, state.step + 1, dock or self._any_dock())
        if cell is None or dest is None:
            self._log(f"{a.cfg.id}: part {part} on its deck has nowhere to go yet")
            return
        new = self._new_transport(part, state.product, state.step + 1, cell, dest, None)
        new.amr, a.transport = a.cfg.id, new
        self.emit("transport_assigned", part=part, amr=a.cfg.id)
        self._left_cell(part, cell.id)
        self._go_deliver(a, new)

    def _any_dock(self) -> str:
        return next(iter(self.net.docks))

    @staticmethod
    def _swap(t: Transport, other: Transport) -> None:
        """Two parts of one cell: the AMR got `other`'s part, so the transports trade parts
        and destinations."""
        for name in ("part", "product", "step", "to_cell", "drop", "order"):
            mine, theirs = getattr(t, name), getattr(other, name)
            setattr(t, name, theirs)
            setattr(other, name, mine)

    def _left_cell(self, part: int, cell: str) -> None:
        state = self.parts.get(part)
        if state is not None and state.cell == cell:
            state.cell = None
            self._leave(cell)

    def _go_deliver(self, a: _Amr, t: Transport) -> None:
        t.phase = "to_drop"
        if t.drop:
            self.traffic.send(a.cfg.id, dock_place(t.drop))

    def _delivered(self, t: Transport) -> None:
        amr = t.amr or ""
        part = t.part
        assert part is not None
        self.transports.remove(t)
        a = self.amrs[amr]
        a.transport, a.idle_since = None, self.now
        self.traffic.send(amr, None)
        state = self.parts.setdefault(part, _PartState(t.product, -1))
        state.step, state.cell = t.step, t.to_cell
        if self.cells[t.to_cell].role == "shipping":
            self.parts.pop(part, None)
        self.emit("transport_done", part=part, amr=amr, from_cell=t.from_cell, to_cell=t.to_cell)

    # free AMRs -----------------------------------------------------------------------------
    def _look_after(self, a: _Amr, sig: Mapping[str, Any]) -> None:
        """A free AMR charges when low, else waits at a park node."""
        amr = a.cfg.id
        if a.charge is not None:
            self._charging(a, sig)
            return
        if sig.get("load") is not None or sig.get("state") == "battery_empty":
            return
        if float(sig.get("battery", 1.0)) < self._threshold(a) and self.chargers:
            node = self._free_spot(
                amr, list(self.chargers.values()), claimed=self._charger_claims()
            )
            if node is not None:
                a.charge = _Charge(node)
                self.traffic.send(amr, node)
                return
        park = self.fleet_cfg.park
        goal = self.traffic.amrs[amr].goal
        if not park or (goal in park) or self.now - a.idle_since < PARK_AFTER:
            return  # a moment's wait: the next job is often nearby
        node = self._free_spot(amr, park, claimed=self._park_claims(amr))
        if node is not None:
            self.traffic.send(amr, node, evictable=True)

    def _charger_claims(self) -> set[str]:
        return {a.charge.charger_node for a in self.amrs.values() if a.charge is not None}

    def _park_claims(self, me: str) -> set[str]:
        return {
            g
            for name, t in self.traffic.amrs.items()
            if name != me and (g := t.goal or t.place) is not None
        }

    def _free_spot(self, amr: str, nodes: list[str], claimed: set[str]) -> str | None:
        spots = [n for n in nodes if n not in claimed]
        if not spots:
            return None
        return min(spots, key=lambda n: (self.traffic.distance(amr, n), n))

    def _charging(self, a: _Amr, sig: Mapping[str, Any]) -> None:
        c = a.charge
        assert c is not None
        amr = a.cfg.id
        if not c.sent:
            self.traffic.send(amr, c.charger_node)
            if self.traffic.arrived(amr) and self.now >= c.retry_at:
                try:
                    self.port.send(amr, "charge", {})
                except CommandError as e:
                    c.retry_at = self.now + _RETRY
                    self._log(f"{amr}: charge refused: {e.message}")
                    return
                c.sent = True
            return
        if sig.get("state") != "charging":
            full = a.cfg.battery.full
            if float(sig.get("battery", 0.0)) >= min(full, self._threshold(a)) - 1e-6:
                a.charge, a.idle_since = None, self.now
                self.traffic.send(amr, None)
            else:
                c.sent = False  # interrupted (a stop): charge again

    def _amr_alarm(self, amr: str, active: bool, tries: int, message: str) -> None:
        self.emit("alarm", alarm="amr_blocked", active=active, tries=tries, message=message)

    def _log(self, message: str) -> None:
        self.errors.append(message)
        del self.errors[:-20]

    # reading -------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "transports": len(self.transports),
            "occupancy": dict(self.occupancy),
            "parts": len(self.parts),
        }
