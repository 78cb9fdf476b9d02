"""Job planning: a command (move_to, pick, place, home) becomes a list of steps.

A step is a Cartesian motion (straight legs the controller blends at their corners), a joint
motion, or an action of the cup (vacuum on, check the seal, release, check the seat). Each
step carries the robot's activity while it runs, which the arm reports for utilisation.
Pure geometry: the arm supplies where the tool is, where the part is, and its limits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.devices.arm_gripper import PartPose
from twin.devices.arm_motion import Leg

_APPROACH = 0.03  # m: the cup stops this far above a part's top before searching down
_PLACE_APPROACH = 0.04  # m: above the release height, where the slow lowering starts
_CLEARANCE = 0.004  # m: a placed part is released this far above the surface
_SEARCH_BELOW = 0.01  # m: how far below the located top the search may go
# m: a tool this close below the travel height goes straight across (a separate lift of a
# few mm would cost a whole S-curve's start and stop)
_LEVEL = 0.01


@dataclass
class Motion:
    legs: list[Leg]
    activity: str
    planned: Any = None  # its trajectory, once planned from where it was expected to start


@dataclass
class JointMotion:
    target: np.ndarray
    activity: str
    planned: Any = None


@dataclass
class Action:
    name: str  # "vacuum_on", "vacuum_off", "check_sealed", "release", "check_seated"
    activity: str
    data: dict = field(default_factory=dict)


Step = Motion | JointMotion | Action


@dataclass(frozen=True)
class Speeds:
    travel: float  # m/s
    search: float  # m/s
    travel_height: float  # m above the floor
    base: tuple[float, float] = (0.0, 0.0)  # x, y of the arm's vertical base axis
    forward: float = 0.0  # rad: the base's yaw, the side to pass the axis on
    keep_out: float = 0.0  # m: travel does not pass closer than this to the base axis


def move_to(tool: np.ndarray, yaw: float, target: np.ndarray, s: Speeds) -> list[Step]:
    return [Motion([Leg(tool.copy(), target, yaw, yaw, s.travel)], "moving")]


def _via_travel_height(
    tool: np.ndarray, yaw: float, xy: np.ndarray, yaw_to: float, s: Speeds
) -> tuple[list[Leg], np.ndarray]:
    """Legs up to the travel height and across to above xy (turning the cup on the way);
    returns them and the point above xy."""
    h = max(s.travel_height, tool[2])
    up = np.array([tool[0], tool[1], h])
    above = np.array([xy[0], xy[1], h])
    legs = []
    if up[2] - tool[2] > _LEVEL:
        legs.append(Leg(tool.copy(), up, yaw, yaw, s.travel))
    else:  # already at the travel height (within a lift's settling): straight across
        up = tool.copy()
    via = _around_the_base(up, above, s)
    if via is None:
        legs.append(Leg(up, above, yaw, yaw_to, s.travel))
    else:  # the turn of the cup is spread over both legs
        mid_yaw = (yaw + yaw_to) / 2
        legs.append(Leg(up, via, yaw, mid_yaw, s.travel))
        legs.append(Leg(via, above, mid_yaw, yaw_to, s.travel))
    return legs, above


def _around_the_base(a: np.ndarray, b: np.ndarray, s: Speeds) -> np.ndarray | None:
    """A via point that keeps a travel move `keep_out` from the base axis, or None if the
    straight line does. Near the axis a straight line needs the base joint to swing through
    half a turn in an instant (the shoulder singularity); a robot programmer routes around."""
    base = np.array(s.base)
    if s.keep_out <= 0:
        return None
    off = _closest(a[:2], b[:2], base) - base
    dist = math.hypot(*off)
    if dist >= s.keep_out:
        return None
    # pass on the side the base joint turns through: halfway between the two ends'
    # bearings, measured from the base's forward direction (never through its back, where a
    # base joint's limits usually are)
    bearing_a = _bearing(a[:2] - base, s.forward)
    bearing_b = _bearing(b[:2] - base, s.forward)
    mid = s.forward + (bearing_a + bearing_b) / 2
    direction = np.array([math.cos(mid), math.sin(mid)])
    # out along that direction until both legs clear the axis (the legs are chords)
    radius = s.keep_out
    for _ in range(30):
        xy = base + direction * radius
        clear = min(
            math.hypot(*(_closest(a[:2], xy, base) - base)),
            math.hypot(*(_closest(xy, b[:2], base) - base)),
        )
        if clear >= s.keep_out - 1e-9:
            break
        radius *= 1.05
    return np.array([xy[0], xy[1], (a[2] + b[2]) / 2])


def _bearing(v: np.ndarray, forward: float) -> float:
    """Angle of v from the forward direction, in (-pi, pi]."""
    return math.remainder(math.atan2(v[1], v[0]) - forward, math.tau)


def _closest(a: np.ndarray, b: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The point of segment a-b nearest p."""
    d = b - a
    n2 = float(d @ d)
    u = 0.0 if n2 == 0 else min(1.0, max(0.0, float((p - a) @ d) / n2))
    return a + d * u


