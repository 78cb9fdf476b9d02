"""What the arm touches: contacts of its links, and what they are in the words of the line.

A move that touches something it should not, with an arm link or with the part it carries,
is stopped and reported with what it hit. The arm's own pedestal and the part on its cup
are not collisions; nor is a body the arm was
already touching when the motion began (leaving it is how a robot backs out of a collision).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from twin.parts import PartPool

_TOUCH_DEPTH = 0.0005  # m: contact points closer than this count as touching

Contact = tuple[int, int, tuple[float, ...]]  # (other body, link of the arm, point on it)
HELD_PART = -2  # the "link" of a contact made by the part on the cup


class ContactWatch:
    def __init__(self, client, body: int, ignore: set[int]) -> None:
        self.client, self.body = client, body
        self.ignore = ignore | {body}
        self.touching_at_start: set[int] = set()
        self.part_touching_at_start: set[int] = set()

    def motion_started(self, held_body: int | None) -> None:
        c = self.client
        self.touching_at_start = {pt[2] for pt in c.getContactPoints(bodyA=self.body)}
        self.part_touching_at_start = (
            {pt[2] for pt in c.getContactPoints(bodyA=held_body)}
            if held_body is not None
            else set()
        )

    def contacts(self, held_body: int | None, carrying: bool = False) -> list[Contact]:
        """Touching contacts of the arm's links, and (`carrying`: on its way with the part,
        not lifting it off where it lay) of the part it holds, with anything that counts."""
        out: list[Contact] = []
        seen = set()
        for pt in self.client.getContactPoints(bodyA=self.body):
            body, link = pt[2], pt[3]
            seen.add(body)
            if link < 0 or body in self.ignore or pt[8] > _TOUCH_DEPTH:
                continue
            if body in self.touching_at_start or body == held_body:
                continue
            out.append((body, link, pt[6]))
        self.touching_at_start &= seen  # once left, touching it again is a collision
        if held_body is not None and carrying:
            for pt in self.client.getContactPoints(bodyA=held_body):
                body = pt[2]
                if body in self.ignore or pt[8] > _TOUCH_DEPTH:
                    continue
                # what the part rested or leant on when the motion began it may slide off
                if body not in self.part_touching_at_start:
                    out.append((body, HELD_PART, pt[6]))
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
    # static boxes (tables, rails, stops) belong to the device whose footprint is nearest
    placed = [d for d, dev in devices.items() if hasattr(dev.cfg, "position")]
    if not placed:
        return f"body {body}"
    return min(placed, key=lambda d: _footprint_distance(devices[d].cfg, point))


def _footprint_distance(cfg: Any, point: tuple) -> float:
    """Distance in x/y from a point to a device's footprint (a belt's or table's rectangle,
    else its position)."""
    if hasattr(cfg, "length") and hasattr(cfg, "width"):
        half = (cfg.length / 2 + 0.05, cfg.width / 2 + 0.05)  # rails and end stop included
    elif hasattr(cfg, "size"):
        half = (cfg.size[0] / 2, cfg.size[1] / 2)
    else:
        half = (0.0, 0.0)
    dx, dy = point[0] - cfg.position[0], point[1] - cfg.position[1]
    yaw = getattr(cfg, "yaw", 0.0)
    c, s = math.cos(yaw), math.sin(yaw)
    along, across = c * dx + s * dy, -s * dx + c * dy
    return math.hypot(max(0.0, abs(along) - half[0]), max(0.0, abs(across) - half[1]))
