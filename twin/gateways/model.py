"""What a gateway exposes, derived from the twin's `describe` reply and nothing else.

A `LineModel` lists every device with its signals (type, unit, limits) and commands (typed
arguments), and marks what the industry models need: PackML units (the line and every device
that takes the PackML commands), arms (joint positions and tool position), set points (a
signal written through a one-argument command of the same name, e.g. `speed` through
`set_speed`). Both the OPC UA address space and the Modbus map are built from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PACKML_COMMANDS = (
    "reset",
    "start",
    "stop",
    "hold",
    "unhold",
    "suspend",
    "unsuspend",
    "abort",
    "clear",
)
# ISA-TR88.00.02 (PackTags) state numbers, used for StateCurrent and Modbus registers
PACKML_STATES = {
    "Undefined": 0,
    "Clearing": 1,
    "Stopped": 2,
    "Starting": 3,
    "Idle": 4,
    "Suspended": 5,
    "Execute": 6,
    "Stopping": 7,
    "Aborting": 8,
    "Aborted": 9,
    "Holding": 10,
    "Held": 11,
    "Unholding": 12,
    "Suspending": 13,
    "Unsuspending": 14,
    "Resetting": 15,
    "Completing": 16,
    "Complete": 17,
}
# KPI variables: (name, path into the kpis map, unit, doc)
LINE_KPIS: tuple[tuple[str, tuple[str, ...], str, str], ...] = (
    ("Throughput", ("throughput_per_hour",), "1/h", "completed parts per hour"),
    ("PartsSpawned", ("parts_spawned",), "", "parts emitted by the sources"),
    ("PartsCompleted", ("parts_completed",), "", "parts that reached a sink"),
    ("PartsGood", ("parts_good",), "", "completed parts without defect"),
    ("WIP", ("wip",), "", "parts in the line now"),
    ("WIPMean", ("wip_mean",), "", "time-averaged parts in the line"),
    ("LeadTimeMean", ("lead_time_s", "mean"), "s", "mean spawn-to-completion time"),
    ("LeadTimeP90", ("lead_time_s", "p90"), "s", "90th percentile lead time"),
    ("OEE", ("oee", "oee"), "", "line OEE (0..1)"),
    ("Availability", ("oee", "availability"), "", "line availability (0..1)"),
    ("Performance", ("oee", "performance"), "", "line performance (0..1)"),
    ("Quality", ("oee", "quality"), "", "line quality (0..1)"),
)
STATION_KPIS: tuple[tuple[str, str, str], ...] = (
    ("OEE", "oee", "station OEE (0..1)"),
    ("Availability", "availability", "(0..1)"),
    ("Performance", "performance", "(0..1)"),
    ("Quality", "quality", "(0..1)"),
    ("Utilisation", "utilisation", "share of time in execute (0..1)"),
)


@dataclass
class Signal:
    name: str
    type: str  # bool, int, int|null, float, str, str|null, floats
    unit: str = ""
    doc: str = ""
    min: float | None = None
    max: float | None = None
    length: int | None = None  # for floats, when known
    choices: list[str] | None = None  # for str signals, when describe lists them


@dataclass
class Arg:
    name: str
    type: str  # float, int, bool, str, vec3, floats
    unit: str = ""
    min: float | None = None
    max: float | None = None
    choices: list[str] | None = None
    length: int | None = None
    optional: bool = False
    doc: str = ""


@dataclass
class Command:
    name: str
    args: list[Arg]
    doc: str = ""


@dataclass
class Device:
    id: str
    kind: str
    signals: list[Signal]
    commands: list[Command]
    extra: dict[str, Any] = field(default_factory=dict)  # anything else describe says

    def command(self, name: str) -> Command | None:
        return next((c for c in self.commands if c.name == name), None)

    def signal(self, name: str) -> Signal | None:
        return next((s for s in self.signals if s.name == name), None)

    @property
    def is_packml_unit(self) -> bool:
        names = {c.name for c in self.commands}
        return all(c in names for c in PACKML_COMMANDS) and self.signal("state") is not None

    @property
    def is_arm(self) -> bool:
        return self.signal("joint_positions") is not None

    @property
    def setpoints(self) -> dict[str, Command]:
        """Signals written through a one-argument command: signal name -> that command.

        `speed` is set by `set_speed(speed)`, `reverse` by `set_direction(reverse)`: the
        command's only argument has the signal's name and a scalar type."""
        found: dict[str, Command] = {}
        for c in self.commands:
            if len(c.args) == 1 and c.args[0].type in ("float", "int", "bool"):
                s = self.signal(c.args[0].name)
                if s is not None:
                    found[s.name] = c
        return found


@dataclass
class TeachPoint:
    """Where an arm picks or places for one of the line's transfers (world frame, m)."""

    name: str  # "<arm>.<pick|place>.<device>", e.g. "robot.pick.mill"
    arm: str
    action: str  # pick or place
    device: str
    point: list[float]


