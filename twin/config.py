"""Typed line configuration: load(path) -> LineConfig, with errors that name file, field and value.

Units are SI (m, s, rad, kg) everywhere; the world is z-up and right-handed.
Structure and ranges are checked by msgspec while decoding; cross-references (a photo-eye on
a belt that does not exist, duplicate ids, missing assets) are checked afterwards.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from twin.sim.assets import resolve_asset

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Vec3 = Annotated[list[float], msgspec.Meta(min_length=3, max_length=3)]
Color = Annotated[
    list[Annotated[float, msgspec.Meta(ge=0, le=1)]], msgspec.Meta(min_length=4, max_length=4)
]
DeviceId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$", max_length=64)]


class ConfigError(ValueError):
    """A line config that cannot be used; the message names the file, the field and the problem."""


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class Physics(_Strict, kw_only=True):
    timestep: Annotated[float, msgspec.Meta(gt=0, le=0.05)] = 0.01  # s per twin step
    substeps: Annotated[int, msgspec.Meta(ge=1, le=20)] = 4  # physics substeps per twin step
    gravity: Vec3 = msgspec.field(default_factory=lambda: [0.0, 0.0, -9.81])
    seed: Annotated[int, msgspec.Meta(ge=0)] = 0
    solver_iterations: Annotated[int, msgspec.Meta(ge=1, le=500)] = 50


class PartType(_Strict, kw_only=True):
    name: DeviceId
    size: Annotated[list[Positive], msgspec.Meta(min_length=3, max_length=3)]  # box x, y, z in m
    mass: Positive  # kg
    color: Color = msgspec.field(default_factory=lambda: [0.8, 0.5, 0.2, 1.0])
    friction: NonNegative = 0.8


Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]


class ScriptedWindow(_Strict, kw_only=True):
    at: NonNegative  # s of simulated time
    duration: Positive  # s


class SensorFault(_Strict, kw_only=True):
    kind: Literal["stuck_on", "stuck_off", "dropout", "noise"]
    start: NonNegative = 0.0  # s: the fault is active from start to end
    end: Positive = 1e18
    probability: Probability = 0.0  # noise: chance per step that the reading flips


class PartMix(_Strict, kw_only=True):
    type: str
    weight: Positive = 1.0


class SourceConfig(_Strict, tag="source", tag_field="kind", kw_only=True):
    id: DeviceId
    conveyor: str  # the belt the parts are put on
    offset: float = 0.0  # m along the belt from its centre, downstream positive
    interval: Positive = 10.0  # s between parts
    jitter: NonNegative = 0.0  # s, uniform +/- around the interval (seeded)
    first_at: NonNegative = 0.5  # s after start of the first part
    parts: Annotated[list[PartMix], msgspec.Meta(min_length=1)]
    max_parts: Annotated[int, msgspec.Meta(ge=0)] = 0  # 0 = no limit
    enabled: bool = True
    defect_rate: Probability = 0.0  # share of parts made of defective material (seeded)


class ConveyorConfig(_Strict, tag="conveyor", tag_field="kind", kw_only=True):
    id: DeviceId
    position: Vec3  # centre of the belt footprint on the floor
    yaw: float = 0.0  # rad; transport direction is local +x
    length: Positive = 1.6
    width: Positive = 0.3
    height: Positive = 0.75  # belt surface above the floor
    speed: NonNegative = 0.25  # m/s commanded on start
    max_speed: Positive = 1.0
    running: bool = False
    end_stop: bool = True  # a fixed stop at the downstream end so parts accumulate
    # zero-pressure accumulation: this many equal zones, each with its own drive and eye, a
    # zone holding a part only releases it into an empty zone, so queued parts never touch
    zones: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1
    friction: NonNegative = 0.9
    color: Color = msgspec.field(default_factory=lambda: [0.15, 0.15, 0.17, 1.0])


class PhotoEyeConfig(_Strict, tag="photoeye", tag_field="kind", kw_only=True):
    id: DeviceId
    conveyor: str
    offset: float = 0.0  # m along the belt from its centre, downstream positive
    beam_height: Positive = 0.015  # m above the belt surface
    faults: list[SensorFault] = msgspec.field(default_factory=list)


class ArmConfig(_Strict, tag="arm", tag_field="kind", kw_only=True):
    id: DeviceId
    model: str = "franka_panda/panda.urdf"
    position: Vec3 = msgspec.field(default_factory=lambda: [0.0, 0.0, 0.0])
    yaw: float = 0.0
    pedestal_height: NonNegative = 0.6  # m; the base is mounted on a pedestal of this height
    tool_link: str = "panda_grasptarget"
    held_joints: dict[str, float] = msgspec.field(
        default_factory=lambda: {"panda_finger_joint1": 0.0, "panda_finger_joint2": 0.0}
    )
    home: list[float] = msgspec.field(
        default_factory=lambda: [0.0, -0.4, 0.0, -2.3, 0.0, 1.9, 0.785]
    )  # rad, one per arm joint
    travel_height: Positive = 1.05  # m above the floor for moves between points
    max_tool_speed: Positive = 0.8  # m/s Cartesian
    search_speed: Positive = 0.15  # m/s while searching down for a part
    suction_reach: Positive = 0.008  # m from the cup within which vacuum seals on a part
    max_payload: Positive = 3.0  # kg
    reach: Positive = 0.82  # m from the shoulder; further targets are refused
    # motion limits of the robot controller (joint speed limits come from the model)
    max_tool_acceleration: Positive = 4.0  # m/s^2 along a Cartesian path
    max_tool_jerk: Positive = 40.0  # m/s^3 along a Cartesian path
    max_joint_acceleration: Positive = 10.0  # rad/s^2 per joint in joint moves
    max_joint_jerk: Positive = 100.0  # rad/s^3 per joint in joint moves
    pick_attempts: Annotated[int, msgspec.Meta(ge=1, le=10)] = 3  # seal tries before pick_failed
    max_pick_tilt: Annotated[float, msgspec.Meta(ge=0, le=0.8)] = 0.2  # rad; more is refused
    seat_tolerance: Positive = 0.01  # m; a placed part further off the point is not seated


class StationConfig(_Strict, tag="station", tag_field="kind", kw_only=True):
    id: DeviceId
    position: Vec3  # centre of the table footprint on the floor
    yaw: float = 0.0
    size: Annotated[list[Positive], msgspec.Meta(min_length=3, max_length=3)] = msgspec.field(
        default_factory=lambda: [0.4, 0.4, 0.75]
    )  # table x, y, height
    cycle_time: Positive = 8.0  # s of processing per part
    transition_time: NonNegative = 0.2  # s each acting PackML state (Starting, Resetting...) takes
    batch_size: Annotated[int, msgspec.Meta(ge=0)] = 0  # parts per batch (Complete); 0 = no end
    defect_rate: Probability = 0.0  # share of processed parts that come out as rejects (seeded)
    mtbf: NonNegative = 0.0  # s, mean time between breakdowns (exponential); 0 = never
    mttr: NonNegative = 0.0  # s, mean time to repair (exponential)
    breakdowns: list[ScriptedWindow] = msgspec.field(default_factory=list)  # at fixed times
    color: Color = msgspec.field(default_factory=lambda: [0.3, 0.45, 0.7, 1.0])


class SinkConfig(_Strict, tag="sink", tag_field="kind", kw_only=True):
    id: DeviceId
    conveyor: str
    offset: float = 0.0  # m along the belt: centre of the take-away zone
    zone_length: Positive = 0.2


# Every device kind is one member of this union (its tag names the kind and the module in
# twin/devices/ that builds it). The order is the build order: what others are mounted on first.
DeviceConfig = (
    ConveyorConfig | StationConfig | ArmConfig | PhotoEyeConfig | SourceConfig | SinkConfig
)


class BeltRule(_Strict, kw_only=True):
    conveyor: str
    stop_eye: str | None = None  # the belt stops while this eye is blocked (accumulation)
    stop_delay: NonNegative = 0.0  # s the eye must be blocked before the belt stops (a TON timer)


class PickFrom(_Strict, kw_only=True):
    eye: str | None = None  # a photo-eye on a conveyor: pick the part that blocks it
    station: str | None = None  # a station whose part is finished


class PlaceTo(_Strict, kw_only=True):
    station: str | None = None  # an idle, empty station
    conveyor: str | None = None  # a point on a conveyor ...
    offset: float = 0.0  # ... this far along it from its centre
    clear_eye: str | None = None  # ... placed only while this eye is clear


class Transfer(_Strict, kw_only=True):
    arm: str
    pick: PickFrom
    place: PlaceTo


class SequencerConfig(_Strict, tag="sequencer", tag_field="kind", kw_only=True):
    belts: list[BeltRule] = msgspec.field(default_factory=list)
    transfers: list[Transfer] = msgspec.field(default_factory=list)  # priority order per arm
    scan_time: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.01  # s, the PLC cycle
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=100)] = 2  # per failed pick/place/seat
    retry_delay: NonNegative = 1.0  # s before a failed pick/place/seat is tried again
    prepare_next: bool = True  # an arm waits above the station it will unload next


class ViewConfig(_Strict, kw_only=True):
    target: Vec3 = msgspec.field(default_factory=lambda: [0.0, 0.0, 0.6])
    distance: Positive = 3.2
    yaw: float = 40.0  # degrees, as pybullet's camera
    pitch: float = -35.0
    width: Annotated[int, msgspec.Meta(ge=16, le=4096)] = 1024
    height: Annotated[int, msgspec.Meta(ge=16, le=4096)] = 640


class LineConfig(_Strict, kw_only=True):
    name: str
    physics: Physics = msgspec.field(default_factory=Physics)
    part_types: Annotated[list[PartType], msgspec.Meta(min_length=1)]
    devices: Annotated[list[DeviceConfig], msgspec.Meta(min_length=1)]
    controller: SequencerConfig | None = None
    estops: list[ScriptedWindow] = msgspec.field(default_factory=list)  # e-stop, then reset
    view: ViewConfig = msgspec.field(default_factory=ViewConfig)
    source_path: str = ""  # filled by load(); not read from the file

    def device(self, device_id: str) -> DeviceConfig:
        for d in self.devices:
            if d.id == device_id:
                return d
        raise KeyError(device_id)


_PATH_RE = re.compile(r" - at `\$(.*)`$")


def _field_path(message: str) -> tuple[str, str]:
    """Split msgspec's '... - at `$.a.b[0]`' into ('a.b[0]', '...')."""
    m = _PATH_RE.search(message)
    if not m:
        return "", message
    return m.group(1).lstrip("."), message[: m.start()]


