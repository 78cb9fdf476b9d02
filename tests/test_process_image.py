"""The process image over the wire, as a stranger would use it from docs/protocol.md: raw
pyzmq and msgspec.msgpack, nothing from `twin`, no number of the line (the teach points come
from `describe`).

The same control program runs once through image cycles and once through `step` requests
carrying the same commands: the trajectories must be identical, and parts must come out. It
also runs through the image in realtime mode, where each cycle exchanges the latest image.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

pytestmark = pytest.mark.timeout(240)
ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_MS = 20_000


class Wire:
    """One DEALER: map requests and image arrays, each reply matched by its id."""

    def __init__(self, control: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(control)
        self.next_id = 0
        self.lease: str | None = None

    def _ask(self, payload: bytes) -> Any:
        self.sock.send(payload)
        while True:
            assert self.sock.poll(TIMEOUT_MS), "no reply"
            reply = msgspec.msgpack.decode(self.sock.recv())
            rid = reply[1] if isinstance(reply, list) else reply.get("id")
            if rid == self.next_id:
                return reply

    def call(self, request: dict) -> dict:
        self.next_id += 1
        request = {**request, "id": self.next_id}
        if self.lease is not None:
            request["lease"] = self.lease
        reply = self._ask(msgspec.msgpack.encode(request))
        if reply["type"] == "control":
            self.lease = reply["lease"]
        return reply

    def cycle(self, layout: int, n: int, outputs: list) -> Any:
        """An image cycle: the reply array, or the error map."""
        self.next_id += 1
        return self._ask(
            msgspec.msgpack.encode(["image", self.next_id, self.lease, layout, n, outputs])
        )

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()


class ImageProgram:
    """A PLC-like program over a process image declared from `describe`: belts run, stations
    are reset and started, each arm works its teach points in order (unload first)."""

    def __init__(self, desc: dict) -> None:
        kinds = {d["id"]: d["kind"] for d in desc["devices"]}
        self.belts = [d for d, k in kinds.items() if k == "conveyor"]
        self.stations = [d for d, k in kinds.items() if k == "station"]
        self.sinks = [d for d, k in kinds.items() if k == "sink"]
        self.arms: dict[str, list[dict]] = {}
        eyes = set()
        for tp in desc["teach_points"]:
            self.arms.setdefault(tp["arm"], []).append(tp)
            if tp["pick"]["kind"] == "photoeye":
                eyes.add(tp["pick"]["device"])
            if tp["place"].get("clear_eye"):
                eyes.add(tp["place"]["clear_eye"])
        self.inputs = ["line.state"]
        self.inputs += [f"{e}.blocked" for e in sorted(eyes)]
        self.inputs += [
            f"{s}.{x}"
            for s in self.stations
            for x in ("state", "part_present", "fault", "part_done", "load_ok", "unload_ok")
        ]
        self.inputs += [
            f"{a}.{x}" for a in self.arms for x in ("busy", "jobs_done", "result", "holding")
        ]
        self.inputs += [f"{s}.count" for s in self.sinks]
        self.outputs = [f"{b}.run" for b in self.belts]
        self.outputs += [f"{s}.{c}" for s in self.stations for c in ("reset", "start")]
        self.outputs += [f"{a}.{c}" for a in self.arms for c in ("pick", "place")]
        self.slot = {name: i for i, name in enumerate(self.outputs)}
        self.jobs: dict[str, tuple[dict, str, int] | None] = dict.fromkeys(self.arms)
        self.reserved: dict[str, str] = {}
        self.started = False

    def completed(self, values: dict[str, Any]) -> int:
        return sum(values[f"{s}.count"] for s in self.sinks)

    def scan(self, v: dict[str, Any]) -> list:
        out: list = [None] * len(self.outputs)

        def send(name: str, *args: Any) -> None:
            out[self.slot[name]] = list(args)

        if not self.started:
            for belt in self.belts:
                send(f"{belt}.run")
            self.started = True
        if v["line.state"] != "Execute":
            return out
        for st in self.stations:
            state = v[f"{st}.state"]
            if state == "Stopped" or (state == "Complete" and not v[f"{st}.part_present"]):
                send(f"{st}.reset")
            elif state == "Idle" and not v[f"{st}.fault"]:
                send(f"{st}.start")  # once: in Execute it works part after part
        for arm, points in self.arms.items():
            busy, done = v[f"{arm}.busy"], v[f"{arm}.jobs_done"]
            holding = v[f"{arm}.holding"]
            job = self.jobs[arm]
            if job is not None and (busy or done == job[2]):
                continue  # still on it
            if job is not None:
                tp, phase, _ = job
                if phase == "pick" and v[f"{arm}.result"] == "ok" and holding is not None:
                    send(f"{arm}.place", tp["place"]["point"])
                    self.jobs[arm] = (tp, "place", done)
                    continue
                self.reserved.pop(tp["place"]["device"], None)
                self.jobs[arm] = None
            if busy or holding is not None:
                continue
            for tp in points:
                if self.ready(v, tp):
                    send(f"{arm}.pick", tp["pick"]["point"])
                    self.reserved[tp["place"]["device"]] = arm
                    self.jobs[arm] = (tp, "pick", done)
                    break
        return out

    def ready(self, v: dict[str, Any], tp: dict) -> bool:
        pick, place = tp["pick"], tp["place"]
        if pick["kind"] == "photoeye":
            source_ready = v[f"{pick['device']}.blocked"]
        else:
            st = pick["device"]
            source_ready = v[f"{st}.unload_ok"] and v[f"{st}.part_done"]
        if place["device"] in self.reserved or not source_ready:
            return False
        if place["kind"] == "station":
            return v[f"{place['device']}.load_ok"]
        eye = place.get("clear_eye")
        return eye is None or not v[f"{eye}.blocked"]

    def commands(self, outputs: list) -> list[dict]:
        """The same outputs as a `step` request's commands (in the same order)."""
        out = []
        for name, value in zip(self.outputs, outputs):
            if value is None:
                continue
            device, command = name.rsplit(".", 1)
            args = {"position": value[0]} if command in ("pick", "place") else {}
            out.append({"device": device, "command": command, "args": args})
        return out


