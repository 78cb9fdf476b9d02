"""Security across real processes: CurveZMQ keys and roles, remote-bind rules, rate limits.

Every receive has a timeout; every server process is killed at the end of its test."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
import zmq
from processes import ROOT, SERVE, ServeProcess

from twin.client import Client, TwinError, TwinTimeout
from twin.server.limits import RateLimiter

pytestmark = pytest.mark.timeout(120)

KEYS = [sys.executable, "-m", "twin.server.keys"]  # `twin keys`, wired into twin.cli or not
SILENCE_S = 1.5  # how long an unauthenticated client waits for anything at all


def _keys(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*KEYS, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def keydir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "twin"
    done = _keys("generate", str(path), "--controllers", "plc", "--observers", "hmi")
    assert done.returncode == 0, done.stderr
    return path


@pytest.fixture(scope="module")
def curve_server(keydir, serve_module):
    args = ("--mode", "lockstep", "--no-builtin-controller", "--curve", str(keydir))
    with serve_module(*args) as server:
        yield server


def _client(server: ServeProcess, keydir: Path, name: str | None, **kw) -> Client:
    curve = None
    if name is not None:
        curve = (keydir / "secrets" / f"{name}.key_secret", keydir / "server.key")
    return Client(server.control, server.telemetry, curve=curve, **kw)


def _telemetry_while_stepping(listener: Client, stepper: Client, wait_s: float) -> str | None:
    """Step the line (so state telemetry flows) until `listener` receives something."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        stepper.step(20)
        try:
            topic, _ = listener.recv_telemetry(timeout=0.05)
            return topic
        except TwinTimeout:
            pass
    return None


def test_keys_generate_writes_the_documented_layout(tmp_path):
    root = tmp_path / "k"
    done = _keys("generate", str(root), "--clients", "a", "b", "--observers", "c")
    assert done.returncode == 0, done.stderr
    assert {p.name for p in (root / "controllers").iterdir()} == {"a.key", "b.key"}
    assert {p.name for p in (root / "observers").iterdir()} == {"c.key"}
    assert {p.name for p in (root / "secrets").iterdir()} == {
        "a.key_secret",
        "b.key_secret",
        "c.key_secret",
    }
    for secret in [root / "server.key_secret", *(root / "secrets").iterdir()]:
        assert secret.stat().st_mode & 0o077 == 0, f"{secret} is readable by others"
    server_key = (root / "server.key").read_bytes()

    again = _keys("generate", str(root), "--observers", "d")  # adds a client, keeps the server
    assert again.returncode == 0, again.stderr
    assert (root / "server.key").read_bytes() == server_key
    assert (root / "observers" / "d.key").exists()

    for bad in (["--clients", "a"], ["--clients", "x", "--observers", "x"], ["--clients", "../x"]):
        refused = _keys("generate", str(root), *bad)
        assert refused.returncode == 2 and "error" in refused.stderr, bad


def test_unauthenticated_clients_get_nothing(curve_server, keydir, tmp_path):
    stranger_dir = tmp_path / "stranger"  # a valid key pair the twin does not list
    assert _keys("generate", str(stranger_dir), "--clients", "stranger").returncode == 0
    stranger_curve = (stranger_dir / "secrets" / "stranger.key_secret", keydir / "server.key")
    with (
        _client(curve_server, keydir, "plc", timeout=10) as plc,
        Client(curve_server.control, curve_server.telemetry, timeout=SILENCE_S) as plain,
        Client(
            curve_server.control, curve_server.telemetry, timeout=SILENCE_S, curve=stranger_curve
        ) as stranger,
    ):
        plc.take_control()
        before = plc.get_state()
        for outsider in (plain, stranger):
            outsider.subscribe()
            for attempt in (outsider.hello, outsider.get_state, outsider.take_control):
                with pytest.raises(TwinTimeout):
                    attempt()
        # the line keeps producing telemetry; the outsiders still hear nothing of it
        plc.step(100)
        for outsider in (plain, stranger):
            with pytest.raises(TwinTimeout):
                outsider.recv_telemetry(timeout=SILENCE_S)
        after = plc.get_state()
        assert after.step == before.step + 100 and after.controlled
        plc.release_control()


