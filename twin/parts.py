"""Part pool: bodies are created once per part type and reused (pybullet does not free shapes).

A parked part has no collisions, no mass and sits far below the floor, so it costs the
solver nothing; spawning it again restores its mass, collisions, pose and velocity.
"""

from __future__ import annotations

import msgspec
import pybullet

from twin.config import PartType
from twin.sim.world import World

_PARK_Z = -50.0


class Part(msgspec.Struct, kw_only=True):
    id: int
    type: str
    body: int
    size: tuple[float, float, float]
    mass: float
    spawn_time: float
    quality: str = "good"  # "good" or "reject"
    defect: str | None = None


class PartPool:
    def __init__(self, world: World, part_types: list[PartType]) -> None:
        self.world = world
        self.types = {t.name: t for t in part_types}
        self._shapes: dict[str, tuple[int, int]] = {}
        self._free: dict[str, list[int]] = {t.name: [] for t in part_types}
        self.active: dict[int, Part] = {}  # part id -> part
        self.by_body: dict[int, int] = {}  # body uid -> part id, for active parts only
        self.next_id = 1
        self.bodies_created = 0

    def _new_body(self, t: PartType) -> int:
        c = self.world.client
        if t.name not in self._shapes:
            half = [s / 2 for s in t.size]
            col = c.createCollisionShape(pybullet.GEOM_BOX, halfExtents=half)
            vis = c.createVisualShape(pybullet.GEOM_BOX, halfExtents=half, rgbaColor=t.color)
            self._shapes[t.name] = (col, vis)
        col, vis = self._shapes[t.name]
        body = c.createMultiBody(
            baseMass=t.mass,
            baseCollisionShapeIndex=col,
            baseVisualShapeIndex=vis,
            basePosition=[0, 0, _PARK_Z],
            useMaximalCoordinates=True,
        )
        c.changeDynamics(body, -1, lateralFriction=t.friction, spinningFriction=0.001)
        self.bodies_created += 1
        return body

    def spawn(
        self,
        type_name: str,
        position: list[float],
        yaw: float,
        time: float,
        defect: str | None = None,
    ) -> Part:
        """Take a body from the pool (or make one) and put it at `position` (its centre)."""
        t = self.types[type_name]
        c = self.world.client
        free = self._free[type_name]
        if free:
            body = free.pop()
            c.changeDynamics(body, -1, mass=t.mass)
            c.setCollisionFilterGroupMask(body, -1, 1, 0xFFFF)
        else:
            body = self._new_body(t)
        c.resetBasePositionAndOrientation(body, position, c.getQuaternionFromEuler([0, 0, yaw]))
        c.resetBaseVelocity(body, [0, 0, 0], [0, 0, 0])
        part = Part(
            id=self.next_id,
            type=type_name,
            body=body,
            size=tuple(t.size),
            mass=t.mass,
            spawn_time=time,
            quality="reject" if defect else "good",
            defect=defect,
        )
        self.next_id += 1
        self.active[part.id] = part
        self.by_body[body] = part.id
        return part

    def release(self, part_id: int) -> Part:
        """Park the part's body for reuse."""
        part = self.active.pop(part_id)
        del self.by_body[part.body]
        c = self.world.client
        c.setCollisionFilterGroupMask(part.body, -1, 0, 0)
        c.changeDynamics(part.body, -1, mass=0)
        c.resetBasePositionAndOrientation(part.body, [0, 0, _PARK_Z], [0, 0, 0, 1])
        c.resetBaseVelocity(part.body, [0, 0, 0], [0, 0, 0])
        self._free[part.type].append(part.body)
        return part

    def part_at_body(self, body: int) -> int | None:
        return self.by_body.get(body)

    def pose(self, part_id: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return self.world.client.getBasePositionAndOrientation(self.active[part_id].body)
