"""`twin serve` across real processes: telemetry, lockstep control, determinism, bad input,
watchdog and control ownership. Every receive has a timeout; every process is killed."""

from __future__ import annotations

import math
import subprocess
import time

import msgspec
import pytest
import zmq
from processes import ROOT, SERVE, ServeProcess, run_example, run_script

from twin.client import Client, TwinError
from twin.protocol import messages as m

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def lockstep_server(serve):
    with serve("--mode", "lockstep", "--no-builtin-controller") as server:
        yield server


@pytest.fixture
def client(lockstep_server):
    with Client(lockstep_server.control, lockstep_server.telemetry, timeout=10.0) as c:
        yield c


def _line_state(state: m.State) -> bytes:
    """The parts of a state that describe the line (not who asked or who controls)."""
    return msgspec.msgpack.encode(
        [state.step, state.time, state.signals, state.parts, state.counts, state.estopped]
    )


def test_subscriber_receives_state_and_events(serve):
    with serve("--mode", "fast") as server, Client(server.control, server.telemetry) as c:
        c.subscribe(["state", "event"])
        states, events = [], []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (states and "part_spawned" in events):
            topic, msg = c.recv_telemetry(timeout=10)
            assert msg.version == m.PROTOCOL_VERSION
            if topic == "state":
                states.append(msg)
            else:
                assert topic == "event" and isinstance(msg, m.EventMsg)
                events.append(msg.kind)
        assert states, "no state telemetry"
        assert "part_spawned" in events, events
        last = states[-1]
        assert set(last.signals) >= {"infeed", "robot", "mill", "sink", "infeed_pick_eye"}
        assert last.step > 0 and math.isclose(last.time, last.step * 0.01)
        assert last.mode == "fast"
        assert all({"id", "type", "position", "orientation"} <= set(p) for p in last.parts)
        # the state arrives at 10 simulated Hz: every 10 steps of 10 ms
        assert all(s.step % 10 == 0 for s in states)
        assert server.stop() == 0, server.stderr_text()


def test_external_controller_produces_parts_in_lockstep(lockstep_server):
    result = run_example(
        "external_controller.py",
        "--control",
        lockstep_server.control,
        "--steps",
        "9000",
        timeout=75,
    )
    assert result["steps"] == 9000
    assert result["parts_completed"] > 0, result


def _scripted_run(server: ServeProcess) -> list[bytes]:
    """A fixed lockstep command sequence; the line state after each step request."""
    trace = []
    with Client(server.control, timeout=20) as c:
        c.take_control()
        for i in range(12):
            if i == 3:
                c.command("outfeed", "set_speed", speed=0.45)
            if i == 6:
                try:
                    c.command("robot", "home")
                except TwinError as e:  # busy is fine: it must just be busy both times
                    trace.append(e.code.encode())
            trace.append(_line_state(c.step(250)))
    return trace


def test_same_lockstep_sequence_gives_identical_states(serve):
    # the built-in sequencer runs inside the step, so the line really moves parts
    args = ("--mode", "lockstep", "--seed", "11")
    with serve(*args) as a, serve(*args) as b:
        first, second = _scripted_run(a), _scripted_run(b)
    assert len(first) >= 12
    assert first == second


def _raw_request(dealer: zmq.Socket, payload: bytes, timeout_s: float = 10.0) -> dict:
    dealer.send(payload)
    assert dealer.poll(int(timeout_s * 1000)), "no reply"
    return msgspec.msgpack.decode(dealer.recv())