def test_observer_reads_but_may_not_change_anything(curve_server, keydir):
    with (
        _client(curve_server, keydir, "plc", timeout=10) as plc,
        _client(curve_server, keydir, "hmi", timeout=10) as hmi,
    ):
        assert hmi.hello().role == "observer" and plc.hello().role == "controller"
        assert hmi.describe().devices
        hmi.heartbeat()
        hmi.subscribe(["state"])
        plc.take_control()
        assert _telemetry_while_stepping(hmi, plc, wait_s=20) == "state"
        before = hmi.get_state()
        for attempt in (
            hmi.take_control,
            lambda: hmi.command("infeed", "run"),
            lambda: hmi.step(1),
            hmi.estop,
            hmi.reset,
            hmi.release_control,
            hmi.pause,
        ):
            with pytest.raises(TwinError) as err:
                attempt()
            assert err.value.code == "forbidden", err.value
        after = hmi.get_state()
        assert (after.step, after.signals, after.estopped) == (
            before.step,
            before.signals,
            before.estopped,
        )
        plc.release_control()


def test_controller_key_can_do_everything(curve_server, keydir):
    with _client(curve_server, keydir, "plc", timeout=30) as plc:
        plc.take_control(watchdog=30.0)
        plc.command("infeed", "run")
        assert plc.step(5).signals["infeed"]["running"] is True
        plc.estop("test")
        plc.estop_reset()
        plc.reset()
        assert plc.get_state().step == 0
        plc.subscribe(["state"])
        assert _telemetry_while_stepping(plc, plc, wait_s=20) == "state"
        plc.release_control()


def test_curve_server_may_bind_any_interface_and_plain_remote_warns(keydir, serve):
    wide = ("--control", "tcp://0.0.0.0:*", "--telemetry", "tcp://0.0.0.0:*")
    with serve("--mode", "lockstep", "--curve", str(keydir), *wide) as server:
        assert "warning" not in server.stderr_text()
        port = server.control.rsplit(":", 1)[1]
        with Client(f"tcp://127.0.0.1:{port}", curve=_curve(keydir, "hmi"), timeout=10) as hmi:
            assert hmi.hello().role == "observer"
    with serve("--mode", "lockstep", "--allow-remote", *wide) as server:
        deadline = time.monotonic() + 10
        while "warning" not in server.stderr_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        text = server.stderr_text()
        assert "without authentication" in text and "--curve" in text, text


def _curve(keydir: Path, name: str) -> tuple[Path, Path]:
    return keydir / "secrets" / f"{name}.key_secret", keydir / "server.key"


