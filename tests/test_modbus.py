"""The Modbus TCP gateway: a PLC program runs the line through it alone with the register map
`twin modbus --map` writes, and bad writes get Modbus exceptions and change nothing.

The Modbus clients use pymodbus only; `twin` is imported by the harness alone."""

from __future__ import annotations

import asyncio
import csv
import json
import socket
import subprocess
import sys
from pathlib import Path

from processes import ROOT, ServeProcess
from pymodbus.client import AsyncModbusTcpClient

from twin.client import Client as TwinClient

TWIN = [sys.executable, "-m", "twin.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_line(server: ServeProcess, prefix: str, timeout: float = 30.0) -> str:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = server._lines.get(timeout=max(0.01, deadline - time.monotonic()))
        if line is None:
            break
        if line.startswith(prefix):
            return line
    raise TimeoutError(f"no '{prefix}' line from twin serve: {server.stderr_text()}")


def write_map(server: ServeProcess, path: Path) -> dict[str, dict[str, str]]:
    run = subprocess.run(
        [
            *TWIN,
            "modbus",
            "--map",
            str(path),
            "--control",
            server.control,
            "--telemetry",
            server.telemetry,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    with open(path, newline="") as f:
        return {row["name"]: row for row in csv.DictReader(f)}


def test_plc_program_runs_the_default_line_through_modbus_only(tmp_path: Path, serve) -> None:
    example = ROOT / "examples" / "modbus_plc.py"
    source = example.read_text()
    assert "from twin" not in source and "import twin" not in source
    address = f"127.0.0.1:{free_port()}"
    with serve(
        "--mode", "realtime", "--rtf", "4", "--no-builtin-controller", "--modbus", address
    ) as server:
        try:
            wait_for_line(server, "modbus")
            table = write_map(server, tmp_path / "map.csv")
            assert "robot.pick.position[2]" in table and "mill.state" in table
            run = subprocess.run(
                [
                    sys.executable,
                    str(example),
                    "--address",
                    address,
                    "--map",
                    str(tmp_path / "map.csv"),
                    "--parts",
                    "1",
                    "--timeout",
                    "90",
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            assert server.stop() == 0
    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1])["parts_completed"] >= 1


def test_bad_modbus_writes_are_refused_and_change_nothing(tmp_path: Path, serve) -> None:
    address = f"127.0.0.1:{free_port()}"
    with serve("--mode", "lockstep", "--no-builtin-controller", "--modbus", address) as server:
        try:
            wait_for_line(server, "modbus")
            table = write_map(server, tmp_path / "map.csv")
            with TwinClient(server.control) as twin:
                codes = asyncio.run(_bad_writes(address, table, twin))
                state = twin.get_state()
                speed, controlled = state.signals["infeed"]["speed"], state.controlled
        finally:
            assert server.stop() == 0
    assert codes["unmapped"] == 2  # ILLEGAL_ADDRESS
    assert codes["half_of_int32"] == 2
    assert codes["out_of_range"] == 3  # ILLEGAL_VALUE
    assert codes["wrong_state"] == 4  # DEVICE_FAILURE
    assert codes["last_refusal"] == 10  # illegal_state
    assert codes["good_speed"] == 0
    assert speed == 0.35  # the accepted write, not the refused one
    assert controlled  # the gateway held the twin's control lease for its Modbus client


async def _bad_writes(address: str, table: dict, twin: TwinClient) -> dict[str, int]:
    def addr(name: str) -> int:
        return int(table[name]["address"])

    def code(r) -> int:  # noqa: ANN001
        return r.exception_code if r.isError() else 0

    host, port = address.rsplit(":", 1)
    client = AsyncModbusTcpClient(host, port=int(port), timeout=5)
    await client.connect()
    try:
        out = {}
        out["unmapped"] = code(await client.write_coil(99, True))
        out["half_of_int32"] = code(await client.write_register(addr("infeed.speed"), 7))
        out["out_of_range"] = code(await client.write_registers(addr("infeed.speed"), [0, 5000]))
        out["good_speed"] = code(await client.write_registers(addr("infeed.speed"), [0, 350]))
        out["wrong_state"] = code(await client.write_coil(addr("mill.unhold"), True))
        r = await client.read_input_registers(addr("twin.last_refusal"), count=2)
        out["last_refusal"] = r.registers[1]
    finally:
        client.close()
    return out


def test_modbus_refuses_a_non_loopback_address_unless_asked() -> None:
    run = subprocess.run(
        [*TWIN, "modbus", "--address", "0.0.0.0:5020", "--control", "tcp://127.0.0.1:1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2
    assert "--allow-remote" in run.stderr


def test_register_map_from_a_config_lists_every_device(tmp_path: Path) -> None:
    from twin.config import load

    config = ROOT / "configs" / "two_robot_line.toml"
    out = tmp_path / "map.md"
    run = subprocess.run(
        [*TWIN, "modbus", "--map", str(out), "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    text = out.read_text()
    assert text.startswith("| table | address | reference | name |")
    for device in load(config).devices:
        assert f"| {device.id}." in text, device.id
    assert ".fault | bool | R |" in text  # a station's fault, 1 while set
