"""A PLC-style scan program that runs the default line through OPC UA only.

It imports nothing from `twin`: it is what a control engineer would write in a PLC, using only
the address space of the OPC UA gateway (docs/opcua.md). Start the twin without its own
sequencer and with the gateway, then run this:

    twin serve --mode realtime --no-builtin-controller --opcua opc.tcp://127.0.0.1:4840/twin
    python examples/opcua_plc.py --endpoint opc.tcp://127.0.0.1:4840/twin --parts 3

Every scan (50 ms) reads the signals it needs in one Read, decides like the built-in
sequencer (belts run unless the pick eye is blocked for a moment, the mill is reset and
started, the robot unloads the mill before loading it) and calls methods for the outputs
that changed. Taught points are constants, as in a PLC. At the end it prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from asyncua import Client, ua

NAMESPACE = "urn:twin:default_line"
# taught points (m, world frame) of the default line, read from the gateway's TeachPoints
# when it has them; these are the values a commissioning engineer would have taught
TAUGHT = {
    "robot.pick.infeed_pick_eye": [0.015, -0.45, 0.75],  # at the pick eye, against the stop
    "robot.place.mill": [0.55, 0.0, 0.75],  # on the mill's fixture
    "robot.pick.mill": [0.55, 0.0, 0.75],
    "robot.place.outfeed": [0.03, 0.45, 0.75],  # on the outfeed, before its entry eye
}
STOP_DELAY = 0.5  # s the pick eye must be blocked before the infeed stops
INPUTS = [
    "infeed_pick_eye.blocked",
    "outfeed_entry_eye.blocked",
    "mill.state",
    "mill.part_present",
    "robot.busy",
    "robot.jobs_done",
    "robot.holding",
    "sink.count",
    "Twin.SimTime",
]


class Plc:
    def __init__(self, client: Client, ns: int, optional: set[str], taught: dict) -> None:
        self.client = client
        self.ns = ns
        self.taught = taught
        self.optional = optional  # newer station signals the address space may offer
        self.belts: dict[str, bool] = {}
        self.blocked_since: float | None = None
        self.job: tuple[str, int] | None = None  # (phase, jobs_done before it)
        self.mill_reserved = False
        self.refusals: list[str] = []

    def node(self, key: str):  # noqa: ANN201
        return self.client.get_node(ua.NodeId(key, self.ns))

    async def call(self, device: str, method: str, *args: ua.Variant) -> bool:
        try:
            await self.node(device).call_method(ua.NodeId(f"{device}.{method}", self.ns), *args)
            return True
        except ua.UaStatusCodeError as e:  # like a PLC: note it, the next scan tries again
            reason = await self.node(f"{device}.LastRefusal").read_value()
            self.refusals = [
                *self.refusals[-19:],
                f"{device}.{method}: {type(e).__name__}: {reason}",
            ]
            return False

    async def move(self, command: str, point: list[float]) -> bool:
        return await self.call("robot", command, ua.Variant(point, ua.VariantType.Double))

    async def scan(self, s: dict) -> None:
        now = s["Twin.SimTime"]
        # belts
        blocked = s["infeed_pick_eye.blocked"]
        self.blocked_since = (self.blocked_since or now) if blocked else None
        outputs = {
            "infeed": not (blocked and now - self.blocked_since >= STOP_DELAY),
            "outfeed": True,
        }
        for belt, run in outputs.items():
            if self.belts.get(belt) != run and await self.call(belt, "Run" if run else "Stop"):
                self.belts[belt] = run
        # the mill, a PackML unit
        state, present = s["mill.state"], s["mill.part_present"]
        if state == "Stopped" or (state == "Complete" and not present):
            await self.call("mill", "Reset")
        elif state == "Aborted":
            await self.call("mill", "Clear")
        elif state == "Held":
            await self.call("mill", "Unhold")
        elif state == "Idle" and (present or "mill.load_ok" in s) and not self.mill_reserved:
            await self.call("mill", "Start")
        await self.robot(s)

    def mill_done(self, s: dict) -> bool:
        if "mill.part_done" in s:
            return s["mill.part_done"] and s.get("mill.unload_ok", True)
        return s["mill.state"] == "Complete" and s["mill.part_present"]

    def mill_free(self, s: dict) -> bool:
        if "mill.load_ok" in s:
            return s["mill.load_ok"]
        return s["mill.state"] == "Idle" and not s["mill.part_present"]

    async def robot(self, s: dict) -> None:
        if self.job is not None:
            phase, before = self.job
            if s["robot.busy"] or s["robot.jobs_done"] == before:
                return  # still on its job
            holding = s["robot.holding"] != 0
            if phase.startswith("pick") and holding:
                target = "robot.place.mill" if phase == "pick_infeed" else "robot.place.outfeed"
                if await self.move("Place", self.taught[target]):
                    self.job = ("place", s["robot.jobs_done"])
                return
            self.mill_reserved = False
            self.job = None
        if s["robot.busy"] or s["robot.holding"] != 0:
            return
        # unload the mill first so it is never blocked, then load it
        if self.mill_done(s) and not s["outfeed_entry_eye.blocked"]:
            if await self.move("Pick", self.taught["robot.pick.mill"]):
                self.job = ("pick_mill", s["robot.jobs_done"])
        elif s["infeed_pick_eye.blocked"] and self.mill_free(s) and not self.mill_reserved:
            if await self.move("Pick", self.taught["robot.pick.infeed_pick_eye"]):
                self.mill_reserved = True
                self.job = ("pick_infeed", s["robot.jobs_done"])


async def run(endpoint: str, parts: int, timeout: float, scan: float) -> dict:
    async with Client(endpoint, timeout=10) as client:
        ns = await client.get_namespace_index(NAMESPACE)
        mill = client.get_node(ua.NodeId("mill", ns))
        names = {(await c.read_browse_name()).Name for c in await mill.get_children()}
        optional = {f"mill.{n}" for n in ("load_ok", "unload_ok", "part_done") if n in names}
        keys = INPUTS + sorted(optional)
        nodes = [client.get_node(ua.NodeId(k, ns)) for k in keys]
        taught = dict(TAUGHT)
        for name in TAUGHT:  # the twin's own teach points, if the address space has them
            try:
                taught[name] = await client.get_node(
                    ua.NodeId(f"TeachPoints.{name}", ns)
                ).read_value()
            except ua.UaStatusCodeError:
                pass
        plc = Plc(client, ns, optional, taught)
        start = time.monotonic()
        completed = 0
        while time.monotonic() - start < timeout:
            values = dict(zip(keys, await client.read_values(nodes)))
            completed = values["sink.count"]
            if completed >= parts:
                break
            await plc.scan(values)
            await asyncio.sleep(scan)
        return {
            "parts_completed": completed,
            "wall_time": round(time.monotonic() - start, 2),
            "refusals": plc.refusals,
        }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", default="opc.tcp://127.0.0.1:4840/twin")
    p.add_argument("--parts", type=int, default=3, help="stop after this many completed parts")
    p.add_argument("--timeout", type=float, default=300.0, help="wall-clock seconds at most")
    p.add_argument("--scan", type=float, default=0.05, help="scan period (s)")
    args = p.parse_args(argv)
    result = asyncio.run(run(args.endpoint, args.parts, args.timeout, args.scan))
    print(json.dumps(result), flush=True)
    return 0 if result["parts_completed"] >= args.parts else 1


if __name__ == "__main__":
    sys.exit(main())