def test_bad_key_directory_is_refused(tmp_path):
    done = subprocess.run(
        [*SERVE, "--curve", str(tmp_path / "missing"), "--control", "tcp://127.0.0.1:*"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "server.key_secret" in done.stderr, done.stderr


def test_rate_limit_answers_a_flood_with_errors(serve):
    args = ("--mode", "lockstep", "--rate-limit", "50", "--rate-burst", "10")
    with serve(*args) as server, zmq.Context() as ctx:
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        try:
            dealer.connect(server.control)
            flood = 200
            for i in range(flood):
                dealer.send(msgspec.msgpack.encode({"type": "get_state", "id": i}))
            replies = []
            for _ in range(flood):  # every request is answered, one way or the other
                assert dealer.poll(10_000), f"only {len(replies)} replies"
                replies.append(msgspec.msgpack.decode(dealer.recv()))
            assert sorted(r["id"] for r in replies) == list(range(flood))
            limited = [r for r in replies if r["type"] == "error"]
            assert limited and all(r["code"] == "rate_limited" for r in limited)
            assert 10 <= flood - len(limited) < 60  # the burst, plus the refill meanwhile
            time.sleep(0.3)  # tokens come back
            dealer.send(msgspec.msgpack.encode({"type": "hello", "id": "again"}))
            assert dealer.poll(10_000)
            assert msgspec.msgpack.decode(dealer.recv())["type"] == "hello"
        finally:
            dealer.close(linger=0)


def test_rate_limiter_refills_and_forgets_quiet_clients():
    limiter = RateLimiter(rate=10.0, burst=3)
    assert [limiter.admit("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.admit("b", 0.0)  # per client
    assert not limiter.admit("a", 0.05) and limiter.admit("a", 0.15)
    limiter.admit("c", 100.0)  # long after: the full buckets of a and b are dropped
    assert len(limiter) == 1
    assert all(RateLimiter(rate=0).admit("x", 0.0) for _ in range(10_000))


# control leases ----------------------------------------------------------------------------
LEASE_S = 1.5

# a controller that takes control with a fixed routing id and no watchdog, keeps its lease to
# itself, and then is killed
_HOLDER = """
import sys, time, msgspec, zmq
ctx = zmq.Context()
d = ctx.socket(zmq.DEALER)
d.setsockopt(zmq.ROUTING_ID, b"plc-1")
d.setsockopt(zmq.LINGER, 0)
d.connect(sys.argv[1])
def ask(req):
    d.send(msgspec.msgpack.encode(req))
    assert d.poll(10000)
    return msgspec.msgpack.decode(d.recv())
lease = ask({"type": "take_control"})["lease"]
assert ask({"type": "command", "device": "infeed", "command": "run", "lease": lease})["type"] == "ok"
print("ready", flush=True)
time.sleep(600)
"""


def _ask(dealer: zmq.Socket, req: dict) -> dict:
    dealer.send(msgspec.msgpack.encode(req))
    assert dealer.poll(10_000), f"no reply to {req}"
    return msgspec.msgpack.decode(dealer.recv())


def test_a_dead_holders_routing_id_gives_nothing_and_its_lease_runs_out(serve):
    args = ("--mode", "lockstep", "--no-builtin-controller", "--lease-timeout", str(LEASE_S))
    with (
        serve(*args) as server,
        Client(server.control, server.telemetry, timeout=10) as observer,
        zmq.Context() as ctx,
    ):
        observer.subscribe(["event"])
        time.sleep(0.3)  # PUB/SUB: let the subscription arrive
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, server.control],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        try:
            assert holder.stdout.readline().strip() == "ready", holder.stderr.read()
            taken = observer.wait_for_event("control_taken", timeout=10)
            holder.kill()
            killed_at = time.monotonic()
        finally:
            holder.kill()
            holder.wait(10)
        # nothing published says more than the connection: no lease for an observer to replay
        assert set(taken.data) == {"client", "watchdog", "lease_timeout"}
        assert taken.data["lease_timeout"] == LEASE_S
        before = observer.get_state()
        assert before.controlled and before.signals["infeed"]["running"]

        impostor = ctx.socket(zmq.DEALER)
        impostor.setsockopt(zmq.ROUTING_ID, bytes.fromhex(taken.data["client"]))  # b"plc-1"
        impostor.setsockopt(zmq.LINGER, 0)
        impostor.connect(server.control)
        try:
            for req, code in [
                ({"type": "command", "device": "infeed", "command": "stop"}, "not_controller"),
                ({"type": "step", "n": 5}, "not_controller"),
                ({"type": "step", "n": 5, "lease": "0" * 32}, "bad_lease"),
                ({"type": "release_control"}, "not_controller"),
                ({"type": "reset"}, "not_controller"),
                ({"type": "estop_reset"}, "not_controller"),
                ({"type": "declare_image", "inputs": ["infeed.running"]}, "not_controller"),
                (["image", 1, "0" * 32, 1, 1, []], "bad_lease"),
                ({"type": "take_control"}, "control_held"),
            ]:
                reply = _ask(impostor, req)
                assert reply["type"] == "error" and reply["code"] == code, (req, reply)
            hello = _ask(impostor, {"type": "hello"})
            assert hello["you_control"] is False
            after = observer.get_state()
            assert (after.step, after.signals) == (before.step, before.signals)

            # the lease runs out although nobody armed a watchdog, and the line is free again
            expired = observer.wait_for_event("lease_expired", timeout=LEASE_S + 5)
            assert time.monotonic() - killed_at < LEASE_S + 2.0
            assert expired.data["client"] == taken.data["client"]
            with Client(server.control, timeout=10) as rescuer:
                rescuer.take_control()
                state = rescuer.step(5, commands=[("infeed", "stop", {})])
                assert state.refused == [] and not state.signals["infeed"]["running"]
        finally:
            impostor.close(linger=0)


def test_a_lease_from_before_a_reset_is_stale_and_changes_nothing(serve):
    with (
        serve("--mode", "lockstep", "--no-builtin-controller") as server,
        Client(server.control, timeout=20) as c,
        zmq.Context() as ctx,
    ):
        old = c.take_control().lease
        c.step(10)
        new = c.reset(timeout=30).lease
        assert new != old and c.lease == new
        c.lease = old  # as a request sent before the reset's reply arrived
        with pytest.raises(TwinError) as err:
            c.step(3, commands=[("infeed", "run", {})])
        assert err.value.code == "stale_lease" and "reset" in err.value.message
        c.lease = new
        state = c.get_state()
        assert state.step == 0 and not state.signals["infeed"]["running"]
        # a lease held by this connection does not work from another one
        with ctx.socket(zmq.DEALER) as thief:
            thief.setsockopt(zmq.LINGER, 0)
            thief.connect(server.control)
            stolen = {"type": "command", "device": "infeed", "command": "run", "lease": new}
            reply = _ask(thief, stolen)
            assert reply["code"] == "bad_lease" and "another connection" in reply["message"]
        c.release_control()
        c.lease = new
        with pytest.raises(TwinError) as err:
            c.step(1)
        assert err.value.code == "stale_lease" and "released" in err.value.message
        assert not c.get_state().signals["infeed"]["running"]
