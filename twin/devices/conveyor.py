"""Conveyor: a belt whose surface really moves, so parts ride on it through friction.

The belt surface is a slab on a velocity-driven prismatic joint (a treadmill). When the
slab has travelled the wrap distance it is reset back without touching the parts on it.
Transport costs one motor command and one joint read per belt per step, whatever the
number of parts.

A conveyor with `zones` > 1 is a zero-pressure accumulation (ZPA) conveyor, as built with
motor-driven rollers: each zone has its own slab, drive and eye (just upstream of the zone's
end). A zone carries its part up to its eye and stops there unless the next zone is empty;
it releases into the next zone only when that zone is neither holding nor receiving a part
(singulation). Queued parts therefore wait one zone apart and are never pressed together,
so lifting one never drags its neighbour. The last zone carries its part on to the end stop
and stops (`_END_SETTLE` after its eye sees it); without an end stop it always runs.
Reversed, every zone runs: accumulation works in the forward direction only. A source on a
zoned belt drops a part only into an empty zone (`twin.geometry.source_zone`), so each zone
carries one part at a time.
"""

from __future__ import annotations

import math

import pybullet

from twin.config import ConveyorConfig
from twin.devices.base import Arg, BuildContext, CommandError, CommandSpec, Device, SignalSpec
from twin.geometry import belt_frame

_SLAB = 0.02  # m, belt thickness
_WRAP = 0.05  # m of slab travel before it is reset back
_CHECK_EVERY = 4  # steps between two reads of the belt joint (the slab overhangs enough)
# zoned belts: slabs overhang into the neighbouring zone, so they wrap sooner and are read
# more often; each zone eye sits far enough upstream of its zone's end that a part waiting
# there is out of reach of the next zone's overhang
_ZONE_WRAP = 0.02  # m
_ZONE_CHECK_EVERY = 2
_ZONE_EYE_MARGIN = 0.03  # m between the next slab's overhang and a waiting part
_ZONE_EYE_HEIGHT = 0.015  # m above the belt
_END_SETTLE = 0.5  # s the last zone runs on after its eye sees a part, to reach the end stop
_RAIL = 0.025  # m, guide rail height above the belt
_MOTOR_FORCE = 5000.0  # N, belt drive: never the limiting factor