def _line_state(state: dict) -> bytes:
    return msgspec.msgpack.encode([state[k] for k in ("step", "signals", "parts", "counts")])


def _declare(wire: Wire, program: ImageProgram) -> int:
    layout = wire.call(
        {"type": "declare_image", "inputs": program.inputs, "outputs": program.outputs}
    )
    assert layout["type"] == "image_layout", layout
    assert [e["name"] for e in layout["inputs"]] == program.inputs
    return layout["layout"]


def run_lockstep(wire: Wire, via: str, n: int, want: int, max_steps: int) -> list[bytes]:
    """Run the program to `want` completed parts; the line state after every cycle."""
    program = ImageProgram(wire.call({"type": "describe"}))
    layout = _declare(wire, program)
    first = wire.cycle(layout, 0, [None] * len(program.outputs))
    values = dict(zip(program.inputs, first[4]))
    trajectory = []
    while program.completed(values) < want:
        outputs = program.scan(values)
        if via == "image":
            reply = wire.cycle(layout, n, outputs)
            assert isinstance(reply, list), reply
            assert reply[5] == [], reply[5]  # the program never asks what its state refuses
            step, values = reply[2], dict(zip(program.inputs, reply[4]))
        else:
            state = wire.call({"type": "step", "n": n, "commands": program.commands(outputs)})
            assert state["type"] == "state" and state["refused"] == [], state
            step = state["step"]
            values = {
                name: state["signals"][name.rsplit(".", 1)[0]][name.rsplit(".", 1)[1]]
                for name in program.inputs
            }
        trajectory.append(_line_state(wire.call({"type": "get_state"})))
        assert step < max_steps, f"only {program.completed(values)} parts after {step} steps"
    return trajectory


def test_image_and_step_requests_give_the_same_trajectory_and_complete_parts(serve):
    with serve("--mode", "lockstep", "--no-builtin-controller") as server:
        wire = Wire(server.control)
        try:
            assert wire.call({"type": "take_control"})["type"] == "control"
            by_image = run_lockstep(wire, "image", n=10, want=1, max_steps=12_000)
            assert wire.call({"type": "reset"})["type"] == "control"  # same seed, new lease
            by_step = run_lockstep(wire, "step", n=10, want=1, max_steps=12_000)
        finally:
            wire.close()
    assert len(by_image) == len(by_step) > 100
    assert by_image == by_step


def test_the_image_completes_parts_on_the_two_robot_line(serve):
    config = str(ROOT / "configs" / "two_robot_line.toml")
    with serve(config, "--mode", "lockstep", "--no-builtin-controller") as server:
        wire = Wire(server.control)
        try:
            wire.call({"type": "take_control"})
            trajectory = run_lockstep(wire, "image", n=10, want=1, max_steps=20_000)
        finally:
            wire.close()
    assert trajectory


def test_realtime_exchanges_the_latest_image_each_scan(serve):
    args = ("--mode", "realtime", "--rtf", "3", "--no-builtin-controller")
    with serve(*args) as server:
        wire = Wire(server.control)
        try:
            wire.call({"type": "take_control", "watchdog": 5})
            program = ImageProgram(wire.call({"type": "describe"}))
            layout = _declare(wire, program)
            refused = wire.cycle(layout, 1, [None] * len(program.outputs))
            assert refused["code"] == "wrong_mode", refused  # realtime does not step on request
            steps = []
            values: dict[str, Any] = {}
            deadline = time.monotonic() + 150
            outputs: list = [None] * len(program.outputs)
            while time.monotonic() < deadline:
                reply = wire.cycle(layout, 0, outputs)
                assert isinstance(reply, list), reply
                steps.append(reply[2])
                values = dict(zip(program.inputs, reply[4]))
                if program.completed(values) >= 1:
                    break
                outputs = program.scan(values)
                time.sleep(0.02)  # a 20 ms scan
        finally:
            wire.close()
    assert program.completed(values) >= 1, values
    assert steps == sorted(steps) and steps[-1] > steps[0]  # the line ran on its own