def _device_label(raw: dict, path: str) -> str:
    """Add the device id to a 'devices[3].x' path so the user finds the entry."""
    m = re.match(r"devices\[(\d+)\]", path)
    if not m:
        return path
    try:
        dev_id = raw["devices"][int(m.group(1))].get("id")
    except (KeyError, IndexError, AttributeError, TypeError):
        return path
    return f"{path} (device '{dev_id}')" if dev_id else path


def load(path: str | Path) -> LineConfig:
    """Read and validate a line config; raise ConfigError naming file, field and expectation."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror}") from None
    return loads(data, str(path))


def loads(data: bytes | str, source: str = "<string>") -> LineConfig:
    """Validate config text; `source` names it in errors."""
    if isinstance(data, str):
        data = data.encode()
    try:
        raw = msgspec.toml.decode(data)
    except msgspec.DecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None
    if isinstance(raw, dict) and "source_path" in raw:
        raise ConfigError(f"{source}: source_path: unknown field")
    try:
        cfg = msgspec.convert(raw, LineConfig)
    except msgspec.ValidationError as e:
        field, problem = _field_path(str(e))
        where = _device_label(raw, field) if field else "(top level)"
        raise ConfigError(f"{source}: {where}: {problem}") from None
    cfg.source_path = source
    _check_references(cfg, source)
    return cfg


def _check_references(cfg: LineConfig, source: str) -> None:
    def fail(field: str, problem: str) -> None:
        raise ConfigError(f"{source}: {field}: {problem}")

    types = [t.name for t in cfg.part_types]
    for i, name in enumerate(types):
        if types.index(name) != i:
            fail(f"part_types[{i}].name", f"duplicate part type '{name}'")

    ids = [d.id for d in cfg.devices]
    kinds = {d.id: type(d) for d in cfg.devices}
    for i, dev_id in enumerate(ids):
        if dev_id == "line":
            fail(f"devices[{i}].id", "'line' is reserved for the line itself")
        if ids.index(dev_id) != i:
            fail(f"devices[{i}].id", f"duplicate device id '{dev_id}'")

    def expect(field: str, ref: str | None, kind: type, what: str) -> None:
        if ref is None:
            return
        if ref not in kinds:
            fail(field, f"refers to {what} '{ref}', which is not defined (known: {sorted(ids)})")
        if kinds[ref] is not kind:
            fail(field, f"'{ref}' is a {kinds[ref].__struct_config__.tag}, expected a {what}")

    for i, d in enumerate(cfg.devices):
        here = f"devices[{i}] (device '{d.id}')"
        if isinstance(d, (SourceConfig, PhotoEyeConfig, SinkConfig)):
            expect(f"{here}.conveyor", d.conveyor, ConveyorConfig, "conveyor")
            belt = cfg.device(d.conveyor)
            half = belt.length / 2
            if not -half <= d.offset <= half:
                fail(
                    f"{here}.offset",
                    f"{d.offset} m is off the belt '{belt.id}' (expected -{half} to {half})",
                )
        if isinstance(d, SourceConfig):
            for j, mix in enumerate(d.parts):
                if mix.type not in types:
                    fail(
                        f"{here}.parts[{j}].type",
                        f"unknown part type '{mix.type}' (known: {types})",
                    )
        if isinstance(d, ConveyorConfig) and d.speed > d.max_speed:
            fail(f"{here}.speed", f"{d.speed} m/s exceeds max_speed {d.max_speed} m/s")
        if isinstance(d, StationConfig) and (d.mtbf > 0) != (d.mttr > 0):
            fail(f"{here}.mttr", "give both mtbf and mttr (> 0) for random breakdowns, or neither")
        if isinstance(d, ArmConfig):
            try:
                resolve_asset(d.model)
            except FileNotFoundError as e:
                fail(f"{here}.model", str(e))

    ctl = cfg.controller
    if ctl is None:
        return
    for i, rule in enumerate(ctl.belts):
        expect(f"controller.belts[{i}].conveyor", rule.conveyor, ConveyorConfig, "conveyor")
        expect(f"controller.belts[{i}].stop_eye", rule.stop_eye, PhotoEyeConfig, "photoeye")
    for i, t in enumerate(ctl.transfers):
        here = f"controller.transfers[{i}]"
        expect(f"{here}.arm", t.arm, ArmConfig, "arm")
        if (t.pick.eye is None) == (t.pick.station is None):
            fail(f"{here}.pick", "give exactly one of 'eye' or 'station'")
        expect(f"{here}.pick.eye", t.pick.eye, PhotoEyeConfig, "photoeye")
        expect(f"{here}.pick.station", t.pick.station, StationConfig, "station")
        if (t.place.station is None) == (t.place.conveyor is None):
            fail(f"{here}.place", "give exactly one of 'station' or 'conveyor'")
        expect(f"{here}.place.station", t.place.station, StationConfig, "station")
        expect(f"{here}.place.conveyor", t.place.conveyor, ConveyorConfig, "conveyor")
        expect(f"{here}.place.clear_eye", t.place.clear_eye, PhotoEyeConfig, "photoeye")
