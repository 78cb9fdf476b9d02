"""An AMR's body in the physics scene: a chassis box on three motorised joints.

A fixed, collision-free base at the floor carries a prismatic x, a prismatic y and a
revolute yaw joint; the last link is the chassis (length x width, its top the deck at the
deck height, a hair above the floor so it never rubs on it). Velocity motors with limited
force drive the joints, so the AMR pushes and is pushed physically; a part on the deck
rides there by friction and slides when the chassis brakes harder than friction holds it.
"""

from __future__ import annotations

import math

import pybullet

from twin.config import AmrConfig
from twin.sim.world import World

JOINTS = [0, 1, 2]  # x, y, yaw
CHASSIS = 2  # the link index of the chassis (its deck is its top face)
CLEARANCE = 0.01  # m between the floor and the chassis
_CARRIAGE_MASS = 1.0  # kg of each of the two massless-in-spirit joint carriages
# the motors may exceed the configured accelerations by this factor, to track the profile
# under load; beyond that the chassis yields to what pushes it
_FORCE_MARGIN = 3.0


class AmrBody:
    def __init__(self, world: World, cfg: AmrConfig) -> None:
        self.world = world
        c = world.client
        length, width, deck = cfg.size
        height = deck - CLEARANCE
        half = [length / 2, width / 2, height / 2]
        col = c.createCollisionShape(pybullet.GEOM_BOX, halfExtents=half)
        vis = c.createVisualShape(pybullet.GEOM_BOX, halfExtents=half, rgbaColor=cfg.color)
        self.body = c.createMultiBody(
            baseMass=0,
            baseCollisionShapeIndex=-1,
            baseVisualShapeIndex=-1,
            basePosition=[0.0, 0.0, 0.0],
            linkMasses=[_CARRIAGE_MASS, _CARRIAGE_MASS, cfg.mass],
            linkCollisionShapeIndices=[-1, -1, col],
            linkVisualShapeIndices=[-1, -1, vis],
            linkPositions=[[0, 0, 0], [0, 0, 0], [0, 0, CLEARANCE + height / 2]],
            linkOrientations=[[0, 0, 0, 1]] * 3,
            linkInertialFramePositions=[[0, 0, 0]] * 3,
            linkInertialFrameOrientations=[[0, 0, 0, 1]] * 3,
            linkParentIndices=[0, 1, 2],
            linkJointTypes=[
                pybullet.JOINT_PRISMATIC,
                pybullet.JOINT_PRISMATIC,
                pybullet.JOINT_REVOLUTE,
            ],
            linkJointAxis=[[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        )
        for j in JOINTS:
            c.changeDynamics(self.body, j, linearDamping=0, angularDamping=0, jointDamping=0)
        c.changeDynamics(self.body, CHASSIS, lateralFriction=cfg.deck_friction)
        moving = cfg.mass + 2 * _CARRIAGE_MASS + cfg.max_payload
        accel = max(cfg.max_acceleration, cfg.max_deceleration)
        inertia = cfg.mass * (length**2 + width**2) / 12.0
        force = _FORCE_MARGIN * moving * accel
        torque = _FORCE_MARGIN * inertia * cfg.turn_acceleration
        self.forces = [force, force, torque]
        self._sent: tuple[float, float, float] | None = None

    def place(self, x: float, y: float, yaw: float) -> None:
        """Put the chassis at a pose, at rest (building the line)."""
        c = self.world.client
        for j, q in zip(JOINTS, (x, y, yaw)):
            c.resetJointState(self.body, j, q, 0.0)
        self.drive(0.0, 0.0, 0.0)

    def read(self) -> tuple[float, float, float, float, float, float]:
        """x, y, yaw (unwrapped), vx, vy, yaw rate."""
        (x, vx, *_), (y, vy, *_), (yaw, w, *_) = self.world.client.getJointStates(self.body, JOINTS)
        return x, y, yaw, vx, vy, w

    def drive(self, vx: float, vy: float, w: float) -> None:
        """Hold these velocities (world frame) with the force-limited motors."""
        target = (vx, vy, w)
        if target == self._sent:
            return  # a motor keeps its target: send only changes
        self._sent = target
        self.world.client.setJointMotorControlArray(
            self.body,
            JOINTS,
            pybullet.VELOCITY_CONTROL,
            targetVelocities=list(target),
            forces=self.forces,
        )

    def deck_contacts(self, deck_height: float) -> list[int]:
        """Bodies resting on the deck (touching the chassis at the deck's height)."""
        points = self.world.client.getContactPoints(bodyA=self.body, linkIndexA=CHASSIS) or ()
        top = deck_height - 0.01
        return sorted({p[2] for p in points if p[5][2] >= top})


def unwrap_near(angle: float, reference: float) -> float:
    """`angle` plus whole turns, nearest to `reference`."""
    return angle + math.tau * round((reference - angle) / math.tau)
