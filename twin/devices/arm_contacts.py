"""What the arm touches: contacts of its links, and what they are in the words of the line.

A move that touches something it should not is stopped and reported with what it hit. The
arm's own pedestal and the part on its cup are not collisions; nor is a body the arm was
already touching when the motion began (leaving it is how a robot backs out of a collision).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from twin.parts import PartPool

_TOUCH_DEPTH = 0.0005  # m: contact points closer than this count as touching

Contact = tuple[int, int, tuple[float, ...]]  # (other body, link of the arm, point on it)


class ContactWatch:
    def __init__(self, client, body: int, ignore: set[int]) -> None:
        self.client, self.body = client, body
        self.ignore = ignore | {body}
        self.touching_at_start: set[int] = set()

    def motion_started(self) -> None:
        self.touching_at_start = {pt[2] for pt in self.client.getContactPoints(bodyA=self.body)}

    def contacts(self, held_body: int | None) -> list[Contact]:
        """Touching contacts of the arm's links with anything that counts."""
        out, seen = [], set()
        for pt in self.client.getContactPoints(bodyA=self.body):
            body, link = pt[2], pt[3]
            seen.add(body)
            if link < 0 or body in self.ignore or pt[8] > _TOUCH_DEPTH:
                continue
            if body in self.touching_at_start or body == held_body:
                continue
            out.append((body, link, pt[6]))
        self.touching_at_start &= seen  # once left, touching it again is a collision
        return out


def name_of(body: int, point: tuple, floor: int, pool: PartPool, devices: Mapping[str, Any]) -> str:
    """A body as the line knows it: `part N`, `floor`, or the id of a device."""
    if body == floor:
        return "floor"
    part = pool.part_at_body(body)
    if part is not None:
        return f"part {part}"
    for dev_id, dev in devices.items():
        if body in (getattr(dev, "body", None), getattr(dev, "pedestal", None)):
            return dev_id
    # static boxes (tables, rails, stops) belong to the device they stand nearest to
    placed = [(d, dev.cfg.position) for d, dev in devices.items() if hasattr(dev.cfg, "position")]
    if not placed:
        return f"body {body}"
    return min(placed, key=lambda dp: math.hypot(dp[1][0] - point[0], dp[1][1] - point[1]))[0]
