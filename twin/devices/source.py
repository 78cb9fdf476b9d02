"""Source: puts parts on a belt at an interval (seeded jitter and type mix), if there is room.

A source at a dock (a receiving store: an operator or an ASRS loading AMRs) puts each part
on the deck of the AMR docked there, when one with an empty deck is; until then it waits
(blocked).
"""

from __future__ import annotations

import numpy as np

from twin.config import SourceConfig
from twin.devices.base import Arg, BuildContext, CommandError, CommandSpec, Device, SignalSpec
from twin.devices.conveyor import conveyor_of
from twin.devices.dock import Dock, dock_of
from twin.geometry import source_zone

_DROP = 0.002  # m: parts appear just above the belt and settle onto it
_RETRY_EVERY = 4  # steps between two looks at a blocked spawn zone


class Source(Device):
    kind = "source"
    signal_specs = (
        SignalSpec(name="enabled", type="bool"),
        SignalSpec(name="spawned", type="int", min=0, doc="parts emitted so far"),
        SignalSpec(name="blocked", type="bool", doc="a part is due but the drop zone is occupied"),
        SignalSpec(name="next_at", type="float", unit="s", doc="sim time the next part is due"),
        SignalSpec(name="last_part", type="int|null"),
        SignalSpec(
            name="pool_full",
            type="bool",
            doc="a part is due but the line holds as many parts as the part pool allows",
        ),
    )

    def __init__(self, cfg: SourceConfig, ctx: BuildContext) -> None:
        super().__init__(cfg, ctx)
        self.belt = conveyor_of(ctx, cfg.id, cfg.conveyor) if cfg.conveyor is not None else None
        self.dock: Dock | None = None  # resolved at the first step: docks are built later
        types = [m.type for m in cfg.parts]
        self.commands = (
            CommandSpec(name="enable", doc="emit parts at the configured interval"),
            CommandSpec(name="disable", doc="stop emitting parts"),
            CommandSpec(
                name="spawn",
                args=(
                    # any part type of the line (a receiving store stocks them all); the
                    # mix is what it emits by itself
                    Arg(name="type", type="str", choices=tuple(ctx.pool.types), optional=True),
                    Arg(name="order", type="str", optional=True, doc="the order it is for"),
                ),
                doc="emit one part now (random type from the mix if not given), for an order",
            ),
        )
        self.types = types
        weights = np.array([m.weight for m in cfg.parts], dtype=float)
        self.weights = weights / weights.sum()
        self.rng = ctx.rng(cfg.id)
        self.enabled = cfg.enabled
        self.spawned = 0
        self.blocked = False
        self.pool_full = False
        self.next_at = cfg.first_at
        self.last_part: int | None = None
        self._requested: list[tuple[str | None, str | None]] = []  # (type, order)
        if self.belt is not None:
            largest = max(max(ctx.pool.types[t].size[:2]) for t in types)
            self.zone_min, self.zone_max = source_zone(cfg, self.belt.cfg, largest)

    def cmd_enable(self) -> None:
        self.enabled = True

    def cmd_disable(self) -> None:
        self.enabled = False

    def cmd_spawn(self, type: str | None = None, order: str | None = None) -> None:
        if len(self._requested) >= 16:
            raise CommandError("busy", f"source '{self.id}': 16 spawn requests already waiting")
        self._requested.append((type, order))

    def _zone_clear(self) -> bool:
        if self.belt is None:
            return self._dock().empty_amr
        hits = self.ctx.world.client.getOverlappingObjects(self.zone_min, self.zone_max) or ()
        return not any(self.ctx.pool.part_at_body(b) is not None for b, _ in hits)

    def _limit_reached(self) -> bool:
        return self.cfg.max_parts > 0 and self.spawned >= self.cfg.max_parts

    def after_step(self) -> None:
        world = self.ctx.world
        now = world.sim_time
        due = self.enabled and now >= self.next_at and not self._limit_reached()
        if not (due or self._requested):
            self.blocked = False
            if self.pool_full:
                self._wait_for_pool(False)
            return
        if (self.blocked or self.pool_full) and world.step_index % _RETRY_EVERY:
            return  # a blocked feeder tries again every few steps, not at every physics step
        self._wait_for_pool(self.ctx.pool.full)
        if self.pool_full:
            return
        if not self._zone_clear():
            self.blocked = True
            return
        self.blocked = False
        if self._requested:
            wanted, order = self._requested.pop(0)
        else:
            wanted, order = None, None
            jitter = self.rng.uniform(-self.cfg.jitter, self.cfg.jitter) if self.cfg.jitter else 0.0
            self.next_at = now + max(self.ctx.world.dt, self.cfg.interval + jitter)
        type_name = wanted or self.types[int(self.rng.choice(len(self.types), p=self.weights))]
        size = self.ctx.pool.types[type_name].size
        amr = None
        if self.belt is not None:
            pos = self.belt.point(self.cfg.offset, 0, size[2] / 2 + _DROP)
            yaw = self.belt.cfg.yaw
        else:
            amr = self._dock().docked
            assert amr is not None
            pos = [amr.x, amr.y, amr.deck_height + size[2] / 2 + _DROP]
            yaw = amr.yaw
        defect = None
        if self.cfg.defect_rate > 0 and self.rng.random() < self.cfg.defect_rate:
            defect = "defective material"
        part = self.ctx.pool.spawn(type_name, pos, yaw, now, defect=defect)
        self.spawned += 1
        self.last_part = part.id
        quality = "reject" if defect else "good"
        self.emit(
            "part_spawned",
            part=part.id,
            type=type_name,
            quality=quality,
            defect=defect,
            order=order,
        )
        if amr is not None:  # on its deck from now on (amr_loaded after part_spawned)
            amr.put_on(part.id)

    def _dock(self) -> Dock:
        if self.dock is None:
            self.dock = dock_of(self.ctx, self.id, self.cfg.dock or "")
        return self.dock

    def _wait_for_pool(self, full: bool) -> None:
        """Wait while the pool is full, and say so when that starts and ends."""
        if full != self.pool_full:
            self.pool_full = full
            pool = self.ctx.pool
            self.emit("source_waiting", waiting=full, reason="pool_full", capacity=pool.capacity)
