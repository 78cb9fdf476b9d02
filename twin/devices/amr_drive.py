"""How an AMR drives: a move is a list of straight segments, each turned into in place and
then driven with a speed profile limited by speed, acceleration and deceleration.

Pure arithmetic on the measured pose (no physics here): `Drive` says, step by step, which
velocity the chassis motors should hold. Braking is planned over the segments ahead that
continue in a straight line (the AMR passes such nodes without stopping) and to the lower
speed limit of the next lane.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_STRAIGHT = math.radians(1.0)  # rad: a node where the heading changes less is driven through
_ARRIVE = 0.002  # m: a segment is done this close to its end ...
# ... at a speed it can stop from in one step
_ALIGNED = 0.002  # rad: a turn is done this close to its heading ...
# ... at a yaw rate it can stop from in one step
_PLAN_DEC = 0.9  # share of the deceleration a stop is planned with
_TRACK_GAIN = 2.0  # 1/s: cross-track and heading errors are corrected at this rate ...
_TRACK_MAX = 0.05  # ... by at most this much (m/s, rad/s)


@dataclass
class Segment:
    """One straight piece of a move, from wherever the AMR is to (x, y)."""

    x: float
    y: float
    kind: str  # "lane", "dock_in" (onto a dock) or "dock_out" (back to its approach node)
    end: str  # the node (lane, dock_out) or dock (dock_in) reached at its end
    start: str  # the node or dock it leaves from
    speed: float  # m/s, the limit on it
    heading: float | None  # rad to turn to before driving it (None: keep the heading)
    length: float = 0.0  # m, from its start point (filled when planned)


def wrap(angle: float) -> float:
    """An angle in (-pi, pi]."""
    a = math.fmod(angle + math.pi, math.tau)
    if a <= 0.0:
        a += math.tau
    return a - math.pi


def profile_speed(
    v: float, remaining: float, limit: float, acc: float, dec: float, dt: float
) -> float:
    """The next commanded speed toward a point `remaining` ahead (negative: behind), with
    at most `limit` and never faster than lets it stop there at `dec`; changed by at most
    acc*dt (speeding up) or dec*dt (slowing down)."""
    # planned with a little less than the full deceleration: the discrete steps then never
    # need more than the full one to stop on the point
    reach = math.sqrt(2.0 * _PLAN_DEC * dec * abs(remaining))
    target = math.copysign(min(limit, reach), remaining)
    if abs(target) > abs(v) and target * v >= 0.0:
        step = acc * dt
    else:
        step = dec * dt
    return v + max(-step, min(step, target - v))


def ramp(v: float, target: float, rate: float) -> float:
    return v + max(-rate, min(rate, target - v))


class Drive:
    """Follows the segments of one move: turn, then drive, segment after segment."""

    def __init__(self, acc: float, dec: float, turn_rate: float, turn_acc: float) -> None:
        self.acc, self.dec = acc, dec
        self.turn_rate, self.turn_acc = turn_rate, turn_acc
        self.segments: list[Segment] = []
        self.turning = False
        self.settling = False  # coming to rest before the first segment
        self._ahead_key: tuple | None = None
        self._ahead_value = (0.0, 0.0)
        self.v = 0.0  # commanded speed along the segment's direction (m/s)
        self.w = 0.0  # commanded yaw rate (rad/s)
        self.direction = (1.0, 0.0)  # unit vector of travel on the current segment

    @property
    def active(self) -> bool:
        return bool(self.segments)

    def start(self, segments: list[Segment], x: float, y: float) -> None:
        """Drive these segments from (x, y); the first starts where the AMR is. Still
        moving (braking from an abandoned move), it first comes to rest."""
        self.segments = list(segments)
        self.settling = self.v != 0.0 or self.w != 0.0
        if not self.settling:
            self._begin(x, y)

    def extend(self, segments: list[Segment]) -> None:
        """Replace what comes after the segment being driven."""
        self.segments[1:] = segments
        self._ahead_key = None

    def _begin(self, x: float, y: float) -> None:
        seg = self.segments[0]
        dx, dy = seg.x - x, seg.y - y
        seg.length = math.hypot(dx, dy)
        if seg.length > 1e-9:
            self.direction = (dx / seg.length, dy / seg.length)
        self.turning = seg.heading is not None
        self._ahead_key = None

    def _ahead(self, limit: float) -> tuple[float, float]:
        """`_run_ahead`, worked out once per segment (the route ahead is fixed by then)."""
        key = (id(self.segments[0]), len(self.segments), limit)
        if self._ahead_key != key:
            self._ahead_key = key
            self._ahead_value = self._run_ahead(limit)
        return self._ahead_value

    def _run_ahead(self, limit: float) -> tuple[float, float]:
        """The straight run after the current segment's end, where the AMR drives through
        without stopping: the fastest speed at that end that still meets every later limit
        (the lower speed of the next lanes, a stop where the run ends), and how far beyond
        that end the run goes (0: it stops at the end)."""
        if len(self.segments) < 2:
            return 0.0, 0.0
        heading = math.atan2(self.direction[1], self.direction[0])
        runs: list[tuple[float, float]] = []  # (speed limit, length) of each later segment
        prev = self.segments[0]
        for seg in self.segments[1:]:
            straight = (
                seg.kind == "lane"
                and prev.kind == "lane"
                and seg.heading is not None
                and abs(wrap(seg.heading - heading)) < _STRAIGHT
            )
            if not straight:
                break
            runs.append((seg.speed, math.hypot(seg.x - prev.x, seg.y - prev.y)))
            prev = seg
        if not runs:
            return 0.0, 0.0
        # backwards from the stop at the run's end: the speed allowed at each boundary
        allowed = 0.0
        for speed, length in reversed(runs):
            allowed = min(speed, math.sqrt(allowed**2 + 2.0 * self.dec * length))
        return min(allowed, limit), sum(length for _, length in runs)

    def update(
        self, x: float, y: float, yaw: float, dt: float, speed_cap: float
    ) -> tuple[float, float, float, list[Segment]]:
        """Velocities (vx, vy, yaw rate) for the coming step, from the measured pose; and the
        segments finished at this pose. `speed_cap` is what the safety field allows (m/s)."""
        finished: list[Segment] = []
        if self.settling:
            self.v = ramp(self.v, 0.0, self.dec * dt)
            self.w = ramp(self.w, 0.0, self.turn_acc * dt)
            if self.v != 0.0 or self.w != 0.0:
                dx, dy = self.direction
                return self.v * dx, self.v * dy, self.w, finished
            self.settling = False
            self._begin(x, y)
        while True:
            seg = self.segments[0]
            if self.turning:
                assert seg.heading is not None
                err = wrap(seg.heading - yaw)
                self.v = ramp(self.v, 0.0, self.dec * dt)
                if abs(err) > _ALIGNED or abs(self.w) > self.turn_acc * dt or self.v != 0.0:
                    self.w = profile_speed(
                        self.w, err, self.turn_rate, self.turn_acc, self.turn_acc, dt
                    )
                    dx, dy = self.direction
                    return self.v * dx, self.v * dy, self.w, finished
                self.w = 0.0
                self.turning = False
            dx, dy = self.direction
            ex, ey = seg.x - x, seg.y - y
            remaining = ex * dx + ey * dy  # along the travel direction
            through, beyond = self._ahead(seg.speed)
            if beyond > 0.0:  # driven through: done when its end is reached
                if remaining > _ARRIVE:
                    break
            elif abs(remaining) > _ARRIVE or abs(self.v) > self.dec * dt:
                break  # (stopping from at most dec * dt keeps within the deceleration)
            finished.append(self.segments.pop(0))
            if not self.segments:
                self.v = self.w = 0.0
                return 0.0, 0.0, 0.0, finished
            nxt = self.segments[0]
            turn = nxt.heading is not None and abs(wrap(nxt.heading - yaw)) > _STRAIGHT
            if turn or nxt.kind != seg.kind:
                self.v = 0.0
            self._begin(x, y)
            self.turning = self.turning and turn
        across = -ex * dy + ey * dx  # to the left of the line: steer back
        limit = min(seg.speed, speed_cap)
        if beyond > 0.0:  # the end of this segment is passed at `through` at most
            limit = min(limit, math.sqrt(through**2 + 2.0 * self.dec * max(remaining, 0.0)))
        self.v = profile_speed(self.v, remaining + beyond, limit, self.acc, self.dec, dt)
        if seg.heading is not None:
            self.w = max(-_TRACK_MAX, min(_TRACK_MAX, _TRACK_GAIN * wrap(seg.heading - yaw)))
        else:
            self.w = 0.0
        side = max(-_TRACK_MAX, min(_TRACK_MAX, _TRACK_GAIN * across))
        return self.v * dx - side * dy, self.v * dy + side * dx, self.w, finished

    def brake(self, dt: float) -> tuple[float, float, float]:
        """Velocities while stopping at full deceleration (the move is abandoned)."""
        self.segments = []
        self.turning = self.settling = False
        self.v = ramp(self.v, 0.0, self.dec * dt)
        self.w = ramp(self.w, 0.0, self.turn_acc * dt)
        dx, dy = self.direction
        return self.v * dx, self.v * dy, self.w

    @property
    def at_rest(self) -> bool:
        return self.v == 0.0 and self.w == 0.0
