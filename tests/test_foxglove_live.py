"""Foxglove live: a Foxglove WebSocket client (raw, per the ws-protocol spec) subscribes to
the channels `twin serve --foxglove` advertises and decodes every message with the schema
that was advertised: JSON Schema for the twin's own messages, protobuf for the 3D scene."""

from __future__ import annotations

import base64
import json
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import jsonschema
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from hmi_helpers import wait_for_line
from processes import ROOT, ServeProcess
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from twin.client import Client
from twin.record.format import channel_schemas

SUBPROTOCOL = "foxglove.sdk.v1"


@pytest.fixture(scope="module")
def twin(serve_module) -> Iterator[tuple[ServeProcess, str]]:
    with serve_module("--mode", "realtime", "--rtf", "4", "--foxglove=127.0.0.1:0") as server:
        url = wait_for_line(server._lines, "foxglove ", "twin serve --foxglove").split()[1]
        yield server, url
        assert server.stop() == 0


@contextmanager
def open_client(url: str) -> Iterator[tuple[ClientConnection, dict[int, dict]]]:
    """Connect, read serverInfo and the advertised channels (by id)."""
    with connect(url, subprotocols=[SUBPROTOCOL], open_timeout=5, max_size=None) as ws:
        channels: dict[int, dict] = {}
        deadline = time.monotonic() + 10
        while len(channels) < 4 and time.monotonic() < deadline:
            msg = ws.recv(timeout=5)
            if isinstance(msg, str) and json.loads(msg)["op"] == "advertise":
                channels.update({c["id"]: c for c in json.loads(msg)["channels"]})
        yield ws, channels


def protobuf_class(channel: dict):  # noqa: ANN201
    files = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(channel["schema"])).file
    pool = descriptor_pool.DescriptorPool()
    pending = list(files)
    while pending:  # add each file after its dependencies
        f = pending.pop(0)
        try:
            pool.Add(f)
        except TypeError:
            pending.append(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(channel["schemaName"]))


def test_foxglove_client_decodes_every_live_channel_with_its_advertised_schema(twin) -> None:  # noqa: ANN001
    _, url = twin
    with open_client(url) as (ws, channels):
        by_topic = {c["topic"]: c for c in channels.values()}
        assert set(by_topic) == {"state", "event", "kpi", "scene"}
        recorded = channel_schemas()
        for topic in ("state", "event"):  # the same schemas as an MCAP recording
            c = by_topic[topic]
            assert (c["encoding"], c["schemaEncoding"]) == ("json", "jsonschema")
            assert (c["schemaName"], c["schema"].encode()) == recorded[topic]
        assert by_topic["scene"]["schemaName"] == "foxglove.SceneUpdate"
        ids = list(channels)
        ws.send(json.dumps({"op": "subscribe",
                            "subscriptions": [{"id": i, "channelId": cid} for i, cid in enumerate(ids)]}))  # fmt: skip
        validators = {
            t: jsonschema.Draft202012Validator(json.loads(by_topic[t]["schema"]))
            for t in ("state", "event", "kpi")
        }
        scene_class = protobuf_class(by_topic["scene"])
        got: dict[str, list] = {t: [] for t in by_topic}
        times: list[int] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(len(v) >= 3 for v in got.values()):
            msg = ws.recv(timeout=5)
            if not isinstance(msg, bytes):
                continue
            opcode, sub, log_ns = struct.unpack_from("<BIQ", msg)
            assert opcode == 1
            topic, payload = channels[ids[sub]]["topic"], msg[13:]
            if topic == "scene":
                got[topic].append(scene_class.FromString(payload))
            else:
                decoded = json.loads(payload)
                validators[topic].validate(decoded)
                got[topic].append(decoded)
                if topic == "state":
                    times.append(log_ns)
        assert all(len(v) >= 3 for v in got.values()), {t: len(v) for t, v in got.items()}
        states = got["state"]
        assert states[-1]["step"] > states[0]["step"] and "mill" in states[-1]["signals"]
        assert times == sorted(times) and times[-1] == round(states[-1]["time"] * 1e9)
        assert {e["type"] for e in got["event"]} == {"event"}
        assert "throughput_per_hour" in got["kpi"][-1]["kpis"]
        # the 3D scene: every device with geometry, stations as coloured cubes, the parts
        scene = got["scene"][-1]
        entities = {e.id: e for e in scene.entities}
        assert {"infeed", "outfeed", "mill", "robot", "parts"} <= set(entities)
        assert entities["mill"].frame_id == "world" and len(entities["mill"].cubes) == 1
        assert entities["mill"].texts[0].text.startswith("mill: ")
        assert len(entities["robot"].lines[0].points) == 3