@dataclass
class LineModel:
    line: str
    timestep: float
    devices: list[Device]
    teach_points: list[TeachPoint] = field(default_factory=list)

    @property
    def geometry(self) -> dict[str, dict[str, Any]]:
        """Each device's geometry as describe gives it (may be empty)."""
        return {
            d.id: d.extra["geometry"]
            for d in self.devices
            if isinstance(d.extra.get("geometry"), dict)
        }

    def device(self, device_id: str) -> Device:
        return next(d for d in self.devices if d.id == device_id)

    @property
    def stations(self) -> list[Device]:
        return [d for d in self.devices if d.is_packml_unit and d.id != "line"]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _signal(raw: dict[str, Any]) -> Signal:
    return Signal(
        name=raw["name"],
        type=raw.get("type", "float"),
        unit=raw.get("unit") or "",
        doc=raw.get("doc") or "",
        min=_number(raw.get("min")),
        max=_number(raw.get("max")),
        length=raw.get("length") if isinstance(raw.get("length"), int) else None,
        choices=list(raw["choices"]) if raw.get("choices") else None,
    )


def _arg(raw: dict[str, Any]) -> Arg:
    return Arg(
        name=raw["name"],
        type=raw.get("type", "float"),
        unit=raw.get("unit") or "",
        min=_number(raw.get("min")),
        max=_number(raw.get("max")),
        choices=list(raw["choices"]) if raw.get("choices") else None,
        length=raw.get("length") if isinstance(raw.get("length"), int) else None,
        optional=bool(raw.get("optional", False)),
        doc=raw.get("doc") or "",
    )


def line_model(describe: Any) -> LineModel:
    """The model of a `describe` reply (a DescribeReply struct or its map)."""
    raw = (
        describe
        if isinstance(describe, dict)
        else {
            "line": describe.line,
            "timestep": describe.timestep,
            "devices": describe.devices,
            "teach_points": getattr(describe, "teach_points", None) or [],
        }
    )
    devices = []
    for d in raw["devices"]:
        signals = [_signal(s) for s in d.get("signals", [])]
        commands = [
            Command(c["name"], [_arg(a) for a in c.get("args", [])], c.get("doc") or "")
            for c in d.get("commands", [])
        ]
        # a set point's limits are those of the command that writes it
        dev = Device(d["id"], d.get("kind", ""), signals, commands)
        for name, cmd in dev.setpoints.items():
            s, a = dev.signal(name), cmd.args[0]
            assert s is not None
            s.min = s.min if s.min is not None else a.min
            s.max = s.max if s.max is not None else a.max
        dev.extra = {k: v for k, v in d.items() if k not in ("id", "kind", "signals", "commands")}
        devices.append(dev)
    return LineModel(raw["line"], float(raw["timestep"]), devices, _teach_points(raw))


def _teach_points(raw: dict[str, Any]) -> list[TeachPoint]:
    found: dict[str, TeachPoint] = {}
    for transfer in raw.get("teach_points") or []:
        arm = transfer.get("arm")
        for action in ("pick", "place"):
            end = transfer.get(action) or {}
            point, device = end.get("point"), end.get("device")
            if isinstance(arm, str) and isinstance(device, str) and isinstance(point, list):
                name = f"{arm}.{action}.{device}"
                found.setdefault(
                    name, TeachPoint(name, arm, action, device, [float(v) for v in point])
                )
    return list(found.values())