def pick(
    tool: np.ndarray,
    yaw: float,
    target: np.ndarray,
    found: PartPose | None,
    cup_yaw: float,
    tallest: float,
    s: Speeds,
) -> list[Step]:
    """Up, across and down to just above the part (blended), then search down slowly with
    the vacuum on, check the seal, lift. Aimed at the located part if there is one, else
    blind at the taught point."""
    if found is not None:
        xy, top = found.top[:2], found.top[2]
        bottom = top - _SEARCH_BELOW
    else:
        xy, top, bottom = target[:2], target[2] + tallest, target[2]
    legs, above = _via_travel_height(tool, yaw, xy, cup_yaw, s)
    near = np.array([xy[0], xy[1], top + _APPROACH])
    legs.append(Leg(above, near, cup_yaw, cup_yaw, s.travel))
    return [Motion(legs, "moving_to_pick"), *descend(near, bottom, cup_yaw, s)]


def descend(near: np.ndarray, bottom: float, yaw: float, s: Speeds) -> list[Step]:
    """From above a part: vacuum on, search down, check the seal, lift to the travel height."""
    end = np.array([near[0], near[1], bottom])
    lift = np.array([near[0], near[1], s.travel_height])
    return [
        Action("vacuum_on", "picking"),  # only now: never grab a part on the way
        Motion([Leg(near.copy(), end, yaw, yaw, s.search, search=True)], "picking"),
        Action("check_sealed", "picking"),
        Motion([Leg(end, lift, yaw, yaw, s.travel)], "picking"),
    ]


def retreat(tool: np.ndarray, yaw: float, height: float, s: Speeds) -> Motion:
    """Straight up from a failed search to `height`, to try again from there."""
    return Motion(
        [Leg(tool.copy(), np.array([tool[0], tool[1], height]), yaw, yaw, s.travel)], "picking"
    )


def place(
    tool: np.ndarray,
    yaw: float,
    target: np.ndarray,
    cup_xy: np.ndarray,
    cup_above_centre: float,
    cup_yaw: float,
    part_height: float,
    s: Speeds,
) -> list[Step]:
    """Carry the part above the point (blended), lower it slowly until its bottom is just
    above the surface, release, lift, then check that the part sits where it should."""
    drop = np.array(
        [cup_xy[0], cup_xy[1], target[2] + part_height / 2 + cup_above_centre + _CLEARANCE]
    )
    legs, above = _via_travel_height(tool, yaw, drop, cup_yaw, s)
    near = drop + [0, 0, _PLACE_APPROACH]
    legs.append(Leg(above, near, cup_yaw, cup_yaw, s.travel))
    lift = np.array([drop[0], drop[1], s.travel_height])
    return [
        Motion(legs, "moving_to_place"),
        # lowered like a search: it stops if the part meets something on the way down
        Motion([Leg(near, drop, cup_yaw, cup_yaw, s.search, search=True)], "placing"),
        Action("release", "placing"),
        Motion([Leg(drop, lift, cup_yaw, cup_yaw, s.travel)], "placing"),
        Action("check_seated", "placing", {"target": target}),
    ]
