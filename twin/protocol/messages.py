"""Wire messages: requests, replies and telemetry as small tagged structs.

Every message is a MessagePack map whose "type" field names its kind. New fields are only
ever added with defaults, so older and newer peers keep understanding each other. The JSON
Schema of every message is generated from these structs (see `json_schema`), never by hand.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

PROTOCOL_VERSION = 2  # 2: control leases, the process image

RequestId = int | str | None  # echoed back unchanged so a client can match replies
MAX_STEPS_PER_REQUEST = 10_000  # keeps one request from starving the others for long
MAX_COMMANDS_PER_STEP = 64
MAX_WATCHDOG_S = 3600.0
MAX_IMAGE_ENTRIES = 256  # inputs, and outputs, of one process image

StepCount = Annotated[int, msgspec.Meta(ge=1, le=MAX_STEPS_PER_REQUEST)]
WatchdogSeconds = Annotated[float, msgspec.Meta(gt=0, le=MAX_WATCHDOG_S)]
Seed = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Name = Annotated[str, msgspec.Meta(max_length=128)]
Lease = Annotated[str, msgspec.Meta(max_length=64)]


# requests ------------------------------------------------------------------------------
class _Request(msgspec.Struct, tag_field="type", kw_only=True, forbid_unknown_fields=True):
    id: RequestId = None
    # the token take_control returned: required by every request that changes the line;
    # on any other request from the holder it counts as a sign of life
    lease: Lease | None = None


class Hello(_Request, tag="hello"):
    """Handshake: the client states its protocol version and an optional name."""

    protocol: int = PROTOCOL_VERSION
    client: Name = ""


class Describe(_Request, tag="describe"):
    """Devices with their signals and commands (units, limits) plus the JSON Schema."""


class GetState(_Request, tag="get_state"):
    """Signals of every device, part poses and counts, now."""


class Command(_Request, tag="command"):
    """One device command; `args` is checked against the command's declared arguments."""

    device: Name
    command: Name
    args: dict[str, Any] = {}


