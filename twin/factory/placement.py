"""Place one cell template on the factory floor: every id gets the cell's prefix, every pose
the cell's transform, every reference (a photo-eye's belt, a transfer's dock, a dock's
approach node) follows its renamed target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from msgspec.structs import replace

from twin.config import (
    AmrConfig,
    ArmConfig,
    BeltRule,
    CameraConfig,
    ChargerConfig,
    ConveyorConfig,
    DeviceConfig,
    DockConfig,
    LaneConfig,
    LineConfig,
    NodeConfig,
    PickFrom,
    PlaceTo,
    SinkConfig,
    SourceConfig,
    StationConfig,
    Transfer,
)
from twin.factory.floor import Pose, Rect, box_corners

# fields of a device that name another device or a network node of the same template
_REFERENCES = ("conveyor", "dock", "camera", "eye", "node")
FOOTPRINT_MARGIN = 0.1  # m added around a cell's equipment and docked AMRs
ARM_HALF_WIDTH = 0.3  # m: the floor area an arm's base and lower links need around its base


@dataclass
class PlacedCell:
    """A template's contents after prefixing and placing, before they join the factory."""

    devices: list[DeviceConfig]
    nodes: list[NodeConfig] = field(default_factory=list)
    lanes: list[LaneConfig] = field(default_factory=list)
    chargers: list[ChargerConfig] = field(default_factory=list)
    belts: list[BeltRule] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)


def _named(prefix: str, ref: str | None) -> str | None:
    return None if ref is None else prefix + ref


def place_device(d: DeviceConfig, prefix: str, pose: Pose) -> DeviceConfig:
    changes: dict[str, Any] = {"id": prefix + d.id}
    for name in _REFERENCES:
        ref = getattr(d, name, None)
        if isinstance(ref, str):
            changes[name] = prefix + ref
    if isinstance(d, CameraConfig):
        if d.mount is not None:  # rides on its arm: the offset is in the link's frame
            changes["mount"] = replace(d.mount, arm=prefix + d.mount.arm)
        else:
            changes["position"] = pose.point(d.position)
            if d.look_at is not None:
                changes["look_at"] = pose.point(d.look_at)
    elif isinstance(d, (ConveyorConfig, StationConfig, ArmConfig, DockConfig)):
        changes["position"] = pose.point(d.position)
        changes["yaw"] = pose.heading(d.yaw)
    return replace(d, **changes)


def _pick(p: PickFrom, prefix: str) -> PickFrom:
    return replace(
        p,
        eye=_named(prefix, p.eye),
        station=_named(prefix, p.station),
        dock=_named(prefix, p.dock),
    )


def _place(p: PlaceTo, prefix: str) -> PlaceTo:
    return replace(
        p,
        station=_named(prefix, p.station),
        conveyor=_named(prefix, p.conveyor),
        clear_eye=_named(prefix, p.clear_eye),
        dock=_named(prefix, p.dock),
    )


def place_cell(template: LineConfig, prefix: str, pose: Pose) -> PlacedCell:
    """The template's devices, network and sequencer rules, prefixed and placed."""
    cell = PlacedCell([place_device(d, prefix, pose) for d in template.devices])
    net = template.network
    if net is not None:
        cell.nodes = [
            replace(n, id=prefix + n.id, position=pose.point(n.position)) for n in net.nodes
        ]
        cell.lanes = [replace(ln, from_=prefix + ln.from_, to=prefix + ln.to) for ln in net.lanes]
        cell.chargers = [replace(c, id=prefix + c.id, node=prefix + c.node) for c in net.chargers]
    ctl = template.controller
    if ctl is not None:
        cell.belts = [
            replace(b, conveyor=prefix + b.conveyor, stop_eye=_named(prefix, b.stop_eye))
            for b in ctl.belts
        ]
        cell.transfers = [
            Transfer(arm=prefix + t.arm, pick=_pick(t.pick, prefix), place=_place(t.place, prefix))
            for t in ctl.transfers
        ]
    return cell


def footprint(devices: list[DeviceConfig], amr_size: tuple[float, float]) -> Rect | None:
    """The floor a placed cell's equipment covers, with AMRs docked at its docks, grown by
    FOOTPRINT_MARGIN (None for a cell with nothing on the floor)."""
    origin = Pose(0.0, 0.0, 0.0)
    corners = []
    for d in devices:
        if isinstance(d, ConveyorConfig):
            box = (d.position, d.yaw, d.length / 2, d.width / 2)
        elif isinstance(d, StationConfig):
            box = (d.position, d.yaw, d.size[0] / 2, d.size[1] / 2)
        elif isinstance(d, ArmConfig):
            box = (d.position, d.yaw, ARM_HALF_WIDTH, ARM_HALF_WIDTH)
        elif isinstance(d, DockConfig):
            box = (d.position, d.yaw, amr_size[0] / 2, amr_size[1] / 2)
        else:
            continue
        (x, y, *_), yaw, hx, hy = box
        corners.extend(box_corners(origin, x, y, yaw, hx, hy))
    return Rect.around(corners, FOOTPRINT_MARGIN) if corners else None


def dock_sources(devices: list[DeviceConfig]) -> list[SourceConfig]:
    return [d for d in devices if isinstance(d, SourceConfig) and d.dock is not None]


def dock_sinks(devices: list[DeviceConfig]) -> list[SinkConfig]:
    return [d for d in devices if isinstance(d, SinkConfig) and d.dock is not None]


def has_amrs(devices: list[DeviceConfig]) -> bool:
    return any(isinstance(d, AmrConfig) for d in devices)
