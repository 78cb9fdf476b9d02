"""Which class builds which device kind, derived from the config alone.

A device kind is registered once: as a member of `twin.config.DeviceConfig` (the union's order
is the build order). Its tag names the module here that builds it (`kind = "conveyor"` ->
`twin.devices.conveyor`), where the `Device` subclass with that `kind` lives.
"""

from __future__ import annotations

import importlib
import typing
from functools import cache

from twin.config import DeviceConfig
from twin.devices.base import Device

BUILD_ORDER: tuple[type, ...] = typing.get_args(DeviceConfig)


def kind_of(config_type: type) -> str:
    return config_type.__struct_config__.tag  # type: ignore[attr-defined]


@cache
def device_class(config_type: type) -> type[Device]:
    """The Device subclass that builds devices of this config type."""
    kind = kind_of(config_type)
    module = importlib.import_module(f"twin.devices.{kind}")
    for obj in vars(module).values():
        if isinstance(obj, type) and issubclass(obj, Device) and obj.kind == kind:
            return obj
    raise LookupError(f"twin.devices.{kind} defines no Device subclass with kind = '{kind}'")
