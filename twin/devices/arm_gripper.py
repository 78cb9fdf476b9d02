"""The vacuum cup: finding the part to pick, sealing on it, holding it, releasing it.

The cup seals on a part only when the part is within `suction_reach` of the cup (a short
beam from the cup, cast with the line's other beams); while sealed, a fixed constraint holds
the part, so it hangs from the tool through physics and drops when the vacuum goes off.
Before a pick the cup's controller locates the part near the taught point, as a vision
check or a part-locating sensor in a real cell does, to aim the cup at its actual pose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pybullet

from twin.parts import PartPool
from twin.sim.world import World

_HOLD_FORCE = 400.0  # N: the vacuum constraint's strength
_LOCATE_RADIUS = 0.06  # m: a part whose top centre is this close (in x/y) to the taught point


@dataclass
class PartPose:
    part: int
    top: np.ndarray  # world point at the centre of the part's upper face
    yaw: float  # rad, of the part's x axis in the floor plane
    tilt: float  # rad between the part's z axis and the vertical
    height: float  # m, the part's size along its own z
    symmetry: float  # rad: turning the part by this leaves its footprint the same


def _pose_of(world: World, pool: PartPool, part_id: int) -> PartPose:
    c = world.client
    part = pool.active[part_id]
    pos, orn = c.getBasePositionAndOrientation(part.body)
    rot = np.array(c.getMatrixFromQuaternion(orn)).reshape(3, 3)
    sx, sy, sz = part.size
    top = np.array(pos) + rot[:, 2] * (sz / 2)
    tilt = math.acos(max(-1.0, min(1.0, rot[2, 2])))
    yaw = math.atan2(rot[1, 0], rot[0, 0])
    symmetry = math.pi / 2 if abs(sx - sy) < 1e-6 else math.pi
    return PartPose(part_id, top, yaw, tilt, sz, symmetry)


def locate_part(world: World, pool: PartPool, point: np.ndarray, above: float) -> PartPose | None:
    """The part whose upper face is nearest `point` in x/y (within a few cm), and between
    `point`'s height and `above` metres over it; None if there is none."""
    best: tuple[float, int] | None = None
    c = world.client
    for part_id, part in pool.active.items():
        pos = c.getBasePositionAndOrientation(part.body)[0]
        d = math.hypot(pos[0] - point[0], pos[1] - point[1])
        if d < _LOCATE_RADIUS + max(part.size) / 2 and point[2] - 0.02 < pos[2] < point[2] + above:
            if best is None or d < best[0]:
                best = (d, part_id)
    if best is None:
        return None
    found = _pose_of(world, pool, best[1])
    if math.hypot(*(found.top[:2] - point[:2])) > _LOCATE_RADIUS:
        return None
    return found


def nearest_turn(yaw: float, toward: float, period: float) -> float:
    """`yaw` plus a whole number of `period`, as close as possible to `toward`."""
    return yaw + period * round((toward - yaw) / period)


