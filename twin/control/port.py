"""The narrow port between a controller and the plant: read signals, send commands, know the
geometry. The built-in sequencer, the gym's rules and an in-process policy use it; a remote
client has the same three things over the protocol (`state`, `command`, `describe`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

Signals = Mapping[str, Mapping[str, Any]]  # device id (or "line") -> its signals, for one scan


class CommandPort(Protocol):
    """Where a controller's commands go. A refused command raises `CommandError` (or is
    counted by the port); either way nothing changed."""

    def send(self, device: str, command: str, args: dict[str, Any] | None = None) -> Any: ...


class Controller(Protocol):
    """What the composing code drives: one scan every `period` steps while the line is in
    Execute, and a restart whenever the line enters Execute again."""

    period: int  # steps between two scans

    def tick(self, signals: Signals) -> None: ...

    def restart(self) -> None: ...
