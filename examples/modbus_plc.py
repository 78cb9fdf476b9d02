"""A PLC-style scan program that runs the default line through Modbus TCP only.

It imports nothing from `twin`: like a PLC programmer, it imports the register map that
`twin modbus --map` writes (CSV) and addresses everything by the names in it
(docs/modbus.md). Start the twin without its own sequencer and with the gateway:

    twin serve --mode realtime --no-builtin-controller --modbus 127.0.0.1:5020
    twin modbus --map map.csv
    python examples/modbus_plc.py --address 127.0.0.1:5020 --map map.csv --parts 3

Each scan (50 ms) reads its inputs, decides like the built-in sequencer and writes the coils
(and the pick/place position registers) of the outputs that changed. Taught points are
constants, in mm as the map scales them. At the end it prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
import time

from pymodbus.client import AsyncModbusTcpClient

# taught points (mm, world frame) of the default line, read from the gateway's teach.*
# registers when the map has them; these are the values an engineer would have taught
TAUGHT = {
    "robot.pick.infeed_pick_eye": [15, -450, 750],
    "robot.place.mill": [550, 0, 750],
    "robot.pick.mill": [550, 0, 750],
    "robot.place.outfeed": [30, 450, 750],
}
STOP_DELAY = 0.5  # s the pick eye must be blocked before the infeed stops
PACKML = {2: "Stopped", 4: "Idle", 6: "Execute", 9: "Aborted", 11: "Held", 17: "Complete"}


class RegisterMapError(KeyError):
    pass


class Plc:
    def __init__(self, client: AsyncModbusTcpClient, table: dict[str, dict[str, str]]) -> None:
        self.client = client
        self.table = table
        self.belts: dict[str, bool] = {}
        self.blocked_since: float | None = None
        self.job: tuple[str, int] | None = None
        self.mill_reserved = False
        self.refusals: list[str] = []
        self.taught = dict(TAUGHT)

    async def teach(self) -> None:
        for name in TAUGHT:
            if f"teach.{name}[0]" in self.table:
                self.taught[name] = [await self.int32(f"teach.{name}[{i}]") for i in range(3)]

    def addr(self, name: str) -> int:
        if name not in self.table:
            raise RegisterMapError(f"{name} is not in the register map")
        return int(self.table[name]["address"])

    async def bit(self, name: str) -> bool:
        r = await self.client.read_discrete_inputs(self.addr(name), count=1)
        return bool(r.bits[0])

    async def int32(self, name: str) -> int:
        r = await self.client.read_input_registers(self.addr(name), count=2)
        value = (r.registers[0] << 16) | r.registers[1]
        return value - (1 << 32) if value & 0x80000000 else value

    async def pulse(self, name: str) -> bool:
        r = await self.client.write_coil(self.addr(name), True)
        if r.isError():
            self.refusals = [*self.refusals[-19:], f"{name}: exception {r.exception_code}"]
            return False
        return True

    async def move(self, command: str, point: list[int]) -> bool:
        words = []
        for v in point:
            v &= 0xFFFFFFFF
            words += [v >> 16, v & 0xFFFF]
        r = await self.client.write_registers(self.addr(f"robot.{command}.position[0]"), words)
        return not r.isError() and await self.pulse(f"robot.{command}")

    async def inputs(self) -> dict:
        extra = {}
        for name in ("mill.load_ok", "mill.unload_ok", "mill.part_done"):
            if name in self.table:  # interlocks of newer twins: use them when the map has them
                extra[name] = await self.bit(name)
        return extra | {
            "time": await self.int32("twin.time") / 1000,
            "pick_eye": await self.bit("infeed_pick_eye.blocked"),
            "outfeed_eye": await self.bit("outfeed_entry_eye.blocked"),
            "mill": PACKML.get(await self.int32("mill.state"), "other"),
            "present": await self.bit("mill.part_present"),
            "busy": await self.bit("robot.busy"),
            "jobs_done": await self.int32("robot.jobs_done"),
            "holding": await self.int32("robot.holding"),
            "completed": await self.int32("sink.count"),
        }

    async def scan(self, s: dict) -> None:
        now = s["time"]
        self.blocked_since = (self.blocked_since or now) if s["pick_eye"] else None
        outputs = {
            "infeed": not (s["pick_eye"] and now - self.blocked_since >= STOP_DELAY),
            "outfeed": True,
        }
        for belt, run in outputs.items():
            if self.belts.get(belt) != run and await self.pulse(
                f"{belt}.{'run' if run else 'stop'}"
            ):
                self.belts[belt] = run
        mill, present = s["mill"], s["present"]
        if mill == "Stopped" or (mill == "Complete" and not present):
            await self.pulse("mill.reset")
        elif mill == "Aborted":
            await self.pulse("mill.clear")
        elif mill == "Held":
            await self.pulse("mill.unhold")
        elif mill == "Idle" and (present or "mill.load_ok" in s) and not self.mill_reserved:
            await self.pulse("mill.start")
        await self.robot(s)

    async def robot(self, s: dict) -> None:
        if self.job is not None:
            phase, before = self.job
            if s["busy"] or s["jobs_done"] == before:
                return
            if phase.startswith("pick") and s["holding"] != 0:
                target = "robot.place.mill" if phase == "pick_infeed" else "robot.place.outfeed"
                if await self.move("place", self.taught[target]):
                    self.job = ("place", s["jobs_done"])
                return
            self.mill_reserved = False
            self.job = None
        if s["busy"] or s["holding"] != 0:
            return
        if "mill.load_ok" in s:
            mill_done = s["mill.part_done"] and s["mill.unload_ok"]
            mill_free = s["mill.load_ok"]
        else:
            mill_done = s["mill"] == "Complete" and s["present"]
            mill_free = s["mill"] == "Idle" and not s["present"]
        if mill_done and not s["outfeed_eye"]:
            if await self.move("pick", self.taught["robot.pick.mill"]):
                self.job = ("pick_mill", s["jobs_done"])
        elif s["pick_eye"] and mill_free and not self.mill_reserved:
            if await self.move("pick", self.taught["robot.pick.infeed_pick_eye"]):
                self.mill_reserved = True
                self.job = ("pick_infeed", s["jobs_done"])


async def run(address: str, map_file: str, parts: int, timeout: float, scan: float) -> dict:
    with open(map_file, newline="") as f:
        table = {row["name"]: row for row in csv.DictReader(f)}
    host, port = address.rsplit(":", 1)
    client = AsyncModbusTcpClient(host, port=int(port), timeout=5)
    await client.connect()
    plc = Plc(client, table)
    await plc.teach()
    start = time.monotonic()
    completed = 0
    try:
        while time.monotonic() - start < timeout:
            s = await plc.inputs()
            completed = s["completed"]
            if completed >= parts:
                break
            await plc.scan(s)
            await asyncio.sleep(scan)
    finally:
        client.close()
    return {
        "parts_completed": completed,
        "wall_time": round(time.monotonic() - start, 2),
        "refusals": plc.refusals,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--address", default="127.0.0.1:5020")
    p.add_argument("--map", required=True, help="the CSV written by twin modbus --map")
    p.add_argument("--parts", type=int, default=3)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--scan", type=float, default=0.05)
    args = p.parse_args(argv)
    result = asyncio.run(run(args.address, args.map, args.parts, args.timeout, args.scan))
    print(json.dumps(result), flush=True)
    return 0 if result["parts_completed"] >= args.parts else 1


if __name__ == "__main__":
    sys.exit(main())