class VacuumCup:
    """The cup's beam, seal and release; `holding` is the id of the part on the cup."""

    def __init__(self, world: World, pool: PartPool, body: int, tool_index: int, cfg) -> None:
        self.world, self.pool = world, pool
        self.body, self.tool_index = body, tool_index
        self.reach = cfg.suction_reach
        self.max_payload = cfg.max_payload
        self.vacuum = False
        self.holding: int | None = None
        self.constraint: int | None = None
        # the held part's pose in the tool frame, kept from the moment of the seal
        self.grip_pos = np.zeros(3)
        self.grip_yaw = 0.0  # part yaw minus tool yaw
        # cast only while the cup seeks a part (vacuum on, nothing held)
        self.ray = world.rays.add([0, 0, 0], [0, 0, -0.01], active=False)

    @property
    def seeking(self) -> bool:
        return self.vacuum and self.holding is None

    def part_under_cup(self) -> int | None:
        body = int(self.world.rays.hit_body[self.ray])
        return self.pool.part_at_body(body) if body >= 0 else None

    def aim(self, tool: np.ndarray) -> None:
        """Point the beam down from the cup for the next cast (while seeking)."""
        rays = self.world.rays
        rays.set_active(self.ray, self.seeking)
        if self.seeking:
            rays.move(
                self.ray, (tool + [0, 0, 0.002]).tolist(), (tool - [0, 0, self.reach]).tolist()
            )

    def sleep(self) -> None:
        self.world.rays.set_active(self.ray, False)

    def seal(self, part_id: int) -> bool:
        """Hold the part with a fixed constraint where it is now; False if it is too heavy."""
        c, part = self.world.client, self.pool.active[part_id]
        if part.mass > self.max_payload:
            return False
        tool_pos, tool_orn = c.getLinkState(self.body, self.tool_index)[4:6]
        part_pos, part_orn = c.getBasePositionAndOrientation(part.body)
        inv_pos, inv_orn = c.invertTransform(tool_pos, tool_orn)
        rel_pos, rel_orn = c.multiplyTransforms(inv_pos, inv_orn, part_pos, part_orn)
        self.constraint = c.createConstraint(
            self.body,
            self.tool_index,
            part.body,
            -1,
            pybullet.JOINT_FIXED,
            [0, 0, 0],
            rel_pos,
            [0, 0, 0],
            rel_orn,
        )
        c.changeConstraint(self.constraint, maxForce=_HOLD_FORCE)
        self.grip_pos = np.array(rel_pos)
        tool_rot = c.getMatrixFromQuaternion(tool_orn)
        part_rot = c.getMatrixFromQuaternion(part_orn)
        turn = math.atan2(part_rot[3], part_rot[0]) - math.atan2(tool_rot[3], tool_rot[0])
        self.grip_yaw = math.remainder(turn, 2 * math.pi)  # both read in (-pi, pi]: the short way
        self.holding = part_id
        self.pool.held.add(part_id)
        return True

    def release(self) -> int | None:
        """Drop the part (if any); returns its id."""
        if self.constraint is not None:
            self.world.client.removeConstraint(self.constraint)
            self.constraint = None
        part, self.holding = self.holding, None
        if part is not None:
            self.pool.held.discard(part)
        return part

    def cup_for_part(self, centre_xy: np.ndarray, part_yaw: float) -> tuple[np.ndarray, float]:
        """Where the cup must be (x, y, and its height above the part's centre) and its yaw
        so that the held part's centre is at `centre_xy` with yaw `part_yaw`."""
        yaw = part_yaw - self.grip_yaw
        # the part's offset in the tool frame, seen in the world with the cup pointing down
        ox, oy, oz = self.grip_pos[0], -self.grip_pos[1], -self.grip_pos[2]
        cy, sy = math.cos(yaw), math.sin(yaw)
        offset = np.array([cy * ox - sy * oy, sy * ox + cy * oy])
        cup = np.array([*(np.asarray(centre_xy[:2]) - offset), -oz])
        return cup, yaw


_SEAT_TILT = 0.05  # rad: a placed part tilted more than this is not seated
_SEAT_HEIGHT = 0.005  # m: nor one whose bottom is further than this from the surface
_CARRIED = 0.02  # m/s: a placed part moving faster than this rides on a belt


def seat_check(
    world: World, pool: PartPool, part_id: int, target: np.ndarray, cfg
) -> tuple[bool, float]:
    """Does the part sit flat on the surface at `target` (its bottom centre), within the
    arm's seat tolerance? Returns that and the part's distance from the point in x/y."""
    c = world.client
    part = pool.active[part_id]
    pos, orn = c.getBasePositionAndOrientation(part.body)
    tilt = math.acos(max(-1.0, min(1.0, c.getMatrixFromQuaternion(orn)[8])))
    off = math.hypot(pos[0] - target[0], pos[1] - target[1])
    # a part already carried off by a running belt is judged by how it lies, not where
    carried = math.hypot(*c.getBaseVelocity(part.body)[0][:2]) > _CARRIED
    seated = (
        (off <= cfg.seat_tolerance or carried)
        and tilt <= _SEAT_TILT
        and abs(pos[2] - part.size[2] / 2 - target[2]) <= _SEAT_HEIGHT
    )
    return bool(seated), off
