"""Processing station: a table with a fixture, a part-present beam, a PackML state machine.

PackML as a producing unit uses it: Reset and Start bring the station to Execute, where it
works part after part. A part on the fixture is checked once it has come to rest (seated:
flat and centred within tolerance); a seated part is processed for `cycle_time` (its type's
entry in `cycle_times`, if there is one). With no
work (no part, a finished part not yet taken, or a part that is not seated) the station
suspends itself, and unsuspends when a seated part arrives. Complete is the end of a batch
(`batch_size` parts since Start) only.

Interlocks tell a robot when it may load (`load_ok`) or unload (`unload_ok`); a part that
arrives or leaves against them is reported (`interlock_violated`).

A breakdown holds the station in every producing state (from Starting, Unholding or
Unsuspending as soon as the state completes into Execute); while broken down it cannot be
started, unheld or unsuspended, and is neither loadable nor unloadable. After repair it
carries on where it was held. An emergency stop aborts it.

Each change of activity (execute, starved, blocked, idle, held, down, stopped) is an event,
so KPIs are integrated from events alone.
"""

from __future__ import annotations

import math
from typing import Any

from twin.config import StationConfig
from twin.devices.base import BuildContext, CommandError, CommandSpec, Device, SignalSpec
from twin.events import ACTIVITIES
from twin.geometry import fixture_frame
from twin.production.faults import Breakdowns
from twin.production.packml import Command, IllegalCommand, PackMLMachine, State

_BEAM_HEIGHT = 0.012  # m above the fixture
# a part is judged once it has been at rest this long (the robot has let go of it)
_SETTLE_TIME = 0.2  # s
_REST_SPEED = 0.01  # m/s: slower than this counts as at rest
# seated: what a fixture's locating pins and part-present switches tolerate
SEATED_MAX_TILT = math.radians(5.0)
SEATED_MAX_OFFSET = 0.015  # m, part centre from the fixture centre, in the table plane
SEATED_MAX_GAP = 0.003  # m, part bottom above the fixture

# states in which the station is a producing unit (it suspends and unsuspends itself)
_PRODUCING = frozenset({State.EXECUTE, State.SUSPENDING, State.SUSPENDED, State.UNSUSPENDING})
# states in which a part may be taken off the fixture, and put on it (not in Complete: the
# next batch starts with a Reset of the empty station)
_UNLOADABLE = _PRODUCING | {State.IDLE, State.STARTING, State.COMPLETE, State.STOPPED}
_LOADABLE = _UNLOADABLE - {State.COMPLETE}
_STOPPED_STATES = frozenset(
    {State.STOPPED, State.STOPPING, State.ABORTING, State.ABORTED, State.CLEARING}
)
_HELD_STATES = frozenset({State.HOLDING, State.HELD, State.UNHOLDING})


