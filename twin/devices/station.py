"""Processing station: a table with a part-present beam, a PackML state machine and a cycle time.

Acting states (Starting, Resetting, Completing...) take `transition_time`; in Execute the
station processes the part on its fixture for `cycle_time`, then completes. With no part
in Execute (or Idle) it is starved; Complete with the part still on it, it is blocked.
A breakdown holds the station (Execute -> Holding -> Held) until it is repaired, then it
carries on; a Held or Idle station cannot be unheld or started while broken down.
Each change of activity (execute, starved, blocked, idle, held, down, stopped) is an event,
so KPIs are integrated from events alone.
"""

from __future__ import annotations

from typing import Any

from twin.config import StationConfig
from twin.devices.base import BuildContext, CommandError, CommandSpec, Device, SignalSpec
from twin.events import ACTIVITIES
from twin.geometry import fixture_frame
from twin.production.faults import Breakdowns
from twin.production.packml import Command, IllegalCommand, PackMLMachine, State

_BEAM_HEIGHT = 0.012  # m above the fixture


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
            attr="machine.state.value",
            doc="PackML state",
        ),
        SignalSpec(name="part_present", type="bool"),
        SignalSpec(name="part", type="int|null", doc="id of the part on the fixture"),
        SignalSpec(
            name="progress", type="float", unit="s", min=0.0, doc="processing time done on it"
        ),
        SignalSpec(name="cycle_time", type="float", unit="s", attr="cfg.cycle_time"),
        SignalSpec(name="processed", type="int", min=0, doc="parts finished"),
        SignalSpec(name="starved", type="bool", doc="in Execute with no part"),
        SignalSpec(name="blocked", type="bool", doc="Complete with the part not yet taken"),
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
        self.progress = 0.0
        self._progress_part: int | None = None
        self.processed = 0
        self.rng = ctx.rng(cfg.id)
        self.breakdowns = Breakdowns(
            cfg.mtbf, cfg.mttr, cfg.breakdowns, ctx.rng(cfg.id + "/breakdowns")
        )
        self.fault: str | None = None
        self._held_by_fault = False
        self.activity = "stopped"
        self._activity_of: tuple[Any, ...] = ()  # (state, no part, fault) it was worked out for

    def point(self, along: float, across: float = 0.0, up: float = 0.0) -> list[float]:
        """World point on the table top, in the station frame."""
        return self.frame.point(along, across, up)

    @property
    def state(self) -> State:
        return self.machine.state

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

    def safe_state(self, reason: str) -> None:
        if self.state == State.EXECUTE:
            self.machine.command(Command.HOLD)
        elif self.state in (State.STARTING, State.UNHOLDING, State.UNSUSPENDING):
            self.machine.force(State.HOLDING)

    def _update_fault(self, now: float) -> None:
        change = self.breakdowns.update(now)
        if change == "failed":
            self.fault = "breakdown"
            self.emit("fault", fault="breakdown", active=True, until=self.breakdowns.down_until)
            if self.state == State.EXECUTE:
                self.machine.command(Command.HOLD)
                self._held_by_fault = True
        elif change == "repaired":
            self.fault = None
            self.emit("fault", fault="breakdown", active=False)
            if self._held_by_fault and self.state == State.HELD:
                self.machine.command(Command.UNHOLD)
            self._held_by_fault = False

    def _activity(self) -> str:
        state = self.state
        if self.fault:
            return "down"
        if state in (State.HOLDING, State.HELD, State.UNHOLDING) or state in (
            State.SUSPENDING,
            State.SUSPENDED,
            State.UNSUSPENDING,
        ):
            return "held"
        if state in (State.STOPPED, State.STOPPING, State.ABORTING, State.ABORTED, State.CLEARING):
            return "stopped"
        if state in (State.EXECUTE, State.COMPLETING):
            return "execute" if self.part is not None else "starved"
        if state == State.IDLE and self.part is None:
            return "starved"
        if state == State.COMPLETE and self.part is not None:
            return "blocked"
        return "idle"

    def after_step(self) -> None:
        dt = self.ctx.world.dt
        now = self.ctx.world.sim_time
        body = int(self.ctx.world.rays.hit_body[self.ray])
        part = self.ctx.pool.part_at_body(body) if body >= 0 else None
        if part != self.part:
            if self.part is not None:
                self.emit("part_left", part=self.part)
            if part is not None:
                self.emit("part_entered", part=part)
            self.part = part
        self._update_fault(now)
        self.in_state_for += dt
        state = self.state
        if state == State.EXECUTE:
            if self.part is not None:
                if self.part != self._progress_part:
                    self._progress_part, self.progress = self.part, 0.0
                    self.emit("process_started", part=self.part)
                self.progress += dt
                if self.progress >= self.cfg.cycle_time - 1e-9:
                    self._finish_part()
                    self.machine.state_complete()
        elif self.machine.is_acting and self.in_state_for >= self.cfg.transition_time - 1e-9:
            self.machine.state_complete()
        if state == State.RESETTING:
            self._progress_part, self.progress = None, 0.0
        key = (self.machine.state, self.part is None, self.fault)
        if key == self._activity_of:
            return  # activity depends on these only
        self._activity_of = key
        activity = self._activity()
        if activity != self.activity:
            self.emit("station_activity", activity=activity, previous=self.activity)
            self.activity = activity

    def _finish_part(self) -> None:
        self.processed += 1
        part = self.ctx.pool.active[self.part]
        defect = None
        if self.cfg.defect_rate > 0 and self.rng.random() < self.cfg.defect_rate:
            defect = f"process defect at {self.id}"
            part.quality, part.defect = "reject", part.defect or defect
        self.emit(
            "process_finished",
            part=self.part,
            cycle_time=self.progress,
            quality="reject" if defect else "good",
            defect=defect,
        )

    # computed signals
    @property
    def part_present(self) -> bool:
        return self.part is not None

    @property
    def starved(self) -> bool:
        return self.machine.state == State.EXECUTE and self.part is None

    @property
    def blocked(self) -> bool:
        return self.machine.state == State.COMPLETE and self.part is not None
