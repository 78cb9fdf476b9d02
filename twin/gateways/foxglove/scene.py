"""The line as a foxglove.SceneUpdate: geometry from `describe`, poses and colours from a state.

Frame "world" is the twin's world frame (m, z up). Every update carries the whole scene (a
few dozen primitives), so a Foxglove client that joins late sees everything at once.
"""

from __future__ import annotations

import math
from typing import Any

from foxglove.messages import (
    Color,
    CubePrimitive,
    LinePrimitive,
    Point3,
    Pose,
    Quaternion,
    SceneEntity,
    SceneUpdate,
    TextPrimitive,
    Timestamp,
    Vector3,
)

FRAME = "world"
# PackML state -> RGB, as on the browser HMI
STATE_COLORS: dict[str, tuple[float, float, float]] = {
    "Execute": (0.18, 0.62, 0.29),
    "Idle": (0.25, 0.44, 0.62),
    "Complete": (0.12, 0.54, 0.54),
    "Suspended": (0.79, 0.6, 0.02),
    "Held": (0.88, 0.48, 0.0),
    "Aborted": (0.78, 0.16, 0.16),
    "Stopped": (0.42, 0.45, 0.5),
}
GREY = (0.42, 0.45, 0.5)


def _color(rgb: tuple[float, float, float], a: float = 1.0) -> Color:
    return Color(r=rgb[0], g=rgb[1], b=rgb[2], a=a)


def _pose(position: Any, yaw: float = 0.0, orientation: Any = None) -> Pose:
    if orientation is None:
        orientation = (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))
    x, y, z, w = orientation
    return Pose(
        position=Vector3(x=position[0], y=position[1], z=position[2]),
        orientation=Quaternion(x=x, y=y, z=z, w=w),
    )


def _cube(position: Any, size: Any, rgb: tuple[float, float, float], yaw: float = 0.0, a: float = 1.0, orientation: Any = None) -> CubePrimitive:  # fmt: skip
    return CubePrimitive(
        pose=_pose(position, yaw, orientation),
        size=Vector3(x=size[0], y=size[1], z=size[2]),
        color=_color(rgb, a),
    )


def _line(points: list[Any], rgb: tuple[float, float, float], thickness: float) -> LinePrimitive:
    return LinePrimitive(
        pose=_pose((0.0, 0.0, 0.0)),
        thickness=thickness,
        points=[Point3(x=p[0], y=p[1], z=p[2]) for p in points],
        color=_color(rgb),
    )


def _label(position: Any, text: str) -> TextPrimitive:
    return TextPrimitive(
        pose=_pose((position[0], position[1], position[2] + 0.25)),
        billboard=True,
        font_size=14.0,
        scale_invariant=True,
        color=_color((1.0, 1.0, 1.0)),
        text=text,
    )


# an AMR's chassis by state (others: its idle yellow), as on the browser HMI
AMR_COLORS: dict[str, tuple[float, float, float]] = {
    "blocked": (0.82, 0.25, 0.25),
    "stopped": (0.82, 0.44, 0.19),
    "battery_empty": (0.44, 0.44, 0.44),
    "charging": (0.29, 0.56, 0.85),
}
AMR_YELLOW = (0.88, 0.69, 0.13)


