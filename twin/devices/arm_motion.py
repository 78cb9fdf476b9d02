"""Motion profiles of the arm's controller: time-optimal, jerk-limited, blended.

Every move is a rest-to-rest double-S (S-curve) profile of a path parameter: seven phases of
constant jerk, the shortest in time that keeps speed, acceleration and jerk within their
limits (with an infinite jerk limit it is the trapezoidal profile). A Cartesian motion is a
chain of straight legs; where two legs are blended the next leg starts as the previous one
begins to brake, so the tool rounds the corner without stopping, as an industrial
controller's approximate positioning does. Pure math: no pybullet, testable alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


class SCurve:
    """Rest-to-rest move over `distance` (> 0) within speed `v`, acceleration `a`, jerk `j`."""

    def __init__(self, distance: float, v: float, a: float, j: float) -> None:
        L = self.distance = max(0.0, float(distance))
        if L == 0.0:
            self.tj = self.ta = self.tv = self.duration = 0.0
            self.peak_v = self.peak_a = self.jerk = 0.0
            return
        if math.isinf(j):
            tj = 0.0
            ta = v / a
            if L < v * ta:  # the speed limit is never reached
                ta = math.sqrt(L / a)
        else:
            if v * j >= a * a:
                tj, ta = a / j, a / j + v / a
            else:  # the jerk limit alone decides how fast the speed limit is reached
                tj = math.sqrt(v / j)
                ta = 2 * tj
            if L < v * ta:  # no cruise: the highest speed reachable on this distance
                if L >= 2 * a**3 / j**2:
                    tj = a / j
                    ta = tj / 2 + math.sqrt(tj * tj / 4 + L / a)
                else:
                    tj = (L / (2 * j)) ** (1 / 3)
                    ta = 2 * tj
        self.tj, self.ta = tj, ta
        self.peak_a = a if tj == 0.0 else min(a, j * tj)
        self.peak_v = (ta - tj) * self.peak_a
        self.jerk = self.peak_a / tj if tj > 0 else math.inf
        self.tv = max(0.0, L / self.peak_v - ta)
        self.duration = 2 * ta + self.tv

    @property
    def brake_at(self) -> float:
        """Time at which the deceleration begins."""
        return self.ta + self.tv

    def _accel_phase(self, t: float) -> float:
        tj, ta, a, vp = self.tj, self.ta, self.peak_a, self.peak_v
        if t < tj:
            return self.jerk * t**3 / 6
        if t <= ta - tj:
            return a / 6 * (3 * t * t - 3 * tj * t + tj * tj)
        r = ta - t
        return vp * ta / 2 - vp * r + (self.jerk * r**3 / 6 if tj > 0 else 0.0)

    def position(self, t: float) -> float:
        """Distance covered at time t (clamped to the move)."""
        if t <= 0.0 or self.duration == 0.0:
            return 0.0
        if t >= self.duration:
            return self.distance
        if t < self.ta:
            return self._accel_phase(t)
        if t <= self.brake_at:
            return self.peak_v * (self.ta / 2 + (t - self.ta))
        return self.distance - self._accel_phase(self.duration - t)


@dataclass
class Leg:
    """One straight piece of a Cartesian motion, with the tool yaw turning along it."""

    start: np.ndarray
    end: np.ndarray
    yaw0: float
    yaw1: float
    speed: float  # m/s, the leg's own speed limit (travel or search speed)
    search: bool = False  # ends early on contact (the cup on a part, a part on a surface)


@dataclass(frozen=True)
class CartesianLimits:
    acceleration: float  # m/s^2
    jerk: float  # m/s^3


@dataclass(frozen=True)
class JointLimits:
    velocity: np.ndarray  # rad/s per joint (the model's)
    acceleration: float  # rad/s^2
    jerk: float  # rad/s^3


def blend_scale(d0: np.ndarray, d1: np.ndarray) -> float:
    """Factor on acceleration and jerk of two legs blended at a corner so that the sum of
    one braking and the other accelerating stays within the limits at any corner angle."""
    n0, n1 = np.linalg.norm(d0), np.linalg.norm(d1)
    if n0 == 0 or n1 == 0:
        return 1.0
    cos = float(np.dot(d0, d1) / (n0 * n1))
    return 1.0 / math.sqrt(2.0 * (1.0 + abs(cos)))


class CartesianTrajectory:
    """Legs in sequence; a blended corner overlaps one leg's braking with the next's start.

    Each leg runs an S-curve on its progress u in [0, 1]. Its limits come from the tool's
    speed, acceleration and jerk, lowered where a joint would exceed its model speed limit
    or the joint acceleration limit (`joint_rate(leg)` gives max |dq/du| per joint).
    """

    def __init__(
        self,
        legs: Sequence[Leg],
        limits: CartesianLimits,
        joints: JointLimits,
        joint_rate: Callable[[Leg], np.ndarray],
        blend: bool = True,
    ) -> None:
        self.legs = list(legs)
        n = len(self.legs)
        scale = [1.0] * n
        blended = [False] * max(0, n - 1)
        for i in range(n - 1):
            a, b = self.legs[i], self.legs[i + 1]
            # blend only between travel legs: a search must start from rest, on its point
            if blend and not (a.search or b.search):
                blended[i] = True
                s = blend_scale(a.end - a.start, b.end - b.start)
                scale[i] = min(scale[i], s)
                scale[i + 1] = min(scale[i + 1], s)
        self.profiles: list[SCurve] = []
        self.starts: list[float] = []
        t = 0.0
        for i, leg in enumerate(self.legs):
            length = float(np.linalg.norm(leg.end - leg.start))
            rate = joint_rate(leg)  # rad per unit of u, per joint
            v_u, a_u, j_u = math.inf, math.inf, math.inf
            if length > 0:
                v_u = leg.speed / length
                a_u = limits.acceleration * scale[i] / length
                j_u = limits.jerk * scale[i] / length
            moving = rate > 1e-9
            if np.any(moving):
                v_u = min(v_u, float(np.min(joints.velocity[moving] / rate[moving])))
                a_u = min(a_u, float(np.min(joints.acceleration * scale[i] / rate[moving])))
                j_u = min(j_u, float(np.min(joints.jerk * scale[i] / rate[moving])))
            still = length == 0 and not np.any(moving)
            profile = SCurve(0.0 if still else 1.0, v_u, a_u, j_u)
            self.profiles.append(profile)
            self.starts.append(t)
            t += profile.brake_at if i < n - 1 and blended[i] else profile.duration
        self.duration = max(
            (s + p.duration for s, p in zip(self.starts, self.profiles)), default=0.0
        )

    def pose(self, t: float) -> tuple[np.ndarray, float]:
        """Tool point and yaw at time t (from the start of the motion)."""
        first = self.legs[0]
        p, yaw = first.start.copy(), first.yaw0
        for leg, start, prof in zip(self.legs, self.starts, self.profiles):
            if t <= start:
                break
            u = prof.position(t - start) if prof.distance > 0 else 1.0
            p += (leg.end - leg.start) * u
            yaw += (leg.yaw1 - leg.yaw0) * u
        return p, yaw

    def leg_at(self, t: float) -> int:
        """Index of the last leg that has started by time t."""
        i = 0
        for k, start in enumerate(self.starts):
            if t >= start:
                i = k
        return i


class JointTrajectory:
    """A synchronised joint move: all joints start and stop together on one S-curve, paced
    by the joint that needs longest."""

    def __init__(self, q0: np.ndarray, q1: np.ndarray, limits: JointLimits) -> None:
        self.q0, self.q1 = q0.copy(), q1.copy()
        delta = np.abs(q1 - q0)
        moving = delta > 1e-9
        if not np.any(moving):
            self.profile = SCurve(0.0, 1.0, 1.0, 1.0)
        else:
            d = delta[moving]
            self.profile = SCurve(
                1.0,
                float(np.min(limits.velocity[moving] / d)),
                float(np.min(limits.acceleration / d)),
                float(np.min(limits.jerk / d)),
            )
        self.duration = self.profile.duration

    def at(self, t: float) -> np.ndarray:
        u = self.profile.position(t) if self.profile.distance > 0 else 1.0
        return self.q0 + (self.q1 - self.q0) * u
