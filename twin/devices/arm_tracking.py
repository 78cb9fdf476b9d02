"""Trajectory tracking: a profiled motion becomes joint targets, step by step.

As a robot controller's interpolator does, a Cartesian path is solved by IK only at knots
every few steps (a 33 Hz trajectory generator) and the joint targets are interpolated
between knots at every step; after the profile ends, the end point is re-solved from where
the arm now is until it arrives. A joint motion gives its targets directly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from twin.devices.arm_jobs import JointMotion, Motion
from twin.devices.arm_motion import CartesianTrajectory, JointTrajectory

IK = Callable[[np.ndarray, float], np.ndarray]  # (tool point, tool yaw) -> joint positions


class Follower:
    """The step being executed: its trajectory, the time into it, the IK knots."""

    def __init__(
        self,
        step: Motion | JointMotion,
        traj: CartesianTrajectory | JointTrajectory,
        dt: float,
        knot_steps: int,
    ) -> None:
        self.step, self.traj = step, traj
        self.dt, self.knot_steps = dt, knot_steps
        self.t = 0.0  # s into the motion; runs on past the profile while the arm settles
        self.settling = 0.0  # s since the profile ended
        self._t0 = self._t1 = 0.0
        self._q0: np.ndarray | None = None
        self._q1: np.ndarray | None = None
        self._dq: np.ndarray | None = None  # _q1 - _q0, once per knot

    @property
    def searching(self) -> bool:
        return isinstance(self.step, Motion) and self.step.legs[-1].search

    @property
    def profiled(self) -> bool:
        """Still inside the motion profile (not yet settling on its end)."""
        return self.t < self.traj.duration

    @property
    def at_knot(self) -> bool:
        return round(self.t / self.dt) % self.knot_steps == 0

    def advance(self, q_target: np.ndarray, ik: IK) -> tuple[np.ndarray, float | None]:
        """One step on: the new joint targets and the commanded tool yaw (None for a joint
        motion). Returns `q_target` itself when nothing changes."""
        self.t += self.dt
        traj = self.traj
        if isinstance(traj, JointTrajectory):
            return traj.at(self.t), None
        if self.t <= traj.duration + 1e-9:
            yaw = None
            if self._q1 is None or self.t > self._t1 + 1e-9:
                self._q0 = q_target
                self._t0 = self.t - self.dt
                self._t1 = min(traj.duration, self._t0 + self.knot_steps * self.dt)
                point, yaw = traj.pose(self._t1)
                self._q1 = ik(point, yaw)
                self._dq = self._q1 - self._q0
            assert self._q0 is not None and self._dq is not None
            span = self._t1 - self._t0
            frac = min(1.0, (self.t - self._t0) / span) if span > 0 else 1.0
            return self._q0 + self._dq * frac, yaw
        # settling: refine the end point from where the arm now is
        knot = round(self.settling / self.dt) % self.knot_steps == 0
        self.settling += self.dt
        if not knot:
            return q_target, None
        last = traj.legs[-1]
        return ik(last.end, last.yaw1), last.yaw1
