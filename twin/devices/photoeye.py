"""Photo-eye: a through-beam across a belt; blocked while a part interrupts it."""

from __future__ import annotations

from twin.config import PhotoEyeConfig
from twin.devices.base import BuildContext, Device, SignalSpec
from twin.devices.conveyor import conveyor_of
from twin.geometry import eye_beam
from twin.production.faults import SensorFaults


class PhotoEye(Device):
    kind = "photoeye"
    signal_specs = (
        SignalSpec(name="blocked", type="bool", doc="beam interrupted"),
        SignalSpec(name="part", type="int|null", doc="id of the part in the beam"),
        SignalSpec(name="count", type="int", min=0, doc="rising edges seen"),
    )

    def __init__(self, cfg: PhotoEyeConfig, ctx: BuildContext) -> None:
        super().__init__(cfg, ctx)
        belt = conveyor_of(ctx, cfg.id, cfg.conveyor)
        self.start, self.end = eye_beam(cfg, belt.cfg)
        self.ray = ctx.world.rays.add(self.start, self.end)
        self.blocked = False
        self.part: int | None = None
        self.count = 0
        self.faults = SensorFaults(cfg.faults, ctx.rng(cfg.id + "/faults")) if cfg.faults else None
        self._rays = ctx.world.rays
        self._by_body = ctx.pool.by_body  # body -> part id (the pool only ever mutates it)

    def after_step(self) -> None:
        body = self._rays.hit_body[self.ray]
        if body < 0 and not self.blocked and self.faults is None:
            return  # clear and still clear: nothing to update (part is None while clear)
        part = self._by_body.get(body) if body >= 0 else None
        blocked = body >= 0
        if self.faults is not None:
            blocked, changes = self.faults.apply(blocked, self.ctx.world.sim_time)
            for kind, active in changes:
                self.emit("fault", fault=kind, active=active)
            part = part if blocked else None
        if blocked and not self.blocked:
            self.count += 1
            self.emit("eye_blocked", part=part)
        elif self.blocked and not blocked:
            self.emit("eye_cleared", part=self.part)
        self.blocked, self.part = blocked, part
