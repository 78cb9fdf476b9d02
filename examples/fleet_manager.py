"""An external fleet manager for a factory, driving its AMRs over the protocol only.

Start the twin with its cells and orders running but without its own fleet manager, then run
this in another process:

    twin serve configs/factory_small.toml --mode lockstep --no-builtin-fleet
    python examples/fleet_manager.py configs/factory_small.toml --steps 30000

The twin's order book releases a part whenever an empty AMR is docked at the receiving
store; the cells' arms take parts off docked AMRs and put finished ones on empty AMRs docked
at their out docks. This program decides the rest from signals, the way the built-in one
does, but simpler: it sends a free AMR to fetch a finished part (or a new one at the
receiving store) only when the part's next cell has room, then to that cell's in dock, then
back to a park node. Only one AMR drives at a time, and AMRs wait only at docks and park
nodes (off the aisles), so they never meet; the built-in traffic manager lets several drive
at once. Routings and cells come from the factory file; at the end it prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin.client import Client, TwinError
from twin.config import AmrConfig, CellConfig, DockConfig, LineConfig, load

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "factory_small.toml"
Signals = dict[str, dict[str, Any]]
MOVES = ("go_to", "dock", "undock")
LOAD_WAIT = 120.0  # s an AMR waits at the receiving store for a part before it gives up


@dataclass
class Job:
    pickup: str  # dock
    part: int | None  # None: a new part at the receiving store
    dest: CellConfig | None = None  # where the part goes (known once it is on the deck)
    actions: list[tuple[str, str]] = field(default_factory=list)  # (command, argument)
    waiting_since: float | None = None


class FleetManager:
    def __init__(self, cfg: LineConfig, client: Client) -> None:
        assert cfg.factory is not None, "not a factory file"
        self.client = client
        self.cells = cfg.factory.cells
        orders = cfg.factory.orders
        self.routings = (
            {p.type: [s.cell for s in p.routing] for p in orders.products} if orders else {}
        )
        self.docks = {d.id: d for d in cfg.devices if isinstance(d, DockConfig)}
        self.amrs = [d.id for d in cfg.devices if isinstance(d, AmrConfig)]
        self.park = list(cfg.factory.fleet.park)
        transfers = cfg.controller.transfers if cfg.controller else []
        # stations whose finished parts an arm puts on the cell's out dock
        self.exits = {
            c.id: [
                t.pick.station for t in transfers if t.place.dock == c.out_dock and t.pick.station
            ]
            for c in self.cells
        }
        self.jobs: dict[str, Job | None] = dict.fromkeys(self.amrs)
        self.step_of: dict[int, int] = {}  # part -> routing index of the cell it was brought to
        self.product_of: dict[int, str] = {}
        self.driver: str | None = None  # the one AMR allowed to move
        self.transports = 0
        self.refusals = 0

    def send(self, amr: str, command: str, **args: Any) -> bool:
        try:
            self.client.command(amr, command, **args)
            return True
        except TwinError as e:
            self.refusals += 1
            print(f"refused: {e}", file=sys.stderr)
            return False

    # where parts may go ----------------------------------------------------------------
    def room(self, cell: CellConfig, s: Signals) -> int:
        busy = sum(1 for st in cell.stations if s[st]["part_present"])
        coming = sum(1 for j in self.jobs.values() if j is not None and j.dest is cell)
        return len(cell.stations) - busy - coming

    def destination(self, product: str, step: int, s: Signals) -> CellConfig | None:
        routing = self.routings.get(product, [])
        if step >= len(routing):
            return next((c for c in self.cells if c.role == "shipping"), None)
        for c in self.cells:
            if c.role == "process" and routing[step] in (c.kind, c.id) and self.room(c, s) > 0:
                return c
        return None

    # the scan --------------------------------------------------------------------------
    def scan(self, now: float, s: Signals) -> None:
        for amr in self.amrs:
            job = self.jobs[amr]
            if job is not None:
                self.work(amr, job, now, s)
        for amr in self.amrs:
            if self.jobs[amr] is None and s[amr]["load"] is None:
                self.jobs[amr] = self.new_job(amr, s)

    def new_job(self, amr: str, s: Signals) -> Job | None:
        claimed = {j.pickup for j in self.jobs.values() if j is not None}
        claimed |= {j.part for j in self.jobs.values() if j is not None and j.part}  # type: ignore[arg-type]
        for c in self.cells:  # a finished part whose next cell has room
            if c.role != "process" or c.out_dock in claimed:
                continue
            for st in self.exits[c.id]:
                part = s[st]["part"]
                if not s[st]["part_done"] or part is None or part not in self.product_of:
                    continue
                dest = self.destination(self.product_of[part], self.step_of[part] + 1, s)
                if dest is not None:
                    return self.fetch(amr, c.out_dock or "", part, dest, s)
        for c in self.cells:  # a new part, if some first cell has room
            if c.role == "receiving" and c.out_dock not in claimed:
                firsts = {r[0] for r in self.routings.values()}
                if any(self.destination_kind(k, s) for k in firsts):
                    return self.fetch(amr, c.out_dock or "", None, None, s)
        return None

    def destination_kind(self, kind: str, s: Signals) -> bool:
        return any(
            c.role == "process" and kind in (c.kind, c.id) and self.room(c, s) > 0
            for c in self.cells
        )

    def fetch(
        self, amr: str, dock: str, part: int | None, dest: CellConfig | None, s: Signals
    ) -> Job:
        job = Job(pickup=dock, part=part, dest=dest)
        if s[amr]["dock"] != dock:
            job.actions = self.trip(amr, dock, s)
        job.actions.append(("wait_load", ""))
        return job

    def trip(self, amr: str, dock: str | None, s: Signals, node: str | None = None) -> list:
        """Undock if docked, drive to the dock's approach node (or `node`), dock."""
        out: list[tuple[str, str]] = [("undock", "")] if s[amr]["dock"] else []
        out.append(("go_to", self.docks[dock].node if dock else node or ""))
        if dock:
            out.append(("dock", dock))
        return out

    def work(self, amr: str, job: Job, now: float, s: Signals) -> None:
        a = s[amr]
        if a["state"] in ("driving", "docking", "undocking", "blocked"):
            return  # still on its way
        if self.driver == amr and (not job.actions or job.actions[0][0] not in MOVES):
            self.driver = None  # its moves are done: someone else's turn
        if not job.actions:
            self.jobs[amr] = None
            return
        command, arg = job.actions[0]
        if command == "wait_load":
            self.wait_load(amr, job, now, s)
        elif command == "wait_unload":
            if a["load"] is None:  # the cell's arm took it
                self.transports += 1
                job.actions = [("undock", ""), ("park", "")]
        elif command == "park":
            job.actions.pop(0)
            free = [n for n in self.park if n not in self.parked(amr, s)]
            if free:
                job.actions.insert(0, ("go_to", free[0]))
        elif self.driver in (None, amr):  # a move: only with the drive token
            self.driver = amr
            args = (
                {"node": arg} if command == "go_to" else {"dock": arg} if command == "dock" else {}
            )
            if self.send(amr, command, **args):
                job.actions.pop(0)

    def parked(self, me: str, s: Signals) -> set[str]:
        return {s[a]["node"] for a in self.amrs if a != me} | {
            arg
            for a, j in self.jobs.items()
            if a != me and j
            for c, arg in j.actions
            if c == "go_to"
        }

    def wait_load(self, amr: str, job: Job, now: float, s: Signals) -> None:
        part = s[amr]["load"]
        if part is None:
            job.waiting_since = job.waiting_since if job.waiting_since is not None else now
            if job.part is None and now - job.waiting_since > LOAD_WAIT:
                job.actions = [("undock", ""), ("park", "")]  # nothing released: give up
            return
        product = s[amr]["load_type"]
        self.product_of[part] = product
        step = self.step_of.setdefault(part, -1) + 1
        dest = job.dest if job.part == part and job.dest else self.destination(product, step, s)
        if dest is None:
            return  # no room yet: wait here with it
        job.part, job.dest = part, dest
        self.step_of[part] = step
        job.actions = self.trip(amr, dest.in_dock, s) + [("wait_unload", "")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG), help="the factory served")
    p.add_argument("--control", default="tcp://127.0.0.1:5555")
    p.add_argument("--steps", type=int, default=30000, help="total steps to run")
    p.add_argument("--batch", type=int, default=10, help="steps per step request (one scan each)")
    p.add_argument("--watchdog", type=float, default=10.0, help="s of silence before safe state")
    args = p.parse_args(argv)

    cfg = load(args.config)
    with Client(args.control, timeout=60.0) as client:
        hello = client.hello("examples/fleet_manager")
        if hello.mode != "lockstep" or hello.builtin_fleet:
            print("error: start the twin with --mode lockstep --no-builtin-fleet", file=sys.stderr)
            return 2
        client.take_control(watchdog=args.watchdog)
        fleet = FleetManager(cfg, client)
        state = client.get_state()
        start = state.step
        while state.step - start < args.steps:
            fleet.scan(state.time, state.signals)
            state = client.step(min(args.batch, args.steps - (state.step - start)))
        client.release_control()
    result = {
        "transports": fleet.transports,
        "parts_spawned": state.counts.get("parts_spawned", 0),
        "parts_completed": state.counts.get("parts_completed", 0),
        "sim_time": state.time,
        "refusals": fleet.refusals,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
