"""Typed line configuration: load(path) -> LineConfig, with errors that name file, field and value.

Units are SI (m, s, rad, kg) everywhere; the world is z-up and right-handed.
Structure and ranges are checked by msgspec while decoding; cross-references (a photo-eye on
a belt that does not exist, duplicate ids, missing assets) are checked afterwards.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

MAX_CONFIG_BYTES = 16 * 1024 * 1024  # a config file larger than this is refused unread
MAX_CELL = 1000.0  # m: every position lies within this distance of the origin on each axis
MAX_SIZE = 100.0  # m: the largest belt, table or part dimension

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Length = Annotated[float, msgspec.Meta(gt=0, le=MAX_SIZE)]  # m, a physical dimension
Coordinate = Annotated[float, msgspec.Meta(ge=-MAX_CELL, le=MAX_CELL)]  # m
Vec3 = Annotated[list[Coordinate], msgspec.Meta(min_length=3, max_length=3)]
Size3 = Annotated[list[Length], msgspec.Meta(min_length=3, max_length=3)]
Offset = Annotated[float, msgspec.Meta(ge=-MAX_SIZE, le=MAX_SIZE)]  # m along a belt
Yaw = Annotated[float, msgspec.Meta(ge=-math.tau, le=math.tau)]  # rad
JointValue = Annotated[float, msgspec.Meta(ge=-100.0, le=100.0)]  # rad or m
Acceleration = Annotated[float, msgspec.Meta(ge=-100.0, le=100.0)]  # m/s^2
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
    gravity: Annotated[list[Acceleration], msgspec.Meta(min_length=3, max_length=3)] = (
        msgspec.field(default_factory=lambda: [0.0, 0.0, -9.81])
    )
    seed: Annotated[int, msgspec.Meta(ge=0)] = 0
    solver_iterations: Annotated[int, msgspec.Meta(ge=1, le=500)] = 50


class PartType(_Strict, kw_only=True):
    name: DeviceId
    size: Size3  # box x, y, z in m
    mass: Annotated[float, msgspec.Meta(gt=0, le=1000)]  # kg
    color: Color = msgspec.field(default_factory=lambda: [0.8, 0.5, 0.2, 1.0])
    friction: NonNegative = 0.8
    defect_color: Color | None = None  # how a defective part looks (None: like a good one)


Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]


class ScriptedWindow(_Strict, kw_only=True):
    at: NonNegative  # s of simulated time
    duration: Positive  # s


class SensorFault(_Strict, kw_only=True):
    kind: Literal["stuck_on", "stuck_off", "dropout", "noise"]
    start: NonNegative = 0.0  # s: the fault is active from start to end
    end: Positive = 1e18
    rate: NonNegative = 0.0  # dropout: spells per s; noise: flips per s (Poisson, on average)
    duration: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 0.05  # dropout: s each spell lasts


class PartMix(_Strict, kw_only=True):
    type: str
    weight: Positive = 1.0


class SourceConfig(_Strict, tag="source", tag_field="kind", kw_only=True):
    id: DeviceId
    conveyor: str | None = None  # the belt the parts are put on ...
    dock: str | None = None  # ... or the dock: onto the empty deck of the AMR docked there
    offset: Offset = 0.0  # m along the belt from its centre, downstream positive
    interval: Positive = 10.0  # s between parts
    # s, uniform +/- around the interval (seeded); bounded so the draw's range stays finite
    jitter: Annotated[float, msgspec.Meta(ge=0, le=1e9)] = 0.0
    first_at: NonNegative = 0.5  # s after start of the first part
    parts: Annotated[list[PartMix], msgspec.Meta(min_length=1)]
    max_parts: Annotated[int, msgspec.Meta(ge=0)] = 0  # 0 = no limit
    enabled: bool = True
    defect_rate: Probability = 0.0  # share of parts made of defective material (seeded)


class ConveyorConfig(_Strict, tag="conveyor", tag_field="kind", kw_only=True):
    id: DeviceId
    position: Vec3  # centre of the belt footprint on the floor
    yaw: Yaw = 0.0  # rad; transport direction is local +x
    length: Length = 1.6
    width: Length = 0.3
    height: Length = 0.75  # belt surface above the floor
    speed: NonNegative = 0.25  # m/s commanded on start
    max_speed: Annotated[float, msgspec.Meta(gt=0, le=10)] = 1.0
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
    offset: Offset = 0.0  # m along the belt from its centre, downstream positive
    beam_height: Length = 0.015  # m above the belt surface
    faults: list[SensorFault] = msgspec.field(default_factory=list)


class ArmConfig(_Strict, tag="arm", tag_field="kind", kw_only=True):
    id: DeviceId
    model: str = "franka_panda/panda.urdf"
    position: Vec3 = msgspec.field(default_factory=lambda: [0.0, 0.0, 0.0])
    yaw: Yaw = 0.0  # rad
    pedestal_height: Annotated[float, msgspec.Meta(ge=0, le=MAX_SIZE)] = (
        0.6  # m; the base is mounted on a pedestal of this height
    )
    tool_link: str = "panda_grasptarget"
    held_joints: dict[str, JointValue] = msgspec.field(
        default_factory=lambda: {"panda_finger_joint1": 0.0, "panda_finger_joint2": 0.0}
    )
    home: list[JointValue] = msgspec.field(
        default_factory=lambda: [0.0, -0.4, 0.0, -2.3, 0.0, 1.9, 0.785]
    )  # rad, one per arm joint
    travel_height: Length = 1.05  # m above the floor for moves between points
    max_tool_speed: Annotated[float, msgspec.Meta(gt=0, le=10)] = 0.8  # m/s Cartesian
    search_speed: Annotated[float, msgspec.Meta(gt=0, le=10)] = (
        0.15  # m/s while searching down for a part
    )
    suction_reach: Annotated[float, msgspec.Meta(gt=0, le=1)] = (
        0.008  # m from the cup within which vacuum seals on a part
    )
    max_payload: Annotated[float, msgspec.Meta(gt=0, le=10_000)] = 3.0  # kg
    reach: Length = 0.82  # m from the shoulder; further targets are refused
    # motion limits of the robot controller (joint speed limits come from the model)
    max_tool_acceleration: Annotated[float, msgspec.Meta(gt=0, le=1000)] = 4.0  # m/s^2, path
    max_tool_jerk: Annotated[float, msgspec.Meta(gt=0, le=1e5)] = 40.0  # m/s^3 along a path
    max_joint_acceleration: Annotated[float, msgspec.Meta(gt=0, le=1000)] = 10.0  # rad/s^2
    max_joint_jerk: Annotated[float, msgspec.Meta(gt=0, le=1e5)] = 100.0  # rad/s^3 per joint
    pick_attempts: Annotated[int, msgspec.Meta(ge=1, le=10)] = 3  # seal tries before pick_failed
    max_pick_tilt: Annotated[float, msgspec.Meta(ge=0, le=0.8)] = 0.2  # rad; more is refused
    seat_tolerance: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.01  # m; further: not seated


class StationConfig(_Strict, tag="station", tag_field="kind", kw_only=True):
    id: DeviceId
    position: Vec3  # centre of the table footprint on the floor
    yaw: Yaw = 0.0  # rad
    size: Size3 = msgspec.field(default_factory=lambda: [0.4, 0.4, 0.75])  # table x, y, height
    cycle_time: Positive = 8.0  # s of processing per part
    cycle_times: dict[str, Positive] = msgspec.field(default_factory=dict)  # per part type
    transition_time: NonNegative = 0.2  # s each acting PackML state (Starting, Resetting...) takes
    batch_size: Annotated[int, msgspec.Meta(ge=0)] = 0  # parts per batch (Complete); 0 = no end
    defect_rate: Probability = 0.0  # share of processed parts that come out as rejects (seeded)
    mtbf: NonNegative = 0.0  # s, mean time between breakdowns (exponential); 0 = never
    mttr: NonNegative = 0.0  # s, mean time to repair (exponential)
    breakdowns: list[ScriptedWindow] = msgspec.field(default_factory=list)  # at fixed times
    color: Color = msgspec.field(default_factory=lambda: [0.3, 0.45, 0.7, 1.0])


class SinkConfig(_Strict, tag="sink", tag_field="kind", kw_only=True):
    id: DeviceId
    conveyor: str | None = None  # a take-away zone on this belt ...
    dock: str | None = None  # ... or at this dock: parts an AMR delivers there
    offset: Offset = 0.0  # m along the belt: centre of the take-away zone
    zone_length: Length = 0.2


MAX_CAMERA_PIXELS = 2048 * 2048  # per image: more is refused (memory and render time)
Modality = Literal["rgb", "depth", "segmentation"]


class CameraMount(_Strict, kw_only=True):
    """A camera carried by a robot: its pose is the link's pose times the camera's offset."""

    arm: str  # the arm device
    link: str  # a link of the arm's model, e.g. "panda_hand"


class CameraNoise(_Strict, kw_only=True):
    rgb: Annotated[float, msgspec.Meta(ge=0, le=255)] = 0.0  # std dev of RGB noise, 0-255 levels
    depth: Annotated[float, msgspec.Meta(ge=0, le=10)] = 0.0  # m, std dev of depth noise
    depth_quantum: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0  # m; depth rounded to it


class CameraConfig(_Strict, tag="camera", tag_field="kind", kw_only=True):
    """A pinhole camera looking along its optical z axis (x right, y down in the image).

    Fixed: at `position`, looking at `look_at`. Mounted (`mount`): `position` and `rpy` are
    the optical frame's offset in the link's frame (rpy = 0: looking along the link's +z).
    """

    id: DeviceId
    mount: CameraMount | None = None
    position: Vec3
    look_at: Vec3 | None = None  # fixed cameras: the point in the image centre
    rpy: Annotated[list[Yaw], msgspec.Meta(min_length=3, max_length=3)] = msgspec.field(
        default_factory=lambda: [0.0, 0.0, 0.0]
    )  # rad, mounted cameras: roll, pitch, yaw of the optical frame in the link's frame
    width: Annotated[int, msgspec.Meta(ge=8, le=4096)] = 320  # pixels
    height: Annotated[int, msgspec.Meta(ge=8, le=4096)] = 240
    fov: Annotated[float, msgspec.Meta(gt=0, lt=180)] = 60.0  # degrees, vertical field of view
    near: Annotated[float, msgspec.Meta(gt=0, le=MAX_CELL)] = 0.05  # m, clipping planes
    far: Annotated[float, msgspec.Meta(gt=0, le=MAX_CELL)] = 10.0
    rate: Annotated[float, msgspec.Meta(gt=0, le=1000)] = 10.0  # frames per simulated second
    modalities: Annotated[list[Modality], msgspec.Meta(min_length=1, max_length=3)] = msgspec.field(
        default_factory=lambda: ["rgb"]
    )
    encoding: Literal["raw", "png", "jpeg"] = "raw"  # how RGB goes on the wire (depth, masks: raw)
    jpeg_quality: Annotated[int, msgspec.Meta(ge=1, le=100)] = 90
    noise: CameraNoise | None = None


class InspectionConfig(_Strict, tag="inspection", tag_field="kind", kw_only=True):
    """Takes a picture of each part that blocks `eye` with `camera` and asks the inspector to
    pass or reject it. `inspector`: "color" (built in: a part whose mean colour is nearer its
    type's defect_color than its color, or further than `tolerance` from its color when the
    type has no defect_color, is rejected) or "module:function", a Python callable
    f(rgb, mask, part) -> bool | "pass" | "reject"; or "external": a client over the protocol
    hears `inspection_requested`, looks with get_image and sends the device's `verdict`
    command within `timeout` (simulated s); a Python callable must answer within
    `call_timeout` (wall-clock s). An inspector that fails or is silent, or a part the camera
    does not see, gets the `on_error` verdict and an event saying why."""

    id: DeviceId
    camera: str
    eye: str
    inspector: Annotated[str, msgspec.Meta(max_length=200)] = "color"
    tolerance: Annotated[float, msgspec.Meta(gt=0, le=2)] = 0.25  # RGB distance (0-1 scale)
    on_error: Literal["pass", "reject"] = "reject"
    timeout: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 5.0  # s (simulated): external
    # s (wall clock): a Python inspector that takes longer gets the on_error verdict
    call_timeout: Annotated[float, msgspec.Meta(gt=0, le=60)] = 2.0


class DockConfig(_Strict, tag="dock", tag_field="kind", kw_only=True):
    """A place where a mobile robot (AMR) parks so a cell's arm can load or unload its deck.

    An AMR docks from the route network's `node` (the approach node) by driving straight to
    `position` at creep speed, ending with heading `yaw`; it undocks back to that node.
    """

    id: DeviceId
    position: Vec3  # floor point under the deck centre of a docked AMR
    yaw: Yaw = 0.0  # rad, heading of a docked AMR
    node: str  # the approach node in [network]
    tolerance: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.03  # m: docked within this


class SafetyFieldConfig(_Strict, kw_only=True):
    """A fan of rays ahead of the AMR (a safety laser scanner): something inside the warning
    field slows it to `warning_speed`, inside the protective field it stops."""

    rays: Annotated[int, msgspec.Meta(ge=3, le=64)] = 11
    angle: Annotated[float, msgspec.Meta(gt=0, le=math.pi)] = 1.6  # rad, the fan's full width
    height: Annotated[float, msgspec.Meta(gt=0, le=2)] = 0.1  # m above the floor
    protective: Annotated[float, msgspec.Meta(gt=0, le=20)] = 0.35  # m beyond the bumper: stop
    warning: Annotated[float, msgspec.Meta(gt=0, le=50)] = 1.2  # m beyond the bumper: slow
    warning_speed: Annotated[float, msgspec.Meta(gt=0, le=10)] = 0.3  # m/s


class BatteryConfig(_Strict, kw_only=True):
    capacity: Annotated[float, msgspec.Meta(gt=0, le=1e6)] = 1000.0  # Wh
    initial: Probability = 1.0  # state of charge at start, 0-1
    drive_energy: Annotated[float, msgspec.Meta(ge=0, le=1e3)] = 0.06  # Wh per m driven empty
    payload_energy: Annotated[float, msgspec.Meta(ge=0, le=1e3)] = 0.002  # Wh per m per kg
    idle_power: Annotated[float, msgspec.Meta(ge=0, le=1e5)] = 20.0  # W drawn while switched on
    low: Probability = 0.25  # below this the fleet manager sends it to charge
    full: Probability = 0.95  # charging ends here


class AmrConfig(_Strict, tag="amr", tag_field="kind", kw_only=True):
    """An autonomous mobile robot: a chassis that drives on the floor along the route network,
    carrying one part on its deck."""

    id: DeviceId
    start: str  # a node of [network], or a dock (the AMR starts docked there)
    size: Size3 = msgspec.field(default_factory=lambda: [0.8, 0.56, 0.7])  # m: L, W, deck height
    mass: Annotated[float, msgspec.Meta(gt=0, le=10_000)] = 120.0  # kg
    max_speed: Annotated[float, msgspec.Meta(gt=0, le=10)] = 1.0  # m/s
    max_acceleration: Annotated[float, msgspec.Meta(gt=0, le=50)] = 0.5  # m/s^2
    max_deceleration: Annotated[float, msgspec.Meta(gt=0, le=50)] = 0.8  # m/s^2, braking
    turn_rate: Annotated[float, msgspec.Meta(gt=0, le=20)] = 1.0  # rad/s
    turn_acceleration: Annotated[float, msgspec.Meta(gt=0, le=100)] = 2.0  # rad/s^2
    dock_speed: Annotated[float, msgspec.Meta(gt=0, le=2)] = 0.15  # m/s, docking and undocking
    max_payload: Annotated[float, msgspec.Meta(gt=0, le=10_000)] = 10.0  # kg
    deck_friction: NonNegative = 0.6
    blocked_timeout: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 20.0  # s stopped: fail
    safety: SafetyFieldConfig = msgspec.field(default_factory=SafetyFieldConfig)
    battery: BatteryConfig = msgspec.field(default_factory=BatteryConfig)
    color: Color = msgspec.field(default_factory=lambda: [0.95, 0.75, 0.1, 1.0])


# Every device kind is one member of this union (its tag names the kind and the module in
# twin/devices/ that builds it). The order is the build order: what others are mounted on first.
DeviceConfig = (
    ConveyorConfig
    | StationConfig
    | ArmConfig
    | PhotoEyeConfig
    | SourceConfig
    | SinkConfig
    | CameraConfig
    | InspectionConfig
    | DockConfig
    | AmrConfig
)


class BeltRule(_Strict, kw_only=True):
    conveyor: str
    stop_eye: str | None = None  # the belt stops while this eye is blocked (accumulation)
    stop_delay: NonNegative = 0.0  # s the eye must be blocked before the belt stops (a TON timer)


class PickFrom(_Strict, kw_only=True):
    eye: str | None = None  # a photo-eye on a conveyor: pick the part that blocks it
    station: str | None = None  # a station whose part is finished
    dock: str | None = None  # a dock: pick the part off the deck of the AMR docked there


class PlaceTo(_Strict, kw_only=True):
    station: str | None = None  # an idle, empty station
    conveyor: str | None = None  # a point on a conveyor ...
    offset: Offset = 0.0  # ... this far along it from its centre
    clear_eye: str | None = None  # ... placed only while this eye is clear
    dock: str | None = None  # on the empty deck of the AMR docked there


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
    distance: Annotated[float, msgspec.Meta(gt=0, le=MAX_CELL)] = 3.2
    yaw: Annotated[float, msgspec.Meta(ge=-360, le=360)] = 40.0  # degrees, as pybullet's camera
    pitch: Annotated[float, msgspec.Meta(ge=-90, le=90)] = -35.0  # degrees
    width: Annotated[int, msgspec.Meta(ge=16, le=4096)] = 1024
    height: Annotated[int, msgspec.Meta(ge=16, le=4096)] = 640


class PartPoolConfig(_Strict, kw_only=True):
    """How many parts the line holds at once, and how parts that leave it are found."""

    capacity: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000  # parts on the line at once
    lost_check_period: Annotated[float, msgspec.Meta(gt=0, le=10)] = 0.1  # s between looks
    cell_margin: Annotated[float, msgspec.Meta(ge=0, le=MAX_SIZE)] = 0.5  # m around the devices


class NodeConfig(_Strict, kw_only=True):
    id: DeviceId
    position: Annotated[list[Coordinate], msgspec.Meta(min_length=2, max_length=2)]  # x, y


class LaneConfig(_Strict, kw_only=True):
    """A straight lane between two nodes; one-way lanes run from `from` to `to`."""

    from_: str = msgspec.field(name="from")
    to: str
    two_way: bool = True
    speed: Annotated[float, msgspec.Meta(gt=0, le=10)] | None = None  # m/s limit on this lane


class ChargerConfig(_Strict, kw_only=True):
    id: DeviceId
    node: str  # an AMR parked on this node can charge
    power: Annotated[float, msgspec.Meta(gt=0, le=1e6)] = 800.0  # W


class NetworkConfig(_Strict, kw_only=True):
    """The AMR route network: nodes on the floor joined by straight lanes."""

    nodes: Annotated[list[NodeConfig], msgspec.Meta(min_length=1)]
    lanes: list[LaneConfig] = msgspec.field(default_factory=list)
    chargers: list[ChargerConfig] = msgspec.field(default_factory=list)


class RoutingStep(_Strict, kw_only=True):
    cell: str  # a cell kind (any cell of that kind) or a cell id
    cycle_time: Positive  # s of processing per part at the cell's station


class ProductConfig(_Strict, kw_only=True):
    type: str  # a part type
    routing: Annotated[list[RoutingStep], msgspec.Meta(min_length=1)]


class OrderConfig(_Strict, kw_only=True):
    id: DeviceId
    product: str  # a product's part type
    quantity: Annotated[int, msgspec.Meta(ge=1, le=100_000)]
    due: NonNegative  # s of simulated time
    priority: int = 0  # higher first
    release: NonNegative = 0.0  # s: not released before


class ArrivalsConfig(_Strict, kw_only=True):
    """Orders that arrive at random (seeded): exponential gaps, uniform quantity."""

    interval: Positive  # s, mean time between arrivals
    quantity: Annotated[
        list[Annotated[int, msgspec.Meta(ge=1, le=100_000)]],
        msgspec.Meta(min_length=2, max_length=2),
    ] = msgspec.field(default_factory=lambda: [1, 3])  # min, max parts per order
    due_in: Positive = 3600.0  # s after arrival
    products: Annotated[list[PartMix], msgspec.Meta(min_length=1)]  # product type and weight
    count: Annotated[int, msgspec.Meta(ge=0)] = 0  # arrivals in all; 0 = no limit
    first_at: NonNegative = 0.0  # s


class ReleaseConfig(_Strict, kw_only=True):
    policy: Literal["push", "conwip"] = "push"  # push: on arrival; conwip: while WIP < wip_cap
    wip_cap: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 6  # parts in the factory (conwip)


class OrdersConfig(_Strict, kw_only=True):
    products: Annotated[list[ProductConfig], msgspec.Meta(min_length=1)]
    book: list[OrderConfig] = msgspec.field(default_factory=list)
    arrivals: ArrivalsConfig | None = None
    release: ReleaseConfig = msgspec.field(default_factory=ReleaseConfig)


class CellConfig(_Strict, kw_only=True):
    """One cell of a factory: which of the line's devices belong to it and how parts enter
    and leave it (filled when a factory file is expanded; see twin.factory)."""

    id: DeviceId
    kind: str  # e.g. "mill": what routings name
    role: Literal["process", "receiving", "shipping"] = "process"
    devices: list[str] = msgspec.field(default_factory=list)  # device ids of this cell
    in_dock: str | None = None  # where AMRs bring its parts
    out_dock: str | None = None  # where AMRs take its parts away
    stations: list[str] = msgspec.field(default_factory=list)
    source: str | None = None  # receiving: the source that releases parts for orders
    position: Annotated[list[Coordinate], msgspec.Meta(min_length=2, max_length=2)] = msgspec.field(
        default_factory=lambda: [0.0, 0.0]
    )
    yaw: Yaw = 0.0
    footprint: Annotated[list[Coordinate], msgspec.Meta(min_length=4, max_length=4)] = (
        msgspec.field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])
    )  # x_min, y_min, x_max, y_max on the floor


class FleetConfig(_Strict, kw_only=True):
    """How the built-in fleet manager runs the AMRs."""

    dispatch: Literal["nearest", "longest_idle"] = "nearest"
    charge_below: Probability | None = None  # default: each AMR's battery.low
    park: list[str] = msgspec.field(default_factory=list)  # nodes where idle AMRs wait


class FactorySpec(_Strict, kw_only=True):
    """What makes a line a factory: its cells, fleet rules and orders."""

    cells: Annotated[list[CellConfig], msgspec.Meta(min_length=1)]
    fleet: FleetConfig = msgspec.field(default_factory=FleetConfig)
    orders: OrdersConfig | None = None


class LineConfig(_Strict, kw_only=True):
    name: str
    physics: Physics = msgspec.field(default_factory=Physics)
    part_pool: PartPoolConfig = msgspec.field(default_factory=PartPoolConfig)
    part_types: Annotated[list[PartType], msgspec.Meta(min_length=1)]
    devices: Annotated[list[DeviceConfig], msgspec.Meta(min_length=1)]
    controller: SequencerConfig | None = None
    estops: list[ScriptedWindow] = msgspec.field(default_factory=list)  # e-stop, then reset
    view: ViewConfig = msgspec.field(default_factory=ViewConfig)
    network: NetworkConfig | None = None  # AMR routes (twin.routes)
    factory: FactorySpec | None = None  # cells, fleet and orders (twin.factory)
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
    """Add the device id to a 'devices[3].x' path so the user finds the entry:
    'devices[3] (device 'mill').x'."""
    m = re.match(r"devices\[(\d+)\]", path)
    if not m:
        return path
    try:
        dev_id = raw["devices"][int(m.group(1))].get("id")
    except (KeyError, IndexError, AttributeError, TypeError):
        return path
    if not dev_id:
        return path
    return f"{m.group(0)} (device '{dev_id}'){path[m.end() :]}"


def read_config_file(path: str | Path, what: str = "config") -> bytes:
    """The bytes of a config file: a regular file of at most MAX_CONFIG_BYTES, read once.

    Devices and pipes are refused before reading, and no more than the cap is ever read (a
    /proc file looks regular), so `twin check /dev/zero` answers at once instead of reading
    until memory runs out.
    """
    path = Path(path)
    try:
        # look before opening: opening a FIFO for reading would wait for a writer
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ConfigError(f"{path}: cannot read {what}: not a regular file")
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # swapped since we looked
                raise ConfigError(f"{path}: cannot read {what}: not a regular file")
            data = f.read(MAX_CONFIG_BYTES + 1)  # /proc files report size 0: read, then measure
    except OSError as e:
        raise ConfigError(f"{path}: cannot read {what}: {e.strerror or e}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: cannot read {what}: larger than {MAX_CONFIG_BYTES // 2**20} MiB"
        )
    return data


def load(path: str | Path) -> LineConfig:
    """Read and validate a line or factory config; raise ConfigError naming file, field and
    expectation."""
    return loads(read_config_file(path), str(path))


def decode_toml(data: bytes, source: str) -> Any:
    """Parse TOML text; too large, too deeply nested or malformed text is a ConfigError."""
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_CONFIG_BYTES // 2**20} MiB")
    try:
        return msgspec.toml.decode(data)
    except msgspec.DecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None
    except RecursionError:  # the TOML parser recurses once per nested array or table
        raise ConfigError(f"{source}: not valid TOML: arrays or tables nested too deeply") from None


def loads(
    data: bytes | str, source: str = "<string>", base_dir: str | Path | None = None
) -> LineConfig:
    """Validate config text; `source` names it in errors.

    A factory file (top-level `[[cells]]`, see twin.factory.layout) is expanded into one
    line config; its cell templates are found relative to `base_dir` (default: the
    directory of `source`). Everything building the line relies on is checked here, the
    robot models included (see twin.sim.models), so a config that loads always builds.
    """
    if isinstance(data, str):
        data = data.encode()
    raw = decode_toml(data, source)
    if isinstance(raw, dict) and "source_path" in raw:
        raise ConfigError(f"{source}: source_path: unknown field")
    _check_finite(raw, source)
    from twin.factory.layout import expand, is_factory

    factory_file = is_factory(raw)
    if factory_file:
        cfg = expand(raw, source, base_dir)
    else:
        try:
            cfg = msgspec.convert(raw, LineConfig)
        except msgspec.ValidationError as e:
            field, problem = _field_path(str(e))
            where = _device_label(raw, field) if field else "(top level)"
            raise ConfigError(f"{source}: {where}: {problem}") from None
    cfg.source_path = source
    try:
        _check_references(cfg, source)
    except ConfigError as e:
        # a factory file writes cells, fleet and orders at the top level, not under factory
        head = f"{source}: factory."
        if factory_file and str(e).startswith(head):
            raise ConfigError(f"{source}: {str(e)[len(head) :]}") from None
        raise
    _check_models(cfg, source)
    _check_reach(cfg, source)
    return cfg


def _check_finite(raw: Any, source: str) -> None:
    """Every number in the file is finite: NaN or infinity anywhere is an error naming it.

    Walks the decoded tree with an explicit stack: its depth is the file's nesting.
    """
    stack: list[tuple[Any, str]] = [(raw, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, float):
            if not math.isfinite(value):
                where = _device_label(raw, path) if path else "(top level)"
                raise ConfigError(f"{source}: {where}: {value} is not a finite number")
        elif isinstance(value, dict):
            stack.extend((v, f"{path}.{k}" if path else str(k)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(value))


def _listing(names: Iterable[str], limit: int = 12) -> str:
    """A short list of known names for an error message, however many there are."""
    ordered = sorted(names)
    shown = ", ".join(repr(n) for n in ordered[:limit])
    more = len(ordered) - limit
    return f"[{shown}, ... {more} more]" if more > 0 else f"[{shown}]"


def _check_references(cfg: LineConfig, source: str) -> None:
    def fail(field: str, problem: str) -> None:
        raise ConfigError(f"{source}: {field}: {problem}")

    types: set[str] = set()
    for i, ptype in enumerate(cfg.part_types):
        if ptype.name in types:
            fail(f"part_types[{i}].name", f"duplicate part type '{ptype.name}'")
        types.add(ptype.name)

    by_id: dict[str, DeviceConfig] = {}
    for i, d in enumerate(cfg.devices):
        if d.id == "line":
            fail(f"devices[{i}].id", "'line' is reserved for the line itself")
        if d.id in by_id:
            fail(f"devices[{i}].id", f"duplicate device id '{d.id}'")
        by_id[d.id] = d

    def expect(field: str, ref: str | None, kind: type, what: str) -> None:
        if ref is None:
            return
        if ref not in by_id:
            fail(
                field, f"refers to {what} '{ref}', which is not defined (known: {_listing(by_id)})"
            )
        found = type(by_id[ref])
        if found is not kind:
            fail(field, f"'{ref}' is a {found.__struct_config__.tag}, expected a {what}")

    for i, d in enumerate(cfg.devices):
        here = f"devices[{i}] (device '{d.id}')"
        if isinstance(d, (SourceConfig, SinkConfig)):
            if (d.conveyor is None) == (d.dock is None):
                fail(f"{here}.conveyor", "give exactly one of 'conveyor' or 'dock'")
            if d.dock is not None:
                expect(f"{here}.dock", d.dock, DockConfig, "dock")
        if isinstance(d, (SourceConfig, PhotoEyeConfig, SinkConfig)) and d.conveyor is not None:
            expect(f"{here}.conveyor", d.conveyor, ConveyorConfig, "conveyor")
            belt = by_id[d.conveyor]
            assert isinstance(belt, ConveyorConfig)
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
                        f"unknown part type '{mix.type}' (known: {_listing(types)})",
                    )
        if isinstance(d, PhotoEyeConfig):
            for j, f in enumerate(d.faults):
                if f.end <= f.start:
                    fail(f"{here}.faults[{j}].end", f"{f.end} s is not after start {f.start} s")
                if f.kind in ("dropout", "noise") and f.rate <= 0:
                    fail(f"{here}.faults[{j}].rate", f"a {f.kind} fault needs rate > 0 (per s)")
                if f.kind == "dropout" and f.duration <= 0:
                    fail(f"{here}.faults[{j}].duration", "a dropout needs duration > 0 (s)")
        if isinstance(d, ConveyorConfig) and d.speed > d.max_speed:
            fail(f"{here}.speed", f"{d.speed} m/s exceeds max_speed {d.max_speed} m/s")
        if isinstance(d, ConveyorConfig) and d.zones > 1:
            # a zone holds its largest part between the previous zone's slab (which reaches
            # into it) and its own eye (set back from its end by as much, plus 3 cm)
            reach = 0.02 + d.max_speed * cfg.physics.timestep * 2 + 0.01
            largest = max(max(t.size[:2]) for t in cfg.part_types)
            need = largest + 2 * reach + 0.03
            if d.length / d.zones < need:
                fail(
                    f"{here}.zones",
                    f"{d.zones} zones of {d.length / d.zones:.3f} m are too short for parts of "
                    f"{largest} m at max_speed {d.max_speed} m/s (a zone needs {need:.3f} m)",
                )
        if isinstance(d, CameraConfig):
            _check_camera(d, here, fail, expect)
        if isinstance(d, InspectionConfig):
            expect(f"{here}.camera", d.camera, CameraConfig, "camera")
            expect(f"{here}.eye", d.eye, PhotoEyeConfig, "photoeye")
            cam = by_id[d.camera]
            assert isinstance(cam, CameraConfig)
            if not {"rgb", "segmentation"} <= set(cam.modalities):
                fail(
                    f"{here}.camera", f"camera '{cam.id}' needs the rgb and segmentation modalities"
                )
            if d.inspector not in ("color", "external"):
                problem = _inspector_problem(d.inspector)
                if problem:
                    fail(f"{here}.inspector", problem)
        if isinstance(d, StationConfig):
            for name in d.cycle_times:
                if name not in types:
                    fail(
                        f"{here}.cycle_times.{name}",
                        f"unknown part type '{name}' (known: {_listing(types)})",
                    )
        if isinstance(d, StationConfig) and (d.mtbf > 0) != (d.mttr > 0):
            fail(f"{here}.mttr", "give both mtbf and mttr (> 0) for random breakdowns, or neither")

    from twin.factory.checks import check_factory
    from twin.routes import check_network

    check_network(cfg, fail)  # nodes, lanes, chargers, docks and AMR starts
    check_factory(cfg, fail)  # cells, fleet and orders

    ctl = cfg.controller
    if ctl is None:
        return
    for i, rule in enumerate(ctl.belts):
        expect(f"controller.belts[{i}].conveyor", rule.conveyor, ConveyorConfig, "conveyor")
        expect(f"controller.belts[{i}].stop_eye", rule.stop_eye, PhotoEyeConfig, "photoeye")
    for i, t in enumerate(ctl.transfers):
        here = f"controller.transfers[{i}]"
        expect(f"{here}.arm", t.arm, ArmConfig, "arm")
        picks = (t.pick.eye, t.pick.station, t.pick.dock)
        if sum(x is not None for x in picks) != 1:
            fail(f"{here}.pick", "give exactly one of 'eye', 'station' or 'dock'")
        expect(f"{here}.pick.eye", t.pick.eye, PhotoEyeConfig, "photoeye")
        expect(f"{here}.pick.station", t.pick.station, StationConfig, "station")
        expect(f"{here}.pick.dock", t.pick.dock, DockConfig, "dock")
        places = (t.place.station, t.place.conveyor, t.place.dock)
        if sum(x is not None for x in places) != 1:
            fail(f"{here}.place", "give exactly one of 'station', 'conveyor' or 'dock'")
        expect(f"{here}.place.station", t.place.station, StationConfig, "station")
        expect(f"{here}.place.conveyor", t.place.conveyor, ConveyorConfig, "conveyor")
        expect(f"{here}.place.clear_eye", t.place.clear_eye, PhotoEyeConfig, "photoeye")
        expect(f"{here}.place.dock", t.place.dock, DockConfig, "dock")


def _inspector_problem(spec: str) -> str:
    """Why "module:function" does not name a callable (empty if it does)."""
    import importlib

    module, _, name = spec.partition(":")
    if not module or not name:
        return f"'{spec}' is neither 'color', 'external' nor 'module:function'"
    try:
        fn = getattr(importlib.import_module(module), name)
    except Exception as e:  # any failure to import user code is a config error
        return f"cannot load '{spec}': {type(e).__name__}: {e}"
    return "" if callable(fn) else f"'{spec}' is not callable"


def _check_camera(cam: CameraConfig, here: str, fail: Any, expect: Any) -> None:
    """What ranges alone cannot say: clipping planes in order, a sane pixel count, a pose."""
    if cam.far <= cam.near:
        fail(f"{here}.far", f"{cam.far} m is not beyond near {cam.near} m")
    pixels = cam.width * cam.height
    if pixels > MAX_CAMERA_PIXELS:
        fail(
            f"{here}.width",
            f"{cam.width}x{cam.height} = {pixels} pixels is more than the limit "
            f"{MAX_CAMERA_PIXELS}",
        )
    if len(set(cam.modalities)) != len(cam.modalities):
        fail(f"{here}.modalities", f"{cam.modalities} names a modality twice")
    if cam.mount is None:
        if cam.look_at is None:
            fail(f"{here}.look_at", "a fixed camera needs look_at (or a mount on an arm link)")
        elif math.dist(cam.look_at, cam.position) < 1e-6:
            fail(f"{here}.look_at", "is the camera's own position: it looks nowhere")
    else:
        if cam.look_at is not None:
            fail(f"{here}.look_at", "a mounted camera is aimed by rpy in its link's frame")
        expect(f"{here}.mount.arm", cam.mount.arm, ArmConfig, "arm")


def _check_reach(cfg: LineConfig, source: str) -> None:
    """Every transfer's pick and place points are within its arm's reach (from the shoulder
    at the home pose, as the arm measures it): the arm refuses a command beyond it, so such a
    line could never move a part."""
    from twin.geometry import pick_point, place_point
    from twin.sim.models import shoulder_offset

    for i, t in enumerate(cfg.controller.transfers if cfg.controller else []):
        arm = cfg.device(t.arm)
        assert isinstance(arm, ArmConfig)
        dx, dy, dz = shoulder_offset(arm.model, arm.held_joints, arm.home)
        c, s = math.cos(arm.yaw), math.sin(arm.yaw)
        x, y, z = arm.position
        shoulder = (x + c * dx - s * dy, y + s * dx + c * dy, z + arm.pedestal_height + dz)
        ends = (
            ("pick", pick_point(cfg, t), t.pick.eye or t.pick.station or t.pick.dock),
            ("place", place_point(cfg, t), t.place.station or t.place.conveyor or t.place.dock),
        )
        for end, point, device in ends:
            distance = math.dist(point, shoulder)
            if distance > arm.reach:
                at = ", ".join(f"{v:.3f}" for v in point)
                raise ConfigError(
                    f"{source}: controller.transfers[{i}].{end}: the {end} point [{at}] at "
                    f"'{device}' is {distance:.3f} m from the shoulder of arm '{arm.id}', "
                    f"beyond its reach of {arm.reach:g} m (move the arm or the {end} point "
                    "closer, or raise the arm's reach if its model allows)"
                )


def _check_models(cfg: LineConfig, source: str) -> None:
    """Each arm's model is a robot file the twin may load, with the links and joints the
    config names; the model is loaded (once per process) in a headless client to see."""
    from twin.sim.models import ModelError, check_arm_model

    for i, d in enumerate(cfg.devices):
        if isinstance(d, ArmConfig):
            try:
                check_arm_model(d.model, d.tool_link, d.held_joints, d.home)
            except ModelError as e:
                raise ConfigError(
                    f"{source}: devices[{i}] (device '{d.id}').{e.field}: {e}"
                ) from None
    arms = {d.id: d for d in cfg.devices if isinstance(d, ArmConfig)}
    for i, d in enumerate(cfg.devices):
        if isinstance(d, CameraConfig) and d.mount is not None:
            arm = arms[d.mount.arm]
            info = check_arm_model(arm.model, arm.tool_link, arm.held_joints, arm.home)
            if d.mount.link not in info.links:
                raise ConfigError(
                    f"{source}: devices[{i}] (device '{d.id}').mount.link: model "
                    f"'{arm.model}' of arm '{arm.id}' has no link '{d.mount.link}' "
                    f"(links: {_listing(info.links)})"
                )
