"""Where things are, from the line config alone: frames, points on belts and fixtures, teach
points, zones.

One module computes every position that devices, the built-in controller, `describe`, the
gym tasks and the examples use, so they cannot disagree. Nothing here reads the physics.

Conventions: SI units (m, rad), world frame z-up and right-handed, the floor at z = 0. A
device's yaw turns its local frame about +z; a conveyor transports along its local +x
(reversed: -x), local +y is to the left of the flow, local z is up from the work surface.
"""

from __future__ import annotations

import math
from typing import Any

from twin.config import (
    AmrConfig,
    ArmConfig,
    ConveyorConfig,
    DeviceConfig,
    DockConfig,
    LineConfig,
    PhotoEyeConfig,
    SinkConfig,
    SourceConfig,
    StationConfig,
    Transfer,
)

Point = list[float]  # [x, y, z] in m, world frame

CONVENTIONS = {
    "units": "m, rad",
    "frame": "world: z up, right-handed, floor at z = 0",
    "yaw": "rotation of a device's local frame about +z, from world +x (counter-clockwise)",
    "conveyor": "local +x is the transport direction (forward), +y to its left, z up from the "
    "belt surface; 'along' is measured from the belt centre",
    "station": "local frame at the fixture centre on the table top",
    "amr": "x, y: the chassis centre on the floor; yaw: its heading (local +x forward); the "
    "deck is the chassis top, deck_height above the floor",
    "dock": "position: the floor point under a docked AMR's deck centre; its pick and place "
    "point is there at deck height",
}

EYE_INSET = 0.004  # m: a photo-eye's emitter and receiver sit just inside the guide rails


class Frame:
    """A planar pose: origin (x, y, z) and yaw; maps local (along, across, up) to the world."""

    __slots__ = ("_c", "_s", "x", "y", "z", "yaw")

    def __init__(self, x: float, y: float, z: float, yaw: float) -> None:
        self.x, self.y, self.z, self.yaw = x, y, z, yaw
        self._c, self._s = math.cos(yaw), math.sin(yaw)

    def point(self, along: float, across: float = 0.0, up: float = 0.0) -> Point:
        c, s = self._c, self._s
        return [self.x + c * along - s * across, self.y + s * along + c * across, self.z + up]

    @property
    def direction(self) -> Point:
        """The local +x axis in the world."""
        return [self._c, self._s, 0.0]


def belt_frame(belt: ConveyorConfig) -> Frame:
    """At the belt centre on its surface, +x along the transport direction."""
    return Frame(belt.position[0], belt.position[1], belt.height, belt.yaw)


def fixture_frame(station: StationConfig) -> Frame:
    """At the station's fixture centre on the table top."""
    return Frame(station.position[0], station.position[1], station.size[2], station.yaw)


def belt_point(belt: ConveyorConfig, along: float, across: float = 0.0, up: float = 0.0) -> Point:
    """World point `along` m from the belt centre (downstream positive), `up` m above it."""
    return belt_frame(belt).point(along, across, up)


def fixture_point(
    station: StationConfig, along: float = 0.0, across: float = 0.0, up: float = 0.0
) -> Point:
    """World point on a station's table top, in the station frame (the fixture is at 0, 0)."""
    return fixture_frame(station).point(along, across, up)


def arm_base(arm: ArmConfig) -> Point:
    """The robot's base: on top of its pedestal."""
    x, y, z = arm.position
    return [x, y, z + arm.pedestal_height]


def eye_beam(eye: PhotoEyeConfig, belt: ConveyorConfig) -> tuple[Point, Point]:
    """A photo-eye's beam across its belt: emitter and receiver points."""
    frame, half = belt_frame(belt), belt.width / 2 - EYE_INSET
    return (
        frame.point(eye.offset, -half, eye.beam_height),
        frame.point(eye.offset, half, eye.beam_height),
    )


def zone_box(
    frame: Frame,
    along: tuple[float, float],
    across: tuple[float, float],
    up: tuple[float, float],
) -> tuple[Point, Point]:
    """World-aligned box (min, max) around a local box of the frame."""
    corners = [frame.point(a, c, u) for a in along for c in across for u in up]
    return (
        [min(p[i] for p in corners) for i in range(3)],
        [max(p[i] for p in corners) for i in range(3)],
    )


def sink_zone(sink: SinkConfig, belt: ConveyorConfig) -> tuple[Point, Point]:
    """The take-away box: parts whose centre is inside it are completed."""
    half = sink.zone_length / 2
    return zone_box(
        belt_frame(belt),
        (sink.offset - half, sink.offset + half),
        (-belt.width / 2, belt.width / 2),
        (0.005, 0.3),
    )


