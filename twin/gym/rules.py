"""The rest of the line while a policy works the arm: the built-in sequencer without transfers.

The sequencer runs belts (stop at the pick eye) and stations (reset, start, unhold) from
signals alone. Here it is ticked once per env step, outside the twin, so it sends its
commands through the same back end as the policy: in-process and remote behave the same.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import msgspec

from twin.config import LineConfig
from twin.control.sequencer import Sequencer
from twin.gym.task import Port


class _LinePort:
    """The part of `Line` the sequencer uses (devices' kinds, dt, apply), over a Port."""

    def __init__(self, devices: list[dict[str, Any]], dt: float, port: Port) -> None:
        self.devices = {
            d["id"]: SimpleNamespace(kind=d["kind"]) for d in devices if d["id"] != "line"
        }
        self.dt = dt  # one tick per env step: its timers count env steps
        self.port = port

    def apply(self, device: str, command: str, args: dict[str, Any] | None = None) -> None:
        self.port.send(device, command, args)


def line_rules(
    cfg: LineConfig, devices: list[dict[str, Any]], env_dt: float, port: Port
) -> Sequencer | None:
    """The config's sequencer with every arm transfer removed (None if it has no controller)."""
    if cfg.controller is None:
        return None
    ctl = msgspec.structs.replace(cfg.controller, transfers=[])
    return Sequencer(ctl, _LinePort(devices, env_dt, port))  # type: ignore[arg-type]
