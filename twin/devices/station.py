"""Processing station: a table with a part-present beam, a PackML state machine and a cycle time.

Acting states (Starting, Resetting, Completing...) take `transition_time`; in Execute the
station processes the part on its fixture for `cycle_time`, then completes. With no part
in Execute it is starved; Complete with the part still on it, it is blocked.
"""

from __future__ import annotations

import math
from typing import Any

from twin.config import StationConfig
from twin.devices.base import BuildContext, CommandError, CommandSpec, Device, SignalSpec
from twin.production.packml import Command, IllegalCommand, PackMLMachine, State

_BEAM_HEIGHT = 0.012  # m above the fixture


class Station(Device):
    kind = "station"
    commands = tuple(
        CommandSpec(name=c.value.lower(), doc=f"PackML {c.value} command") for c in Command
    )
    signal_specs = (
        SignalSpec(name="state", type="str", doc="PackML state"),
        SignalSpec(name="part_present", type="bool"),
        SignalSpec(name="part", type="int|null", doc="id of the part on the fixture"),
        SignalSpec(name="progress", type="float", unit="s", doc="processing time done on it"),
        SignalSpec(name="cycle_time", type="float", unit="s"),
        SignalSpec(name="processed", type="int", doc="parts finished"),
        SignalSpec(name="starved", type="bool", doc="in Execute with no part"),
        SignalSpec(name="blocked", type="bool", doc="Complete with the part not yet taken"),
    )

    def __init__(self, cfg: StationConfig, ctx: BuildContext) -> None:
        super().__init__(cfg, ctx)
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

    def point(self, along: float, across: float = 0.0, up: float = 0.0) -> list[float]:
        """World point on the table top, in the station frame."""
        c, s = math.cos(self.cfg.yaw), math.sin(self.cfg.yaw)
        x0, y0, _ = self.cfg.position
        return [x0 + c * along - s * across, y0 + s * along + c * across, self.cfg.size[2] + up]

    @property
    def surface_z(self) -> float:
        return self.cfg.size[2]

    @property
    def state(self) -> State:
        return self.machine.state

    def _on_transition(self, old: State, new: State, cause: str) -> None:
        self.in_state_for = 0.0
        self.emit("station_state", old=old.value, new=new.value, cause=cause, part=self.part)

    def apply(self, command: str, args: dict[str, Any]) -> None:
        try:
            self.machine.command(command)
        except IllegalCommand as e:
            raise CommandError("illegal_state", f"station '{self.id}': {e}") from None

    def safe_state(self, reason: str) -> None:
        if self.state == State.EXECUTE:
            self.machine.command(Command.HOLD)
        elif self.state in (State.STARTING, State.UNHOLDING, State.UNSUSPENDING):
            self.machine.force(State.HOLDING)

    def after_step(self) -> None:
        dt = self.ctx.world.dt
        body = int(self.ctx.world.rays.hit_body[self.ray])
        self.part = self.ctx.pool.part_at_body(body) if body >= 0 else None
        self.in_state_for += dt
        state = self.state
        if state == State.EXECUTE:
            if self.part is not None:
                if self.part != self._progress_part:
                    self._progress_part, self.progress = self.part, 0.0
                    self.emit("process_started", part=self.part)
                self.progress += dt
                if self.progress >= self.cfg.cycle_time - 1e-9:
                    self.processed += 1
                    self.emit("process_finished", part=self.part, cycle_time=self.progress)
                    self.machine.state_complete()
        elif self.machine.is_acting and self.in_state_for >= self.cfg.transition_time - 1e-9:
            self.machine.state_complete()
        if state == State.RESETTING:
            self._progress_part, self.progress = None, 0.0

    def signals(self) -> dict[str, Any]:
        state = self.state
        return {
            "state": state.value,
            "part_present": self.part is not None,
            "part": self.part,
            "progress": self.progress,
            "cycle_time": self.cfg.cycle_time,
            "processed": self.processed,
            "starved": state == State.EXECUTE and self.part is None,
            "blocked": state == State.COMPLETE and self.part is not None,
        }