BAD_REQUESTS = [
    ("malformed", b"\xc1\xc1"),
    ("unknown_request", msgspec.msgpack.encode([1, 2, 3])),  # an array that is no image cycle
    ("malformed", msgspec.msgpack.encode("step")),
    ("malformed", b"\x91" * 200_000 + b"\xc0"),  # nested deeper than any decoder recurses
    ("too_large", msgspec.msgpack.encode({"type": "heartbeat", "pad": "x" * (2 << 20)})),
    ("unknown_request", msgspec.msgpack.encode({"type": "fly", "id": 1})),
    ("bad_request", msgspec.msgpack.encode({"type": "step", "n": "ten", "id": 2})),
    ("bad_request", msgspec.msgpack.encode({"type": "step", "n": 0})),
    ("bad_request", msgspec.msgpack.encode({"type": "step", "n": 1, "m": 1})),
    ("bad_request", msgspec.msgpack.encode({"type": "command", "command": "run"})),
    ("bad_request", msgspec.msgpack.encode({"type": "take_control", "watchdog": math.nan})),
]

BAD_COMMANDS = [
    ("unknown_device", "nope", "run", {}),
    ("unknown_command", "infeed", "fly", {}),
    ("bad_type", "infeed", "set_speed", {"speed": "fast"}),
    ("not_finite", "infeed", "set_speed", {"speed": math.nan}),
    ("not_finite", "infeed", "set_speed", {"speed": math.inf}),
    ("out_of_range", "infeed", "set_speed", {"speed": 5.0}),
    ("missing_arg", "infeed", "set_speed", {}),
    ("unknown_arg", "infeed", "run", {"speed": 0.1}),
    ("out_of_reach", "robot", "pick", {"position": [3.0, 3.0, 1.0]}),
    ("out_of_range", "robot", "move_joints", {"positions": [9.0] * 7}),
    ("not_holding", "robot", "place", {"position": [0.55, 0.0, 0.75]}),
    ("illegal_state", "mill", "start", {}),
]


def test_bad_input_is_answered_not_obeyed(lockstep_server, client):
    client.take_control()
    client.step(40)
    before = _line_state(client.get_state())

    with zmq.Context() as ctx, ctx.socket(zmq.DEALER) as dealer:
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(lockstep_server.control)
        for code, payload in BAD_REQUESTS:
            reply = _raw_request(dealer, payload)
            assert reply["type"] == "error" and reply["code"] == code, (payload[:40], reply)
            assert reply["version"] == m.PROTOCOL_VERSION and reply["message"]
        # replies come in the order of the requests: an error that could not read its id
        # (null) answers the oldest request still waiting, as the doc tells clients
        dealer.send(b"\xc1")
        dealer.send(msgspec.msgpack.encode({"type": "get_state", "id": 77}))
        replies = []
        for _ in range(2):
            assert dealer.poll(10_000), "no reply"
            replies.append(msgspec.msgpack.decode(dealer.recv()))
        assert [(r["type"], r["id"]) for r in replies] == [("error", None), ("state", 77)]
        unknown = msgspec.msgpack.encode({"type": "fly", "id": "abc"})
        assert _raw_request(dealer, unknown)["id"] == "abc"  # the id is echoed

    for code, device, command, args in BAD_COMMANDS:
        with pytest.raises(TwinError) as err:
            client.command(device, command, **args)
        assert err.value.code == code, (device, command, args, err.value)
    with pytest.raises(TwinError, match="wrong_mode"):
        client.pause()
    assert _line_state(client.get_state()) == before, "a refused request changed the line"

    # the twin keeps stepping after all of that
    assert client.step(10).step == client.get_state().step == 50

    # a command in the wrong state: a second motion while the arm is busy
    client.command("robot", "home")
    busy = _line_state(client.get_state())
    with pytest.raises(TwinError) as err:
        client.command("robot", "move_to", position=[0.3, 0.0, 1.0])
    assert err.value.code == "busy"
    assert _line_state(client.get_state()) == busy

    # motion during an emergency stop
    client.estop("test")
    with pytest.raises(TwinError) as err:
        client.command("infeed", "run")
    assert err.value.code == "estopped"
    with pytest.raises(TwinError) as err:
        client.reset()
    assert err.value.code == "estopped"
    client.step(5)
    assert client.get_state().signals["robot"]["busy"] is False  # halted by the estop
    client.estop_reset()
    client.command("infeed", "run")
    assert client.step(2).signals["infeed"]["running"] is True


