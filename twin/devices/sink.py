"""Sink: a take-away zone on a belt; parts that reach it are counted as completed and pooled.

A sink at a dock (a shipping store) takes the part an AMR delivers there: the part the AMR
had on its deck when it docked, as soon as it has docked.
"""

from __future__ import annotations

from twin.config import SinkConfig
from twin.devices.base import BuildContext, Device, SignalSpec
from twin.devices.conveyor import conveyor_of
from twin.devices.dock import Dock, dock_of
from twin.geometry import sink_zone


class Sink(Device):
    kind = "sink"
    signal_specs = (
        SignalSpec(name="count", type="int", min=0, doc="parts completed"),
        SignalSpec(name="good", type="int", min=0, doc="of which good (not rejects)"),
        SignalSpec(name="last_part", type="int|null", doc="id of the last completed part"),
        SignalSpec(
            name="last_lead_time", type="float", unit="s", min=0.0, doc="spawn to completion"
        ),
    )

    def __init__(self, cfg: SinkConfig, ctx: BuildContext) -> None:
        super().__init__(cfg, ctx)
        self.dock: Dock | None = None  # resolved at the first step: docks are built later
        if cfg.conveyor is not None:
            belt = conveyor_of(ctx, cfg.id, cfg.conveyor)
            self.aabb_min, self.aabb_max = sink_zone(cfg, belt.cfg)
        self.count = 0
        self.last_part: int | None = None
        self.last_lead_time = 0.0
        self.lead_time_sum = 0.0
        self.good = 0

    def after_step(self) -> None:
        if self.cfg.dock is not None:
            self._take_from_dock()
            return
        pool = self.ctx.pool
        if not pool.active:
            return  # no part on the line: none can have arrived
        c = self.ctx.world.client
        hits = c.getOverlappingObjects(self.aabb_min, self.aabb_max)
        if not hits:
            return
        by_body, held = pool.by_body, pool.held
        for body, _link in hits:
            part_id = by_body.get(body)
            if part_id is None or part_id in held:
                continue  # not a part, or one still on a robot's cup (being placed here)
            if not self._inside(c.getBasePositionAndOrientation(body)[0]):
                continue  # broadphase boxes can be a step stale: trust the part's real position
            self._complete(part_id)

    def _take_from_dock(self) -> None:
        if self.dock is None:
            self.dock = dock_of(self.ctx, self.id, self.cfg.dock or "")
        if not self.dock.delivery:
            return
        amr = self.dock.docked
        assert amr is not None and amr.load is not None
        part_id = amr.load
        amr.take_off(part_id)
        self._complete(part_id)

    def _complete(self, part_id: int) -> None:
        now = self.ctx.world.sim_time
        part = self.ctx.pool.release(part_id)
        lead = now - part.spawn_time
        self.count += 1
        self.last_part, self.last_lead_time = part.id, lead
        self.lead_time_sum += lead
        if part.quality == "good":
            self.good += 1
        self.emit(
            "part_completed",
            part=part.id,
            type=part.type,
            lead_time=lead,
            quality=part.quality,
            defect=part.defect,
        )

    def _inside(self, p: tuple[float, float, float]) -> bool:
        return all(lo <= v <= hi for lo, v, hi in zip(self.aabb_min, p, self.aabb_max))
