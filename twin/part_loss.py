"""Finding parts that left the line: fallen to the floor or out of the cell.

A part is lost when its lowest point is below half the height of the lowest belt, table or
AMR deck (nothing carries parts there: it is on the floor or falling to it), or when its
centre is outside the cell, the footprint of every device and of the AMR route network's
nodes (with room for a chassis around each) grown by `cell_margin`. Lost parts are
scrapped (a `part_lost` event says where and why) and their bodies go back to the pool.

The look is cheap and independent of the number of parts: a few broadphase queries of the
regions where a lost part would be (below the surfaces, around the cell), run every
`lost_check_period` seconds; only the bodies those queries return are looked at.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from twin.config import (
    AmrConfig,
    ArmConfig,
    ConveyorConfig,
    DockConfig,
    LineConfig,
    PhotoEyeConfig,
    SinkConfig,
    SourceConfig,
    StationConfig,
)
from twin.geometry import Frame, Point, arm_base, belt_frame, belt_point, fixture_frame, zone_box
from twin.parts import PARK_Z, PartPool
from twin.sim.world import World

_AMR_REACH = 0.5  # m around a dock or node where an AMR's deck (and its part) may be, at least
_FAR = 1e6  # m: the outer edge of the regions searched for lost parts
_CEILING = 20.0  # m: a part above this has been thrown out of the cell
# the regions leave out a band around the depth where parked bodies wait, so a query
# returns lost parts and static bodies only, however many bodies the pool has parked
_PARK_TOP, _PARK_BOTTOM = PARK_Z + 5.0, PARK_Z - 5.0


class CellBounds:
    """The cell's floor-plan rectangle, its lowest carrying surface and where each device is,
    all from the config."""

    def __init__(self, cfg: LineConfig) -> None:
        margin = cfg.part_pool.cell_margin
        boxes: list[tuple[Point, Point]] = []
        self.anchors: list[tuple[str, float, float]] = []  # device id, x, y of its centre
        surfaces: list[float] = []
        belts = {d.id: d for d in cfg.devices if isinstance(d, ConveyorConfig)}
        # m an AMR's chassis (and a part on its deck) reaches from its centre
        reach = max(
            [_AMR_REACH]
            + [
                math.hypot(d.size[0], d.size[1]) / 2
                for d in cfg.devices
                if isinstance(d, AmrConfig)
            ]
        )
        for d in cfg.devices:
            if isinstance(d, ConveyorConfig):
                frame = belt_frame(d)
                half = (d.length / 2, d.width / 2)
                surfaces.append(d.height)
            elif isinstance(d, StationConfig):
                frame = fixture_frame(d)
                half = (d.size[0] / 2, d.size[1] / 2)
                surfaces.append(d.size[2])
            elif isinstance(d, ArmConfig):
                x, y, z = arm_base(d)
                frame, half = Frame(x, y, z, 0.0), (d.reach, d.reach)
            elif isinstance(d, (SourceConfig, SinkConfig)) and d.dock is not None:
                continue  # at its dock: the dock is the anchor
            elif isinstance(d, (SourceConfig, PhotoEyeConfig, SinkConfig)):
                x, y, _ = belt_point(belts[d.conveyor or ""], d.offset)
                self.anchors.append((d.id, x, y))
                continue
            elif isinstance(d, DockConfig):
                frame, half = Frame(d.position[0], d.position[1], 0.0, 0.0), (reach, reach)
            elif isinstance(d, AmrConfig):
                surfaces.append(d.size[2])  # parts ride on its deck
                continue
            else:
                continue
            self.anchors.append((d.id, frame.x, frame.y))
            boxes.append(zone_box(frame, (-half[0], half[0]), (-half[1], half[1]), (0.0, 0.0)))
        # the floor the AMRs drive on: every node, as far as a chassis reaches around it
        for n in cfg.network.nodes if cfg.network else []:
            x, y = n.position
            boxes.append(([x - reach, y - reach, 0.0], [x + reach, y + reach, 0.0]))
        if not boxes:  # no device with a footprint: the cell is the margin around the origin
            boxes = [([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])]
        self.x_min = min(lo[0] for lo, _ in boxes) - margin
        self.x_max = max(hi[0] for _, hi in boxes) + margin
        self.y_min = min(lo[1] for lo, _ in boxes) - margin
        self.y_max = max(hi[1] for _, hi in boxes) + margin
        # halfway down from the lowest surface that carries parts; with none, the floor itself
        self.floor_level = min(surfaces) / 2 if surfaces else 0.0

    def outside(self, x: float, y: float, z: float) -> bool:
        return not (
            self.x_min <= x <= self.x_max
            and self.y_min <= y <= self.y_max
            and _PARK_TOP <= z <= _CEILING
        )

    def nearest(self, x: float, y: float) -> str:
        if not self.anchors:
            return "line"
        return min(self.anchors, key=lambda a: (a[1] - x) ** 2 + (a[2] - y) ** 2)[0]

    def regions(self) -> list[tuple[list[float], list[float]]]:
        """Axis-aligned boxes that together cover everywhere a lost part can be."""
        lo, hi, top = -_FAR, _FAR, _PARK_TOP
        return [
            ([lo, lo, top], [hi, hi, self.floor_level]),  # below the surfaces: the floor
            ([lo, lo, top], [self.x_min, hi, hi]),  # beyond each side of the cell
            ([self.x_max, lo, top], [hi, hi, hi]),
            ([lo, lo, top], [hi, self.y_min, hi]),
            ([lo, self.y_max, top], [hi, hi, hi]),
            ([lo, lo, _CEILING], [hi, hi, hi]),  # thrown up
            ([lo, lo, lo], [hi, hi, _PARK_BOTTOM]),  # through the floor, falling for ever
        ]


class LostPartDetector:
    """Looks for lost parts every `period` steps; scraps each one it finds."""

    def __init__(
        self,
        cfg: LineConfig,
        world: World,
        pool: PartPool,
        emit: Callable[..., None],
    ) -> None:
        self.world, self.pool, self.emit = world, pool, emit
        self.bounds = CellBounds(cfg)
        self._regions = self.bounds.regions()
        self.period = max(1, round(cfg.part_pool.lost_check_period / world.dt))
        self.lost = 0

    def check(self) -> int:
        """Scrap every part found off the line; returns how many."""
        c, pool, bounds = self.world.client, self.pool, self.bounds
        if not pool.active:
            return 0  # no part on the line: none can be lost
        candidates: set[int] = set()
        by_body = pool.by_body
        for lo, hi in self._regions:
            for body, _link in c.getOverlappingObjects(lo, hi) or ():
                part_id = by_body.get(body)
                if part_id is not None:
                    candidates.add(part_id)
        if not candidates:
            return 0
        held = pool.held
        found = 0
        for part_id in sorted(candidates):  # sorted: the same order on every run
            if part_id in held:
                continue  # a part on a gripper is wherever the robot takes it
            part = pool.active[part_id]
            (x, y, z), _ = c.getBasePositionAndOrientation(part.body)
            # broadphase boxes are padded and may be a step stale: decide on the real pose
            if bounds.outside(x, y, z):
                reason = "out_of_cell"
            elif c.getAABB(part.body)[0][2] < bounds.floor_level:
                reason = "on_floor"
            else:
                continue
            pool.release(part_id, "lost")
            self.lost += 1
            found += 1
            self.emit(
                "part_lost",
                part=part_id,
                type=part.type,
                reason=reason,
                position=[round(v, 4) for v in (x, y, z)],
                near=bounds.nearest(x, y),
                quality=part.quality,
            )
        return found
