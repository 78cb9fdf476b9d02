"""Checks of a factory floor: cells do not overlap, AMRs driving a lane, turning at a node or
docking never touch another cell, and lanes meet only at nodes."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations

from twin.factory.floor import XY, Rect, segments_cross

Fail = Callable[[str, str], Exception]


@dataclass(frozen=True)
class FloorItem:
    """A cell, a node, a lane or a docking path; `where` is the field an error about it names."""

    kind: str  # "cell", "node", "lane" or "docking"
    where: str
    name: str
    cell: str | None = None  # the cell it belongs to (its own cell is not an obstacle)
    rect: Rect | None = None  # cells: the footprint
    points: list[XY] = field(default_factory=list)  # a node, or a path's two ends


def check_floor(items: list[FloorItem], amr_width: float, amr_length: float, fail: Fail) -> None:
    cells = [c for c in items if c.kind == "cell" and c.rect is not None]
    for a, b in combinations(cells, 2):
        assert a.rect is not None and b.rect is not None
        if a.rect.overlaps(b.rect):
            raise fail(
                b.where,
                f"cell '{b.name}' ({b.rect.text()}) overlaps cell '{a.name}' ({a.rect.text()})",
            )
    turn_radius = math.hypot(amr_width, amr_length) / 2
    half = amr_width / 2
    for item in items:
        if item.kind == "cell":
            continue
        for cell in cells:
            assert cell.rect is not None
            if cell.name == item.cell:
                continue
            if item.kind == "node":
                gap = cell.rect.distance_to_point(item.points[0])
                if gap < turn_radius:
                    raise fail(
                        item.where,
                        f"node '{item.name}' is {gap:.2f} m from cell '{cell.name}' "
                        f"({cell.rect.text()}): an AMR turning there needs {turn_radius:.2f} m",
                    )
                continue
            gap = cell.rect.distance_to_segment(item.points[0], item.points[1])
            if gap < half:
                where = f"cell '{cell.name}' ({cell.rect.text()})"
                raise fail(
                    item.where,
                    f"{item.name} crosses {where}"
                    if gap == 0
                    else f"{item.name} passes {gap:.2f} m from {where}: an AMR "
                    f"{amr_width:.2f} m wide needs {half:.2f} m",
                )
    paths = [p for p in items if p.kind in ("lane", "docking")]
    for a, b in combinations(paths, 2):
        if segments_cross(a.points[0], a.points[1], b.points[0], b.points[1]):
            raise fail(
                b.where, f"{b.name} crosses {a.name} between nodes (add a node where they cross)"
            )