class SceneBuilder:
    def __init__(
        self,
        devices: list[dict[str, Any]],
        part_types: list[dict[str, Any]],
        network: dict[str, Any] | None = None,
    ) -> None:
        self.devices = [d for d in devices if d.get("geometry")]
        self.part_sizes = {t["name"]: t["size"] for t in part_types}
        self.network = _network_lines(network) if network else []

    def update(self, state: Any, log_ns: int) -> SceneUpdate:
        stamp = Timestamp(sec=log_ns // 1_000_000_000, nsec=log_ns % 1_000_000_000)
        entities = [self._device(d, state.signals.get(d["id"], {}), stamp) for d in self.devices]
        parts = [
            _cube(
                p["position"],
                self.part_sizes.get(p["type"], (0.06, 0.06, 0.04)),
                (0.85, 0.85, 0.88),
                orientation=p["orientation"],
            )  # fmt: skip
            for p in state.parts
        ]
        entities.append(SceneEntity(timestamp=stamp, frame_id=FRAME, id="parts", cubes=parts))
        if self.network:
            entities.append(
                SceneEntity(timestamp=stamp, frame_id=FRAME, id="network", lines=self.network)
            )
        return SceneUpdate(entities=[e for e in entities if e is not None])

    def _device(self, dev: dict[str, Any], sig: dict[str, Any], stamp: Timestamp) -> SceneEntity:
        g, kind = dev["geometry"], dev["kind"]
        cubes: list[CubePrimitive] = []
        lines: list[LinePrimitive] = []
        texts: list[TextPrimitive] = []
        if kind == "conveyor":
            c = g["surface_center"]
            running = (0.35, 0.45, 0.55) if sig.get("running") else (0.25, 0.27, 0.3)
            cubes.append(_cube((c[0], c[1], c[2] - 0.015), (g["length"], g["width"], 0.03), running, g["yaw"]))  # fmt: skip
        elif kind == "station":
            sx, sy, sz = g["size"]
            p = g["position"]
            state = sig.get("state", "")
            cubes.append(_cube((p[0], p[1], sz / 2), (sx, sy, sz), STATE_COLORS.get(state, GREY), g["yaw"]))  # fmt: skip
            texts.append(_label(g["fixture_point"], f"{dev['id']}: {state}"))
        elif kind == "photoeye":
            lines.append(_line(g["beam"], (1.0, 0.25, 0.25) if sig.get("blocked") else (0.25, 1.0, 0.5), 0.004))  # fmt: skip
        elif kind == "arm":
            base = g["base"]
            cubes.append(_cube((base[0], base[1], g["pedestal_height"] / 2), (0.2, 0.2, g["pedestal_height"]), GREY))  # fmt: skip
            tool = sig.get("tool_position")
            if tool:
                lines.append(_line([base, (base[0], base[1], base[2] + 0.33), tool], (0.92, 0.92, 0.94), 0.05))  # fmt: skip
        elif kind in ("source", "sink") and "deck_point" in g:  # at a dock: a patch beside it
            p = g["deck_point"]
            rgb = (0.36, 0.56, 0.84) if kind == "source" else (0.18, 0.62, 0.29)
            cubes.append(_cube((p[0], p[1], 0.005), (0.25, 0.25, 0.01), rgb, a=0.6))
        elif kind == "dock":
            p = g["position"]
            cubes.append(_cube((p[0], p[1], 0.002), (0.9, 0.66, 0.004), (0.24, 0.48, 0.31), g["yaw"], a=0.55))  # fmt: skip
        elif kind == "amr":
            length, width, deck = g["size"]
            x, y, yaw = sig.get("x", 0.0), sig.get("y", 0.0), sig.get("yaw", 0.0)
            rgb = AMR_COLORS.get(sig.get("state", ""), AMR_YELLOW)
            cubes.append(_cube((x, y, deck / 2), (length, width, deck), rgb, yaw))
            texts.append(_label((x, y, deck), f"{dev['id']}: {sig.get('state', '')}"))
        elif kind in ("source", "sink"):
            lo, hi = g["zone"]["min"], g["zone"]["max"]
            center = [(a + b) / 2 for a, b in zip(lo, hi)]
            rgb = (0.36, 0.56, 0.84) if kind == "source" else (0.18, 0.62, 0.29)
            cubes.append(_cube(center, [b - a for a, b in zip(lo, hi)], rgb, a=0.25))
        elif "position" in g:
            cubes.append(_cube(g["position"], (0.1, 0.1, 0.1), GREY))
        return SceneEntity(timestamp=stamp, frame_id=FRAME, id=dev["id"], cubes=cubes, lines=lines, texts=texts)  # fmt: skip


def _network_lines(net: dict[str, Any]) -> list[LinePrimitive]:
    """The AMR route network's lanes, on the floor."""
    where = {n["id"]: n["position"] for n in net["nodes"]}
    return [
        _line(
            [(*where[lane["from"]], 0.003), (*where[lane["to"]], 0.003)],
            (0.54, 0.59, 0.64) if lane["two_way"] else (0.36, 0.41, 0.45),
            0.02,
        )
        for lane in net["lanes"]
    ]
