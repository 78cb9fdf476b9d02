"""From the twin's value types to OPC UA data types, units and ranges, and back.

| twin type | OPC UA | note |
|---|---|---|
| bool | Boolean | |
| int | Int32 | |
| int\\|null | Int32 | 0 = none (part ids start at 1) |
| float | Double | |
| str, str\\|null | String | "" = none |
| floats, vec3 | Double[] | |
"""

from __future__ import annotations

import math
from typing import Any

from asyncua import ua

UNECE_UNITS_URI = "http://www.opcfoundation.org/UA/units/un/cefact"
# UNECE Rec. 20 common codes of the units the twin uses
_UNECE = {
    "m": ("MTR", "metre"),
    "m/s": ("MTS", "metre per second"),
    "m/s^2": ("MSK", "metre per second squared"),
    "s": ("SEC", "second"),
    "rad": ("C81", "radian"),
    "rad/s": ("2A", "radian per second"),
    "kg": ("KGM", "kilogram"),
    "N": ("NEW", "newton"),
    "1/h": ("H10", "reciprocal hour"),
}


def variant_type(twin_type: str) -> ua.VariantType:
    base = twin_type.split("|")[0]
    return {
        "bool": ua.VariantType.Boolean,
        "int": ua.VariantType.Int32,
        "float": ua.VariantType.Double,
        "str": ua.VariantType.String,
        "floats": ua.VariantType.Double,
        "vec3": ua.VariantType.Double,
    }.get(base, ua.VariantType.String)


def is_array(twin_type: str) -> bool:
    return twin_type in ("floats", "vec3")


def to_ua(twin_type: str, value: Any) -> Any:
    """A twin value as the Python value of its OPC UA variant."""
    base = twin_type.split("|")[0]
    if base == "bool":
        return bool(value)
    if base == "int":
        return int(value) if value is not None else 0
    if base == "float":
        return float(value) if value is not None else 0.0
    if base in ("floats", "vec3"):
        return [float(v) for v in value] if value is not None else []
    return "" if value is None else str(value)


def variant(twin_type: str, value: Any) -> ua.Variant:
    return ua.Variant(to_ua(twin_type, value), variant_type(twin_type))


def eu_information(unit: str) -> ua.EUInformation:
    code, name = _UNECE.get(unit, ("", unit))
    unit_id = -1
    if code:
        unit_id = 0
        for ch in code:
            unit_id = (unit_id << 8) | ord(ch)
    return ua.EUInformation(
        NamespaceUri=UNECE_UNITS_URI,
        UnitId=unit_id,
        DisplayName=ua.LocalizedText(unit),
        Description=ua.LocalizedText(name),
    )


class ArgumentError(Exception):
    """A method or write argument the gateway cannot pass on; `status` is the OPC UA code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def from_ua(twin_type: str, name: str, value: Any, length: int | None = None) -> Any:
    """A value from a client as the twin expects it; ArgumentError (BadTypeMismatch) if not."""
    base = twin_type.split("|")[0]
    if base == "bool":
        if isinstance(value, bool):
            return value
    elif base == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif base == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ArgumentError(
                    ua.StatusCodes.BadOutOfRange, f"'{name}' = {value} is not finite"
                )
            return float(value)
    elif base in ("floats", "vec3"):
        want = 3 if base == "vec3" else length
        if isinstance(value, (list, tuple)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            if want is not None and len(value) != want:
                raise ArgumentError(
                    ua.StatusCodes.BadTypeMismatch,
                    f"'{name}' needs {want} numbers, got {len(value)}",
                )
            return [float(v) for v in value]
    elif isinstance(value, str):
        return value
    raise ArgumentError(
        ua.StatusCodes.BadTypeMismatch,
        f"'{name}' must be {twin_type}, got {type(value).__name__} {value!r}",
    )


# the twin's refusal codes (docs/protocol.md) as OPC UA status codes
_STATUS = {
    "out_of_range": ua.StatusCodes.BadOutOfRange,
    "out_of_reach": ua.StatusCodes.BadOutOfRange,
    "not_finite": ua.StatusCodes.BadOutOfRange,
    "bad_type": ua.StatusCodes.BadTypeMismatch,
    "bad_value": ua.StatusCodes.BadInvalidArgument,
    "missing_arg": ua.StatusCodes.BadArgumentsMissing,
    "unknown_arg": ua.StatusCodes.BadTooManyArguments,
    "illegal_state": ua.StatusCodes.BadInvalidState,
    "busy": ua.StatusCodes.BadInvalidState,
    "holding": ua.StatusCodes.BadInvalidState,
    "not_holding": ua.StatusCodes.BadInvalidState,
    "fault_active": ua.StatusCodes.BadInvalidState,
    "estopped": ua.StatusCodes.BadInvalidState,
    "wrong_mode": ua.StatusCodes.BadInvalidState,
    "not_controller": ua.StatusCodes.BadUserAccessDenied,
    "control_held": ua.StatusCodes.BadUserAccessDenied,
    "forbidden": ua.StatusCodes.BadUserAccessDenied,
    "rate_limited": ua.StatusCodes.BadTooManyOperations,
    "unknown_device": ua.StatusCodes.BadNodeIdUnknown,
    "unknown_command": ua.StatusCodes.BadMethodInvalid,
}


def status_of(code: str) -> int:
    """The OPC UA status code for a twin refusal code (BadUnexpectedError if unknown)."""
    return _STATUS.get(code, ua.StatusCodes.BadUnexpectedError)
