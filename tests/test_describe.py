"""`describe` says where things are and how to drive them, from the code the devices use.

The geometry in `describe` is checked against the built devices themselves, and a controller
that imports nothing from `twin` and knows no number of any line (raw pyzmq and msgspec, as in
test_raw_client.py) completes parts on two lines from `describe` alone.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import zmq

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_MS = 20_000


# ---------------------------------------------------------------- in-process agreement
def test_geometry_in_describe_is_where_the_devices_are() -> None:
    from twin.config import load
    from twin.line import Line

    with Line(load(ROOT / "configs" / "two_robot_line.toml")) as line:
        desc = line.describe()
        geo = {d["id"]: d.get("geometry") for d in desc["devices"]}
        for dev_id, dev in line.devices.items():
            g = geo[dev_id]
            if dev.kind == "photoeye":
                assert g["beam"] == [dev.start, dev.end]  # the ray the physics casts
                belt = line.devices[dev.cfg.conveyor]
                assert g["pick_point"] == belt.point(dev.cfg.offset)
            elif dev.kind == "sink":
                assert g["zone"] == {"min": dev.aabb_min, "max": dev.aabb_max}
            elif dev.kind == "source":
                assert g["zone"] == {"min": dev.zone_min, "max": dev.zone_max}
            elif dev.kind == "station":
                assert g["fixture_point"] == dev.point(0, 0, 0)
            elif dev.kind == "arm":
                assert g["base"] == list(dev.base)
                assert (g["reach"], g["tool_link"]) == (dev.cfg.reach, dev.cfg.tool_link)
            elif dev.kind == "conveyor":
                assert g["surface_center"] == dev.point(0)
                assert g["downstream_end"] == dev.point(dev.cfg.length / 2)
        # the taught points are those the built-in sequencer sends (from the same function)
        from twin.automation import LinePort
        from twin.control.sequencer import Sequencer

        seq = Sequencer(line.cfg, LinePort(line), line.dt)
        sent = [
            (seq._pick_points[id(t)], seq._place_points[id(t)])
            for t in line.cfg.controller.transfers
        ]
        assert [(t["pick"]["point"], t["place"]["point"]) for t in desc["teach_points"]] == sent
        assert desc["conventions"]["frame"].startswith("world: z up")


def test_packml_rules_and_recipes_are_described() -> None:
    from twin.config import load
    from twin.line import Line

    with Line(load(ROOT / "configs" / "default_line.toml")) as line:
        desc = line.describe()
    packml = desc["packml"]
    assert len(packml["states"]) == 17 and "Execute" in packml["states"]
    assert packml["legal_commands"]["Idle"] == ["start", "stop", "abort"]
    assert packml["legal_commands"]["Aborted"] == ["clear"]
    assert {"from": "Complete", "command": "reset", "to": "Resetting"} in packml["transitions"]
    kinds = {d["kind"] for d in desc["devices"]}
    assert kinds <= set(desc["recipes"]), "every device kind has a recipe"
    assert any("spawning" in step for step in desc["recipes"]["line"])


# ---------------------------------------------------------------- a stranger's controller
class Stranger:
    """Drives a lockstep twin from `describe` and `state` only: no `twin` import, no numbers
    of the line. Follows the recipes: belts run (parts accumulate at end stops), stations
    are reset and started, each arm works its teach points in order."""

    def __init__(self, control: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(control)
        self.next_id = 0
        self.grant: dict = {}  # whatever take_control hands back to carry (a lease, if any)

    def call(self, request: dict) -> dict:
        self.next_id += 1
        self.sock.send(msgspec.msgpack.encode({**request, **self.grant, "id": self.next_id}))
        while True:
            assert self.sock.poll(TIMEOUT_MS), f"no reply to {request}"
            reply = msgspec.msgpack.decode(self.sock.recv())
            if reply.get("id") == self.next_id:
                return reply

    def run(self, want_completed: int, max_seconds: float) -> dict:
        desc = self.call({"type": "describe"})
        kinds = {d["id"]: d["kind"] for d in desc["devices"]}
        taken = self.call({"type": "take_control"})
        assert taken["type"] != "error", taken
        if "lease" in taken:
            self.grant = {"lease": taken["lease"]}
        for dev_id, kind in kinds.items():
            if kind == "conveyor":
                assert (
                    self.call({"type": "command", "device": dev_id, "command": "run"})["type"]
                    == "ok"
                )
        stations = [d for d, k in kinds.items() if k == "station"]
        arms: dict[str, list[dict]] = {}
        for tp in desc["teach_points"]:
            arms.setdefault(tp["arm"], []).append(tp)
        jobs: dict[str, tuple[dict, str, int] | None] = dict.fromkeys(arms)
        reserved: dict[str, str] = {}
        n = max(1, round(0.1 / desc["timestep"]))  # one scan per 0.1 s simulated
        state = self.call({"type": "get_state"})
        while state["time"] < max_seconds:
            s = state["signals"]
            if s["line"]["state"] == "Execute":
                self.scan(s, stations, arms, jobs, reserved)
            state = self.call({"type": "step", "n": n})
            assert state["type"] == "state", state
            if state["counts"]["parts_completed"] >= want_completed:
                break
        return state

    def send(self, device: str, command: str, **args) -> bool:
        req = {"type": "command", "device": device, "command": command}
        if args:
            req["args"] = args
        return self.call(req)["type"] == "ok"

    def scan(self, s, stations, arms, jobs, reserved) -> None:
        for st in stations:
            v = s[st]
            if v["state"] == "Stopped" or (v["state"] == "Complete" and not v["part_present"]):
                self.send(st, "reset")
            elif v["state"] == "Idle" and not v["fault"]:
                self.send(st, "start")  # once: in Execute it works part after part
        for arm, points in arms.items():
            a, job = s[arm], jobs[arm]
            if job is not None and (a["busy"] or a["jobs_done"] == job[2]):
                continue  # still on it
            if job is not None:
                tp, phase, _ = job
                if phase == "pick" and a["result"] == "ok" and a["holding"] is not None:
                    self.send(arm, "place", position=tp["place"]["point"])
                    jobs[arm] = (tp, "place", a["jobs_done"])
                    continue
                reserved.pop(tp["place"]["device"], None)
                jobs[arm] = None
            if a["busy"] or a["holding"] is not None:
                continue
            for tp in points:
                if self.ready(s, tp, reserved) and self.send(
                    arm, "pick", position=tp["pick"]["point"]
                ):
                    reserved[tp["place"]["device"]] = arm
                    jobs[arm] = (tp, "pick", a["jobs_done"])
                    break

    @staticmethod
    def ready(s, tp, reserved) -> bool:
        pick, place = tp["pick"], tp["place"]
        if pick["kind"] == "photoeye":
            source_ready = s[pick["device"]]["blocked"]
        else:
            st = s[pick["device"]]
            source_ready = st["unload_ok"] and st["part_done"]
        if place["device"] in reserved or not source_ready:
            return False
        if place["kind"] == "station":
            return s[place["device"]]["load_ok"]
        eye = place.get("clear_eye")
        return eye is None or not s[eye]["blocked"]

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("config", "seconds"), [("default_line.toml", 90.0), ("two_robot_line.toml", 150.0)]
)
def test_a_controller_from_describe_alone_completes_parts(
    config: str, seconds: float, serve
) -> None:
    with serve(
        str(ROOT / "configs" / config), "--mode", "lockstep", "--no-builtin-controller"
    ) as server:
        stranger = Stranger(server.control)
        try:
            state = stranger.run(want_completed=2, max_seconds=seconds)
        finally:
            stranger.close()
    assert state["counts"]["parts_completed"] >= 2, state["counts"]


def test_the_protocol_doc_shows_the_default_lines_real_teach_points() -> None:
    import json
    import re

    from twin.config import load
    from twin.line import Line

    doc = (ROOT / "docs" / "protocol.md").read_text()
    block = re.search(r"The\ndefault line's:\n\n```json\n(.*?)```", doc, re.S)
    assert block is not None, "docs/protocol.md lost the teach point example"

    def rounded(x):
        if isinstance(x, float):
            return round(x, 4)
        if isinstance(x, list):
            return [rounded(v) for v in x]
        if isinstance(x, dict):
            return {k: rounded(v) for k, v in x.items()}
        return x

    with Line(load(ROOT / "configs" / "default_line.toml")) as line:
        assert json.loads(block.group(1)) == rounded(line.describe()["teach_points"])