def test_bad_foxglove_clients_are_dropped_and_the_twin_keeps_its_pace(twin) -> None:  # noqa: ANN001
    server, url = twin
    host, port = url.removeprefix("ws://").split(":")
    with Client(server.control, server.telemetry) as direct:
        t0, s0 = time.monotonic(), direct.get_state().time
        # garbage, a flood of subscriptions to channels that do not exist, binary junk
        with open_client(url) as (junk, _):
            try:  # the server may drop this client part way: that is a fine answer too
                junk.send("{not json")
                junk.send(b"\x02\xff\xff\xff\xff" * 100)
                for i in range(2000):
                    junk.send(json.dumps({"op": "subscribe", "subscriptions": [{"id": i, "channelId": 10_000 + i}]}))  # fmt: skip
            except ConnectionClosed:
                pass
        # a client that subscribes to everything and never reads
        with open_client(url) as (stalled, channels):
            stalled.send(json.dumps({"op": "subscribe",
                                     "subscriptions": [{"id": i, "channelId": c} for i, c in enumerate(channels)]}))  # fmt: skip
            raw = socket.create_connection((host, int(port)), timeout=5)  # one that never talks
            with open_client(url) as (ws, channels):
                state_id = next(c for c, ch in channels.items() if ch["topic"] == "state")
                ws.send(json.dumps({"op": "subscribe", "subscriptions": [{"id": 1, "channelId": state_id}]}))  # fmt: skip
                n, t1 = 0, time.monotonic()
                while time.monotonic() - t1 < 3.0:
                    n += isinstance(ws.recv(timeout=5), bytes)
                assert n >= 30, n  # 10 Hz of simulated time at x4: 120, if the CPU allows
            raw.close()
        rate = (direct.get_state().time - s0) / (time.monotonic() - t0)
        # it kept stepping (its pace itself is for `twin bench`: this machine may be loaded)
        assert rate > 1.0, f"the twin ran at x{rate:.2f} instead of x4"


def test_foxglove_live_refuses_a_remote_address_unless_asked() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "twin.cli", "foxglove", "--address", "0.0.0.0:0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2 and "not a loopback address" in run.stderr


def test_camera_channels_decode_as_in_a_recording(serve) -> None:  # noqa: ANN001
    config = str(ROOT / "configs" / "camera_line.toml")
    with serve(config, "--mode", "realtime", "--rtf", "2", "--foxglove=127.0.0.1:0") as server:
        url = wait_for_line(server._lines, "foxglove ", "twin serve --foxglove").split()[1]
        with open_client(url) as (ws, channels):
            by_topic = {c["topic"]: c for c in channels.values()}
            rgb, calibration, pose = (
                by_topic["camera/overhead/rgb"],
                by_topic["camera/overhead/calibration"],
                by_topic["camera/overhead/pose"],
            )
            assert (rgb["encoding"], rgb["schemaName"]) == ("protobuf", "foxglove.RawImage")
            assert calibration["schemaName"] == "foxglove.CameraCalibration"
            assert pose["schemaName"] == "foxglove.FrameTransform"
            assert "camera/overhead/depth" in by_topic and "camera/wrist/rgb" in by_topic
            wanted = [rgb, calibration, pose]
            ws.send(json.dumps({"op": "subscribe", "subscriptions": [
                {"id": i, "channelId": ch["id"]} for i, ch in enumerate(wanted)]}))  # fmt: skip
            classes = [protobuf_class(ch) for ch in wanted]
            got: dict[int, object] = {}
            deadline = time.monotonic() + 20
            while len(got) < 3 and time.monotonic() < deadline:
                msg = ws.recv(timeout=10)
                if isinstance(msg, bytes):
                    sub = struct.unpack_from("<BIQ", msg)[1]
                    got[sub] = classes[sub].FromString(msg[13:])
            image, calib, where = got[0], got[1], got[2]
            assert (image.width, image.height, image.encoding) == (320, 240, "rgb8")
            assert len(image.data) == 320 * 240 * 3 and image.frame_id == "overhead"
            assert calib.width == 320 and calib.K[0] > 0
            # the image's frame in the scene's: the camera where the config puts it
            assert (where.parent_frame_id, where.child_frame_id) == ("world", "overhead")
            t = where.translation
            assert [t.x, t.y, t.z] == pytest.approx([0.05, -0.45, 1.45])
