"""The rules every device command obeys, the same in-process and over the wire.

- During an e-stop only the commands that bring something to rest pass (`ALLOWED_IN_ESTOP`),
  on any device that has them and on the line itself; `Line.apply` enforces it, and the server
  only ever changes the line through `Line.apply`.
- A command's errors are of two kinds. `REQUEST_ERRORS` do not depend on the line's state
  (the device, the command and its arguments, including an arm's joint limits and reach): a
  batch with one of them (a `step` request, a process image) fails as a whole before anything
  changes. `STATE_ERRORS` come from the line's state at that moment (an arm on a job, a station
  in the wrong PackML state, the e-stop): the command is refused, listed, and the rest go on.
  Arguments are always checked before the state, so a busy arm still names a bad argument.

docs/protocol.md (Command rules) states these rules for clients; a test holds the two together.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from twin.devices.base import CommandError

ALLOWED_IN_ESTOP = frozenset({"stop", "abort", "halt", "hold"})

REQUEST_ERRORS = frozenset(
    {
        "unknown_device",
        "unknown_command",
        "unknown_arg",
        "missing_arg",
        "bad_type",
        "bad_value",
        "not_finite",
        "out_of_range",
        "out_of_reach",
    }
)
STATE_ERRORS = frozenset(
    {
        "busy",
        "holding",
        "not_holding",
        "illegal_state",
        "fault_active",
        "estopped",
        # an AMR's: where it is, its deck and battery, the network's routes and docks
        "unreachable",
        "docked",
        "not_at_dock",
        "dock_occupied",
        "not_at_charger",
        "overloaded",
        "battery_empty",
    }
)


class Commandable(Protocol):
    def check_command(
        self, device_id: str, command: str, args: dict[str, Any] | None = None
    ) -> dict[str, Any]: ...

    def carry_out(self, device_id: str, command: str, clean: dict[str, Any]) -> None: ...


def apply_commands(
    line: Commandable,
    commands: Iterable[tuple[str, str, dict[str, Any]]],
    indices: Sequence[int] | None = None,
    label: str = "commands",
) -> list[dict[str, Any]]:
    """Carry out (device, command, args) in order, as a `step` request does. A request error
    in any of them raises CommandError (message prefixed `commands[i]: `) before anything
    changes; state errors are returned, each {index, device, command, code, message}.
    `indices` number the commands as the caller knows them (default 0, 1, ...)."""
    batch = list(commands)
    index = range(len(batch)) if indices is None else indices
    clean = []
    for i, (device, command, args) in zip(index, batch):
        try:
            clean.append(line.check_command(device, command, args))
        except CommandError as e:
            raise CommandError(e.code, f"{label}[{i}]: {e.message}") from None
    refused = []
    for i, (device, command, _), checked in zip(index, batch, clean):
        try:
            line.carry_out(device, command, checked)
        except CommandError as e:
            refused.append(
                {
                    "index": i,
                    "device": device,
                    "command": command,
                    "code": e.code,
                    "message": e.message,
                }
            )
    return refused