class Conveyor(Device):
    kind = "conveyor"
    signal_specs = (
        SignalSpec(name="running", type="bool", doc="belt drive on"),
        SignalSpec(name="speed", type="float", unit="m/s", min=0.0, doc="commanded belt speed"),
        SignalSpec(name="reverse", type="bool", doc="transport direction reversed"),
        SignalSpec(name="surface_speed", type="float", unit="m/s", doc="measured, signed"),
        SignalSpec(
            name="queued", type="int", doc="accumulation zones holding a part (zoned belts)"
        ),
    )

    def __init__(self, cfg: ConveyorConfig, ctx: BuildContext) -> None:
        super().__init__(cfg, ctx)
        self.commands = (
            CommandSpec(name="run", doc="start the belt at the commanded speed"),
            CommandSpec(name="stop", doc="stop the belt"),
            CommandSpec(
                name="set_speed",
                args=(Arg(name="speed", type="float", unit="m/s", min=0.0, max=cfg.max_speed),),
                doc="set the belt speed (applies at once if running)",
            ),
            CommandSpec(
                name="set_direction",
                args=(Arg(name="reverse", type="bool"),),
                doc="forward (false) or reverse (true) transport",
            ),
        )
        self.running = cfg.running
        self.speed = cfg.speed
        self.reverse = False
        self.surface_speed = 0.0
        self._drive_dirty = True
        n = cfg.zones
        self._wrap = _WRAP if n == 1 else _ZONE_WRAP
        self._check_every = _CHECK_EVERY if n == 1 else _ZONE_CHECK_EVERY
        # how far a slab reaches beyond its zone: wrap distance plus the most it can travel
        # between two checks
        self._overhang = self._wrap + cfg.max_speed * ctx.world.dt * self._check_every + 0.01
        self.zone_length = cfg.length / n
        self._zone_run = [True] * n  # what each zone's drive is told (when the belt runs)
        self._full = [False] * n
        self._receiving_until = [-1.0] * n  # sim time until which a zone expects a part
        self._releasing = [False] * n
        self._full_for = 0.0  # s the last zone's eye has been blocked
        self._quiet_until = -math.inf  # sim time up to which the zones' drives hold
        self.queued = 0
        self.frame = belt_frame(cfg)
        self._build()
        self.zone_eyes = (
            [self.ctx.world.rays.add(*self._zone_eye(i)) for i in range(n)] if n > 1 else []
        )

    # geometry -------------------------------------------------------------------------
    def point(self, along: float, across: float = 0.0, up: float = 0.0) -> list[float]:
        """World point at `along` m from the belt centre, `up` m above the belt surface."""
        return self.frame.point(along, across, up)

    def _build(self) -> None:
        cfg, world = self.cfg, self.ctx.world
        c = world.client
        half_len, half_w = cfg.length / 2, cfg.width / 2
        frame_h = cfg.height - _SLAB
        orn = c.getQuaternionFromEuler([0, 0, cfg.yaw])
        frame_col = c.createCollisionShape(
            pybullet.GEOM_BOX, halfExtents=[half_len, half_w + 0.03, frame_h / 2]
        )
        frame_vis = c.createVisualShape(
            pybullet.GEOM_BOX,
            halfExtents=[half_len, half_w + 0.03, frame_h / 2],
            rgbaColor=[0.55, 0.57, 0.6, 1],
        )
        n = cfg.zones
        zone_half = half_len / n
        slab_col = c.createCollisionShape(
            pybullet.GEOM_BOX, halfExtents=[zone_half + self._overhang, half_w, _SLAB / 2]
        )
        # the visible belt is exactly the zone length; the collision slab overhangs to wrap
        slab_vis = c.createVisualShape(
            pybullet.GEOM_BOX, halfExtents=[zone_half, half_w, _SLAB / 2], rgbaColor=cfg.color
        )
        centres = [-half_len + zone_half * (2 * i + 1) for i in range(n)]
        self.body = c.createMultiBody(
            baseMass=0,
            baseCollisionShapeIndex=frame_col,
            baseVisualShapeIndex=frame_vis,
            basePosition=self.point(0, 0, -_SLAB - frame_h / 2),
            baseOrientation=orn,
            linkMasses=[1.0] * n,
            linkCollisionShapeIndices=[slab_col] * n,
            linkVisualShapeIndices=[slab_vis] * n,
            linkPositions=[[x, 0, frame_h / 2 + _SLAB / 2] for x in centres],
            linkOrientations=[[0, 0, 0, 1]] * n,
            linkInertialFramePositions=[[0, 0, 0]] * n,
            linkInertialFrameOrientations=[[0, 0, 0, 1]] * n,
            linkParentIndices=[0] * n,
            linkJointTypes=[pybullet.JOINT_PRISMATIC] * n,
            linkJointAxis=[[1, 0, 0]] * n,
        )
        self.joints = list(range(n))
        for j in self.joints:
            c.changeDynamics(
                self.body, j, lateralFriction=cfg.friction, linearDamping=0, angularDamping=0
            )
        c.changeDynamics(self.body, -1, lateralFriction=0.3)
        rail_color = [0.75, 0.76, 0.78, 1]
        for side in (-1, 1):
            # rails stand just beside and above the belt so they never rub on it
            world.box(
                [half_len, 0.01, (_RAIL - 0.002) / 2],
                self.point(0, side * (half_w + 0.011), 0.002 + (_RAIL - 0.002) / 2),
                cfg.yaw,
                rail_color,
                friction=0.1,
            )
        if cfg.end_stop:
            # a hair above the belt so the moving slab never rubs on it
            world.box(
                [0.01, half_w, 0.03],
                self.point(half_len + 0.01, 0, 0.032),
                cfg.yaw,
                [0.8, 0.2, 0.15, 1],
            )

    # commands -------------------------------------------------------------------------
    def cmd_run(self) -> None:
        self.running = True
        self._drive_dirty = True

    def cmd_stop(self) -> None:
        self.running = False
        self._drive_dirty = True

    def cmd_set_speed(self, speed: float) -> None:
        self.speed = speed
        self._drive_dirty = True

    def cmd_set_direction(self, reverse: bool) -> None:
        self.reverse = reverse
        self._drive_dirty = True

    def safe_state(self, reason: str) -> None:
        self.cmd_stop()

    # zones ----------------------------------------------------------------------------
    def _zone_eye(self, i: int) -> tuple[list[float], list[float]]:
        """Beam across zone i, just upstream of its end (of the end stop for the last zone)."""
        end = -self.cfg.length / 2 + self.zone_length * (i + 1)
        if i == self.cfg.zones - 1:
            along = end - 0.035  # a part against the end stop blocks it
        else:
            along = end - self._overhang - _ZONE_EYE_MARGIN
        half = self.cfg.width / 2 - 0.004
        return self.point(along, -half, _ZONE_EYE_HEIGHT), self.point(along, half, _ZONE_EYE_HEIGHT)

    def _update_zones(self, dt: float, now: float) -> None:
        """ZPA logic, last zone first: the drives each zone should have."""
        hits = self.ctx.world.rays.hit_body
        full = [hits[r] >= 0 for r in self.zone_eyes]
        if full == self._full and now <= self._quiet_until:
            # the eyes see what they saw and no zone's wait for a part runs out: the drives
            # stay as they are (the logic below would decide the same), unless the last
            # zone's part has just settled against the end stop
            if not full[-1]:
                return
            full_for = self._full_for + dt
            settled = full_for >= _END_SETTLE
            if not self.cfg.end_stop or settled == (self._full_for >= _END_SETTLE):
                self._full_for = full_for
                return
        n = self.cfg.zones
        receiving = self._receiving_until
        for i in range(n):
            if full[i] or now > receiving[i]:
                receiving[i] = -1.0  # arrived (or never will: lifted off on the way)
            if self._releasing[i] and not full[i]:
                self._releasing[i] = False  # its part has left through the eye
        run = list(self._zone_run)
        last = n - 1
        self._full_for = self._full_for + dt if full[last] else 0.0
        run[last] = not (self.cfg.end_stop and full[last] and self._full_for >= _END_SETTLE)
        travel = 2 * self.zone_length / max(self.speed, 1e-3) + 1.0  # s, generous
        for i in range(last - 1, -1, -1):
            if not full[i] or self._releasing[i]:
                run[i] = True
            elif not full[i + 1] and receiving[i + 1] < 0:
                self._releasing[i] = True  # singulation: one part into an empty zone
                receiving[i + 1] = now + travel
                run[i] = True
            else:
                run[i] = False
        self._full = full
        self.queued = sum(full)
        # until then nothing changes the drives but the eyes
        self._quiet_until = min((t for t in receiving if t >= 0), default=math.inf)
        if run != self._zone_run:
            self._zone_run = run
            self._drive_dirty = True

    # stepping -------------------------------------------------------------------------
    @property
    def target_velocity(self) -> float:
        if not self.running:
            return 0.0
        return -self.speed if self.reverse else self.speed

    def before_step(self) -> None:
        if not self._drive_dirty:
            return
        self._drive_dirty = False
        v = self.target_velocity
        if self.cfg.zones == 1:
            targets = [v]
        elif self.reverse:
            targets = [v] * self.cfg.zones  # accumulation works forward only
        else:
            targets = [v if on else 0.0 for on in self._zone_run]
        self.ctx.world.client.setJointMotorControlArray(
            self.body,
            self.joints,
            pybullet.VELOCITY_CONTROL,
            targetVelocities=targets,
            forces=[_MOTOR_FORCE] * len(targets),
        )

    def after_step(self) -> None:
        world = self.ctx.world
        if self.zone_eyes and self.running and not self.reverse:
            self._update_zones(world.dt, world.sim_time)
        if world.step_index % self._check_every:
            return
        if not self.running and self.surface_speed == 0.0:
            return  # at rest: nothing to wrap, nothing to measure
        c = world.client
        states = c.getJointStates(self.body, self.joints)
        # the surface speed is the fastest zone's (all zones' on a plain belt); the first
        # of equally fast zones, as max() would pick it
        v = states[0][1]
        for s in states[1:]:
            if abs(s[1]) > abs(v):
                v = s[1]
        if not self.running and abs(v) < 1e-9:
            v = 0.0
        self.surface_speed = v
        wrap = self._wrap
        for j, (q, vj, *_) in zip(self.joints, states):
            if abs(q) > wrap:
                # one call per joint: a multi-joint reset is not bit-identical to these
                c.resetJointState(self.body, j, q - math.copysign(wrap, q), targetVelocity=vj)


def conveyor_of(ctx: BuildContext, device_id: str, conveyor_id: str) -> Conveyor:
    """The conveyor a sensor/source/sink is mounted on (config validation guarantees it)."""
    dev = ctx.devices.get(conveyor_id)
    if not isinstance(dev, Conveyor):
        raise CommandError(
            "config", f"device '{device_id}': conveyor '{conveyor_id}' not built yet"
        )
    return dev