def test_step_carries_commands_in_one_round_trip(client):
    client.take_control()
    client.step(5)
    # carried out in order before the step; one refused in the line's state, the rest go on
    state = client.step(
        3,
        commands=[
            ("infeed", "set_speed", {"speed": 0.4}),
            ("mill", "start", {}),  # Stopped: PackML allows only reset or abort
            ("mill", "reset", {}),
        ],
    )
    assert state.step == 8
    assert state.signals["infeed"]["speed"] == 0.4
    assert state.signals["mill"]["state"] == "Resetting"
    assert [(r["index"], r["code"]) for r in state.refused] == [(1, "illegal_state")]
    assert "Stopped" in state.refused[0]["message"]
    assert client.step(1).refused == []

    # a command that does not exist fails the whole request: no command, no step
    before = _line_state(client.get_state())
    with pytest.raises(TwinError) as err:
        client.step(2, commands=[("infeed", "set_speed", {"speed": 0.1}), ("no_such", "run", {})])
    assert err.value.code == "unknown_device" and "commands[1]" in err.value.message
    with pytest.raises(TwinError) as err:
        client.step(2, commands=[("infeed", "set_speed", {"speed": 99.0})])
    assert err.value.code == "out_of_range" and "commands[0]" in err.value.message
    assert _line_state(client.get_state()) == before

    # during an e-stop motion commands are refused, the step still happens
    client.estop("test")
    at = client.get_state().step
    state = client.step(1, commands=[("infeed", "run", {})])
    assert [r["code"] for r in state.refused] == ["estopped"]
    assert state.step == at + 1 and state.signals["infeed"]["running"] is False


def test_step_is_refused_outside_lockstep(serve):
    with serve("--mode", "fast", "--no-builtin-controller") as server:
        with Client(server.control) as c:
            c.take_control()
            with pytest.raises(TwinError) as err:
                c.step(1)
            assert err.value.code == "wrong_mode"
            c.pause()
            paused_at = c.get_state().step
            time.sleep(0.3)
            assert c.get_state().step == paused_at
            c.resume()
            time.sleep(0.3)
            assert c.get_state().step > paused_at


_KILLABLE_CONTROLLER = """
import sys, time
from twin.client import Client
c = Client(sys.argv[1], timeout=10)
c.take_control(watchdog=float(sys.argv[2]))
c.command("infeed", "run")
c.command("outfeed", "run")
q = c.get_state().signals["robot"]["joint_positions"]
q[0] = 2.8  # a long joint move, so the arm is still moving when this process dies
c.command("robot", "move_joints", positions=q)
print("ready", flush=True)
while True:
    c.heartbeat()
    time.sleep(0.1)
"""


def test_watchdog_trips_when_the_controller_is_killed(serve):
    watchdog = 0.6  # trips well before the arm's joint move (over a second) is done
    with (
        serve("--mode", "realtime", "--no-builtin-controller") as server,
        Client(server.control, server.telemetry) as observer,
    ):
        observer.subscribe(["event"])
        ctl = run_script(_KILLABLE_CONTROLLER, server.control, str(watchdog))
        try:
            assert ctl.stdout.readline().strip() == "ready", ctl.stderr.read()
            time.sleep(0.2)
            running = observer.get_state()
            assert running.controlled and running.signals["robot"]["busy"]
            assert running.signals["infeed"]["running"]
            ctl.kill()
            killed_at = time.monotonic()
        finally:
            ctl.kill()
            ctl.wait(10)
        event = observer.wait_for_event("watchdog", timeout=watchdog + 5)
        assert time.monotonic() - killed_at < watchdog + 1.5
        assert "watchdog" in event.data["reason"]
        state = observer.get_state()
        assert not state.controlled
        assert not state.signals["infeed"]["running"] and not state.signals["outfeed"]["running"]
        assert not state.signals["robot"]["busy"] and state.signals["robot"]["result"] == "halted"

        # a new controller takes over and resumes
        with Client(server.control) as rescuer:
            rescuer.take_control(watchdog=5.0)
            rescuer.command("infeed", "run")
            assert rescuer.get_state().signals["infeed"]["running"]


