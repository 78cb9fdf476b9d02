"""What every device shares: declared signals and commands, argument checking, the build context.

Devices receive the world and the part pool through the context instead of owning them; a
device never knows about sockets. Commands are declared as data (names, argument types,
units, limits) so that the line can validate them before any state changes and so that a
remote client can be told exactly what is accepted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import msgspec
import numpy as np

from twin.config import LineConfig
from twin.events import EventLog
from twin.parts import PartPool
from twin.sim.world import World


class CommandError(ValueError):
    """A command that is not obeyed. `code` is a stable machine-readable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Arg(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    type: str  # "float", "int", "bool", "str", "vec3", "floats", "strs"
    unit: str = ""
    choices: tuple[str, ...] | None = None  # for "str"
    min: float | None = None
    max: float | None = None
    length: int | None = None  # for "floats"
    optional: bool = False
    doc: str = ""


class CommandSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    args: tuple[Arg, ...] = ()
    doc: str = ""


class SignalSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One signal, declared once: `signals()`, `status()`, `describe()` and the signal schema
    are derived from these declarations.

    `attr` names what is read (an attribute or property of the device, dotted paths allowed;
    the signal's name by default). `rate` (Hz of simulated time) makes the reading a sample
    held between sample instants; `noise` adds seeded Gaussian noise (standard deviation, in
    the signal's unit) to a float reading. `scan` is false for signals a PLC never reads (they
    stay out of `status()`, e.g. a costly physics read)."""

    name: str
    type: str  # "float", "int", "bool", "str", "floats", "int|null", "str|null"
    unit: str = ""
    doc: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None  # the values a "str" signal takes
    rate: float | None = None  # Hz; None: the current value at every reading
    noise: float = 0.0
    attr: str = ""
    scan: bool = True

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of the signal's value."""
        base = {"float": "number", "int": "integer", "bool": "boolean", "str": "string"}
        kind, _, nullable = self.type.partition("|")
        if kind == "floats":
            schema: dict[str, Any] = {"type": "array", "items": {"type": "number"}}
        else:
            schema = {"type": base[kind]}
            if self.min is not None:
                schema["minimum"] = self.min
            if self.max is not None:
                schema["maximum"] = self.max
            if self.choices is not None:
                schema["enum"] = list(self.choices)
        if nullable:
            schema = {"anyOf": [schema, {"type": "null"}]}
        if self.unit:
            schema["description"] = f"{self.doc} ({self.unit})" if self.doc else self.unit
        elif self.doc:
            schema["description"] = self.doc
        return schema

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "unit": self.unit}
        out["doc"] = self.doc
        for key in ("min", "max", "choices", "rate"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.noise:
            out["noise"] = self.noise
        return out


_MAX_STRS = 1000  # items in a "strs" argument (e.g. the nodes of a route)

_ATTR_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def compile_reader(specs: Sequence[SignalSpec], where: str) -> Callable[[Any], dict[str, Any]]:
    """A function returning {name: value} for the specs, as fast as a hand-written dict
    display (a generic loop costs about twice as much, and signals() runs at every scan)."""
    items = []
    shared: dict[str, str] = {}  # a path that several signals read: read once, into a local
    paths = [spec.attr or spec.name for spec in specs]
    for spec, path in zip(specs, paths):
        if not _ATTR_PATH.match(path):
            raise ValueError(f"{where}: signal '{spec.name}' reads '{path}', not an attribute path")
        if paths.count(path) > 1:
            shared.setdefault(path, f"v{len(shared)}")
            items.append(f"{spec.name!r}: {shared[path]}")
        else:
            items.append(f"{spec.name!r}: d.{path}")
    prelude = "".join(f"    {name} = d.{path}\n" for path, name in shared.items())
    namespace: dict[str, Any] = {}
    exec(f"def read(d):\n{prelude}    return {{{', '.join(items)}}}\n", namespace)  # noqa: S102
    return namespace["read"]


def _number(cmd: str, arg: Arg, value: Any, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        want = "an integer" if integer else "a number"
        raise CommandError("bad_type", f"{cmd}: '{arg.name}' must be {want}, got {value!r}")
    if integer and not isinstance(value, int):
        raise CommandError("bad_type", f"{cmd}: '{arg.name}' must be an integer, got {value!r}")
    if not math.isfinite(value):
        raise CommandError("not_finite", f"{cmd}: '{arg.name}' must be finite, got {value!r}")
    low, high = arg.min, arg.max
    if low is not None and value < low:
        unit = f" {arg.unit}" if arg.unit else ""
        raise CommandError(
            "out_of_range",
            f"{cmd}: '{arg.name}' = {value}{unit} is below the minimum {low}{unit}",
        )
    if high is not None and value > high:
        unit = f" {arg.unit}" if arg.unit else ""
        raise CommandError(
            "out_of_range",
            f"{cmd}: '{arg.name}' = {value}{unit} is above the maximum {high}{unit}",
        )
    return value


def validate_args(spec: CommandSpec, args: Any) -> dict[str, Any]:
    """Check `args` against the spec; return a clean dict or raise CommandError."""
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise CommandError(
            "bad_type", f"{spec.name}: args must be a map, got {type(args).__name__}"
        )
    # unknown arguments first (the cheap way: count the declared ones given)
    given = 0
    for arg in spec.args:
        if arg.name in args:
            given += 1
    if given != len(args):
        known = {a.name for a in spec.args}
        extra = [k for k in args if k not in known]
        raise CommandError(
            "unknown_arg",
            f"{spec.name}: unknown argument(s) {sorted(map(str, extra))} "
            f"(accepted: {sorted(known)})",
        )
    clean: dict[str, Any] = {}
    for arg in spec.args:
        if arg.name not in args:
            if arg.optional:
                continue
            raise CommandError("missing_arg", f"{spec.name}: missing argument '{arg.name}'")
        value = args[arg.name]
        if arg.type == "float":
            clean[arg.name] = float(_number(spec.name, arg, value))
        elif arg.type == "int":
            clean[arg.name] = int(_number(spec.name, arg, value, integer=True))
        elif arg.type == "bool":
            if not isinstance(value, bool):
                raise CommandError(
                    "bad_type", f"{spec.name}: '{arg.name}' must be true or false, got {value!r}"
                )
            clean[arg.name] = value
        elif arg.type == "str":
            if not isinstance(value, str) or (arg.choices is not None and value not in arg.choices):
                raise CommandError(
                    "bad_value",
                    f"{spec.name}: '{arg.name}' must be one of {list(arg.choices or [])}, got {value!r}",
                )
            clean[arg.name] = value
        elif arg.type in ("vec3", "floats"):
            n = 3 if arg.type == "vec3" else arg.length
            if not isinstance(value, (list, tuple)) or (n is not None and len(value) != n):
                raise CommandError(
                    "bad_type",
                    f"{spec.name}: '{arg.name}' must be a list of {n} numbers, got {value!r}",
                )
            clean[arg.name] = [float(_number(spec.name, arg, v)) for v in value]
        elif arg.type == "strs":
            if (
                not isinstance(value, (list, tuple))
                or not value
                or len(value) > _MAX_STRS
                or not all(isinstance(v, str) for v in value)
            ):
                raise CommandError(
                    "bad_type",
                    f"{spec.name}: '{arg.name}' must be a list of 1 to {_MAX_STRS} strings, "
                    f"got {value!r}"[:300],
                )
            if arg.choices is not None:
                unknown = [v for v in value if v not in arg.choices]
                if unknown:
                    raise CommandError(
                        "bad_value",
                        f"{spec.name}: '{arg.name}': {unknown[0]!r} is not one of "
                        f"{list(arg.choices)}",
                    )
            clean[arg.name] = list(value)
        else:  # pragma: no cover - a spec bug, not user input
            raise AssertionError(arg.type)
    return clean


class BuildContext:
    """What a device may use while building and updating: physics, parts, events, randomness."""

    def __init__(
        self,
        world: World,
        pool: PartPool,
        events: EventLog,
        seed: int,
        config: LineConfig | None = None,
    ) -> None:
        self.world = world
        self.config = config  # the whole line's config (an AMR needs the route network)
        self.pool = pool
        self.events = events
        self.seed = seed
        self.devices: dict[str, Device] = {}

    def rng(self, device_id: str) -> np.random.Generator:
        """A generator private to one device, so adding a device does not reshuffle the others."""
        key = [ord(ch) for ch in device_id]
        return np.random.default_rng([self.seed, *key])


class Device:
    """Base for line devices. Subclasses declare `kind`, `commands` and `signal_specs`; the
    signal readers are derived from `signal_specs` when the class is created."""

    kind: ClassVar[str] = ""
    commands: tuple[CommandSpec, ...] = ()  # a class may fill them in per instance (limits)
    signal_specs: ClassVar[tuple[SignalSpec, ...]] = ()
    _read_signals: ClassVar[Callable[[Any], dict[str, Any]]]
    _read_status: ClassVar[Callable[[Any], dict[str, Any]]]
    _sampled: ClassVar[tuple[SignalSpec, ...]] = ()  # specs with a rate or noise

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        specs = cls.signal_specs
        where = f"{cls.__name__}"
        cls._read_signals = staticmethod(compile_reader(specs, where))  # type: ignore[assignment]
        cls._read_status = staticmethod(  # type: ignore[assignment]
            compile_reader([s for s in specs if s.scan], where)
        )
        cls._sampled = tuple(s for s in specs if s.rate or s.noise)
        if not cls._sampled:
            # the readers themselves become the methods: no wrapper call on the hot path
            for method, reader in (("signals", cls._read_signals), ("status", cls._read_status)):
                if method not in cls.__dict__:
                    setattr(cls, method, reader)

    def __init__(self, cfg: Any, ctx: BuildContext) -> None:
        self.cfg = cfg
        self.id: str = cfg.id
        self.ctx = ctx
        self.emit: Callable[..., None] = lambda kind, **data: ctx.events.emit(kind, self.id, **data)
        if self._sampled:
            self._sampler = _Sampler(self._sampled, ctx, cfg.id)

    def command_spec(self, name: str) -> CommandSpec:
        for spec in self.commands:
            if spec.name == name:
                return spec
        raise CommandError(
            "unknown_command",
            f"device '{self.id}' ({self.kind}) has no command '{name}' "
            f"(accepted: {[c.name for c in self.commands]})",
        )

    def check(self, command: str, args: dict[str, Any]) -> None:
        """Checks of validated arguments that need the device's build but not its state (an
        arm's joint limits and reach); raise CommandError. Runs before any state check."""

    def apply(self, command: str, args: dict[str, Any]) -> None:
        """Carry out a validated command; raise CommandError (with no state change) to refuse."""
        getattr(self, "cmd_" + command)(**args)

    def before_step(self) -> None:
        """Set actuator targets for the coming physics step."""

    def after_step(self) -> None:
        """Read sensors (the world has already cast its rays) and advance device logic."""

    def signals(self) -> dict[str, Any]:
        """Every declared signal's value."""
        values = type(self)._read_signals(self)
        if self._sampled:
            self._sampler.apply(values)
        return values

    def status(self) -> dict[str, Any]:
        """The signals a PLC reads each scan: all but those declared `scan=False` (a signal
        that costs a physics read the controller has no use for, an arm's joint pose)."""
        values = type(self)._read_status(self)
        if self._sampled:
            self._sampler.apply(values)
        return values

    def safe_state(self, reason: str) -> None:
        """Go to the safe state: stop motion, hold position."""

    def emergency_stop(self, reason: str) -> None:
        """An emergency stop: the safe state, unless the device has a stronger one (a PackML
        unit aborts)."""
        self.safe_state(reason)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "signals": [s.describe() for s in self.signal_specs],
            "commands": [msgspec.to_builtins(c) for c in self.commands],
        }


class _Sampler:
    """Sample-and-hold at a declared rate and seeded noise, for the signals that declare them.
    A sample is taken at the first reading at or after each sample instant (k / rate s), so
    it depends on simulated time only, never on how often the signal is read."""

    def __init__(self, specs: tuple[SignalSpec, ...], ctx: BuildContext, device_id: str) -> None:
        self.specs = specs
        self.world = ctx.world
        self.rng = ctx.rng(device_id + "/signal-noise")
        self.held: dict[str, tuple[int | None, Any]] = {}  # name -> (sample index, value)

    def apply(self, values: dict[str, Any]) -> None:
        now = self.world.sim_time
        for spec in self.specs:
            name = spec.name
            if name not in values:
                continue
            index = math.floor(now * spec.rate + 1e-9) if spec.rate else None
            held = self.held.get(name)
            if held is not None and index is not None and held[0] == index:
                values[name] = held[1]  # still the same sample
                continue
            value = values[name]
            if spec.noise and isinstance(value, float):
                value += float(self.rng.normal(0.0, spec.noise))
            if spec.rate:
                self.held[name] = (index, value)
            values[name] = value
