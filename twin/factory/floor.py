"""Plane geometry of a factory floor: cell poses, footprints (axis-aligned rectangles) and the
distances the layout checks need (a node or a lane too close to a cell)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

XY = tuple[float, float]


def wrap_angle(a: float) -> float:
    """The angle in (-pi, pi]."""
    a = math.remainder(a, math.tau)
    return math.pi if a == -math.pi else a


@dataclass(frozen=True)
class Pose:
    """Where a cell's local frame lies on the floor: its origin and heading."""

    x: float
    y: float
    yaw: float

    def xy(self, lx: float, ly: float) -> XY:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return (self.x + c * lx - s * ly, self.y + s * lx + c * ly)

    def point(self, p: list[float]) -> list[float]:
        """A local point (x, y) or (x, y, z) on the floor; z is kept."""
        x, y = self.xy(p[0], p[1])
        return [_clean(x), _clean(y), *p[2:]]

    def heading(self, yaw: float) -> float:
        return _clean(wrap_angle(yaw + self.yaw))


def _clean(v: float) -> float:
    """Round away float noise of the rotation (1e-17 instead of 0) so expanded configs read
    cleanly; sub-micrometre is far below any tolerance in the twin."""
    return round(v, 9) + 0.0


@dataclass(frozen=True)
class Rect:
    """An axis-aligned rectangle on the floor."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float

    @classmethod
    def around(cls, points: Iterable[XY], margin: float = 0.0) -> Rect:
        xs, ys = zip(*points, strict=True)
        return cls(min(xs) - margin, min(ys) - margin, max(xs) + margin, max(ys) + margin)

    def overlaps(self, other: Rect) -> bool:
        """True if the two share an area (touching edges do not count)."""
        return (
            self.x_min < other.x_max
            and other.x_min < self.x_max
            and self.y_min < other.y_max
            and other.y_min < self.y_max
        )

    def distance_to_point(self, p: XY) -> float:
        dx = max(self.x_min - p[0], 0.0, p[0] - self.x_max)
        dy = max(self.y_min - p[1], 0.0, p[1] - self.y_max)
        return math.hypot(dx, dy)

    def distance_to_segment(self, a: XY, b: XY) -> float:
        """0 if the segment enters the rectangle, else the least distance between them."""
        if _segment_hits_rect(a, b, self):
            return 0.0
        corners = [
            (self.x_min, self.y_min),
            (self.x_max, self.y_min),
            (self.x_max, self.y_max),
            (self.x_min, self.y_max),
        ]
        edges = list(zip(corners, corners[1:] + corners[:1], strict=True))
        return min(segment_distance(a, b, c, d) for c, d in edges)

    def text(self) -> str:
        return f"x {self.x_min:.2f}..{self.x_max:.2f}, y {self.y_min:.2f}..{self.y_max:.2f} m"


def box_corners(pose: Pose, cx: float, cy: float, yaw: float, hx: float, hy: float) -> list[XY]:
    """The floor corners of a box of half extents (hx, hy) centred at local (cx, cy) with
    local heading `yaw`, placed with `pose`."""
    c, s = math.cos(yaw), math.sin(yaw)
    return [
        pose.xy(cx + c * dx - s * dy, cy + s * dx + c * dy)
        for dx, dy in ((-hx, -hy), (hx, -hy), (hx, hy), (-hx, hy))
    ]


def _segment_hits_rect(a: XY, b: XY, r: Rect) -> bool:
    """Liang-Barsky clipping: does the segment a-b have a point inside the open rectangle?"""
    t0, t1 = 0.0, 1.0
    dx, dy = b[0] - a[0], b[1] - a[1]
    for p, q in (
        (-dx, a[0] - r.x_min),
        (dx, r.x_max - a[0]),
        (-dy, a[1] - r.y_min),
        (dy, r.y_max - a[1]),
    ):
        if p == 0:
            if q <= 0:
                return False
            continue
        t = q / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 >= t1:
            return False
    return True


def point_segment_distance(p: XY, a: XY, b: XY) -> float:
    dx, dy = b[0] - a[0], b[1] - a[1]
    n = dx * dx + dy * dy
    t = 0.0 if n == 0 else max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / n))
    return math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy)


def segments_cross(a: XY, b: XY, c: XY, d: XY) -> bool:
    """True if the segments intersect at a point inside both (not only at an end)."""

    def orient(p: XY, q: XY, r: XY) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    eps = 1e-9
    d1, d2 = orient(c, d, a), orient(c, d, b)
    d3, d4 = orient(a, b, c), orient(a, b, d)
    return (d1 > eps and d2 < -eps or d1 < -eps and d2 > eps) and (
        d3 > eps and d4 < -eps or d3 < -eps and d4 > eps
    )


def segment_distance(a: XY, b: XY, c: XY, d: XY) -> float:
    if segments_cross(a, b, c, d):
        return 0.0
    return min(
        point_segment_distance(a, c, d),
        point_segment_distance(b, c, d),
        point_segment_distance(c, a, b),
        point_segment_distance(d, a, b),
    )
