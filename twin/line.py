"""Line: builds the devices of a config into one World and steps them (the plant).

Per step: the line's own state machine advances, devices set their actuators, physics
advances, then devices read their sensors. Commands are validated against each device's
declared specs before anything changes. The line knows no controller: the built-in one and
the config's scripted e-stops are composed around it in `twin.automation`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from twin.command_rules import ALLOWED_IN_ESTOP
from twin.config import CameraConfig, LineConfig
from twin.description import RECIPES, packml_description
from twin.devices.base import (
    BuildContext,
    CommandError,
    Device,
    SignalSpec,
    compile_reader,
    validate_args,
)
from twin.devices.kinds import BUILD_ORDER, device_class
from twin.devices.sink import Sink
from twin.devices.source import Source
from twin.events import Event, EventLog, event_catalogue
from twin.geometry import CONVENTIONS, device_geometry, teach_points
from twin.part_loss import LostPartDetector
from twin.parts import PartPool
from twin.production.packml import Command, IllegalCommand, PackMLMachine, State
from twin.routes import network_description
from twin.sim.world import World

LINE_SIGNALS = (  # the line's own signals (line_signals())
    SignalSpec(
        name="state",
        type="str",
        choices=tuple(s.value for s in State),
        doc="PackML state",
        attr="packml.state_value",
    ),
    SignalSpec(name="estopped", type="bool", doc="e-stop active"),
)
_read_line_signals = compile_reader(LINE_SIGNALS, "Line")


class Line:
    def __init__(
        self,
        cfg: LineConfig,
        *,
        seed: int | None = None,
        gui: bool = False,
        visuals: bool = False,
    ) -> None:
        """`visuals`: keep the robots' visual meshes, to render pictures (see World); a line
        with a camera always has them."""
        self.cfg = cfg
        self.seed = cfg.physics.seed if seed is None else seed
        # cameras render the robots' visual meshes
        visuals = visuals or any(isinstance(d, CameraConfig) for d in cfg.devices)
        self.world = World(cfg.physics, gui=gui, visuals=visuals)
        self.events = EventLog(lambda: (self.world.step_index, self.world.sim_time))
        self.pool = PartPool(self.world, cfg.part_types, cfg.part_pool.capacity)
        ctx = BuildContext(self.world, self.pool, self.events, self.seed, cfg)
        for kind in BUILD_ORDER:  # devices that others are mounted on are built first
            for dc in cfg.devices:
                if type(dc) is kind:
                    ctx.devices[dc.id] = device_class(kind)(dc, ctx)
        # keep config order for signals and describe
        self.devices: dict[str, Device] = {dc.id: ctx.devices[dc.id] for dc in cfg.devices}
        # only the hooks a device really has: most devices act in one of the two
        self._before = [
            d.before_step for d in self.devices.values() if _overrides(d, "before_step")
        ]
        self._after = [d.after_step for d in self.devices.values() if _overrides(d, "after_step")]
        self._sources = [d for d in self.devices.values() if isinstance(d, Source)]
        self._sinks = [d for d in self.devices.values() if isinstance(d, Sink)]
        self.lost_parts = LostPartDetector(
            cfg,
            self.world,
            self.pool,
            lambda kind, **data: self.emit(kind, **data),
        )
        self.ctx = ctx
        self.estopped = False
        # the line as a whole is a PackML unit: it starts itself (Stopped -> Execute) and
        # a built-in controller acts only in Execute
        self.packml = PackMLMachine(State.STOPPED)
        self.packml.on_transition = lambda old, new, cause: self.emit(
            "line_state", old=old.value, new=new.value, cause=cause
        )
        self._auto_start = True

    # time ---------------------------------------------------------------------------
    @property
    def step_index(self) -> int:
        return self.world.step_index

    @property
    def sim_time(self) -> float:
        return self.world.sim_time

    @property
    def dt(self) -> float:
        return self.world.dt

    def step(self, n: int = 1) -> None:
        before, after, world, lost = self._before, self._after, self.world, self.lost_parts
        for _ in range(n):
            if self._auto_start or self.packml.is_acting:
                self._advance_line_state()
            for hook in before:
                hook()
            world.step()
            for hook in after:
                hook()
            if world.step_index % lost.period == 0:
                lost.check()

    # one step in two halves, for the code that runs a controller between them
    def begin_step(self) -> None:
        """The line's own state advances (what a controller then sees as the line state)."""
        if self._auto_start or self.packml.is_acting:
            self._advance_line_state()

    def finish_step(self) -> None:
        """Devices act, physics advances, devices sense."""
        for hook in self._before:
            hook()
        self.world.step()
        for hook in self._after:
            hook()
        if self.world.step_index % self.lost_parts.period == 0:
            self.lost_parts.check()

    def _advance_line_state(self) -> None:
        """Acting states complete within a step; after start-up or an e-stop reset the line
        brings itself back to Execute, as a line in automatic mode does."""
        machine = self.packml
        if machine.is_acting:
            machine.state_complete()
        elif machine.state == State.STOPPED and not self.estopped:
            machine.command(Command.RESET)
        elif machine.state == State.IDLE:
            machine.command(Command.START)
        elif machine.state == State.EXECUTE:
            self._auto_start = False

    # commands -----------------------------------------------------------------------
    LINE_COMMANDS = tuple(c.value.lower() for c in Command)

    def _line_command(self, command: str) -> None:
        try:
            self.packml.command(command)
        except IllegalCommand as e:
            raise CommandError("illegal_state", f"line: {e}") from None
        self._auto_start = False
        if command == "abort":  # PackML: aborting the line aborts its units
            for d in self.devices.values():
                d.emergency_stop("line abort")
            self.events.emit("safe_state", "line", reason="line abort")
        elif command in ("hold", "stop"):
            self.safe_state(f"line {command}")

    def check_command(
        self, device_id: str, command: str, args: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """What can be checked without the line's state: the device and the command exist and
        the arguments fit the command's declaration. Returns the clean arguments or raises
        CommandError; changes nothing. The device id "line" addresses the line's own PackML
        state machine."""
        if device_id == "line" and isinstance(command, str):
            if command not in self.LINE_COMMANDS:
                raise CommandError(
                    "unknown_command",
                    f"the line has no command '{command}' (accepted: {list(self.LINE_COMMANDS)})",
                )
            if args:
                raise CommandError("unknown_arg", f"line {command}: takes no arguments")
            return {}
        device = self.devices.get(device_id) if isinstance(device_id, str) else None
        if device is None:
            raise CommandError(
                "unknown_device", f"no device '{device_id}' (known: {sorted(self.devices)})"
            )
        if not isinstance(command, str):
            raise CommandError("bad_type", f"command name must be a string, got {command!r}")
        clean = validate_args(device.command_spec(command), args)
        device.check(command, clean)  # e.g. an arm's reach: before any look at its state
        return clean

    def apply(self, device_id: str, command: str, args: dict[str, Any] | None = None) -> None:
        """Validate and carry out one device command, or raise CommandError with no change."""
        self.carry_out(device_id, command, self.check_command(device_id, command, args))

    def carry_out(self, device_id: str, command: str, clean: dict[str, Any]) -> None:
        """Carry out a command whose arguments `check_command` returned, in the line's state
        now (raise CommandError with no change to refuse it)."""
        # the one e-stop rule (twin.command_rules), for the line's own commands and devices'
        if self.estopped and command not in ALLOWED_IN_ESTOP:
            raise CommandError(
                "estopped",
                f"the line is emergency-stopped: '{command}' refused until estop_reset "
                f"(only {sorted(ALLOWED_IN_ESTOP)} pass)",
            )
        if device_id == "line":
            self._line_command(command)
            return
        self.devices[device_id].apply(command, clean)

    # e-stop ---------------------------------------------------------------------------
    def estop(self, reason: str = "") -> None:
        """Emergency stop: the line aborts (so no controller acts), safe state, motion
        commands refused."""
        if not self.estopped:
            self.estopped = True
            if self.packml.can(Command.ABORT):
                self.packml.command(Command.ABORT)
        why = f"estop: {reason}" if reason else "estop"
        for d in self.devices.values():
            d.emergency_stop(why)
        self.events.emit("safe_state", "line", reason=why)
        self.emit("estop", reason=reason)

    def estop_reset(self) -> None:
        """Release the e-stop; devices stay in their safe state until commanded."""
        if self.estopped:
            self.estopped = False
            if self.packml.state == State.ABORTING:
                self.packml.state_complete()
            if self.packml.state == State.ABORTED:
                self.packml.command(Command.CLEAR)
            self._auto_start = True  # Clearing -> Stopped -> Idle -> Execute by itself
        self.emit("estop_reset")

    def emit(self, kind: str, device: str = "line", **data: Any) -> None:
        """Record an event from outside the devices (server, faults) in the same stream."""
        self.events.emit(kind, device, **data)

    def safe_state(self, reason: str) -> None:
        """Belts stop, robots hold, stations go to Held; an event says why."""
        for d in self.devices.values():
            d.safe_state(reason)
        self.events.emit("safe_state", "line", reason=reason)

    # observation --------------------------------------------------------------------
    def signals(self) -> dict[str, dict[str, Any]]:
        out = {dev_id: d.signals() for dev_id, d in self.devices.items()}
        out["line"] = self.line_signals()
        return out

    def line_signals(self) -> dict[str, Any]:
        return _read_line_signals(self)

    def drain_events(self) -> list[Event]:
        return self.events.drain()

    def part_poses(self) -> list[dict[str, Any]]:
        """Pose of every part on the line (costs one call per part: use at telemetry rate)."""
        c = self.world.client
        out = []
        for part in self.pool.active.values():
            pos, orn = c.getBasePositionAndOrientation(part.body)
            out.append(
                {"id": part.id, "type": part.type, "position": list(pos), "orientation": list(orn)}
            )
        return out

    def counts(self) -> dict[str, int]:
        """Parts by where they are: spawned = completed + scrapped + lost + wip, always
        (parts put on the line by hand, as benchmarks do, count as spawned too)."""
        pool = self.pool
        return {
            "parts_spawned": pool.spawned,
            "parts_completed": sum(d.count for d in self._sinks),
            "parts_scrapped": pool.left["scrapped"],
            "parts_lost": pool.left["lost"],
            "wip": len(pool.active),
        }

    def describe(self) -> dict[str, Any]:
        """The line's self-description: devices with their signals, commands and geometry,
        the teach points, the PackML states and rules, each kind's recipe, the events."""
        cfg = self.cfg
        return {
            "line": cfg.name,
            "timestep": self.dt,
            "seed": self.seed,
            "devices": [
                *(
                    {**d.describe(), "geometry": device_geometry(cfg, d.cfg)}
                    for d in self.devices.values()
                ),
                {
                    "id": "line",
                    "kind": "line",
                    "signals": [s.describe() for s in LINE_SIGNALS],
                    "commands": [
                        {"name": c, "args": [], "doc": f"PackML {c.capitalize()} for the line"}
                        for c in self.LINE_COMMANDS
                    ],
                },
            ],
            "conventions": CONVENTIONS,
            "part_types": [
                {"name": t.name, "size": list(t.size), "mass": t.mass} for t in cfg.part_types
            ],
            "teach_points": teach_points(cfg),
            "network": network_description(cfg),
            "packml": packml_description(),
            "recipes": RECIPES,
            "events": event_catalogue(),
            "signals_schema": self.signals_schema(),
        }

    def signals_schema(self) -> dict[str, Any]:
        """JSON Schema of this line's `state.signals`, from the signal declarations."""

        def device(specs: tuple[SignalSpec, ...]) -> dict[str, Any]:
            return {
                "type": "object",
                "properties": {s.name: s.json_schema() for s in specs},
                "required": [s.name for s in specs],
                "additionalProperties": False,
            }

        props = {dev_id: device(d.signal_specs) for dev_id, d in self.devices.items()}
        props["line"] = device(LINE_SIGNALS)
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": props,
            "required": list(props),
            "additionalProperties": False,
        }

    def close(self) -> None:
        self.world.close()

    def __enter__(self) -> Line:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _overrides(device: Device, hook: str) -> bool:
    return getattr(type(device), hook) is not getattr(Device, hook)


class SignalView(Mapping[str, dict[str, Any]]):
    """What the built-in controller reads in one scan: each device's status() (its signals
    but for an arm's joint pose, which a PLC never reads), fetched only for the devices the
    scan looks at. Valid for that scan only."""

    def __init__(self, line: Line) -> None:
        self._line = line
        self._read: dict[str, dict[str, Any]] = {}

    def refresh(self) -> SignalView:
        """The view for the next scan: what it read so far is forgotten."""
        self._read.clear()
        return self

    def __getitem__(self, device_id: str) -> dict[str, Any]:
        values = self._read.get(device_id)
        if values is None:
            line = self._line
            if device_id == "line":
                values = line.line_signals()
            else:
                values = line.devices[device_id].status()
            self._read[device_id] = values
        return values

    def __iter__(self) -> Iterator[str]:
        yield from self._line.devices
        yield "line"

    def __len__(self) -> int:
        return len(self._line.devices) + 1