def test_second_client_cannot_seize_control(lockstep_server):
    with (
        Client(lockstep_server.control) as first,
        Client(lockstep_server.control) as second,
    ):
        first.take_control()
        with pytest.raises(TwinError) as err:
            second.take_control()
        assert err.value.code == "control_held"
        for attempt in (
            lambda: second.command("infeed", "run"),
            lambda: second.step(1),
            lambda: second.reset(),
            lambda: second.release_control(),
        ):
            with pytest.raises(TwinError) as err:
                attempt()
            assert err.value.code == "not_controller"
        # observers may still read
        assert second.get_state().controlled
        assert second.hello().you_control is False and first.hello().you_control is True
        first.release_control()
        second.take_control()
        with pytest.raises(TwinError) as err:
            first.command("infeed", "run")
        assert err.value.code == "not_controller"
        second.command("infeed", "run")


def test_describe_lists_devices_commands_and_schema(client):
    d = client.describe()
    devices = {dev["id"]: dev for dev in d.devices}
    speed = devices["infeed"]["commands"][2]["args"][0]
    assert speed["name"] == "speed" and speed["unit"] == "m/s" and speed["max"] == 0.6
    assert set(d.requests) == m.REQUEST_TAGS | {"image"}
    assert {"request", "reply", "telemetry", "$defs"} <= set(d.schema)
    assert d.schema["$defs"]["Step"]["properties"]["n"]["maximum"] == d.max_steps_per_request


def test_reset_rebuilds_the_line(client):
    client.take_control()
    client.step(100)
    client.reset(timeout=30)
    state = client.get_state()
    assert state.step == 0 and state.counts["parts_spawned"] == 0


def test_refuses_non_loopback_bind_without_allow_remote():
    proc = subprocess.run(
        [*SERVE, "--control", "tcp://0.0.0.0:0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert "--allow-remote" in proc.stderr


def test_client_exchanges_a_process_image(client):
    client.take_control()
    image = client.declare_image(
        ["infeed.running", "infeed.speed", "mill.state"], ["infeed.run", "infeed.set_speed"]
    )
    assert image.inputs == ["infeed.running", "infeed.speed", "mill.state"]
    reply = image.exchange({"infeed.set_speed": [0.4], "infeed.run": []}, n=3)
    assert reply.step == 3 and reply.refused == []
    assert image.values(reply) == {
        "infeed.running": True,
        "infeed.speed": 0.4,
        "mill.state": "Stopped",
    }
    reply = image.exchange([None, [0.2]], n=1)
    assert reply.inputs[:2] == [True, 0.2] and reply.step == 4
    assert client.step(1).signals["infeed"]["speed"] == 0.2  # the same line as step requests
    with pytest.raises(TwinError) as err:
        image.exchange([None], n=1)
    assert err.value.code == "bad_image"
    client.reset()  # a new lease: the client keeps it, the image must be declared again
    with pytest.raises(TwinError) as err:
        image.exchange(n=1)
    assert err.value.code == "bad_image"
    image.declare_again()
    assert image.exchange(n=1).inputs == [False, 0.25, "Stopped"]  # the rebuilt line


def test_a_gym_session_takes_control_again_after_its_lease_ran_out(serve):
    from twin.config import load
    from twin.gym.backends import RemoteBackend

    cfg = load(ROOT / "configs" / "default_line.toml")
    args = ("--mode", "lockstep", "--no-builtin-controller", "--lease-timeout", "0.3")
    with serve(*args) as server:
        backend = RemoteBackend(cfg, server.control, builtin_controller=False)
        try:
            backend.reset(3)
            assert backend.step(5).time == pytest.approx(0.05)
            time.sleep(0.8)  # a long training update: the lease runs out
            backend.command("infeed", "run", {})
            assert backend.step(5).signals["infeed"]["running"]
        finally:
            backend.close()