BAD_CYCLES = [
    # (what, cycle with `L` for the lease and `Y` for the layout, code)
    ("too few outputs", ["image", 1, "L", "Y", 1, [None]], "bad_image"),
    ("an output not nil or an array", ["image", 1, "L", "Y", 1, [0.3, None]], "bad_image"),
    ("too many arguments", ["image", 1, "L", "Y", 1, [[0.3, 1], None]], "bad_image"),
    ("a bad argument type", ["image", 1, "L", "Y", 1, [["fast"], None]], "bad_type"),
    ("an argument out of range", ["image", 1, "L", "Y", 1, [[9.0], None]], "out_of_range"),
    ("a target out of reach", ["image", 1, "L", "Y", 1, [None, [[5, 5, 1]]]], "out_of_reach"),
    ("a stale layout", ["image", 1, "L", 999, 1, [None, None]], "stale_layout"),
    ("a foreign lease", ["image", 1, "0" * 32, "Y", 1, [None, None]], "bad_lease"),
    ("n not an int", ["image", 1, "L", "Y", 1.0, [None, None]], "bad_request"),
    ("a missing element", ["image", 1, "L", "Y", 1], "bad_request"),
    ("not an image", ["step", 1, "L", "Y", 1, []], "unknown_request"),
]
BAD_DECLARATIONS = [
    ({"inputs": ["infeed.nope"]}, "unknown_signal"),
    ({"inputs": ["nope.running"]}, "unknown_device"),
    ({"inputs": ["running"]}, "bad_image"),
    ({"inputs": ["infeed.running", "infeed.running"]}, "bad_image"),
    ({"outputs": ["infeed.fly"]}, "unknown_command"),
    ({"outputs": ["nope.run"]}, "unknown_device"),
    ({"outputs": "infeed.run"}, "bad_request"),
]


def test_bad_image_input_is_answered_and_changes_nothing(serve):
    with serve("--mode", "lockstep", "--no-builtin-controller") as server:
        wire = Wire(server.control)
        try:
            wire.call({"type": "take_control"})
            layout = wire.call(
                {
                    "type": "declare_image",
                    "inputs": ["infeed.speed", "line.state", "robot.joint_positions"],
                    "outputs": ["infeed.set_speed", "robot.pick"],
                }
            )["layout"]
            before = _line_state(wire.call({"type": "get_state"}))
            for what, cycle, code in BAD_CYCLES:
                cycle = [wire.lease if x == "L" else layout if x == "Y" else x for x in cycle]
                wire.next_id += 1
                cycle[1] = wire.next_id
                reply = wire._ask(msgspec.msgpack.encode(cycle))
                assert isinstance(reply, dict) and reply["type"] == "error", (what, reply)
                assert reply["code"] == code and reply["id"] == wire.next_id, (what, reply)
            for fields, code in BAD_DECLARATIONS:
                reply = wire.call({"type": "declare_image", **fields})
                assert reply["code"] == code, (fields, reply)
            assert _line_state(wire.call({"type": "get_state"})) == before
            # the refused declarations left the image in place; integers do for floats
            ok = wire.cycle(layout, 2, [[0], None])
            assert ok[0] == "image" and ok[2] == 2 and ok[4][0] == 0.0 and ok[4][1] == "Idle"
            assert len(ok[4][2]) == 7
            # a reset replaces the lease and the image
            old = wire.lease
            wire.call({"type": "reset"})
            wire.lease, fresh = old, wire.lease
            assert wire.cycle(layout, 1, [None, None])["code"] == "stale_lease"
            wire.lease = fresh
            assert wire.cycle(layout, 1, [None, None])["code"] == "bad_image"  # declare again
        finally:
            wire.close()


def test_image_cycles_are_recorded_as_steps_and_replay_bit_for_bit(tmp_path, serve):
    import subprocess
    import sys

    path = tmp_path / "image.mcap"
    args = ("--mode", "lockstep", "--no-builtin-controller", "--record", str(path))
    with serve(*args) as server:
        wire = Wire(server.control)
        try:
            wire.call({"type": "take_control"})
            run_lockstep(wire, "image", n=10, want=1, max_steps=12_000)
            lease = wire.lease
        finally:
            wire.close()
        assert server.stop() == 0, server.stderr_text()
    assert lease is not None and lease.encode() not in path.read_bytes()  # a secret
    done = subprocess.run(
        [sys.executable, "-m", "twin.record.command", "replay", str(path), "--verify"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
