"""Replaying a recording: verify it (rebuild and re-drive the line, compare every state) or
publish its telemetry again on a PUB socket.

Verify rebuilds the line from the recorded config text and seed, with the same host and
dispatcher code as `twin serve` (or the same stepping as `twin run`), re-applies each recorded
request when the line reaches the step it was applied at, and compares every state the
replay publishes with the recorded one, byte for byte (so floats bit for bit).
"""

from __future__ import annotations

import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import msgspec
import zmq

from twin.config import loads
from twin.protocol import messages as m
from twin.protocol.codec import decode_reply, encode
from twin.record import images
from twin.record.format import TOPIC_EVENT, TOPIC_REQUEST, TOPIC_STATE, RecordingInfo, WatchdogTrip
from twin.record.reader import RecordingReader, decode_request, decode_state
from twin.record.writer import json_encoder


class Diverged(Exception):
    """The replay left the recorded trajectory; the message names the step and signal."""


@dataclass
class VerifyResult:
    ok: bool
    states: int  # recorded states compared
    requests: int  # recorded requests re-applied
    last_step: int
    truncated: bool
    problem: str = ""
    frames: int = 0  # recorded camera images compared

    def line(self) -> str:
        tail = (
            " (recording truncated: checked up to its last complete chunk)"
            if self.truncated
            else ""
        )
        if self.ok:
            frames = f", {self.frames} camera images identical" if self.frames else ""
            return (
                f"ok: {self.states} states identical up to step {self.last_step}{frames}, "
                f"{self.requests} requests re-applied{tail}"
            )
        return f"DIFFERS: {self.problem}{tail}"


def first_difference(recorded: Any, replayed: Any, path: str = "") -> str | None:
    """Where two decoded messages first differ, as 'path: recorded X, replayed Y'."""
    if isinstance(recorded, dict) and isinstance(replayed, dict):
        for key in [*recorded, *(k for k in replayed if k not in recorded)]:
            if key not in recorded or key not in replayed:
                return f"{path}{key}: only in the {'replay' if key in replayed else 'recording'}"
            found = first_difference(recorded[key], replayed[key], f"{path}{key}.")
            if found:
                return found
        return None
    if isinstance(recorded, list) and isinstance(replayed, list):
        if len(recorded) != len(replayed):
            return f"{path.rstrip('.')}: recorded {len(recorded)} items, replayed {len(replayed)}"
        for i, (a, b) in enumerate(zip(recorded, replayed)):
            found = first_difference(a, b, f"{path.rstrip('.')}[{i}].")
            if found:
                return found
        return None
    if type(recorded) is not type(replayed) or recorded != replayed:
        return f"{path.rstrip('.')}: recorded {recorded!r}, replayed {replayed!r}"
    return None


