"""The HMI gateway without a browser: `twin hmi` as a protocol client, its security rules and
what it does with bad input (garbage, floods, oversized frames, a client that never reads)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from hmi_helpers import HmiProcess
from processes import ROOT, ServeProcess
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from twin.client import Client
from twin.gateways.hmi.security import role_for
from twin.gateways.hmi.session import CHANGE_HZ, STATE_HZ, Newest


@pytest.fixture(scope="module")
def setup(serve_module) -> Iterator[tuple[ServeProcess, HmiProcess]]:
    with serve_module("--mode", "realtime", "--rtf", "2") as server:
        with HmiProcess(server) as hmi:
            yield server, hmi


def ws_url(page_url: str) -> str:
    base, _, query = page_url.partition("?")
    return base.replace("http://", "ws://") + "ws" + (f"?{query}" if query else "")


def open_ws(page_url: str) -> ClientConnection:
    return connect(ws_url(page_url), open_timeout=5, max_size=None)


def until(ws: ClientConnection, kind: str, timeout: float = 5.0, **match: object) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        msg = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if msg["type"] == kind and all(msg.get(k) == v for k, v in match.items()):
            return msg


def test_twin_hmi_serves_page_assets_and_live_telemetry(setup) -> None:  # noqa: ANN001
    _, hmi = setup
    with urllib.request.urlopen(hmi.url, timeout=5) as r:
        page = r.read().decode()
    assert "/static/hmi.js" in page and "importmap" in page
    for asset in ("static/hmi.js", "static/scene.js", "static/vendor/three/three.module.js",
                  "static/vendor/three/three.core.js", "static/vendor/three/OrbitControls.js"):  # fmt: skip
        with urllib.request.urlopen(hmi.url + asset, timeout=5) as r:
            assert r.status == 200 and len(r.read()) > 1000, asset
    with open_ws(hmi.url) as ws:
        welcome = until(ws, "welcome")
        assert welcome["role"] == "observer" and welcome["line"] == "default_line"
        assert {d["id"] for d in welcome["devices"]} >= {"infeed", "mill", "robot", "line"}
        steps = [until(ws, "state")["step"] for _ in range(5)]
        assert steps == sorted(steps) and steps[-1] > steps[0]
    with open_ws(hmi.controller_url) as ws:
        assert until(ws, "welcome")["role"] == "controller"


def test_page_requests_get_the_twins_checks_and_errors(setup) -> None:  # noqa: ANN001
    server, hmi = setup
    with open_ws(hmi.controller_url) as ws, Client(server.control, server.telemetry) as direct:
        until(ws, "welcome")
        # the code and message a direct client gets for a command out of range ...
        direct.take_control()
        with pytest.raises(Exception) as direct_error:
            direct.command("infeed", "set_speed", speed=5.0)
        direct.release_control()
        # ... are what the page gets
        ws.send(json.dumps({"op": "command", "ref": 1, "device": "infeed", "command": "set_speed",
                            "args": {"speed": 5.0}}))  # fmt: skip
        reply = until(ws, "reply", ref=1)
        assert reply["ok"] is False and reply["code"] == "out_of_range"
        assert reply["message"] == direct_error.value.message  # type: ignore[attr-defined]
        ws.send(json.dumps({"op": "command", "ref": 2, "device": "nope", "command": "run"}))
        assert until(ws, "reply", ref=2)["code"] == "unknown_device"
        alarm = until(ws, "alarm")["entry"]
        assert alarm["kind"] == "refused" and alarm["alarm"] is True
        # a command that is fine is carried out
        ws.send(json.dumps({"op": "command", "ref": 3, "device": "infeed", "command": "set_speed",
                            "args": {"speed": 0.25}}))  # fmt: skip
        assert until(ws, "reply", ref=3)["ok"] is True
        assert direct.hello().controlled is True  # the HMI holds control for this page
        ws.send(json.dumps({"op": "release", "ref": 4}))
        assert until(ws, "reply", ref=4)["ok"] is True
        assert direct.hello().controlled is False  # released, not left to the watchdog


def test_observer_requests_are_forbidden(setup) -> None:  # noqa: ANN001
    server, hmi = setup
    with open_ws(hmi.url) as ws, Client(server.control, server.telemetry) as direct:
        until(ws, "welcome")
        for i, op in enumerate(({"op": "estop"}, {"op": "pause"}, {"op": "command",
                               "device": "infeed", "command": "stop"}, {"op": "ack", "id": 1})):  # fmt: skip
            ws.send(json.dumps({**op, "ref": i}))
            assert until(ws, "reply", ref=i)["code"] == "forbidden"
        state = direct.get_state()
        assert not state.estopped and not state.paused and state.signals["infeed"]["running"]


def test_garbage_floods_and_big_frames_are_dropped_and_the_twin_keeps_its_pace(setup) -> None:  # noqa: ANN001
    server, hmi = setup
    with Client(server.control, server.telemetry) as direct, open_ws(hmi.url) as watcher:
        until(watcher, "welcome")
        t0, s0 = time.monotonic(), direct.get_state().time
        with open_ws(hmi.controller_url) as ws:
            until(ws, "welcome")
            ws.send("this is not json")
            assert until(ws, "reply")["code"] == "bad_request"
            ws.send(json.dumps({"op": "launch_missiles"}))
            assert "launch_missiles" in until(ws, "reply")["message"]
            ws.send(b"\x00\xff\xfe")
            assert until(ws, "reply")["code"] == "bad_request"
            # a flood: beyond its burst a page is refused at its rate ...
            for ref in range(100):
                ws.send(json.dumps({"op": "command", "ref": ref, "device": "infeed", "command": "run"}))  # fmt: skip
            codes = [until(ws, "reply", ref=ref).get("code") for ref in range(100)]
            assert codes.count(None) >= 20 and codes.count("rate_limited") >= 50, codes
            # ... and one that keeps on is disconnected
            with pytest.raises(ConnectionClosed):
                for _ in range(400):
                    ws.send("flood")
                while True:
                    ws.recv(timeout=5)
        with open_ws(hmi.controller_url) as ws:  # a frame over the limit closes the connection
            until(ws, "welcome")
            with pytest.raises(ConnectionClosed) as closed:
                ws.send("x" * 100_000)
                while True:
                    ws.recv(timeout=5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        # the twin went on at its pace and another page was served all along
        until(watcher, "state")
        rate = (direct.get_state().time - s0) / (time.monotonic() - t0)
        # it kept stepping (its pace itself is for `twin bench`: this machine may be loaded)
        assert rate > 0.5, f"the twin ran at x{rate:.2f} instead of x2"
        assert direct.get_state().estopped is False


def test_a_client_that_never_reads_does_not_hold_up_the_others(setup) -> None:  # noqa: ANN001
    server, hmi = setup
    host, port = hmi.url.split("//")[1].rstrip("/").split(":")
    stalled = socket.create_connection((host, int(port)), timeout=5)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(
        f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )  # and never read a byte
    try:
        with open_ws(hmi.url) as ws:
            until(ws, "welcome")
            t0 = time.monotonic()
            states = 0
            while time.monotonic() - t0 < 3.0:
                states += until(ws, "state")["type"] == "state"
            # state telemetry is 10 Hz of simulated time at x2: about 20 per second
            assert states >= 15, states  # about 60, if the CPU allows
    finally:
        stalled.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_hmi_yields_the_cpu_to_the_twin(setup) -> None:  # noqa: ANN001
    server, hmi = setup
    with open_ws(hmi.url) as ws:
        until(ws, "state")  # every thread of the HMI started: its link, its web server
    niceness, policies = {}, {}
    for task in Path(f"/proc/{hmi.proc.pid}/task").iterdir():
        stat = (task / "stat").read_text()
        thread = stat[: stat.rfind(")") + 1]
        niceness[thread] = int(stat[stat.rfind(")") + 2 :].split()[16])
        policies[thread] = os.sched_getscheduler(int(task.name))
    # every thread below the twin's priority, none preempting it when it wakes up
    assert len(niceness) > 1 and set(niceness.values()) == {10}, niceness
    assert set(policies.values()) == {os.SCHED_BATCH}, policies
    twin = Path(f"/proc/{server.proc.pid}/stat").read_text()
    assert int(twin[twin.rfind(")") + 2 :].split()[16]) == 0  # the twin keeps its priority
    run = subprocess.run(
        [sys.executable, "-m", "twin.cli", "hmi", "--nice", "20"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2 and "--nice must be in [0, 19], got 20" in run.stderr


def test_foreign_origins_and_remote_addresses_are_refused(setup) -> None:  # noqa: ANN001
    _, hmi = setup
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(hmi.controller_url), origin="http://evil.example", open_timeout=5)
    assert refused.value.response.status_code == 403
    run = subprocess.run(
        [sys.executable, "-m", "twin.cli", "hmi", "--address", "0.0.0.0:0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2 and "not a loopback address" in run.stderr
    # who may control: the token, and from another machine only over TLS
    assert role_for("t0k", None, "127.0.0.1", tls=False)[0] == "observer"
    assert role_for("t0k", "wrong", "127.0.0.1", tls=False)[0] == "observer"
    assert role_for("t0k", "t0k", "127.0.0.1", tls=False)[0] == "controller"
    assert role_for("t0k", "t0k", "192.168.1.20", tls=False)[0] == "observer"
    assert role_for("t0k", "t0k", "192.168.1.20", tls=True)[0] == "controller"


def self_signed(tmp_path) -> tuple[str, str]:  # noqa: ANN001
    """A certificate and key for 127.0.0.1, made here (PEM files)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "twin hmi test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = tmp_path / "hmi.crt", tmp_path / "hmi.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)


