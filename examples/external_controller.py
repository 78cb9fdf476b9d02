"""An external controller for the default line, driving a lockstep server from signals only.

Start the twin without its own sequencer, then run this in another process:

    twin serve --mode lockstep --no-builtin-controller
    python examples/external_controller.py --control tcp://127.0.0.1:5555 --steps 12000

It does what the built-in PLC-like sequencer does, over the wire: belts run unless their stop
eye has been blocked for a moment, stations are reset and started once (in Execute they work
part after part, suspending themselves while they wait), and the robot unloads the station
before loading it, as the station's load/unload interlocks allow. Taught points come from the config's geometry. At the end it
prints one JSON line with parts_completed and steps.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from twin.client import Client, TwinError
from twin.config import LineConfig, StationConfig, Transfer, load
from twin.geometry import pick_point, place_point

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "default_line.toml"
Signals = dict[str, dict[str, Any]]


# the control program -------------------------------------------------------------------
class Controller:
    """One scan per state received: decide from signals, send the commands that changed."""

    def __init__(self, cfg: LineConfig, client: Client) -> None:
        assert cfg.controller is not None, "the config has no [controller] section to follow"
        self.rules = cfg.controller
        self.client = client
        self.cfg = cfg  # taught points: twin.geometry, the code the twin's own controller uses
        self.stations = [d.id for d in cfg.devices if isinstance(d, StationConfig)]
        self.belt_out: dict[str, bool] = {}
        self.blocked_since: dict[str, float] = {}
        self.jobs: dict[str, tuple[Transfer, str, int] | None] = {
            t.arm: None for t in self.rules.transfers
        }
        self.reserved: dict[str, str] = {}
        self.refusals = 0

    def send(self, device: str, command: str, **args: Any) -> bool:
        try:
            self.client.command(device, command, **args)
            return True
        except TwinError as e:  # like a PLC: note it, the next scan tries again
            self.refusals += 1
            print(f"refused: {e}", file=sys.stderr)
            return False

    def scan(self, now: float, s: Signals) -> None:
        for rule in self.rules.belts:
            blocked = rule.stop_eye is not None and s[rule.stop_eye]["blocked"]
            since = self.blocked_since.setdefault(rule.conveyor, now) if blocked else None
            if not blocked:
                self.blocked_since.pop(rule.conveyor, None)
            run = not (blocked and now - since >= rule.stop_delay - 1e-9)
            if self.belt_out.get(rule.conveyor) != run and self.send(
                rule.conveyor, "run" if run else "stop"
            ):
                self.belt_out[rule.conveyor] = run
        for station in self.stations:
            st = s[station]
            if st["state"] == "Stopped" or (st["state"] == "Complete" and not st["part_present"]):
                self.send(station, "reset")
            elif st["state"] == "Idle" and not st["fault"]:
                self.send(station, "start")  # once: in Execute it works part after part
        for arm in self.jobs:
            self.scan_arm(arm, s)

    @staticmethod
    def dest_key(t: Transfer) -> str:
        return t.place.station or f"{t.place.conveyor}@{t.place.offset}"

    def source_ready(self, t: Transfer, s: Signals) -> bool:
        if t.pick.eye is not None:
            return s[t.pick.eye]["blocked"]
        st = s[t.pick.station]
        return st["unload_ok"] and st["part_done"]  # the station's interlock says so

    def dest_ready(self, t: Transfer, s: Signals) -> bool:
        if self.dest_key(t) in self.reserved:
            return False
        if t.place.station is not None:
            return s[t.place.station]["load_ok"]
        return t.place.clear_eye is None or not s[t.place.clear_eye]["blocked"]

    def scan_arm(self, arm: str, s: Signals) -> None:
        a = s[arm]
        job = self.jobs[arm]
        if job is not None:
            t, phase, done_before = job
            if a["busy"] or a["jobs_done"] == done_before:
                return  # still on its job
            if phase == "picking" and a["result"] == "ok" and a["holding"] is not None:
                if self.send(arm, "place", position=place_point(self.cfg, t)):
                    self.jobs[arm] = (t, "placing", a["jobs_done"])
                return
            self.reserved.pop(self.dest_key(t), None)
            self.jobs[arm] = None
        if a["busy"] or a["holding"] is not None:
            return
        for t in self.rules.transfers:
            if t.arm == arm and self.source_ready(t, s) and self.dest_ready(t, s):
                if self.send(arm, "pick", position=pick_point(self.cfg, t)):
                    self.reserved[self.dest_key(t)] = arm
                    self.jobs[arm] = (t, "picking", a["jobs_done"])
                return


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--control", default="tcp://127.0.0.1:5555")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="the line the server runs")
    p.add_argument("--steps", type=int, default=12000, help="total steps to run")
    p.add_argument("--batch", type=int, default=10, help="steps per step request (one scan each)")
    p.add_argument("--watchdog", type=float, default=5.0, help="s of silence before safe state")
    args = p.parse_args(argv)

    cfg = load(args.config)
    with Client(args.control, timeout=30.0) as client:
        hello = client.hello("examples/external_controller")
        if hello.mode != "lockstep":
            print(f"error: the server runs in {hello.mode} mode; start it with --mode lockstep")
            return 2
        client.take_control(watchdog=args.watchdog)
        controller = Controller(cfg, client)
        state = client.get_state()
        start = state.step
        while state.step - start < args.steps:
            controller.scan(state.time, state.signals)
            state = client.step(min(args.batch, args.steps - (state.step - start)))
        client.release_control()
    result = {
        "parts_completed": state.counts.get("parts_completed", 0),
        "parts_spawned": state.counts.get("parts_spawned", 0),
        "steps": state.step - start,
        "sim_time": state.time,
        "refusals": controller.refusals,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
