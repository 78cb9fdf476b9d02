"""An AMR's safety field: a fan of rays from the bumper in the direction of travel, as a
safety laser scanner casts its beams.

The fields are rectangles ahead of the bumper, as wide as the chassis plus a margin: each
ray is only as long as it takes to leave the warning rectangle, so nothing beside the lane
counts. Something inside the warning field slows the AMR to `warning_speed`; inside the
protective field (`protective` m ahead of the bumper) it stops. One rayTestBatch per scan,
a few tens of times a second, never every physics step.
"""

from __future__ import annotations

import math

import pybullet

from twin.config import SafetyFieldConfig

SIDE_MARGIN = 0.05  # m beside the chassis that the fields cover
_START = 0.01  # m: rays start this far outside the bumper (never inside the own chassis)


class SafetyField:
    def __init__(self, cfg: SafetyFieldConfig, half_length: float, half_width: float) -> None:
        self.cfg = cfg
        self.half_length, self.half_width = half_length, half_width
        self.side = half_width + SIDE_MARGIN
        n = cfg.rays
        self.angles = [-cfg.angle / 2 + cfg.angle * i / (n - 1) for i in range(n)]
        self.lengths = [self._length(a) for a in self.angles]
        self.status = "clear"
        self.nearest = math.inf  # m ahead of the bumper to the nearest thing in the fields

    def _length(self, angle: float) -> float:
        """How far a ray at `angle` from the travel direction stays inside the warning field."""
        forward = self.cfg.warning / max(math.cos(angle), 1e-6)
        sideways = self.side / abs(math.sin(angle)) if abs(math.sin(angle)) > 1e-9 else math.inf
        return min(forward, sideways)

    def bumper(self, travel: float, yaw: float) -> float:
        """Distance from the chassis centre to its edge in the direction of travel."""
        a = travel - yaw
        c, s = abs(math.cos(a)), abs(math.sin(a))
        return min(
            self.half_length / c if c > 1e-9 else math.inf,
            self.half_width / s if s > 1e-9 else math.inf,
        )

    def scan(self, client_id: int, x: float, y: float, travel: float, yaw: float) -> str:
        """Cast the fan from the bumper ahead of (x, y) toward world angle `travel`; returns
        and keeps the status ("clear", "warning" or "protective")."""
        reach = self.bumper(travel, yaw) + _START
        ox, oy, z = x + reach * math.cos(travel), y + reach * math.sin(travel), self.cfg.height
        starts, ends = [], []
        for a, length in zip(self.angles, self.lengths):
            d = travel + a
            starts.append([ox, oy, z])
            ends.append([ox + length * math.cos(d), oy + length * math.sin(d), z])
        results = pybullet.rayTestBatch(starts, ends, physicsClientId=client_id)
        nearest = math.inf
        for (body, _link, fraction, *_), a, length in zip(results, self.angles, self.lengths):
            if body >= 0:
                nearest = min(nearest, fraction * length * math.cos(a) + _START)
        self.nearest = nearest
        if nearest <= self.cfg.protective:
            self.status = "protective"
        elif nearest < math.inf:
            self.status = "warning"
        else:
            self.status = "clear"
        return self.status

    def clear(self) -> None:
        """Not scanning (at rest, turning in place, docking): nothing to report."""
        self.status = "clear"
        self.nearest = math.inf
