"""Events: what happened on the line, stamped with step index and simulated time.

Each event kind is one small frozen struct below, declared once: its fields are the event's
data, its docstring and field comments are its documentation (`event_catalogue()` feeds
`describe` and the table in docs/protocol.md). Consumers match on the struct types, never on
kind strings. On the wire an event stays `{kind, device, data}` (`Event.kind`, `Event.data`).

To add an event kind: declare one subclass of `Event` (`tag="the_kind", frozen=True,
kw_only=True`) with its fields; `emit(kind, device, **fields)` then builds it. Fields that
are sometimes absent from the data get a default (they are left out of `data` while they
hold it); all others are required, so a call site that forgets one fails at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import msgspec

_HEADER = ("step", "time", "device")


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    """Base of every event: when it happened and on which device."""

    step: int
    time: float  # s of simulated time
    device: str  # the device id, "line" or "server"

    _data_fields: ClassVar[tuple[str, ...]] = ()
    _optional: ClassVar[dict[str, Any]] = {}  # field -> default: left out of `data` when unset

    @property
    def kind(self) -> str:
        return self.__struct_config__.tag  # type: ignore[return-value]

    @property
    def data(self) -> dict[str, Any]:
        """The event's own fields, as the wire's `data` map."""
        optional = self._optional
        out = {}
        for name in self._data_fields:
            value = getattr(self, name)
            if name in optional and value == optional[name]:
                continue
            out[name] = value
        return out


EVENT_TYPES: dict[str, type[Event]] = {}  # kind -> struct, filled by _register()


def _register() -> None:
    """Index every declared event struct by its kind (msgspec sets the tag after class
    creation, so this runs after the declarations and again for late subclasses)."""
    stack = list(Event.__subclasses__())
    while stack:
        cls = stack.pop(0)  # declaration order
        stack += cls.__subclasses__()
        tag = cls.__struct_config__.tag
        if not isinstance(tag, str) or EVENT_TYPES.get(tag) is cls:
            continue
        if tag in EVENT_TYPES:
            raise TypeError(f"event kind '{tag}' is declared twice")
        fields = [f for f in msgspec.structs.fields(cls) if f.name not in _HEADER]
        cls._data_fields = tuple(f.name for f in fields)
        cls._optional = {f.name: f.default for f in fields if not f.required}
        EVENT_TYPES[tag] = cls


# parts ------------------------------------------------------------------------------------
class PartSpawned(Event, tag="part_spawned", frozen=True, kw_only=True):
    """A source put a part on its belt."""

    part: int
    type: str  # part type name
    quality: str  # "good" or "reject" (defective material)
    defect: str | None  # why it is a reject
    order: str | None = None  # the order it was released for (a factory's receiving source)


class PartCompleted(Event, tag="part_completed", frozen=True, kw_only=True):
    """A part reached a sink and left the line."""

    part: int
    type: str
    lead_time: float  # s from spawn to completion
    quality: str  # "good" or "reject"
    defect: str | None


class PartLost(Event, tag="part_lost", frozen=True, kw_only=True):
    """A part left the line where no device takes it (device "line"): it fell to the floor
    or out of the cell. It is scrapped and its body goes back to the pool."""

    part: int
    type: str
    reason: str  # "on_floor" (below every belt and table) or "out_of_cell"
    position: list[float]  # m, where it was found
    near: str  # the device closest to that point
    quality: str  # "good" or "reject", as it was when lost


class SourceWaiting(Event, tag="source_waiting", frozen=True, kw_only=True):
    """A source could not put a part on its belt because the part pool is full
    (`waiting` true), or it can again (`waiting` false)."""

    waiting: bool
    reason: str  # "pool_full"
    capacity: int  # the pool's capacity (parts on the line at once)


# sensors and robots -----------------------------------------------------------------------
class PartInspected(Event, tag="part_inspected", frozen=True, kw_only=True):
    """An inspection station judged a part from its picture: `verdict` pass or reject (a
    rejected part's quality becomes reject)."""

    part: int
    verdict: str  # "pass" or "reject"
    inspector: str  # "color" or the callable's "module:function"
    reason: str  # what the inspector saw, or why it could not judge


class InspectionRequested(Event, tag="inspection_requested", frozen=True, kw_only=True):
    """An inspection station with an external inspector has a part to judge: look with
    get_image (`camera`, rgb and segmentation) and send the station's `verdict` command
    within `timeout` s of simulated time."""

    part: int
    camera: str
    timeout: float


class InspectionFailed(Event, tag="inspection_failed", frozen=True, kw_only=True):
    """An inspector could not judge a part (it raised, returned something else, or the
    camera did not see the part): the part gets the station's `on_error` verdict."""

    part: int
    reason: str
    verdict: str  # the on_error verdict given instead


class EyeBlocked(Event, tag="eye_blocked", frozen=True, kw_only=True):
    """A photo-eye's beam was interrupted (rising edge)."""

    part: int | None  # the part in the beam, if a part


class EyeCleared(Event, tag="eye_cleared", frozen=True, kw_only=True):
    """A photo-eye's beam is clear again."""

    part: int | None  # the part that left the beam


class GripperAttached(Event, tag="gripper_attached", frozen=True, kw_only=True):
    """An arm's vacuum sealed on a part."""

    part: int


class GripperReleased(Event, tag="gripper_released", frozen=True, kw_only=True):
    """An arm's vacuum let a part go."""

    part: int


class ArmJobDone(Event, tag="arm_job_done", frozen=True, kw_only=True):
    """An arm finished a job: `result` is `ok`, `no_part` (a pick found nothing),
    `pick_failed` (no seal after the allowed attempts, or a tilted part refused),
    `not_reached` (with `distance`), `collision` (with `hit` and `at`) or `halted`."""

    result: str
    holding: int | None  # the part in the gripper afterwards
    planned_duration: float  # s: the job's motion profile, as planned when it started
    duration: float  # s: from the command to this event
    seated: bool | None = None  # a place: the part sits flat on its point
    offset: float | None = None  # m: a place: the part's distance from the point in x/y
    distance: float | None = None  # m: not_reached: how far the tool stopped from the target
    hit: str | None = None  # collision: what the arm hit ("mill", "part 7", "floor", ...)
    at: list[float] | None = None  # collision: where (world point, m)


class ArmActivity(Event, tag="arm_activity", frozen=True, kw_only=True):
    """An arm's activity changed (what robot utilisation integrates): idle, moving,
    moving_to_pick, picking, moving_to_place, placing, waiting (idle holding a part),
    halted."""

    activity: str
    previous: str


class PickFailed(Event, tag="pick_failed", frozen=True, kw_only=True):
    """A pick gave up: the cup did not seal after `attempts` tries, or the part was refused
    (tilted beyond the arm's `max_pick_tilt`, attempts 0). The job ends `pick_failed`."""

    reason: str
    attempts: int
    part: int | None  # the located part, if any


class Fault(Event, tag="fault", frozen=True, kw_only=True):
    """A fault became active or cleared: `breakdown` at a station; `stuck_on`, `stuck_off`,
    `dropout` or `noise` at a photo-eye."""

    fault: str  # "breakdown", "stuck_on", "stuck_off", "dropout", "noise"
    active: bool
    until: float | None = None  # s: when a breakdown will be repaired (when it starts)


# stations ---------------------------------------------------------------------------------
class StationState(Event, tag="station_state", frozen=True, kw_only=True):
    """A station's PackML state changed."""

    old: str
    new: str
    cause: str  # the command or "SC" (state complete)
    part: int | None  # the part on the fixture


# what a station is doing, as KPIs integrate it
ACTIVITIES = ("execute", "starved", "blocked", "idle", "held", "down", "stopped")


class StationActivity(Event, tag="station_activity", frozen=True, kw_only=True):
    """A station's activity changed (what KPIs integrate): `execute`, `starved`, `blocked`,
    `idle`, `held`, `down` or `stopped`."""

    activity: str
    previous: str


class PartEntered(Event, tag="part_entered", frozen=True, kw_only=True):
    """A part arrived on a station's fixture."""

    part: int


class PartLeft(Event, tag="part_left", frozen=True, kw_only=True):
    """A part left a station's fixture."""

    part: int


class ProcessStarted(Event, tag="process_started", frozen=True, kw_only=True):
    """A station started processing a part."""

    part: int


class ProcessFinished(Event, tag="process_finished", frozen=True, kw_only=True):
    """A station finished processing a part."""

    part: int
    cycle_time: float  # s of processing
    quality: str  # "good" or "reject"
    defect: str | None


class PartNotSeated(Event, tag="part_not_seated", frozen=True, kw_only=True):
    """A part came to rest on a station's fixture but not seated (tilted, off centre or not
    down on the fixture): the station will not process it."""

    part: int
    tilt_deg: float  # degrees between the part's axis and the vertical
    offset: float  # m: the part's centre from the fixture centre, in the table plane
    gap: float  # m: the part's bottom above the fixture


class InterlockViolated(Event, tag="interlock_violated", frozen=True, kw_only=True):
    """A part arrived on (`load`) or left (`unload`) a station's fixture while the station's
    interlock (`load_ok` / `unload_ok`) did not allow it."""

    part: int
    action: str  # "load" or "unload"
    state: str  # the station's PackML state at the time


class Alarm(Event, tag="alarm", frozen=True, kw_only=True):
    """The built-in sequencer raised (`active` true) or cleared an alarm: `pick_failed`,
    `place_failed` or `part_not_seated`, after `tries` failed attempts. It clears when the
    source or destination changes (an operator took the part away). A factory's fleet
    manager (device "fleet") raises `amr_blocked` when an AMR's moves end blocked
    `tries` times in a row, and clears it when the AMR moves again."""

    alarm: str
    active: bool
    tries: int | None = None
    message: str | None = None


# the line ---------------------------------------------------------------------------------
class LineState(Event, tag="line_state", frozen=True, kw_only=True):
    """The line's own PackML state changed (device "line")."""

    old: str
    new: str
    cause: str


class Estop(Event, tag="estop", frozen=True, kw_only=True):
    """Emergency stop (device "line")."""

    reason: str


class EstopReset(Event, tag="estop_reset", frozen=True, kw_only=True):
    """The e-stop was released (device "line")."""


class SafeState(Event, tag="safe_state", frozen=True, kw_only=True):
    """Belts stopped, robots hold, stations Held (device "line")."""

    reason: str


class EventsDropped(Event, tag="events_dropped", frozen=True, kw_only=True):
    """Events were dropped because nobody drained them in time (device "line")."""

    count: int  # dropped since the last report
    total: int  # dropped since the line was built


# mobile robots (AMRs) ----------------------------------------------------------------------
class AmrState(Event, tag="amr_state", frozen=True, kw_only=True):
    """An AMR's state changed (what AMR utilisation integrates): idle, driving, docking,
    docked, undocking, charging, stopped, blocked or battery_empty; `cause` is the command
    or what made it change ("arrived", "protective_field", "stalled", "clear",
    "blocked_timeout", "charged", "battery_empty", a safe stop's reason)."""

    old: str
    new: str
    cause: str


class AmrMoveDone(Event, tag="amr_move_done", frozen=True, kw_only=True):
    """An AMR's move (go_to, go_along, dock, undock) ended: `result` is `ok`, `blocked`
    (stopped by its safety field, or held back, for longer than its blocked_timeout),
    `halted` (stop, safe stop, e-stop) or `battery_empty`. A goal no route leads to is
    refused at once (`unreachable`), never started."""

    goal: str  # the node (or dock) it was sent to
    result: str
    distance: float  # m driven in this move


class AmrLoaded(Event, tag="amr_loaded", frozen=True, kw_only=True):
    """A part came to rest on an AMR's deck."""

    part: int
    type: str
    mass: float  # kg


class AmrUnloaded(Event, tag="amr_unloaded", frozen=True, kw_only=True):
    """A part left an AMR's deck (taken off by an arm or a sink, or it slid off)."""

    part: int


class BatteryLow(Event, tag="battery_low", frozen=True, kw_only=True):
    """An AMR's battery fell below its `low` level."""

    level: float  # state of charge, 0-1


# orders and transports (a factory) -----------------------------------------------------------
class OrderArrived(Event, tag="order_arrived", frozen=True, kw_only=True):
    """An order entered the order book (device "orders")."""

    order: str
    product: str  # the product's part type
    quantity: int
    due: float  # s of simulated time
    priority: int


class OrderReleased(Event, tag="order_released", frozen=True, kw_only=True):
    """One part of an order was released into the factory (device "orders")."""

    order: str
    part: int


class OrderStarted(Event, tag="order_started", frozen=True, kw_only=True):
    """An order's first part was released (device "orders")."""

    order: str


class OrderCompleted(Event, tag="order_completed", frozen=True, kw_only=True):
    """An order's last part was shipped (device "orders")."""

    order: str
    lead_time: float  # s from arrival to completion
    late: bool  # completed after its due time


class OrderLate(Event, tag="order_late", frozen=True, kw_only=True):
    """An order reached its due time before it was complete (device "orders")."""

    order: str
    due: float  # s of simulated time


class TransportRequested(Event, tag="transport_requested", frozen=True, kw_only=True):
    """A part waits for an AMR to take it from one cell to the next (device "fleet"); `part`
    is null for a part still to be released at the receiving store (`order` says for which
    order)."""

    part: int | None
    from_cell: str
    to_cell: str
    order: str | None = None


class TransportAssigned(Event, tag="transport_assigned", frozen=True, kw_only=True):
    """An AMR was sent to carry a part (device "fleet"); `part` null: one still to be
    released (`order` says for which order)."""

    part: int | None
    amr: str
    order: str | None = None


class TransportDone(Event, tag="transport_done", frozen=True, kw_only=True):
    """An AMR delivered a part to its next cell (device "fleet")."""

    part: int
    amr: str
    from_cell: str
    to_cell: str


# the server -------------------------------------------------------------------------------
class ControlTaken(Event, tag="control_taken", frozen=True, kw_only=True):
    """A client took control (device "server"); `client` names the connection for logs, the
    lease stays with the client."""

    client: str  # hex ROUTER identity
    watchdog: float | None  # s, null: none
    lease_timeout: float  # s of silence after which the client loses control


class ControlReleased(Event, tag="control_released", frozen=True, kw_only=True):
    """The controlling client released control (device "server")."""

    client: str


class Watchdog(Event, tag="watchdog", frozen=True, kw_only=True):
    """The controlling client went silent: control is gone, the line safe-stops."""

    reason: str
    client: str
    timeout: float  # s
    silent_for: float  # s


class LeaseExpired(Event, tag="lease_expired", frozen=True, kw_only=True):
    """The controlling client sent nothing with its lease for its lease timeout (no
    watchdog): control is gone, the line is left as it is (device "server")."""

    client: str
    timeout: float  # s
    silent_for: float  # s


class Paused(Event, tag="paused", frozen=True, kw_only=True):
    """The server paused stepping."""


class Resumed(Event, tag="resumed", frozen=True, kw_only=True):
    """The server resumed stepping."""


class Reset(Event, tag="reset", frozen=True, kw_only=True):
    """The line was rebuilt from its config."""

    seed: int


_register()


def make_event(kind: str, device: str, step: int, time: float, **data: Any) -> Event:
    """Build the event of `kind`; an unknown kind or a wrong field is a programming error."""
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        _register()
        cls = EVENT_TYPES.get(kind)
    if cls is None:
        raise ValueError(
            f"unknown event kind '{kind}': declare it as a struct in twin/events.py "
            f"(known: {sorted(EVENT_TYPES)})"
        )
    try:
        return cls(step=step, time=time, device=device, **data)
    except TypeError as e:
        raise TypeError(f"event '{kind}' from '{device}': {e}") from None


def event_catalogue() -> list[dict[str, Any]]:
    """Every event kind with its data fields, types and docs, from the declarations."""
    out = []
    for kind, cls in EVENT_TYPES.items():
        fields = []
        for f in msgspec.structs.fields(cls):
            if f.name in _HEADER:
                continue
            fields.append({"name": f.name, "type": _type_name(f.type), "optional": not f.required})
        doc = " ".join((cls.__doc__ or "").split())
        out.append({"kind": kind, "doc": doc, "fields": fields})
    return out


def _type_name(t: Any) -> str:
    names = {int: "int", float: "float", str: "str", bool: "bool", type(None): "null"}
    if t in names:
        return names[t]
    args = getattr(t, "__args__", None)
    if getattr(t, "__origin__", None) is list and args:
        return _type_name(args[0]) + "s"  # list[float] -> "floats", as signals say
    if args:
        return "|".join(_type_name(a) for a in args)
    return str(t)


class EventLog:
    """Collects events during a step; consumers drain them (telemetry, recorder, KPIs).

    A line nobody drains must not grow without bound: past `max_pending` the oldest events
    are dropped; the next drain reports how many in an `events_dropped` event.
    """

    def __init__(self, clock: Callable[[], tuple[int, float]], max_pending: int = 100_000) -> None:
        self._clock = clock  # returns (step, time)
        self._pending: list[Event] = []
        self.max_pending = max_pending
        self.dropped = 0  # since the line was built
        self._unreported = 0
        # called with each event as it is emitted (a built-in controller that follows parts)
        self.listeners: list[Callable[[Event], None]] = []

    def emit(self, kind: str, device: str, **data: Any) -> None:
        step, time = self._clock()
        event = make_event(kind, device, step, time, **data)
        self._pending.append(event)
        for listener in self.listeners:
            listener(event)
        if len(self._pending) > self.max_pending:
            excess = len(self._pending) - self.max_pending // 2
            del self._pending[:excess]  # amortised: trim in halves, not one by one
            self.dropped += excess
            self._unreported += excess

    def drain(self) -> list[Event]:
        out, self._pending = self._pending, []
        if self._unreported:
            step, time = self._clock()
            note = EventsDropped(
                step=step, time=time, device="line", count=self._unreported, total=self.dropped
            )
            self._unreported = 0
            out.insert(0, note)
        return out


def event_table_markdown() -> str:
    """The event table of docs/protocol.md, rendered from the declarations (a test keeps the
    doc equal to it)."""
    rows = ["| kind | data fields | what happened |", "|---|---|---|"]
    for e in event_catalogue():
        fields = ", ".join(
            f"`{f['name']}` ({f['type'].replace('|', ' or ')}"
            + (", optional" if f["optional"] else "")
            + ")"
            for f in e["fields"]
        )
        rows.append(f"| `{e['kind']}` | {fields or '–'} | {e['doc']} |")
    return "\n".join(rows)
