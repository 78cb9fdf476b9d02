"""Recording and replay across real processes: `twin serve --record`, `twin run --record`,
`twin replay --verify/--publish` and `twin inspect`. Every subprocess and receive has a
timeout; every socket closes with linger 0."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq
from mcap.reader import NonSeekingReader, make_reader
from mcap.writer import Writer
from processes import ROOT

from twin.client import Client
from twin.protocol import messages as m
from twin.protocol.codec import decode_telemetry

pytestmark = pytest.mark.timeout(120)

TWIN = [sys.executable, "-m", "twin.cli"]
RECORD = [sys.executable, "-m", "twin.record.command"]  # replay / inspect, wired or not
STEPS = 2000  # 20 s: the external controller picks its first part well within it


def _twin(
    *args: str, timeout: float = 60.0, cmd: list[str] = RECORD
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*cmd, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def _requests(path: Path) -> list[dict]:
    with open(path, "rb") as f:
        return [
            json.loads(msg.data)
            for _, ch, msg in NonSeekingReader(f).iter_messages(log_time_order=False)
            if ch.topic == "request"
        ]


def _rewrite(src: Path, dst: Path, change) -> None:
    """Copy a recording message by message with the mcap reader and writer; change(topic,
    data) returns the (possibly altered) data of each message."""
    with open(src, "rb") as f, open(dst, "wb") as out:
        writer = Writer(out)
        writer.start()
        schemas: dict[int, int] = {}
        channels: dict[int, int] = {}
        for schema, ch, msg in NonSeekingReader(f).iter_messages(log_time_order=False):
            if ch.id not in channels:
                if schema.id not in schemas:
                    schemas[schema.id] = writer.register_schema(
                        schema.name, schema.encoding, schema.data
                    )
                channels[ch.id] = writer.register_channel(
                    ch.topic, ch.message_encoding, schemas[schema.id]
                )
            data = change(ch.topic, msg.data)
            writer.add_message(channels[ch.id], msg.log_time, data, msg.publish_time)
        writer.finish()


@pytest.fixture(scope="module")
def lockstep_recording(tmp_path_factory, serve_module) -> Path:
    """A lockstep session driven by examples/external_controller.py, stopped with SIGTERM."""
    path = tmp_path_factory.mktemp("rec") / "lockstep.mcap"
    args = ("--mode", "lockstep", "--no-builtin-controller", "--record", str(path))
    with serve_module(*args) as server:
        ctl = subprocess.run(
            [sys.executable, "examples/external_controller.py", "--control", server.control]
            + ["--steps", str(STEPS)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ctl.returncode == 0, ctl.stderr
        assert server.stop() == 0, server.stderr_text()
    return path


@pytest.fixture(scope="module")
def run_recording(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rec") / "run.mcap"
    done = _twin("run", "--duration", "20", "--quiet", "--record", str(path), cmd=TWIN)
    assert done.returncode == 0, done.stderr
    return path


def test_lockstep_recording_replays_bit_for_bit(lockstep_recording):
    done = _twin("replay", str(lockstep_recording), "--verify")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok:")
    assert f"up to step {STEPS}" in done.stdout
    kinds = [r["request"]["type"] for r in _requests(lockstep_recording)]
    assert kinds.count("step") == STEPS // 10 and "take_control" in kinds and "command" in kinds


def test_steps_carrying_commands_replay_bit_for_bit(tmp_path, serve):
    path = tmp_path / "batched.mcap"
    args = ("--mode", "lockstep", "--no-builtin-controller", "--record", str(path))
    with serve(*args) as server:
        with Client(server.control, timeout=10) as c:
            c.take_control()
            for k in range(40):
                commands = [("infeed", "set_speed", {"speed": 0.2 + 0.01 * k})]
                if k == 10:
                    commands.append(("mill", "start", {}))  # refused: Stopped
                if k == 20:
                    commands.append(("mill", "reset", {}))
                state = c.step(10, commands=commands)
                assert bool(state.refused) == (k == 10)
        assert server.stop() == 0, server.stderr_text()
    done = _twin("replay", str(path), "--verify")
    assert done.returncode == 0, done.stdout + done.stderr
    steps = [r["request"] for r in _requests(path) if r["request"]["type"] == "step"]
    assert len(steps) == 40 and all(len(s["commands"]) >= 1 for s in steps)


def test_recording_opens_in_mcap_reader_with_a_schema_per_channel(lockstep_recording):
    with open(lockstep_recording, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()  # footer and summary: the file was closed properly
        assert summary is not None
        topics = {ch.topic for ch in summary.channels.values()}
        assert topics == {"recording", "state", "event", "request"}
        for ch in summary.channels.values():
            assert ch.message_encoding == "json"
            schema = summary.schemas[ch.schema_id]
            assert schema.encoding == "jsonschema" and schema.data
            assert json.loads(schema.data)["type"] == "object"
        counts = summary.statistics.channel_message_counts
        by_topic = {summary.channels[c].topic: n for c, n in counts.items()}
        assert by_topic["state"] == STEPS // 10 and by_topic["recording"] == 1
        for _, _ch, msg in reader.iter_messages(topics=["state"]):
            state = json.loads(msg.data)  # plain JSON a viewer can plot
            assert state["type"] == "state" and "robot" in state["signals"]


def test_tampered_command_fails_verify_at_its_step(lockstep_recording, tmp_path):
    # a place, not a pick: a pick looks for the part around its point and finds the same part
    places = [r for r in _requests(lockstep_recording) if r["request"].get("command") == "place"]
    assert places, "the external controller never placed: lengthen STEPS"
    target = places[0]

    def nudge_place(topic: str, data: bytes) -> bytes:
        rec = json.loads(data)
        if topic == "request" and rec == target:
            rec["request"]["args"]["position"][0] += 0.02  # 2 cm off, still reachable
            return json.dumps(rec).encode()
        return data

    tampered = tmp_path / "tampered.mcap"
    _rewrite(lockstep_recording, tampered, nudge_place)
    done = _twin("replay", str(tampered), "--verify")
    assert done.returncode == 1, done.stdout + done.stderr
    step = int(re.search(r"step (\d+)", done.stdout).group(1))
    assert target["step"] < step <= STEPS  # the first state that differs, after the place
    assert "signals.robot" in done.stdout


def test_killed_server_leaves_a_readable_recording(tmp_path, serve):
    path = tmp_path / "killed.mcap"
    with serve("--mode", "fast", "--record", str(path)) as server:
        deadline = time.monotonic() + 30
        while path.stat().st_size < 40_000:  # a few chunks (about 2 simulated seconds each)
            assert time.monotonic() < deadline, "the recording does not grow"
            time.sleep(0.1)
        server.kill()  # SIGKILL: no footer
    done = _twin("inspect", str(path))
    assert done.returncode == 0, done.stderr
    assert "TRUNCATED" in done.stdout
    states = int(re.search(r"state: (\d+)", done.stdout).group(1))
    assert states >= 20
    verify = _twin("replay", str(path), "--verify")  # the readable part still replays
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"ok: {states} states" in verify.stdout


def test_run_record_and_inspect(run_recording):
    done = _twin("inspect", str(run_recording))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "from twin run" in out and "TRUNCATED" not in out
    assert "duration    20.00 s" in out and "state: 200" in out
    assert "parts_spawned" in out and "faults" in out
    verify = _twin("replay", str(run_recording), "--verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_publish_sends_recorded_telemetry(run_recording):
    proc = subprocess.Popen(
        [*RECORD, "replay", str(run_recording), "--publish", "--speed", "10"]
        + ["--telemetry", "tcp://127.0.0.1:*", "--wait", "1.0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVTIMEO, 5000)
    try:
        lines = [proc.stdout.readline() for _ in range(1)]
        while not lines[-1].startswith("telemetry") and lines[-1] and len(lines) < 5:
            lines.append(proc.stdout.readline())  # "telemetry ADDR (PUB, ...)" comes first
        assert lines[-1].startswith("telemetry"), "".join(lines)
        sub.connect(lines[-1].split()[1])
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        got: dict[str, int] = {}
        while not (got.get("state", 0) >= 5 and got.get("event")):
            topic, payload = sub.recv_multipart()
            msg = decode_telemetry(payload)  # MessagePack, as `twin serve` publishes it
            assert msg.version == m.PROTOCOL_VERSION and msg.time >= 0
            got[topic.decode()] = got.get(topic.decode(), 0) + 1
        assert proc.wait(30) == 0
    finally:
        sub.close(linger=0)
        ctx.term()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
