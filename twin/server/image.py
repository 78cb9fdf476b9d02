"""The process image: a controller's declared I/O map, resolved once against the line.

A controller names the signals it reads ("device.signal") and the commands it writes
("device.command") once; each cycle then carries only values in that order. Resolving the
names here, at declaration, is what keeps a cycle cheap: no lookups by name, each device's
signals read once per cycle, and only for the devices the image reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from twin.devices.base import CommandError, SignalSpec
from twin.line import LINE_SIGNALS, Line


class ImageError(CommandError):
    """A declaration or a cycle that does not fit (codes: unknown_device, unknown_signal,
    unknown_command, bad_image)."""


def _split(kind: str, i: int, name: str) -> tuple[str, str]:
    device, dot, item = name.rpartition(".")
    if not dot or not device or not item:
        what = "signal" if kind == "inputs" else "command"
        raise ImageError(
            "bad_image", f"{kind}[{i}]: {name!r} is not 'device.{what}' (e.g. 'infeed.running')"
        )
    return device, item


def _unknown_device(kind: str, i: int, device: str, line: Line) -> ImageError:
    return ImageError(
        "unknown_device",
        f"{kind}[{i}]: no device '{device}' (known: {sorted([*line.devices, 'line'])})",
    )


class ProcessImage:
    def __init__(
        self, line: Line, number: int, lease: str, inputs: list[str], outputs: list[str]
    ) -> None:
        self.number = number
        self.lease = lease  # the image lives as long as the lease it was declared under
        self.input_layout: list[dict[str, Any]] = []
        self.output_layout: list[dict[str, Any]] = []
        self._slots: list[tuple[str, str, tuple[str, ...], int]] = []  # device, command, args
        self._resolve_inputs(line, inputs)
        self._resolve_outputs(line, outputs)

    # declaration -----------------------------------------------------------------------
    def _resolve_inputs(self, line: Line, names: list[str]) -> None:
        described = {d["id"]: d for d in line.describe()["devices"]}
        wanted: dict[str, list[str]] = {}  # device -> its signals read, first read first
        order: list[tuple[str, str]] = []  # (device, signal) per input
        _no_duplicates("inputs", names)
        for i, name in enumerate(names):
            device, signal = _split("inputs", i, name)
            desc = described.get(device)
            if desc is None:
                raise _unknown_device("inputs", i, device, line)
            specs = {s["name"]: s for s in desc["signals"]}
            spec = specs.get(signal)
            if spec is None:
                raise ImageError(
                    "unknown_signal",
                    f"inputs[{i}]: device '{device}' has no signal '{signal}' "
                    f"(known: {sorted(specs)})",
                )
            self.input_layout.append(
                {
                    "index": i,
                    "name": name,
                    "device": device,
                    "signal": signal,
                    "type": spec["type"],
                    "unit": spec.get("unit", ""),
                }
            )
            wanted.setdefault(device, []).append(signal)
            order.append((device, signal))
        self.read = _compile_read(line, wanted, order)  # the inputs, in declared order

    def _resolve_outputs(self, line: Line, names: list[str]) -> None:
        _no_duplicates("outputs", names)
        for i, name in enumerate(names):
            device, command = _split("outputs", i, name)
            if device == "line":
                if command not in line.LINE_COMMANDS:
                    raise ImageError(
                        "unknown_command",
                        f"outputs[{i}]: the line has no command '{command}' "
                        f"(accepted: {list(line.LINE_COMMANDS)})",
                    )
                args: list[dict[str, Any]] = []
            else:
                dev = line.devices.get(device)
                if dev is None:
                    raise _unknown_device("outputs", i, device, line)
                try:
                    spec = dev.command_spec(command)
                except CommandError as e:
                    raise ImageError(e.code, f"outputs[{i}]: {e.message}") from None
                args = [msgspec.to_builtins(a) for a in spec.args]
            self._slots.append((device, command, tuple(a["name"] for a in args), len(args)))
            self.output_layout.append(
                {"index": i, "name": name, "device": device, "command": command, "args": args}
            )

    # a cycle ---------------------------------------------------------------------------
    def commands(self, outputs: list[Any]) -> tuple[list[tuple[str, str, dict]], list[int]]:
        """The commands the cycle's outputs ask for, and the output index of each."""
        slots = self._slots
        if len(outputs) != len(slots):
            raise ImageError(
                "bad_image",
                f"outputs has {len(outputs)} entries; layout {self.number} declares "
                f"{len(slots)} (send nil for an output with nothing to do this cycle)",
            )
        batch: list[tuple[str, str, dict]] = []
        where: list[int] = []
        for i, value in enumerate(outputs):
            if value is None:
                continue
            device, command, names, n = slots[i]
            if not isinstance(value, list) or len(value) > n:
                raise ImageError(
                    "bad_image",
                    f"outputs[{i}] ({device}.{command}): must be nil or an array of at most "
                    f"{n} argument(s) {list(names)}, got {value!r:.80}",
                )
            batch.append((device, command, dict(zip(names, value))))
            where.append(i)
        return batch, where