def test_the_hmi_over_tls(setup, tmp_path) -> None:  # noqa: ANN001
    import ssl

    server, _ = setup
    cert, key = self_signed(tmp_path)
    with HmiProcess(server, "--tls", cert, key) as hmi:
        assert hmi.controller_url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=cert)
        with urllib.request.urlopen(hmi.url, timeout=5, context=context) as r:
            assert r.status == 200 and "/static/hmi.js" in r.read().decode()
        url = ws_url(hmi.controller_url).replace("https://", "wss://")
        with connect(url, ssl=context, open_timeout=5, max_size=None) as ws:
            assert until(ws, "welcome")["role"] == "controller"
            assert until(ws, "state")["step"] > 0


def test_a_lost_page_trips_the_twins_watchdog_and_a_closed_one_releases(setup) -> None:  # noqa: ANN001
    server, hmi = setup
    with Client(server.control, server.telemetry) as direct:
        with open_ws(hmi.controller_url) as ws:  # closed on purpose: control is given back
            until(ws, "welcome")
            ws.send(json.dumps({"op": "command", "ref": 1, "device": "infeed", "command": "run"}))
            assert until(ws, "reply", ref=1)["ok"] is True
            assert direct.hello().controlled is True
        deadline = time.monotonic() + 5
        while direct.hello().controlled and time.monotonic() < deadline:
            time.sleep(0.1)
        assert direct.hello().controlled is False
        direct.subscribe(("event",))
        with open_ws(hmi.controller_url) as ws:
            until(ws, "welcome")
            ws.send(json.dumps({"op": "command", "ref": 2, "device": "infeed", "command": "run"}))
            assert until(ws, "reply", ref=2)["ok"] is True
            ws.socket.shutdown(socket.SHUT_RDWR)  # the network is gone: no close frame
            ws.socket.close()
        t0 = time.monotonic()
        event = direct.wait_for_event("watchdog", timeout=15)
        assert event.data["timeout"] == 2.0 and time.monotonic() - t0 < 10
        assert not direct.get_state().signals["infeed"]["running"]  # the line went safe


