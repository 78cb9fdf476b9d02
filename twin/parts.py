"""Part pool: bodies are created once per part type and reused (pybullet does not free shapes).

A parked part has no collisions, no mass and sits far below the floor, so it costs the
solver nothing; spawning it again restores its mass, collisions, pose and velocity.

The pool holds at most `capacity` parts on the line at once (config `[part_pool]`); a
source that finds it full waits. Every part that leaves is counted by how it left, so
spawned = completed + scrapped + lost + active at any time.
"""

from __future__ import annotations

import msgspec
import pybullet

from twin.config import PartType
from twin.sim.world import World

PARK_Z = -50.0  # m: where parked bodies wait


class Part(msgspec.Struct, kw_only=True):
    id: int
    type: str
    body: int
    size: tuple[float, float, float]
    mass: float
    spawn_time: float
    quality: str = "good"  # "good" or "reject"
    defect: str | None = None


OUTCOMES = ("completed", "scrapped", "lost")  # how a part leaves the line


class PoolFull(RuntimeError):
    """Every part the pool may hold is on the line."""


class PartPool:
    def __init__(self, world: World, part_types: list[PartType], capacity: int = 1000) -> None:
        self.world = world
        self.capacity = capacity
        self.spawned = 0
        self.left: dict[str, int] = dict.fromkeys(OUTCOMES, 0)  # parts that left, by outcome
        self.types = {t.name: t for t in part_types}
        self._shapes: dict[str, tuple[int, int]] = {}
        self._free: dict[str, list[int]] = {t.name: [] for t in part_types}
        self.active: dict[int, Part] = {}  # part id -> part
        self.by_body: dict[int, int] = {}  # body uid -> part id, for active parts only
        # parts on a gripper: wherever the robot takes them, they are not on the line (a sink
        # or the search for lost parts leaves them alone); the grippers keep it up to date
        self.held: set[int] = set()
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
            basePosition=[0, 0, PARK_Z],
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
        """Take a body from the pool (or make one) and put it at `position` (its centre).
        Raises PoolFull when `capacity` parts are already on the line."""
        if self.full:
            raise PoolFull(f"the part pool holds {self.capacity} parts, all on the line")
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
            size=(t.size[0], t.size[1], t.size[2]),
            mass=t.mass,
            spawn_time=time,
            quality="reject" if defect else "good",
            defect=defect,
        )
        self.next_id += 1
        self.spawned += 1
        self.active[part.id] = part
        if t.defect_color is not None:  # bodies are reused: set the look either way
            self.show_quality(part)
        self.by_body[body] = part.id
        return part

    @property
    def full(self) -> bool:
        return len(self.active) >= self.capacity

    def release(self, part_id: int, outcome: str = "completed") -> Part:
        """Park the part's body for reuse; `outcome` says how it left (see OUTCOMES)."""
        if outcome not in self.left:
            raise ValueError(f"unknown outcome '{outcome}' (known: {OUTCOMES})")
        if part_id in self.held:
            raise ValueError(f"part {part_id} is held by a gripper: it cannot leave the line")
        part = self.active.pop(part_id)
        self.left[outcome] += 1
        del self.by_body[part.body]
        c = self.world.client
        c.setCollisionFilterGroupMask(part.body, -1, 0, 0)
        c.changeDynamics(part.body, -1, mass=0)
        c.resetBasePositionAndOrientation(part.body, [0, 0, PARK_Z], [0, 0, 0, 1])
        c.resetBaseVelocity(part.body, [0, 0, 0], [0, 0, 0])
        self._free[part.type].append(part.body)
        return part

    def show_quality(self, part: Part) -> None:
        """A defective part of a type with a defect_color looks it; others look good."""
        t = self.types[part.type]
        if t.defect_color is None:
            return
        color = t.defect_color if part.defect else t.color
        self.world.client.changeVisualShape(part.body, -1, rgbaColor=color)

    def part_at_body(self, body: int) -> int | None:
        return self.by_body.get(body)

    def pose(self, part_id: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return self.world.client.getBasePositionAndOrientation(self.active[part_id].body)