class _Checker:
    """Compares each state the replay publishes with the next recorded one.

    It is called from inside the host (even inside the dispatcher, which turns exceptions
    into error replies), so it notes the first difference instead of raising; `check` raises.
    """

    def __init__(self) -> None:
        self.expected: deque[bytes] = deque()
        # camera images: recorded (channel, log time, bytes) and replayed frames, matched in
        # order as both arrive (a frame is replayed before the file is read up to it)
        self.expected_frames: deque[tuple[str, int, bytes]] = deque()
        self.replayed_frames: deque[m.CameraFrame] = deque()
        # recorded camera poses, (log time, bytes) by camera: each comes before its instant's
        # images, and is dropped once an image of a later instant is matched
        self.expected_poses: dict[str, deque[tuple[int, bytes]]] = {}
        self.frames = 0
        self.compared = 0
        self.last_step = 0
        self.problem = ""

    def expect_pose(self, camera: str, log_ns: int, data: bytes) -> None:
        self.expected_poses.setdefault(camera, deque()).append((log_ns, data))

    def expect_frame(self, channel: str, log_ns: int, data: bytes) -> None:
        self.expected_frames.append((channel, log_ns, data))
        self._match_frames()

    def _match_frames(self) -> None:
        while self.expected_frames and self.replayed_frames and not self.problem:
            channel, log_ns, recorded = self.expected_frames.popleft()
            frame = self.replayed_frames.popleft()
            where = f"step {frame.step}: camera '{frame.camera}' {frame.modality}"
            if images.image_channel(frame) != channel:
                self.problem = f"{where}: replayed where the recording has {channel}"
            elif images.image_message(frame, log_ns) != recorded:
                self.problem = f"{where}: the image differs from the recorded one"
            elif self._pose_differs(frame, log_ns):
                self.problem = f"{where}: the camera's pose differs from the recorded one"
            else:
                self.frames += 1

    def _pose_differs(self, frame: m.CameraFrame, log_ns: int) -> bool:
        """Whether the instant's recorded pose is not the replayed frame's (a recording made
        before poses were recorded has none: nothing to compare)."""
        poses = self.expected_poses.get(frame.camera)
        while poses and poses[0][0] < log_ns:
            poses.popleft()
        if not poses or poses[0][0] != log_ns:
            return False
        return images.pose_message(frame, log_ns) != poses[0][1]

    def unmatched_frames(self) -> str:
        """What is left unmatched once the replay has reached the recording's end."""
        if self.replayed_frames:
            frame = self.replayed_frames[0]
            return f"step {frame.step}: the replay rendered a camera image the recording lacks"
        return ""

    def tap(self, topic: bytes, msg: Any) -> None:
        if isinstance(msg, m.CameraFrame):
            self.replayed_frames.append(msg)
            self._match_frames()
            return
        if topic != m.TOPIC_STATE or self.problem:
            return
        if not self.expected:
            self.problem = f"step {msg.step}: the replay published a state the recording lacks"
            return
        recorded = self.expected.popleft()
        replayed = json_encoder.encode(msg)
        if replayed != recorded:
            where = first_difference(msgspec.json.decode(recorded), msgspec.json.decode(replayed))
            self.problem = f"step {msg.step} (t = {msg.time:.3f} s): {where}"
            return
        self.compared += 1
        self.last_step = msg.step

    def check(self) -> None:
        if self.problem:
            raise Diverged(self.problem)


class _ServeReplay:
    """The line behind the same host and dispatcher as `twin serve`, without sockets."""

    def __init__(self, info: RecordingInfo, tap: Callable[[bytes, Any], None]) -> None:
        from twin.server import ControlLock, Dispatcher, LineHost

        cfg = loads(info.config_toml, info.config_path)
        self.host = LineHost(
            cfg,
            mode=info.mode,
            seed=info.seed,
            builtin_controller=info.builtin_controller,
            builtin_fleet=info.builtin_fleet,
            state_rate=info.state_rate,
            publish=lambda topic, payload: None,
        )
        self.host.sinks.append(tap)
        self.host.camera_demand.record()  # a recording holds every camera's every frame
        self.lock = ControlLock()
        self.dispatcher = Dispatcher(self.host, self.lock)

    @property
    def step_index(self) -> int:
        return self.host.line.step_index

    def advance(self, n: int) -> None:
        self.host.advance(n)

    def apply(self, client: str, request: Any) -> None:
        if isinstance(request, WatchdogTrip):
            self.lock.release()
            self.host.watchdog_trip(request.client, request.timeout, request.silent_for)
            return
        sender = bytes.fromhex(client)
        if isinstance(request, m.TakeControl) and self.lock.holder not in (None, sender):
            self.lock.release()  # it was accepted: the holder before had lost its lease
        # recordings hold no lease (a secret): requests go with the replay's own
        request = msgspec.structs.replace(request, lease=self.lock.lease)
        reply = decode_reply(self.dispatcher.handle(sender, encode(request), 0.0))
        if isinstance(reply, m.Error):
            raise Diverged(
                f"step {self.step_index}: recorded '{m.request_tag(type(request))}' refused "
                f"on replay: {reply.code}: {reply.message}"
            )

    def close(self) -> None:
        self.host.close()


class _RunReplay:
    """The line stepped as `twin run` steps it."""

    def __init__(self, info: RecordingInfo, tap: Callable[[bytes, Any], None]) -> None:
        from twin.automation import build_line
        from twin.telemetry import TelemetryStepper, state_message
        from twin.vision.feed import recording_feed

        cfg = loads(info.config_toml, info.config_path)
        automated = build_line(
            cfg,
            seed=info.seed,
            builtin_controller=info.builtin_controller,
            builtin_fleet=info.builtin_fleet,
        )
        self.line = automated.line
        line, mode = self.line, info.mode
        self.stepper = TelemetryStepper(
            automated,
            state_rate=info.state_rate,
            state=lambda: state_message(line, mode),
            sinks=[tap],
            cameras=recording_feed(line),
        )
        if self.stepper.state_every != info.state_every:
            raise Diverged(
                f"recorded every {info.state_every} steps, replayed every "
                f"{self.stepper.state_every}: not the same state rate"
            )

    @property
    def step_index(self) -> int:
        return self.line.step_index

    def advance(self, n: int) -> None:
        self.stepper.advance(n)

    def apply(self, client: str, request: Any) -> None:
        raise Diverged(f"a `twin run` recording holds a request ({request!r})")

    def close(self) -> None:
        self.line.close()


