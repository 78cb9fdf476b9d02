"""The factory's built-in controller: the cells' sequencer (every arm transfer, belt and
station of every cell), the order book and the fleet manager, composed into one controller
that satisfies `twin.control.port.Controller` and acts only through the port.

The sequencer scans at its PLC scan time; orders and fleet every `FLEET_SCAN` s (AMRs move
slowly against a PLC cycle). Without the built-in fleet manager (`builtin_fleet=False`) the
cells and the order book keep running and an external fleet manager drives the AMRs: parts
are released whenever it docks an empty AMR at a receiving store.

Parts that leave the factory are learnt from the line's events (`part_completed` at a
shipping store, `part_lost`), which `on_event` is handed as they happen, the way an MES
hears of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from twin.config import LineConfig
from twin.control.port import CommandPort, Signals
from twin.control.sequencer import AlarmSink, Sequencer
from twin.events import Event, PartCompleted, PartLost
from twin.factory.fleet import FleetManager, factory_cells
from twin.factory.orders import OrderBook, ReleaseDesk

FLEET_SCAN = 0.1  # s between two scans of the order book and the fleet manager

Emit = Callable[..., None]  # (kind, device, **data)


class FactoryController:
    """Sequencer + orders + fleet for a factory line (`cfg.factory` set)."""

    def __init__(
        self,
        cfg: LineConfig,
        port: CommandPort,
        dt: float,
        *,
        clock: Callable[[], float],
        emit: Emit,
        seed: int,
        builtin_fleet: bool = True,
        on_alarm: AlarmSink | None = None,
    ) -> None:
        spec = cfg.factory
        if spec is None:
            raise ValueError(f"line '{cfg.name}' is not a factory (no cells)")
        self.sequencer = (
            Sequencer(cfg, port, dt, on_alarm=on_alarm) if cfg.controller is not None else None
        )
        self.period = self.sequencer.period if self.sequencer is not None else 1
        self._every = max(1, round(FLEET_SCAN / (self.period * dt)))
        self._ticks = 0
        self._clock = clock
        self.errors: list[str] = []
        self.orders: OrderBook | None = None
        if spec.orders is not None:
            rng = np.random.default_rng([seed, *(ord(ch) for ch in "orders")])
            self.orders = OrderBook(
                spec.orders, rng, lambda kind, **data: emit(kind, "orders", **data)
            )
        self.fleet: FleetManager | None = None
        self.desk: ReleaseDesk | None = None
        if builtin_fleet:
            self.fleet = FleetManager(
                cfg, port, self.orders, lambda kind, **data: emit(kind, "fleet", **data)
            )
        elif self.orders is not None:
            stores = [
                (c.out_dock, c.source)
                for c in factory_cells(cfg)
                if c.role == "receiving" and c.out_dock and c.source
            ]
            self.desk = ReleaseDesk(self.orders, port, stores, self._log)  # type: ignore[arg-type]
        self._left: list[Event] = []  # parts that left since the last scan

    def on_event(self, event: Event) -> None:
        """Called for every event the line emits; keeps those of parts leaving."""
        if isinstance(event, (PartCompleted, PartLost)):
            self._left.append(event)

    def restart(self) -> None:
        if self.sequencer is not None:
            self.sequencer.restart()
        if self.fleet is not None:
            self.fleet.restart()

    def tick(self, signals: Signals) -> None:
        if self.sequencer is not None:
            self.sequencer.tick(signals)
        self._ticks += 1
        if self._ticks % self._every:
            return
        now = self._clock()
        self._parts_left(now)
        if self.orders is not None:
            self.orders.advance(now)
        if self.fleet is not None:
            self.fleet.tick(now, signals)
        elif self.desk is not None:
            self.desk.tick(now, signals)

    def _parts_left(self, now: float) -> None:
        left, self._left = self._left, []
        for e in left:
            if isinstance(e, PartCompleted):
                if self.orders is not None:
                    self.orders.shipped(e.part, e.quality == "good", e.time)
                if self.fleet is not None:
                    self.fleet.part_shipped(e.part)
            elif isinstance(e, PartLost):
                if self.orders is not None:
                    self.orders.lost(e.part)
                if self.fleet is not None:
                    self.fleet.part_lost(e.part)

    def _log(self, message: str) -> None:
        self.errors.append(message)
        del self.errors[:-20]

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.orders is not None:
            out["orders"] = self.orders.counts()
        if self.fleet is not None:
            out["fleet"] = self.fleet.status()
        return out
