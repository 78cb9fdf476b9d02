"""Conveyor: a belt whose surface really moves, so parts ride on it through friction.

The belt surface is a slab on a velocity-driven prismatic joint (a treadmill). When the
slab has travelled `_WRAP` it is reset back without touching the parts on it. Transport
costs one motor command and one joint read per belt per step, whatever the number of parts.
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
_RAIL = 0.025  # m, guide rail height above the belt
_MOTOR_FORCE = 5000.0  # N, belt drive: never the limiting factor


class Conveyor(Device):
    kind = "conveyor"
    signal_specs = (
        SignalSpec(name="running", type="bool", doc="belt drive on"),
        SignalSpec(name="speed", type="float", unit="m/s", min=0.0, doc="commanded belt speed"),
        SignalSpec(name="reverse", type="bool", doc="transport direction reversed"),
        SignalSpec(name="surface_speed", type="float", unit="m/s", doc="measured, signed"),
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
        self.frame = belt_frame(cfg)
        self._build()

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
        # the slab overhangs by the wrap distance plus the most it can travel between checks
        reach = _WRAP + cfg.max_speed * self.ctx.world.dt * _CHECK_EVERY + 0.01
        slab_half = [half_len + reach, half_w, _SLAB / 2]
        slab_col = c.createCollisionShape(pybullet.GEOM_BOX, halfExtents=slab_half)
        # the visible belt is exactly the conveyor length; the collision slab overhangs to wrap
        slab_vis = c.createVisualShape(
            pybullet.GEOM_BOX, halfExtents=[half_len, half_w, _SLAB / 2], rgbaColor=cfg.color
        )
        self.body = c.createMultiBody(
            baseMass=0,
            baseCollisionShapeIndex=frame_col,
            baseVisualShapeIndex=frame_vis,
            basePosition=self.point(0, 0, -_SLAB - frame_h / 2),
            baseOrientation=orn,
            linkMasses=[1.0],
            linkCollisionShapeIndices=[slab_col],
            linkVisualShapeIndices=[slab_vis],
            linkPositions=[[0, 0, frame_h / 2 + _SLAB / 2]],
            linkOrientations=[[0, 0, 0, 1]],
            linkInertialFramePositions=[[0, 0, 0]],
            linkInertialFrameOrientations=[[0, 0, 0, 1]],
            linkParentIndices=[0],
            linkJointTypes=[pybullet.JOINT_PRISMATIC],
            linkJointAxis=[[1, 0, 0]],
        )
        c.changeDynamics(
            self.body, 0, lateralFriction=cfg.friction, linearDamping=0, angularDamping=0
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

    # stepping -------------------------------------------------------------------------
    @property
    def target_velocity(self) -> float:
        if not self.running:
            return 0.0
        return -self.speed if self.reverse else self.speed

    def before_step(self) -> None:
        if self._drive_dirty:
            self._drive_dirty = False
            self.ctx.world.client.setJointMotorControl2(
                self.body,
                0,
                pybullet.VELOCITY_CONTROL,
                targetVelocity=self.target_velocity,
                force=_MOTOR_FORCE,
            )

    def after_step(self) -> None:
        if self.ctx.world.step_index % _CHECK_EVERY:
            return
        if not self.running and self.surface_speed == 0.0:
            return  # at rest: nothing to wrap, nothing to measure
        c = self.ctx.world.client
        q, v = c.getJointState(self.body, 0)[:2]
        if not self.running and abs(v) < 1e-9:
            v = 0.0
        self.surface_speed = v
        if abs(q) > _WRAP:
            c.resetJointState(self.body, 0, q - math.copysign(_WRAP, q), targetVelocity=v)


def conveyor_of(ctx: BuildContext, device_id: str, conveyor_id: str) -> Conveyor:
    """The conveyor a sensor/source/sink is mounted on (config validation guarantees it)."""
    dev = ctx.devices.get(conveyor_id)
    if not isinstance(dev, Conveyor):
        raise CommandError(
            "config", f"device '{device_id}': conveyor '{conveyor_id}' not built yet"
        )
    return dev