def source_zone(source: SourceConfig, belt: ConveyorConfig, largest: float) -> tuple[Point, Point]:
    """The drop zone that must be clear of parts before a part of footprint `largest` m is
    put down."""
    half = largest / 2 + 0.01
    along = (source.offset - half, source.offset + half)
    if belt.zones > 1:
        # an accumulation zone takes one part: the whole zone must be clear, and the
        # part it last released must have left its slab (which reaches past the zone end)
        length = belt.length / belt.zones
        i = min(belt.zones - 1, max(0, int((source.offset + belt.length / 2) // length)))
        start = -belt.length / 2 + i * length
        along = (min(along[0], start), max(along[1], start + length + ZONE_RELEASE_CLEARANCE))
    return zone_box(belt_frame(belt), along, (-half, half), (0.004, 0.15))


# m past a zone's end that a released part must have travelled before the zone counts as
# empty for a source (more than a zone slab's reach into the next zone)
ZONE_RELEASE_CLEARANCE = 0.1


# teach points ----------------------------------------------------------------------------
def _devices(cfg: LineConfig) -> dict[str, DeviceConfig]:
    return {d.id: d for d in cfg.devices}


def eye_point(cfg: LineConfig, eye: PhotoEyeConfig) -> Point:
    """Where a part blocking the eye sits: on the belt surface under the beam."""
    belt = cfg.device(eye.conveyor)
    assert isinstance(belt, ConveyorConfig)
    return belt_point(belt, eye.offset)


def deck_height(cfg: LineConfig) -> float:
    """The height of the AMRs' decks above the floor (the config checks they agree)."""
    for d in cfg.devices:
        if isinstance(d, AmrConfig):
            return d.size[2]
    return DEFAULT_DECK_HEIGHT


DEFAULT_DECK_HEIGHT = AmrConfig(id="amr", start="").size[2]  # m, with no AMR in the config


def dock_point(cfg: LineConfig, dock: DockConfig) -> Point:
    """Where an arm picks from or places on the deck of the AMR at a dock: the deck's centre
    (the dock position at deck height)."""
    x, y, z = dock.position
    return [x, y, z + deck_height(cfg)]


def pick_point(cfg: LineConfig, t: Transfer) -> Point:
    """Where the arm picks in a transfer: under the eye on its belt, on the fixture, or on
    the deck of the AMR at a dock."""
    if t.pick.dock is not None:
        dock = cfg.device(t.pick.dock)
        assert isinstance(dock, DockConfig)
        return dock_point(cfg, dock)
    if t.pick.eye is not None:
        eye = cfg.device(t.pick.eye)
        assert isinstance(eye, PhotoEyeConfig)
        return eye_point(cfg, eye)
    station = cfg.device(t.pick.station or "")
    assert isinstance(station, StationConfig)
    return fixture_point(station)


def place_point(cfg: LineConfig, t: Transfer) -> Point:
    """Where the arm places in a transfer: on the fixture, on a belt at the offset, or on
    the deck of the AMR at a dock."""
    if t.place.dock is not None:
        dock = cfg.device(t.place.dock)
        assert isinstance(dock, DockConfig)
        return dock_point(cfg, dock)
    if t.place.station is not None:
        station = cfg.device(t.place.station)
        assert isinstance(station, StationConfig)
        return fixture_point(station)
    belt = cfg.device(t.place.conveyor or "")
    assert isinstance(belt, ConveyorConfig)
    return belt_point(belt, t.place.offset)


def teach_points(cfg: LineConfig) -> list[dict[str, Any]]:
    """The config's transfers with their pick and place points, in priority order per arm.

    A pick from a photo-eye is ready while the eye is blocked, from a station while its part
    is done and it allows unloading (`part_done`, `unload_ok`), from a dock while the AMR
    docked there has delivered a part (`delivery`); a place on a station while it allows
    loading (`load_ok`), on a belt while its `clear_eye` (if any) is clear, on a dock while
    the AMR docked there has an empty deck (`empty_amr`)."""
    out = []
    for t in cfg.controller.transfers if cfg.controller else []:
        pick: dict[str, Any]
        place: dict[str, Any]
        if t.pick.dock is not None:
            pick = {"device": t.pick.dock, "kind": "dock", "point": pick_point(cfg, t)}
        elif t.pick.eye is not None:
            pick = {"device": t.pick.eye, "kind": "photoeye", "point": pick_point(cfg, t)}
        else:
            pick = {"device": t.pick.station, "kind": "station", "point": pick_point(cfg, t)}
        if t.place.dock is not None:
            place = {"device": t.place.dock, "kind": "dock", "point": place_point(cfg, t)}
        elif t.place.station is not None:
            place = {"device": t.place.station, "kind": "station", "point": place_point(cfg, t)}
        else:
            place = {
                "device": t.place.conveyor,
                "kind": "conveyor",
                "point": place_point(cfg, t),
                "clear_eye": t.place.clear_eye,
            }
        out.append({"arm": t.arm, "pick": pick, "place": place})
    return out


# describe --------------------------------------------------------------------------------
def device_geometry(cfg: LineConfig, d: DeviceConfig) -> dict[str, Any]:
    """What a controller needs to know about where device `d` is and what it reaches."""
    if isinstance(d, ConveyorConfig):
        frame = belt_frame(d)
        half = d.length / 2
        out: dict[str, Any] = {
            "position": list(d.position),
            "yaw": d.yaw,
            "direction": frame.direction,
            "length": d.length,
            "width": d.width,
            "surface_height": d.height,
            "surface_center": frame.point(0.0),
            "upstream_end": frame.point(-half),
            "downstream_end": frame.point(half),
            "end_stop": d.end_stop,
            "zones": d.zones,  # accumulation zones of equal length (1: a plain belt)
        }
        if d.end_stop:
            # the stop face: a part of length L resting against it is centred L/2 upstream
            out["end_stop_face"] = frame.point(half)
        return out
    if isinstance(d, PhotoEyeConfig):
        belt = cfg.device(d.conveyor)
        assert isinstance(belt, ConveyorConfig)
        return {
            "conveyor": d.conveyor,
            "offset": d.offset,
            "beam_height": d.beam_height,
            "beam": list(eye_beam(d, belt)),
            "pick_point": eye_point(cfg, d),
        }
    if isinstance(d, StationConfig):
        return {
            "position": list(d.position),
            "yaw": d.yaw,
            "size": list(d.size),
            "surface_height": d.size[2],
            "fixture_point": fixture_point(d),
        }
    if isinstance(d, ArmConfig):
        return {
            "position": list(d.position),
            "yaw": d.yaw,
            "base": arm_base(d),
            "pedestal_height": d.pedestal_height,
            "reach": d.reach,
            "tool_link": d.tool_link,
            "travel_height": d.travel_height,
            "max_payload": d.max_payload,
        }
    if isinstance(d, DockConfig):
        node = cfg.network.nodes if cfg.network else []
        approach = next((list(n.position) for n in node if n.id == d.node), None)
        return {
            "position": list(d.position),
            "yaw": d.yaw,
            "node": d.node,
            "approach": approach,
            "tolerance": d.tolerance,
            "deck_point": dock_point(cfg, d),
        }
    if isinstance(d, AmrConfig):
        return {
            "size": list(d.size),
            "deck_height": d.size[2],
            "start": d.start,
            "max_speed": d.max_speed,
            "max_acceleration": d.max_acceleration,
            "max_deceleration": d.max_deceleration,
            "turn_rate": d.turn_rate,
            "turn_acceleration": d.turn_acceleration,
            "dock_speed": d.dock_speed,
            "max_payload": d.max_payload,
            "safety": {
                "protective": d.safety.protective,
                "warning": d.safety.warning,
                "warning_speed": d.safety.warning_speed,
                "height": d.safety.height,
            },
        }
    if isinstance(d, (SourceConfig, SinkConfig)) and d.dock is not None:
        dock = cfg.device(d.dock)
        assert isinstance(dock, DockConfig)
        return {"dock": d.dock, "deck_point": dock_point(cfg, dock)}
    if isinstance(d, SourceConfig):
        belt = cfg.device(d.conveyor or "")
        assert isinstance(belt, ConveyorConfig)
        kinds = {m.type for m in d.parts}
        largest = max(max(t.size[:2]) for t in cfg.part_types if t.name in kinds)
        lo, hi = source_zone(d, belt, largest)
        return {
            "conveyor": d.conveyor,
            "offset": d.offset,
            "drop_point": belt_point(belt, d.offset),
            "zone": {"min": lo, "max": hi},
        }
    if isinstance(d, SinkConfig):
        belt = cfg.device(d.conveyor or "")
        assert isinstance(belt, ConveyorConfig)
        lo, hi = sink_zone(d, belt)
        return {
            "conveyor": d.conveyor,
            "offset": d.offset,
            "zone_length": d.zone_length,
            "zone": {"min": lo, "max": hi},
        }
    return {}