class StepCommand(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A device command carried by a `step` request: the fields of a `command` request."""

    device: Name
    command: Name
    args: dict[str, Any] = {}


class Step(_Request, tag="step"):
    """Advance the line by `n` steps (lockstep mode only); the reply is the state after.

    `commands` are carried out first, in order, each as a `command` request would be: one
    round trip per control cycle. A command that does not exist or has bad arguments fails
    the whole request before anything changes; one refused in the line's current state
    (busy, illegal_state, estopped...) is listed in the reply's `refused` and the rest go on.
    """

    n: StepCount = 1
    commands: Annotated[list[StepCommand], msgspec.Meta(max_length=MAX_COMMANDS_PER_STEP)] = []


class TakeControl(_Request, tag="take_control"):
    """Become the one client allowed to change the line; optional watchdog in seconds.
    The reply (`control`) carries the lease token every line-changing request must carry."""

    watchdog: WatchdogSeconds | None = None


class ReleaseControl(_Request, tag="release_control"):
    pass


class Heartbeat(_Request, tag="heartbeat"):
    """Does nothing but count as activity for the controller's watchdog."""


class Pause(_Request, tag="pause"):
    pass


class Resume(_Request, tag="resume"):
    pass


class Reset(_Request, tag="reset"):
    """Rebuild the line from its config; `seed` overrides the seed the server started with."""

    seed: Seed | None = None


class GetKpis(_Request, tag="get_kpis"):
    """Production KPIs now: throughput, WIP, lead time, OEE per station and line, bottleneck."""


class DeclareImage(_Request, tag="declare_image"):
    """Declare the process image: the signals read ("device.signal") and the commands written
    ("device.command") each cycle, in this order. The reply is the layout; cycles then go as
    `ImageCycle` arrays (see docs/protocol.md, Process image)."""

    inputs: Annotated[list[Name], msgspec.Meta(max_length=MAX_IMAGE_ENTRIES)] = []
    outputs: Annotated[list[Name], msgspec.Meta(max_length=MAX_IMAGE_ENTRIES)] = []


class GetGenealogy(_Request, tag="get_genealogy"):
    """The record of one part (`part` given), of one order and its parts (`order` given, a
    factory), or of every part and order the server remembers."""

    part: Annotated[int, msgspec.Meta(ge=1)] | None = None
    order: Name | None = None


class GetImage(_Request, tag="get_image"):
    """One frame of a camera now, in one of its modalities; the reply is a `camera` message.
    For lockstep controllers: the image shows the line as the last step left it."""

    camera: Name
    modality: Name = "rgb"


class Estop(_Request, tag="estop"):
    reason: Name = ""


class EstopReset(_Request, tag="estop_reset"):
    pass


Request = (
    Hello
    | Describe
    | GetState
    | Command
    | Step
    | TakeControl
    | ReleaseControl
    | Heartbeat
    | Pause
    | Resume
    | Reset
    | Estop
    | EstopReset
    | GetKpis
    | GetGenealogy
    | DeclareImage
    | GetImage
)
REQUEST_TYPES: tuple[type[_Request], ...] = Request.__args__  # type: ignore[attr-defined]
REQUEST_TAGS: frozenset[str] = frozenset(str(t.__struct_config__.tag) for t in REQUEST_TYPES)

# requests any client may send; all others need control (see docs/protocol.md)
OPEN_REQUESTS: tuple[type[_Request], ...] = (
    Hello,
    Describe,
    GetState,
    TakeControl,
    Heartbeat,
    Estop,
    GetKpis,
    GetGenealogy,
    GetImage,
)

# requests that only read: all an observer-role client may send (see docs/protocol.md, Roles)
READ_ONLY_REQUESTS: tuple[type[_Request], ...] = (
    Hello,
    Describe,
    GetState,
    Heartbeat,
    GetKpis,
    GetGenealogy,
    GetImage,
)


# replies -------------------------------------------------------------------------------
class _Reply(msgspec.Struct, tag_field="type", kw_only=True):
    version: int = PROTOCOL_VERSION
    id: RequestId = None
    step: int = 0  # the line's step index when the reply was made
    time: float = 0.0  # s of simulated time when the reply was made


class HelloReply(_Reply, tag="hello"):
    protocol: int = PROTOCOL_VERSION
    server: str = ""
    line: str = ""
    mode: str = ""
    timestep: float = 0.0
    seed: int = 0
    builtin_controller: bool = False
    builtin_fleet: bool = False  # a factory whose AMRs the built-in fleet manager drives
    controlled: bool = False  # someone holds control
    you_control: bool = False
    role: str = "controller"  # "observer" for a Curve client with an observer key
    lease_timeout: float = 0.0  # s of silence after which a holder without watchdog loses control


# the parts of Line.describe() a describe reply passes on as they are
DESCRIBE_EXTRAS = (
    "conventions",
    "part_types",
    "teach_points",
    "network",
    "packml",
    "recipes",
    "events",
    "signals_schema",
)


class DescribeReply(_Reply, tag="describe"):
    line: str
    mode: str
    timestep: float
    seed: int
    devices: list[dict[str, Any]]
    requests: list[str]
    open_requests: list[str]
    max_message_bytes: int
    max_steps_per_request: int
    schema: dict[str, Any]
    # where things are and how to drive them (see twin.geometry and twin.description)
    conventions: dict[str, str] = {}
    part_types: list[dict[str, Any]] = []
    teach_points: list[dict[str, Any]] = []
    network: dict[str, Any] | None = None  # the AMR route network (twin.routes), if any
    packml: dict[str, Any] = {}
    recipes: dict[str, list[str]] = {}
    events: list[dict[str, Any]] = []
    signals_schema: dict[str, Any] = {}


class State(_Reply, tag="state"):
    """The full line state: the reply to get_state and step, and the `state` telemetry."""

    mode: str = ""
    paused: bool = False
    estopped: bool = False
    controlled: bool = False
    signals: dict[str, dict[str, Any]] = {}
    parts: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    # the reply to a step with commands: those refused in the line's state, each with its
    # index, device, command, code and message (always empty elsewhere)
    refused: list[dict[str, Any]] = []


class Ok(_Reply, tag="ok"):
    """Success with nothing else to say; `detail` is for humans."""

    detail: str = ""


class Error(_Reply, tag="error"):
    code: str
    message: str


class Kpis(_Reply, tag="kpis"):
    """The reply to get_kpis and the `kpi` telemetry (see docs/protocol.md for each field)."""

    kpis: dict[str, Any] = {}


class Genealogy(_Reply, tag="genealogy"):
    """Part records: id, type, spawned, visits [{station, entered, left, processed}],
    completed, quality ("good"/"reject"), defect, order, transports; and (a factory) order
    records: id, product, quantity, due, arrived, started, completed, lead_time, late, parts."""

    parts: list[dict[str, Any]] = []
    orders: list[dict[str, Any]] = []


class ControlReply(_Reply, tag="control"):
    """The reply to take_control, and to reset (which replaces the lease)."""

    lease: str
    lease_timeout: float  # s of silence after which the holder loses control
    watchdog: float | None = None  # s; silence beyond it also safe-stops the line
    detail: str = ""


class ImageLayout(_Reply, tag="image_layout"):
    """The declared process image: each input's and output's position, type and unit."""

    layout: int  # carried by every cycle; a new declaration or a reset replaces it
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []


class CameraFrame(_Reply, tag="camera"):
    """One camera image in one modality: the reply to get_image and the `camera/<id>/<modality>`
    telemetry (see docs/protocol.md, Cameras). `pose` is the optical frame (x right, y down,
    z forward) in the world: position [m] and orientation [x, y, z, w]."""

    camera: str
    modality: str  # "rgb", "depth" (m) or "segmentation" (part ids, 0: no part)
    encoding: str  # "rgb8", "png", "jpeg", "32FC1" or "32SC1"
    width: int
    height: int
    pose: dict[str, list[float]]
    intrinsics: dict[str, Any]  # fx, fy, cx, cy (pixels), k (3x3 row-major), fov, near, far
    data: bytes


Reply = (
    HelloReply
    | DescribeReply
    | State
    | Ok
    | Error
    | Kpis
    | Genealogy
    | ControlReply
    | ImageLayout
    | CameraFrame
)


# the process image cycle: MessagePack arrays, not maps (docs/protocol.md, Process image) ---
class ImageCycle(msgspec.Struct, array_like=True, tag="image"):
    """["image", id, lease, layout, n, outputs]: apply the outputs (each nil, or the array of
    its command's arguments), step n times (lockstep; 0 reads the latest image), read."""

    id: RequestId
    lease: Lease
    layout: int
    n: Annotated[int, msgspec.Meta(ge=0, le=MAX_STEPS_PER_REQUEST)]
    outputs: Annotated[list[Any], msgspec.Meta(max_length=MAX_IMAGE_ENTRIES)]


class ImageReply(msgspec.Struct, array_like=True, tag="image"):
    """["image", id, step, time, inputs, refused]: the inputs in declared order after the
    cycle; refused lists [output index, code, message] for outputs the line's state refused."""

    id: RequestId
    step: int
    time: float
    inputs: list[Any]
    refused: list[list[Any]]


# telemetry -----------------------------------------------------------------------------
class EventMsg(msgspec.Struct, tag="event", tag_field="type", kw_only=True):
    """One thing that happened, stamped with the step and sim time it happened at."""

    version: int = PROTOCOL_VERSION
    step: int
    time: float
    kind: str
    device: str
    data: dict[str, Any] = {}


Telemetry = State | EventMsg | Kpis | CameraFrame
TOPIC_STATE = b"state"
TOPIC_EVENT = b"event"
TOPIC_KPI = b"kpi"
TOPIC_CAMERA = b"camera"  # frames go out as camera/<camera id>/<modality>


# error codes the server itself gives (device commands add their own, e.g. out_of_range)
ERROR_CODES: dict[str, str] = {
    "malformed": "the bytes are not a MessagePack map",
    "too_large": "the message is longer than max_message_bytes",
    "unknown_request": "no request has this type",
    "bad_request": "a field is missing, unknown, of the wrong type or outside its limits",
    "version_mismatch": "hello with a protocol version this server does not speak",
    "not_controller": "the request changes the line and this client does not hold control",
    "stale_lease": "the lease was valid once: since replaced (reset), released or expired",
    "bad_lease": "a lease this server never issued, or one held by another connection",
    "unknown_signal": "declare_image names a signal its device does not have",
    "bad_image": "an image cycle that does not fit its layout (length, entries)",
    "stale_layout": "an image cycle for a layout that a new declaration or a reset replaced",
    "control_held": "another client holds control",
    "wrong_mode": "the request does not apply in the server's mode",
    "estopped": "the line is emergency-stopped: estop_reset first",
    "unknown_camera": "get_image for a device that is not a camera of this line",
    "unknown_modality": "get_image for a modality the camera is not configured to render",
    "unknown_part": "get_genealogy for a part id the server has no record of",
    "unknown_order": "get_genealogy for an order id the server has no record of",
    "forbidden": "this client's role (observer) may not send this request",
    "rate_limited": "the client sent more requests per second than the server allows",
    "internal": "the server failed on this request; the line is unchanged or safe-stopped",
}


def json_schema() -> dict[str, Any]:
    """JSON Schema of every request, reply and telemetry message, generated from the structs."""
    (request, reply, telemetry, cycle, cycle_reply), components = msgspec.json.schema_components(
        [Request, Reply, Telemetry, ImageCycle, ImageReply], ref_template="#/$defs/{name}"
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "request": request,
        "reply": reply,
        "telemetry": telemetry,
        "image_cycle": cycle,  # MessagePack arrays: see docs/protocol.md, Process image
        "image_reply": cycle_reply,
        "$defs": components,
    }


def request_tag(cls: type[msgspec.Struct]) -> str:
    return cls.__struct_config__.tag  # type: ignore[return-value]
