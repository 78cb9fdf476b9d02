"""The command rules (twin.command_rules) hold the same in-process and over the wire: one
scenario, run once against a Line in this process and once against `twin serve`, must give
the same outcomes, and those outcomes are the documented ones."""

from __future__ import annotations

from typing import Any

import pytest
from processes import ROOT

from twin.client import Client, TwinError
from twin.command_rules import ALLOWED_IN_ESTOP, REQUEST_ERRORS, STATE_ERRORS, apply_commands
from twin.config import load
from twin.devices.base import CommandError
from twin.line import Line
from twin.protocol import messages as m

pytestmark = pytest.mark.timeout(120)

Commands = list[tuple[str, str, dict[str, Any]]]
FAR = {"position": [3.0, 3.0, 1.0]}  # beyond the arm's reach, whatever it is doing
REACHABLE = {"position": [0.3, 0.0, 1.0]}


class InProcess:
    def __init__(self) -> None:
        self.line = Line(load(ROOT / "configs" / "default_line.toml"))

    def command(self, device: str, command: str, **args: Any) -> str:
        try:
            self.line.apply(device, command, args)
            return "ok"
        except CommandError as e:
            return e.code

    def step(self, n: int, commands: Commands = ()) -> tuple[str, list]:
        try:
            refused = apply_commands(self.line, commands)
        except CommandError as e:
            return e.code, [e.message.split(":")[0]]
        self.line.step(n)
        return "state", [(r["index"], r["code"]) for r in refused]

    def estop(self) -> None:
        self.line.estop("test")

    def estop_reset(self) -> None:
        self.line.estop_reset()

    def signals(self) -> dict[str, dict[str, Any]]:
        return self.line.signals()


class OverTheWire:
    def __init__(self, client: Client) -> None:
        self.client = client

    def command(self, device: str, command: str, **args: Any) -> str:
        try:
            self.client.command(device, command, **args)
            return "ok"
        except TwinError as e:
            return e.code

    def step(self, n: int, commands: Commands = ()) -> tuple[str, list]:
        try:
            state = self.client.step(n, commands=commands)
        except TwinError as e:
            return e.code, [e.message.split(":")[0]]
        return "state", [(r["index"], r["code"]) for r in state.refused]

    def estop(self) -> None:
        self.client.estop("test")

    def estop_reset(self) -> None:
        self.client.estop_reset()

    def signals(self) -> dict[str, dict[str, Any]]:
        return self.client.get_state().signals


def scenario(line: InProcess | OverTheWire) -> list[Any]:
    out: list[Any] = []
    out.append(line.step(40))
    q = line.signals()["robot"]["joint_positions"]
    out.append(line.command("robot", "move_joints", positions=[2.5, *q[1:]]))  # a long move
    # a busy arm names a bad argument before saying it is busy
    out.append(line.command("robot", "move_joints", positions=[9.0] * 7))
    out.append(line.command("robot", "pick", **FAR))
    out.append(line.command("robot", "move_to", **REACHABLE))
    # request errors fail the whole step: nothing applied, no step
    speed = line.signals()["infeed"]["speed"]
    out.append(
        line.step(
            5,
            [("infeed", "set_speed", {"speed": 0.4}), ("robot", "move_to", REACHABLE)]
            + [("robot", "pick", FAR)],
        )
    )
    out.append(line.step(5, [("infeed", "set_speed", {"speed": 0.4}), ("nope", "run", {})]))
    out.append(line.step(5, [("robot", "move_joints", {"positions": [9.0] * 7})]))
    out.append(line.signals()["infeed"]["speed"] == speed)
    # state errors are listed, the rest is carried out and the line steps
    out.append(line.step(5, [("infeed", "set_speed", {"speed": 0.4}), ("robot", "home", {})]))
    out.append(line.signals()["infeed"]["speed"])
    # the e-stop: only what brings something to rest passes
    line.estop()
    for device, command, args in [
        ("infeed", "run", {}),
        ("infeed", "stop", {}),
        ("robot", "halt", {}),
        ("robot", "vacuum", {"on": True}),
        ("robot", "home", {}),
        ("mill", "reset", {}),
        ("mill", "abort", {}),
        ("source", "spawn", {}),
        ("line", "start", {}),
        ("line", "abort", {}),
    ]:
        out.append((device, command, line.command(device, command, **args)))
    out.append(line.step(1, [("outfeed", "run", {}), ("outfeed", "stop", {})]))
    out.append(line.step(1, [("outfeed", "run", {}), ("outfeed", "fly", {})]))
    line.estop_reset()
    out.append(line.command("infeed", "run"))
    return out


EXPECTED = [
    ("state", []),
    "ok",
    "out_of_range",
    "out_of_reach",
    "busy",
    ("out_of_reach", ["commands[2]"]),
    ("unknown_device", ["commands[1]"]),
    ("out_of_range", ["commands[0]"]),
    True,
    ("state", [(1, "busy")]),
    0.4,
    ("infeed", "run", "estopped"),
    ("infeed", "stop", "ok"),
    ("robot", "halt", "ok"),
    ("robot", "vacuum", "estopped"),
    ("robot", "home", "estopped"),
    ("mill", "reset", "estopped"),
    ("mill", "abort", "illegal_state"),  # passes the e-stop; the e-stop aborted it already
    ("source", "spawn", "estopped"),
    ("line", "start", "estopped"),
    ("line", "abort", "illegal_state"),  # passes the e-stop; the line is Aborting already
    ("state", [(0, "estopped")]),
    ("unknown_command", ["commands[1]"]),
    "ok",
]


def test_the_rules_are_the_same_in_process_and_over_the_wire(serve):
    in_process = InProcess()
    try:
        local = scenario(in_process)
    finally:
        in_process.line.close()
    with (
        serve("--mode", "lockstep", "--no-builtin-controller") as server,
        Client(server.control, timeout=20) as client,
    ):
        client.take_control()
        remote = scenario(OverTheWire(client))
    assert local == EXPECTED
    assert remote == local


def test_every_error_code_is_classified_once():
    assert not REQUEST_ERRORS & STATE_ERRORS
    command_codes = REQUEST_ERRORS | STATE_ERRORS
    # the server's own codes are not command codes (but for estopped: a reset is refused
    # during an e-stop too), and every command code is documented
    assert command_codes & set(m.ERROR_CODES) == {"estopped"}
    doc = (ROOT / "docs" / "protocol.md").read_text()
    for code in command_codes:
        assert f"`{code}`" in doc, code
    assert ALLOWED_IN_ESTOP == {"stop", "abort", "halt", "hold"}