def _no_duplicates(kind: str, names: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise ImageError("bad_image", f"{kind}[{i}]: {name!r} is already {kind}[{seen[name]}]")
        seen[name] = i


def _compile_read(
    line: Line, wanted: dict[str, list[str]], order: list[tuple[str, str]]
) -> Callable[[], list[Any]]:
    """One function that returns the inputs in declared order, as fast as a hand-written list
    display: a device whose wanted signals are all plain scan signals (no sampling, no physics
    read) is read attribute by attribute, as its status() would; any other device through one
    call of its reader (see _reader_for) per cycle."""
    bound: dict[str, Any] = {}  # closure name -> the device, or the reader of a device
    prelude: list[str] = []
    fields: dict[str, dict[str, str]] = {}  # device -> signal -> expression
    for i, (device, names) in enumerate(wanted.items()):
        paths = _plain_paths(line, device, names)
        if paths is not None:
            bound[f"d{i}"] = line if device == "line" else line.devices[device]
            fields[device] = {n: f"d{i}.{paths[n]}" for n in names}
        else:
            bound[f"r{i}"] = _reader_for(line, device, names)
            prelude.append(f"        v{i} = r{i}()\n")
            fields[device] = {n: f"v{i}[{n!r}]" for n in names}
    items = ", ".join(fields[device][signal] for device, signal in order)
    source = (
        f"def make({', '.join(bound)}):\n"
        "    def read():\n" + "".join(prelude) + f"        return [{items}]\n"
        "    return read\n"
    )
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # noqa: S102 - names and paths come from the signal declarations
    return namespace["make"](*bound.values())


def _plain_paths(line: Line, device: str, names: list[str]) -> dict[str, str] | None:
    """Each wanted signal's attribute path, if reading those attributes is exactly what the
    device's status() does for them; None if not (sampled or noisy signals, physics reads)."""
    if device == "line":
        specs: tuple[SignalSpec, ...] = LINE_SIGNALS
    else:
        dev = line.devices[device]
        cls = type(dev)
        if dev._sampled or cls.status is not cls._read_status:
            return None
        specs = dev.signal_specs
    paths = {s.name: s.attr or s.name for s in specs if s.scan}
    if not all(n in paths for n in names):
        return None
    return {n: paths[n] for n in names}


def _reader_for(line: Line, device: str, names: list[str]) -> Callable[[], dict[str, Any]]:
    """The cheapest call that returns every wanted signal of `device`: status() leaves out
    what costs a physics read that a PLC-like scan does not need (an arm's joint pose)."""
    if device == "line":
        return line.line_signals
    dev = line.devices[device]
    status = dev.status()
    return dev.status if all(n in status for n in names) else dev.signals
