"""Observation and action spaces derived from a line's self-description (`Line.describe()`).

Observations: every declared signal becomes numbers (bool -> 0/1; float -> value; `floats`
-> one entry per element; `x|null` -> 1 if present, since ids are labels, not quantities;
`str` -> one-hot where its values are known). Counters (`int`) are left out: they only grow,
which tells a policy nothing about the present. Bounds come from the config where it gives
them (a commanded setpoint's min/max), else they are open.

Actions: continuous values in [-1, 1], mapped linearly onto [min, max] of a command argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces


@dataclass(frozen=True)
class _Field:
    device: str
    signal: str
    how: str  # "num", "flag", "present", "onehot", "vec", "until"
    size: int
    low: float = -math.inf
    high: float = math.inf
    choices: tuple[str, ...] = ()


def _setpoint_bounds(device: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Signal name -> (min, max) from a command argument of the same name (e.g. speed)."""
    out = {}
    for cmd in device["commands"]:
        for arg in cmd["args"]:
            if arg.get("min") is not None and arg.get("max") is not None:
                out[arg["name"]] = (float(arg["min"]), float(arg["max"]))
    return out


class SignalEncoder:
    """Flattens the signals of a snapshot into a float32 vector, in describe() order."""

    def __init__(self, devices: list[dict[str, Any]], sample: dict[str, dict[str, Any]]) -> None:
        self.fields: list[_Field] = []
        for dev in devices:
            dev_id, kind = dev["id"], dev["kind"]
            bounds = _setpoint_bounds(dev)
            for sig in dev["signals"]:
                field = self._field(dev_id, kind, sig, bounds, sample.get(dev_id, {}))
                if field is not None:
                    self.fields.append(field)
        self.names: list[str] = []
        low, high = [], []
        for f in self.fields:
            label = f"{f.device}.{f.signal}"
            if f.how == "onehot":
                self.names += [f"{label}={c}" for c in f.choices]
            elif f.how == "vec":
                self.names += [f"{label}[{i}]" for i in range(f.size)]
            else:
                self.names.append(label)
            low += [f.low] * f.size
            high += [f.high] * f.size
        self.low = np.array(low, dtype=np.float32)
        self.high = np.array(high, dtype=np.float32)
        self.size = len(self.names)

    @staticmethod
    def _field(
        dev_id: str,
        kind: str,
        sig: dict[str, Any],
        bounds: dict[str, tuple[float, float]],
        sample: dict[str, Any],
    ) -> _Field | None:
        name, typ, unit = sig["name"], sig["type"], sig.get("unit", "")
        if typ == "bool":
            return _Field(dev_id, name, "flag", 1, 0.0, 1.0)
        if typ.endswith("|null"):
            return _Field(dev_id, name, "present", 1, 0.0, 1.0)
        if typ == "float":
            if name.endswith("_at") and unit == "s":
                return _Field(dev_id, name, "until", 1)  # a due time: encode time left to it
            lo, hi = bounds.get(name, (-math.inf, math.inf))
            return _Field(dev_id, name, "num", 1, lo, hi)
        if typ == "floats":
            # lengths are not declared: take them from a first reading
            return _Field(dev_id, name, "vec", len(sample.get(name) or ()))
        if typ == "str" and sig.get("choices"):  # one-hot over the declared values
            choices = tuple(sig["choices"])
            return _Field(dev_id, name, "onehot", len(choices), 0.0, 1.0, choices)
        return None  # counters (int) and free-text strings

    def space(self) -> spaces.Box:
        return spaces.Box(self.low, self.high, dtype=np.float32)

    def encode(self, signals: dict[str, dict[str, Any]], now: float) -> list[float]:
        out: list[float] = []
        for f in self.fields:
            v = signals[f.device][f.signal]
            if f.how == "num" or f.how == "flag":
                out.append(float(v))
            elif f.how == "present":
                out.append(0.0 if v is None else 1.0)
            elif f.how == "until":
                out.append(float(v) - now)
            elif f.how == "vec":
                out.extend(float(x) for x in v)
            else:
                out.extend(1.0 if v == c else 0.0 for c in f.choices)
        return out


def unit_to_range(a: float, low: float, high: float) -> float:
    """Map an action in [-1, 1] (clipped) onto [low, high]."""
    a = min(1.0, max(-1.0, float(a)))
    return low + (a + 1.0) * 0.5 * (high - low)


def unit_box(n: int) -> spaces.Box:
    return spaces.Box(-1.0, 1.0, shape=(n,), dtype=np.float32)