def test_an_hmi_with_an_observer_key_serves_only_observers(tmp_path, serve) -> None:  # noqa: ANN001
    keys = tmp_path / "keys"
    made = subprocess.run(
        [sys.executable, "-m", "twin.cli", "keys", "generate", str(keys),
         "--controllers", "plc", "--observers", "hmi"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    secret, server_key = str(keys / "secrets" / "hmi.key_secret"), str(keys / "server.key")
    with serve("--mode", "realtime", "--curve", str(keys)) as server:
        with HmiProcess(server, "--curve", secret, server_key) as hmi, open_ws(hmi.controller_url) as ws:  # fmt: skip
            welcome = until(ws, "welcome")
            assert welcome["role"] == "observer" and "observer role" in welcome["why"]
            assert until(ws, "state")["step"] > 0  # it sees the line through the encrypted link
            ws.send(json.dumps({"op": "estop", "ref": 1}))
            assert until(ws, "reply", ref=1)["code"] == "forbidden"


def test_pages_get_the_lines_camera_images_while_they_look(serve) -> None:  # noqa: ANN001
    import base64
    import io

    from PIL import Image

    config = str(ROOT / "configs" / "camera_line.toml")
    with serve(config, "--mode", "realtime", "--rtf", "2") as server, HmiProcess(server) as hmi:
        with open_ws(hmi.url) as ws:
            welcome = until(ws, "welcome")
            cameras = {d["id"]: d for d in welcome["devices"] if d["kind"] == "camera"}
            assert set(cameras) == {"overhead", "wrist"}
            seen = {}
            deadline = time.monotonic() + 20
            while set(seen) != set(cameras) and time.monotonic() < deadline:
                msg = until(ws, "camera", timeout=10)
                seen[msg["camera"]] = msg
            for camera, msg in seen.items():
                head, _, data = msg["url"].partition(",")
                assert head == "data:image/jpeg;base64"
                image = Image.open(io.BytesIO(base64.b64decode(data)))
                assert image.size == (msg["width"], msg["height"])
                assert image.size == (cameras[camera]["camera"]["intrinsics"]["width"],
                                      cameras[camera]["camera"]["intrinsics"]["height"])  # fmt: skip


def test_a_page_gets_ten_states_a_second_and_a_packml_change_at_once() -> None:
    states = Newest(lambda: "state", STATE_HZ, CHANGE_HZ)
    assert states.wait(0.0) is None  # nothing new: nothing to send
    states.pending = True
    assert states.wait(0.0) == 0.0 and states.take(0.0) == "state"
    states.pending = True  # an ordinary state waits for the period (10 a second) ...
    assert states.wait(0.01) == pytest.approx(1 / STATE_HZ - 0.01)
    states.urgent = True  # ... one with a changed PackML state only for 1/20 s
    assert states.wait(0.01) == pytest.approx(1 / CHANGE_HZ - 0.01)
    assert states.wait(0.06) == 0.0 and states.take(0.06) == "state"
    assert not states.urgent and states.wait(0.06) is None