def verify(path: str | Path) -> VerifyResult:
    """Replay `path` and compare; never raises for a divergence (see VerifyResult.problem)."""
    reader = RecordingReader(path)
    info = reader.info()
    checker = _Checker()
    replay = (_RunReplay if info.source == "run" else _ServeReplay)(info, checker.tap)
    eager = info.source == "run"  # no requests: step to each state as it is read
    requests = 0

    def advance_to(step: int) -> None:
        if step < replay.step_index:
            raise Diverged(f"step {step}: recorded before the replay's step {replay.step_index}")
        if step > replay.step_index:
            replay.advance(step - replay.step_index)

    try:
        for rec in reader.messages():
            if rec.topic == TOPIC_STATE:
                checker.expected.append(rec.data)
                if eager:
                    advance_to(decode_state(rec.data).step)
                    checker.check()
            elif rec.topic.startswith("camera/") and rec.topic.endswith("/pose"):
                checker.expect_pose(rec.topic.split("/")[1], rec.log_time, rec.data)
            elif rec.topic.startswith("camera/") and not rec.topic.endswith("/calibration"):
                checker.expect_frame(rec.topic, rec.log_time, rec.data)
                checker.check()
            elif rec.topic == TOPIC_REQUEST:
                req = decode_request(rec.data)
                advance_to(req.step)
                checker.check()
                try:
                    replay.apply(req.client, req.request)
                finally:
                    checker.check()  # a difference found while applying comes first
                requests += 1
        while checker.expected:  # states after the last request: the line ran on by itself
            advance_to(decode_state(checker.expected[0]).step)
            checker.check()
        # recorded images after the last state are left unchecked (the replay stops there)
        problem = "" if reader.truncated else checker.unmatched_frames()
    except Diverged as e:
        problem = str(e)
    finally:
        replay.close()
    return VerifyResult(
        ok=not problem,
        states=checker.compared,
        requests=requests,
        last_step=checker.last_step,
        truncated=reader.truncated,
        problem=problem,
        frames=checker.frames,
    )


def publish(
    path: str | Path,
    *,
    telemetry: str,
    speed: float = 1.0,
    allow_remote: bool = False,
    wait_s: float = 0.5,
    out: TextIO = sys.stdout,
) -> int:
    """Publish the recorded telemetry on a PUB socket, paced by recorded time / speed.

    Same topics and framing as `twin serve`: [b"state" | b"event", MessagePack payload].
    Returns the number of messages sent.
    """
    from twin.server import TELEMETRY_HWM, check_bind

    check_bind(telemetry, allow_remote)
    reader = RecordingReader(path)
    reader.info()  # fail early on a file that is not a recording
    to_wire = msgspec.json.Decoder(m.Telemetry).decode
    topics = {TOPIC_STATE: m.TOPIC_STATE, TOPIC_EVENT: m.TOPIC_EVENT}
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    sent = 0
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        pub.setsockopt(zmq.LINGER, 0)
        pub.setsockopt(zmq.SNDHWM, TELEMETRY_HWM)
        pub.bind(telemetry)
        print(
            f"telemetry {pub.getsockopt_string(zmq.LAST_ENDPOINT)} (PUB, topics: state, event)",
            file=out,
            flush=True,
        )
        time.sleep(wait_s)  # give subscribers a moment to connect (PUB/SUB slow joiner)
        start_wall, start_log = time.monotonic(), None
        for rec in reader.messages():
            topic = topics.get(rec.topic)
            if topic is None:
                continue
            if start_log is None:
                start_log = rec.log_time
            delay = start_wall + (rec.log_time - start_log) / 1e9 / speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                pub.send_multipart([topic, encode(to_wire(rec.data))], flags=zmq.NOBLOCK)
                sent += 1
            except zmq.Again:
                pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        pub.close(linger=0)
        ctx.term()
    return sent
