"""The robot as its URDF describes it: joints, limits, tool link, shoulder, and the IK.

Everything here is read from the model (no robot is hard-coded): which joints move, their
position, speed and force limits, where the tool frame is, and where the shoulder is (the
first joint whose axis is horizontal at the home pose), from which the reach is measured.
"""

from __future__ import annotations

import math

import numpy as np
import pybullet

from twin.config import ArmConfig
from twin.sim.models import shoulder_point

# a joint without a speed or force limit in its URDF gets these (URDF 0 means "unset")
_DEFAULT_VELOCITY = 2.0  # rad/s
_DEFAULT_FORCE = 100.0  # N m


class RobotModel:
    """Joint bookkeeping and kinematics of one loaded robot body."""

    def __init__(self, client, body: int, cfg: ArmConfig, label: str) -> None:
        self.client, self.body = client, body
        c = client
        names: dict[str, int] = {}
        movable: list[int] = []
        self.tool_index = -1
        lower, upper, max_force, max_vel = [], [], [], []
        for j in range(c.getNumJoints(body)):
            info = c.getJointInfo(body, j)
            name, jtype = info[1].decode(), info[2]
            names[name] = j
            if info[12].decode() == cfg.tool_link:
                self.tool_index = j
            if jtype in (pybullet.JOINT_REVOLUTE, pybullet.JOINT_PRISMATIC):
                movable.append(j)
                if name not in cfg.held_joints:
                    lower.append(info[8])
                    upper.append(info[9])
                    max_force.append(info[10] or _DEFAULT_FORCE)
                    max_vel.append(info[11] or _DEFAULT_VELOCITY)
        if self.tool_index < 0:
            raise ValueError(f"{label}: model {cfg.model} has no link '{cfg.tool_link}'")
        unknown = sorted(set(cfg.held_joints) - set(names))
        if unknown:
            raise ValueError(f"{label}: held_joints {unknown} not in model {cfg.model}")
        self.held = {names[n]: q for n, q in cfg.held_joints.items()}
        self.joints = [j for j in movable if j not in self.held]
        if len(cfg.home) != len(self.joints):
            raise ValueError(
                f"{label}: home has {len(cfg.home)} values, the model has "
                f"{len(self.joints)} arm joints"
            )
        self.home = list(cfg.home)
        self.lower, self.upper = np.array(lower), np.array(upper)
        self.max_force, self.max_velocity = max_force, np.array(max_vel)
        # IK works over every movable joint: held joints get a zero range at their value
        self._ik_index = [movable.index(j) for j in self.joints]
        self._movable = movable
        ll, ul, jr, rest = [], [], [], []
        for j in movable:
            if j in self.held:
                # a zero range makes pybullet's null-space IK loop forever; keep the real one
                info = c.getJointInfo(body, j)
                lo, hi = sorted((info[8], info[9]))
                ll.append(lo)
                ul.append(hi)
                jr.append(max(hi - lo, 1e-3))
                rest.append(self.held[j])
            else:
                k = self.joints.index(j)
                ll.append(lower[k])
                ul.append(upper[k])
                jr.append(upper[k] - lower[k])
                rest.append(self.home[k])
        self._ik_limits = (ll, ul, jr, rest)
        # the links that make up the wrist and tool: the ones after the last arm joint
        self.tool_links = (
            set(range(self.joints[-1], c.getNumJoints(body))) if self.joints else set()
        )
        self.base_yaw = cfg.yaw
        self._tool_offset: list[float] | None = None
        # the last (yaw, quaternion, sign of yaw) tool_orientation gave
        self._orientation: tuple[float, tuple[float, ...], float] | None = None

    def set_pose(self, q: list[float] | np.ndarray) -> None:
        c = self.client
        for j, v in zip(self.joints, q):
            c.resetJointState(self.body, j, float(v))
        for j, v in self.held.items():
            c.resetJointState(self.body, j, v)
            c.setJointMotorControl2(
                self.body, j, pybullet.POSITION_CONTROL, targetPosition=v, force=50
            )

    def find_shoulder(self) -> np.ndarray:
        """World point of the shoulder (twin.sim.models.shoulder_point) in the current pose."""
        return np.array(shoulder_point(self.client, self.body, self.joints))

    def tool_orientation(self, yaw: float) -> tuple[float, ...]:
        """Cup pointing down, turned by `yaw` about the world z axis."""
        last = self._orientation
        # most motions keep their yaw: one conversion per yaw (-0.0 is not 0.0 here)
        if last is not None and last[0] == yaw and math.copysign(1.0, yaw) == last[2]:
            return last[1]
        quat = self.client.getQuaternionFromEuler([math.pi, 0, yaw])
        self._orientation = (yaw, quat, math.copysign(1.0, yaw))
        return quat

    def ik(self, point: np.ndarray, yaw: float, iterations: int = 8) -> np.ndarray:
        """Joint positions that put the tool at `point`, cup down, with `yaw`; seeded from
        the body's current joint state (a few iterations suffice for a point nearby)."""
        ll, ul, jr, rest = self._ik_limits
        q = self.client.calculateInverseKinematics(
            self.body,
            self.tool_index,
            point.tolist(),
            self.tool_orientation(yaw),
            lowerLimits=ll,
            upperLimits=ul,
            jointRanges=jr,
            restPoses=rest,
            maxNumIterations=iterations,
            residualThreshold=1e-4,
        )
        # np.clip's values, without its Python-level argument handling
        return np.minimum(np.maximum(np.array(q)[self._ik_index], self.lower), self.upper)

    def jacobian(self) -> np.ndarray:
        """6 x n at the current joint state: the tool frame's linear and angular velocity
        (world axes) per unit speed of each arm joint."""
        c = self.client
        q = [s[0] for s in c.getJointStates(self.body, self._movable)]
        if self._tool_offset is None:
            # pybullet takes the point about the link's centre of mass: the tool frame's
            # origin in those axes (fixed for a rigid link)
            link = c.getLinkState(self.body, self.tool_index, computeForwardKinematics=1)
            rot = np.array(c.getMatrixFromQuaternion(link[1])).reshape(3, 3)
            self._tool_offset = (rot.T @ (np.array(link[4]) - np.array(link[0]))).tolist()
        zeros = [0.0] * len(q)
        lin, ang = c.calculateJacobian(
            self.body, self.tool_index, self._tool_offset, q, zeros, zeros
        )
        return np.vstack((lin, ang))[:, self._ik_index]

    def read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Joint positions, joint velocities, tool point and tool yaw, as measured."""
        c = self.client
        states = c.getJointStates(self.body, self.joints)
        link = c.getLinkState(self.body, self.tool_index, computeForwardKinematics=1)
        q = np.array([s[0] for s in states])
        qd = np.array([s[1] for s in states])
        return q, qd, np.array(link[4]), tool_yaw(c, link[5])


def tool_yaw(client, orientation) -> float:
    """Yaw of a cup-down tool frame: the direction of its x axis in the floor plane."""
    rot = client.getMatrixFromQuaternion(orientation)
    return math.atan2(rot[3], rot[0])