class Station(Device):
    kind = "station"
    commands = tuple(
        CommandSpec(name=c.value.lower(), doc=f"PackML {c.value} command") for c in Command
    )
    signal_specs = (
        SignalSpec(
            name="state",
            type="str",
            choices=tuple(s.value for s in State),
            attr="machine.state_value",
            doc="PackML state",
        ),
        SignalSpec(name="part_present", type="bool"),
        SignalSpec(name="part", type="int|null", doc="id of the part on the fixture"),
        SignalSpec(
            name="seated",
            type="bool|null",
            doc="the part lies flat and centred on the fixture (null: no part or not yet at rest)",
        ),
        SignalSpec(
            name="progress", type="float", unit="s", min=0.0, doc="processing time done on it"
        ),
        SignalSpec(
            name="cycle_time", type="float", unit="s", doc="processing time of the current part"
        ),
        SignalSpec(name="processed", type="int", min=0, doc="parts finished"),
        SignalSpec(name="part_done", type="bool", doc="the part on the fixture is finished"),
        SignalSpec(name="starved", type="bool", doc="producing, with no part to work on"),
        SignalSpec(
            name="blocked", type="bool", attr="part_done", doc="a finished part not yet taken"
        ),
        SignalSpec(name="load_ok", type="bool", doc="interlock: a robot may place a part"),
        SignalSpec(name="unload_ok", type="bool", doc="interlock: a robot may take the part"),
        SignalSpec(name="fault", type="str|null", doc="active fault, e.g. breakdown"),
        SignalSpec(name="activity", type="str", choices=ACTIVITIES, doc="what KPIs integrate"),
    )

    def __init__(self, cfg: StationConfig, ctx: BuildContext) -> None:
        super().__init__(cfg, ctx)
        self.frame = fixture_frame(cfg)
        sx, sy, h = cfg.size
        ctx.world.box([sx / 2, sy / 2, h / 2], [*cfg.position[:2], h / 2], cfg.yaw, cfg.color)
        # fixture plate marks where parts go
        ctx.world.box(
            [0.07, 0.07, 0.001], self.point(0, 0, -0.0009), cfg.yaw, [0.9, 0.85, 0.2, 1], 0.9
        )
        half = min(sx, sy) / 2 - 0.01
        self.ray = ctx.world.rays.add(
            self.point(0, -half, _BEAM_HEIGHT), self.point(0, half, _BEAM_HEIGHT)
        )
        self.machine = PackMLMachine(State.STOPPED)
        self.machine.on_transition = self._on_transition
        self.in_state_for = 0.0
        self.part: int | None = None
        self.seated: bool | None = None
        self._rest_for = 0.0
        self.progress = 0.0
        self.cycle_time = cfg.cycle_time  # of the part in process (cycle_times by its type)
        self._progress_part: int | None = None
        self._done_part: int | None = None
        self.processed = 0
        self._batch_count = 0
        self.rng = ctx.rng(cfg.id)
        self.breakdowns = Breakdowns(
            cfg.mtbf, cfg.mttr, cfg.breakdowns, ctx.rng(cfg.id + "/breakdowns")
        )
        self.fault: str | None = None
        # breakdowns (random or scripted) are the only source of a fault
        self._can_break = cfg.mtbf > 0 or bool(cfg.breakdowns)
        self._by_body = ctx.pool.by_body  # body -> part id (the pool only ever mutates it)
        self._held_by_fault = False
        self._suspended_by_command = False
        self.activity = "stopped"
        self._activity_of: tuple[Any, ...] = ()  # what the activity was worked out from
        self._interlocks = (False, False)

    def point(self, along: float, across: float = 0.0, up: float = 0.0) -> list[float]:
        """World point on the table top, in the station frame."""
        return self.frame.point(along, across, up)

    @property
    def state(self) -> State:
        return self.machine.state

    # part on the fixture --------------------------------------------------------------
    @property
    def part_done(self) -> bool:
        return self.part is not None and self.part == self._done_part

    @property
    def has_work(self) -> bool:
        """A seated part that is not finished yet."""
        return self.part is not None and self.seated is True and not self.part_done

    @property
    def load_ok(self) -> bool:
        return self.part is None and self.fault is None and self.state in _LOADABLE

    @property
    def unload_ok(self) -> bool:
        # a finished part, or one that cannot be worked on (not seated); never mid-cycle
        takeable = self.part_done or self.seated is False
        return takeable and self.fault is None and self.state in _UNLOADABLE

    def _judge_part(self, dt: float) -> None:
        """Decide once whether the part at rest on the fixture is seated."""
        c = self.ctx.world.client
        assert self.part is not None
        part = self.ctx.pool.active[self.part]
        lin, ang = c.getBaseVelocity(part.body)
        if math.hypot(*lin) > _REST_SPEED or math.hypot(*ang) > 10 * _REST_SPEED:
            self._rest_for = 0.0
            return
        self._rest_for += dt
        if self._rest_for < _SETTLE_TIME - 1e-9:
            return
        pos, orn = c.getBasePositionAndOrientation(part.body)
        up_z = c.getMatrixFromQuaternion(orn)[8]  # the part's z axis, world z component
        tilt = math.acos(max(-1.0, min(1.0, up_z)))
        cx, cy, top = self.point(0, 0, 0)
        offset = math.hypot(pos[0] - cx, pos[1] - cy)
        gap = pos[2] - part.size[2] / 2 - top
        self.seated = (
            tilt <= SEATED_MAX_TILT and offset <= SEATED_MAX_OFFSET and gap <= SEATED_MAX_GAP
        )
        if not self.seated:
            self.emit(
                "part_not_seated",
                part=self.part,
                tilt_deg=round(math.degrees(tilt), 2),
                offset=round(offset, 4),
                gap=round(gap, 4),
            )

    def _on_part_change(self, part: int | None) -> None:
        if self.part is not None:
            if not self._interlocks[1]:
                self.emit(
                    "interlock_violated", part=self.part, action="unload", state=self.state.value
                )
            self.emit("part_left", part=self.part)
        if part is not None:
            if not self._interlocks[0]:
                self.emit("interlock_violated", part=part, action="load", state=self.state.value)
            self.emit("part_entered", part=part)
        self.part = part
        self.seated = None
        self._rest_for = 0.0

    # PackML ---------------------------------------------------------------------------
    def _on_transition(self, old: State, new: State, cause: str) -> None:
        self.in_state_for = 0.0
        self.emit("station_state", old=old.value, new=new.value, cause=cause, part=self.part)

    def apply(self, command: str, args: dict[str, Any]) -> None:
        if self.fault and command in ("start", "unhold", "unsuspend"):
            raise CommandError(
                "fault_active", f"station '{self.id}': cannot {command} during {self.fault}"
            )
        try:
            self.machine.command(command)
        except IllegalCommand as e:
            raise CommandError("illegal_state", f"station '{self.id}': {e}") from None
        if command == "suspend":
            self._suspended_by_command = True  # stays suspended until commanded back
        elif command in ("unsuspend", "stop", "abort", "reset"):
            self._suspended_by_command = False
        if command == "start":
            self._batch_count = 0

    def safe_state(self, reason: str) -> None:
        """Hold a producing station (from Starting/Unholding as soon as it reaches Execute)."""
        if self.machine.can(Command.HOLD):
            self.machine.command(Command.HOLD)
        elif self.state in (State.STARTING, State.UNHOLDING):
            self.machine.force(State.HOLDING)

    def emergency_stop(self, reason: str) -> None:
        """An e-stop aborts the unit: Aborting -> Aborted; Clear and Reset bring it back."""
        if self.machine.can(Command.ABORT):
            self.machine.command(Command.ABORT)
        self._held_by_fault = False
        self._suspended_by_command = False

    def _update_fault(self, now: float) -> None:
        change = self.breakdowns.update(now)
        if change == "failed":
            self.fault = "breakdown"
            self.emit("fault", fault="breakdown", active=True, until=self.breakdowns.down_until)
        elif change == "repaired":
            self.fault = None
            self.emit("fault", fault="breakdown", active=False)
            if self._held_by_fault and self.state == State.HELD:
                self.machine.command(Command.UNHOLD)
            self._held_by_fault = False
        self._hold_if_down()

    def _hold_if_down(self) -> None:
        if self.fault and self.machine.can(Command.HOLD):
            # Execute or the Suspended branch; Starting/Unholding/Unsuspending get here
            # the step they complete into Execute, before any processing
            self.machine.command(Command.HOLD)
            self._held_by_fault = True

    def _produce(self, dt: float) -> None:
        """Execute/Suspended logic of a producing unit: work, suspend, unsuspend."""
        state = self.state
        if state == State.EXECUTE:
            if self.has_work:
                if self.part != self._progress_part:
                    # processing runs from the end of this step, when its event is stamped
                    self._progress_part, self.progress = self.part, 0.0
                    assert self.part is not None  # has_work
                    kind = self.ctx.pool.active[self.part].type
                    self.cycle_time = self.cfg.cycle_times.get(kind, self.cfg.cycle_time)
                    self.emit("process_started", part=self.part)
                    return
                self.progress += dt
                if self.progress >= self.cycle_time - 1e-9:
                    self._finish_part()
            elif self.part is None or self.seated is not None:
                self.machine.command(Command.SUSPEND)  # starved, blocked or misloaded
        elif (
            state == State.SUSPENDED
            and self.has_work
            and not self._suspended_by_command
            and not self.fault
        ):
            self.machine.command(Command.UNSUSPEND)

    def after_step(self) -> None:
        world, machine = self.ctx.world, self.machine
        dt = world.dt
        body = world.rays.hit_body[self.ray]
        part = self._by_body.get(body) if body >= 0 else None
        if part != self.part:
            self._on_part_change(part)
        elif part is not None and self.seated is None:
            self._judge_part(dt)
        if self._can_break:  # without breakdowns there is never a fault to update
            self._update_fault(world.sim_time)
        self.in_state_for += dt
        if not self.fault and machine.state in _PRODUCING:
            self._produce(dt)
        if machine.is_acting and self.in_state_for >= self.cfg.transition_time - 1e-9:
            machine.state_complete()
            self._hold_if_down()  # a breakdown holds what has just reached Execute
        state = machine.state
        if state == State.RESETTING and self._done_part != self._progress_part:
            self._progress_part, self.progress = None, 0.0  # an aborted cycle starts over
        key = (state, self.part, self.seated, self._progress_part, self._done_part, self.fault)
        if key == self._activity_of:
            return  # the interlocks and the activity depend on these only
        self._activity_of = key
        self._interlocks = (self.load_ok, self.unload_ok)
        activity = self._activity()
        if activity != self.activity:
            self.emit("station_activity", activity=activity, previous=self.activity)
            self.activity = activity

    def _activity(self) -> str:
        state = self.state
        if self.fault:
            return "down"
        if state in _HELD_STATES:
            return "held"
        if state in _STOPPED_STATES:
            return "stopped"
        if self.part_done:
            return "blocked"
        if state in _PRODUCING or state == State.STARTING:
            if self.part is None or self.seated is False:
                return "starved"  # no part it can work on
            return "execute" if self.part == self._progress_part else "idle"
        return "idle"

    def _finish_part(self) -> None:
        self.processed += 1
        self._batch_count += 1
        self._done_part = self.part
        assert self.part is not None
        part = self.ctx.pool.active[self.part]
        defect = None
        if self.cfg.defect_rate > 0 and self.rng.random() < self.cfg.defect_rate:
            defect = f"process defect at {self.id}"
            part.quality, part.defect = "reject", part.defect or defect
            self.ctx.pool.show_quality(part)
        self.emit(
            "process_finished",
            part=self.part,
            cycle_time=self.progress,
            quality="reject" if defect else "good",
            defect=defect,
        )
        if self.cfg.batch_size and self._batch_count >= self.cfg.batch_size:
            self.machine.state_complete()  # Execute -> Completing: the batch is done
        else:
            self.machine.command(Command.SUSPEND)  # blocked until the part is taken

    # computed signals
    @property
    def part_present(self) -> bool:
        return self.part is not None

    @property
    def starved(self) -> bool:
        return self.machine.state in _PRODUCING and (self.part is None or self.seated is False)
