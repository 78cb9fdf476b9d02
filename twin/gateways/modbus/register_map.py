"""The Modbus register map of a line, generated from its `describe` (via LineModel).

Layout: block 0 is the twin itself (time, e-stop, control, line KPIs); device n (in describe
order) owns block n: coils, discrete inputs, input registers and holding registers from
n × 100 to n × 100 + 99, so adding a signal to one device never moves another's addresses.

- discrete inputs: bool signals (photo-eyes, running, busy, starved, ...);
- input registers: numbers as int32 (two registers, high word first) × a scale: 1000 for
  metres, seconds, radians and the like (so mm, ms, mrad), 1 for counts; PackML states as
  their ISA-TR88 number; str signals with listed choices as index + 1 (0 = none); other
  optional strings (a station's `fault`) as a discrete input, 1 while set;
- coils: one per command without arguments (write 1 to run it; reads back 0), and bool set
  points (e.g. `reverse`, written through `set_direction`);
- holding registers: numeric set points (e.g. `speed`: writing sends `set_speed`), and the
  arguments of the other commands (e.g. `robot.pick.position`), which a command's coil uses
  when it is written.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from twin.gateways.model import LINE_KPIS, PACKML_STATES, Command, Device, LineModel, Signal

BLOCK = 100
COIL, DISCRETE, INPUT, HOLDING = "coil", "discrete_input", "input_register", "holding_register"
TABLES = (COIL, DISCRETE, INPUT, HOLDING)
# 0-based protocol address -> the usual 1-based "Modicon" reference of each table
REFERENCE_BASE = {COIL: 1, DISCRETE: 10001, INPUT: 30001, HOLDING: 40001}
_MILLI_UNITS = {"m", "m/s", "m/s^2", "s", "rad", "rad/s", "kg", "N", "1/h"}


def scale_for(type_: str, unit: str) -> int:
    base = type_.split("|")[0]
    if base in ("int", "bool", "str"):
        return 1
    return 1000 if unit in _MILLI_UNITS or unit == "" else 1


@dataclass
class Entry:
    table: str
    address: int  # 0-based protocol address
    name: str  # e.g. "infeed.speed", "robot.joint_positions[2]", "mill.reset"
    kind: str  # signal, packml_state, choice, setpoint, command, arg, twin, kpi
    device: str = ""
    field: str = ""  # signal, command or argument name
    command: str = ""  # for setpoint, command and arg entries
    index: int | None = None  # element of a list value
    scale: int = 1
    unit: str = ""
    choices: list[str] | None = None
    optional: bool = False  # an optional argument: NOT_GIVEN leaves it out
    doc: str = ""

    @property
    def words(self) -> int:
        return 2 if self.table in (INPUT, HOLDING) else 1

    @property
    def reference(self) -> int:
        return REFERENCE_BASE[self.table] + self.address

    @property
    def type_name(self) -> str:
        return "bool" if self.words == 1 else "int32"


class RegisterMap:
    def __init__(self, model: LineModel, lengths: dict[str, int]) -> None:
        """`lengths` gives list lengths ("robot.joint_positions": 7) describe does not."""
        self.model = model
        self.entries: list[Entry] = []
        self._next = {t: 0 for t in TABLES}
        self._block(0)
        self._twin()
        # the twin's part takes as many blocks as it needs (a factory's many teach points)
        first = max(1, -(-max(self._next.values()) // BLOCK))
        for n, dev in enumerate(model.devices, start=first):
            self._block(n)
            self._device(dev, lengths)
        self.by_address = {
            (e.table, e.address + w): e for e in self.entries for w in range(e.words)
        }

    def _block(self, n: int) -> None:
        for t in TABLES:
            if self._next[t] > n * BLOCK:
                raise ValueError(f"block {n - 1} overflows its {BLOCK} {t} addresses")
            self._next[t] = n * BLOCK

    def _add(self, table: str, **kw: object) -> Entry:
        entry = Entry(table=table, address=self._next[table], **kw)  # type: ignore[arg-type]
        self._next[table] += entry.words
        self.entries.append(entry)
        return entry

    def _twin(self) -> None:
        self._add(
            DISCRETE,
            name="twin.connected",
            kind="twin",
            field="connected",
            doc="the twin answers the gateway (asked every second)",
        )
        self._add(
            DISCRETE,
            name="twin.estopped",
            kind="twin",
            field="estopped",
            doc="emergency stop active",
        )
        self._add(
            DISCRETE,
            name="twin.controlled",
            kind="twin",
            field="controlled",
            doc="some client holds the twin's control",
        )
        self._add(
            DISCRETE,
            name="twin.lease",
            kind="twin",
            field="lease",
            doc="this gateway holds control for its Modbus clients",
        )
        self._add(
            INPUT,
            name="twin.time",
            kind="twin",
            field="time",
            scale=1000,
            unit="s",
            doc="simulated time",
        )
        self._add(INPUT, name="twin.step", kind="twin", field="step", doc="step index")
        self._add(
            INPUT,
            name="twin.last_refusal",
            kind="twin",
            field="last_refusal",
            doc="code of the last refused write (0 none; see docs/modbus.md)",
        )
        for name, _path, unit, doc in LINE_KPIS:
            self._add(
                INPUT,
                name=f"kpi.{name}",
                kind="kpi",
                field=name,
                scale=scale_for("float", unit),
                unit=unit,
                doc=doc,
            )
        for tp in self.model.teach_points:  # constants from describe, for the PLC's moves
            for i in range(len(tp.point)):
                self._add(
                    INPUT,
                    name=f"teach.{tp.name}[{i}]",
                    kind="teach",
                    field=tp.name,
                    index=i,
                    scale=1000,
                    unit="m",
                    doc=f"where {tp.arm} {tp.action}s at {tp.device}" if i == 0 else "",
                )
        self._add(
            COIL, name="twin.estop", kind="twin", field="estop", doc="write 1: emergency stop"
        )
        self._add(
            COIL,
            name="twin.estop_reset",
            kind="twin",
            field="estop_reset",
            doc="write 1: clear the emergency stop",
        )

    def _signal(
        self, dev: Device, s: Signal, lengths: dict[str, int], setpoint: Command | None
    ) -> None:
        base = s.type.split("|")[0]
        name = f"{dev.id}.{s.name}"
        common = dict(device=dev.id, field=s.name, unit=s.unit, doc=s.doc)
        if base == "bool":
            if setpoint is not None:
                self._add(COIL, name=name, kind="setpoint", command=setpoint.name, **common)
            else:
                self._add(DISCRETE, name=name, kind="signal", **common)
        elif base == "str":
            if s.name == "state" and dev.is_packml_unit:
                self._add(INPUT, name=name, kind="packml_state", **common)
            elif s.choices:
                self._add(INPUT, name=name, kind="choice", choices=s.choices, **common)
            elif s.type.endswith("|null"):  # e.g. a fault: whether it is set
                self._add(
                    DISCRETE,
                    name=name,
                    kind="present",
                    device=dev.id,
                    field=s.name,
                    doc=f"{s.doc} (1: set, 0: none)".strip(),
                )
        elif base == "floats":
            for i in range(s.length or lengths.get(name, 0)):
                self._add(
                    INPUT,
                    name=f"{name}[{i}]",
                    kind="signal",
                    index=i,
                    scale=scale_for("float", s.unit),
                    **common,
                )
        elif setpoint is not None:
            self._add(
                HOLDING,
                name=name,
                kind="setpoint",
                command=setpoint.name,
                scale=scale_for(s.type, s.unit),
                **common,
            )
        else:
            self._add(INPUT, name=name, kind="signal", scale=scale_for(s.type, s.unit), **common)

    def _device(self, dev: Device, lengths: dict[str, int]) -> None:
        setpoints = dev.setpoints
        for s in dev.signals:
            self._signal(dev, s, lengths, setpoints.get(s.name))
        setpoint_commands = {c.name for c in setpoints.values()}
        for c in dev.commands:
            if c.name in setpoint_commands:
                continue
            self._add(
                COIL,
                name=f"{dev.id}.{c.name}",
                kind="command",
                device=dev.id,
                command=c.name,
                doc=c.doc or "write 1 to run",
            )
            for a in c.args:
                n = 3 if a.type == "vec3" else (a.length or 1) if a.type == "floats" else 1
                for i in range(n):
                    suffix = f"[{i}]" if a.type in ("vec3", "floats") else ""
                    self._add(
                        HOLDING,
                        name=f"{dev.id}.{c.name}.{a.name}{suffix}",
                        kind="arg",
                        device=dev.id,
                        command=c.name,
                        field=a.name,
                        index=i if suffix else None,
                        scale=scale_for(a.type, a.unit),
                        unit=a.unit,
                        choices=a.choices,
                        optional=a.optional,
                        doc=a.doc if i == 0 else "",
                    )

    # the table for PLC programmers -------------------------------------------------------
    def rows(self) -> list[dict[str, str]]:
        out = []
        for e in self.entries:
            if e.kind == "packml_state":
                coding = "PackML state: " + ", ".join(
                    f"{v} {k}" for k, v in PACKML_STATES.items() if v
                )
            elif e.choices:
                coding = "0 none, " + ", ".join(f"{i + 1} {c}" for i, c in enumerate(e.choices))
            elif e.scale != 1:
                coding = f"value × {e.scale}" + (f" ({e.unit})" if e.unit else "")
            else:
                coding = e.unit
            if e.optional and not e.choices:
                coding += "; optional: -2147483648 (0x80000000, the initial value) leaves it out"
            access = "R/W" if e.table in (COIL, HOLDING) else "R"
            out.append(
                {
                    "table": e.table,
                    "address": str(e.address),
                    "reference": str(e.reference),
                    "name": e.name,
                    "type": e.type_name,
                    "access": access,
                    "coding": coding,
                    "doc": e.doc,
                }
            )
        return out

    def csv(self) -> str:
        buf = io.StringIO()
        rows = self.rows()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()

    def markdown(self) -> str:
        rows = self.rows()
        head = list(rows[0])
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            lines.append("| " + " | ".join(r[h].replace("|", "\\|") for h in head) + " |")
        return "\n".join(lines) + "\n"


NOT_GIVEN = -(1 << 31)  # an optional argument's register value that leaves it out


def to_words(value: int) -> list[int]:
    """An int32 as two 16-bit registers, high word first (two's complement)."""
    value &= 0xFFFFFFFF
    return [value >> 16, value & 0xFFFF]


def from_words(high: int, low: int) -> int:
    value = (high << 16) | low
    return value - (1 << 32) if value & 0x80000000 else value


def encode_number(value: float, scale: int) -> int:
    """A value × scale, rounded and clamped to int32."""
    raw = round(value * scale)
    return max(-(1 << 31), min((1 << 31) - 1, raw))
