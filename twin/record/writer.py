"""Recorder: writes the telemetry and the accepted requests of a run to an MCAP file.

Messages are JSON (one reused msgspec encoder) on channels described by JSON Schemas, so
Foxglove opens the file and plots any signal. Chunks are small and the file is flushed about
every simulated second, so a process killed with SIGKILL leaves a file that the streaming
reader can read up to a recent point; `close` writes the footer and summary.

Log times are simulated nanoseconds that keep increasing across a `reset` (which restarts the
line's own clock); each message carries its own step and time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import msgspec
from mcap.writer import CompressionType, Writer

import twin
from twin.config import LineConfig
from twin.protocol import messages as m
from twin.protocol.codec import plain_values
from twin.record import images
from twin.record.format import (
    MESSAGE_ENCODING,
    RECORDED_REQUESTS,
    SCHEMA_ENCODING,
    TOPIC_EVENT,
    TOPIC_RECORDING,
    TOPIC_REQUEST,
    TOPIC_STATE,
    RecordedRequest,
    RecordingInfo,
    WatchdogTrip,
    channel_schemas,
)

CHUNK_BYTES = 16 * 1024  # about one simulated second of state at 10 Hz for the default line
FLUSH_EVERY_NS = 1_000_000_000  # push written chunks to the OS every simulated second
_WIRE_TOPICS = {m.TOPIC_STATE: TOPIC_STATE, m.TOPIC_EVENT: TOPIC_EVENT}


json_encoder = msgspec.json.Encoder(enc_hook=plain_values)


def recording_info(
    cfg: LineConfig,
    *,
    source: str,
    seed: int,
    builtin_controller: bool,
    mode: str,
    builtin_fleet: bool = True,
    timestep: float,
    state_rate: float,
    state_every: int,
) -> RecordingInfo:
    """The `recording` message for a line built from `cfg` (reads the config file's text)."""
    return RecordingInfo(
        source=source,
        twin_version=twin.__version__,
        config_path=cfg.source_path,
        config_toml=_config_text(cfg),
        seed=seed,
        builtin_controller=builtin_controller,
        builtin_fleet=builtin_fleet,
        mode=mode,
        timestep=timestep,
        state_rate=state_rate,
        state_every=state_every,
    )


class Recorder:
    def __init__(self, path: str | Path, info: RecordingInfo) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._writer = Writer(self._file, chunk_size=CHUNK_BYTES, compression=CompressionType.LZ4)
        self._writer.start(profile="", library=f"twin {twin.__version__}")
        self._channels: dict[str, int] = {}
        for topic, (name, schema) in channel_schemas().items():
            schema_id = self._writer.register_schema(name, SCHEMA_ENCODING, schema)
            self._channels[topic] = self._writer.register_channel(
                topic, MESSAGE_ENCODING, schema_id
            )
        self._schemas: dict[str, int] = {}  # protobuf schemas of camera channels, by name
        self._calibrated: dict[str, int] = {}  # camera -> log time of its last calibration, pose
        self._base_ns = 0  # log time of the current line's t = 0 (moves on at each reset)
        self._last_step = 0
        self._last_ns = 0  # last telemetry time on the current line (its own clock)
        self._now_ns = 0  # latest log time written
        self._flushed_ns = 0
        self.closed = False
        self._add(TOPIC_RECORDING, 0, json_encoder.encode(info))
        self._file.flush()

    # feeding -----------------------------------------------------------------------------
    def telemetry(self, topic: bytes, msg: m.State | m.EventMsg | m.Kpis | m.CameraFrame) -> None:
        """A telemetry message as published (topic as on the wire). States, events and camera
        frames (Foxglove images, see twin.record.images) are recorded; KPIs are not (a replay
        computes them again from the events)."""
        channel = _WIRE_TOPICS.get(topic)
        if channel is None and not isinstance(msg, m.CameraFrame):
            return
        t_ns = round(msg.time * 1e9)
        if msg.step < self._last_step:  # the line was reset: its clock restarted
            self._base_ns += self._last_ns
        self._last_step, self._last_ns = msg.step, t_ns
        if isinstance(msg, m.CameraFrame):
            self._camera_frame(msg, self._base_ns + t_ns)
        elif channel is not None:
            self._add(channel, self._base_ns + t_ns, json_encoder.encode(msg))

    def _camera_frame(self, frame: m.CameraFrame, log_ns: int) -> None:
        """A frame on its Foxglove image channel, with the camera's calibration and pose once
        per instant (channels are added as their first frame comes)."""
        if self._calibrated.get(frame.camera) != log_ns:
            self._calibrated[frame.camera] = log_ns
            calibration = images.calibration_channel(frame.camera)
            self._protobuf_channel(calibration, images.calibration_schema())
            self._add(calibration, log_ns, images.calibration_message(frame, log_ns))
            pose = images.pose_channel(frame.camera)
            self._protobuf_channel(pose, images.pose_schema())
            self._add(pose, log_ns, images.pose_message(frame, log_ns))
        channel = images.image_channel(frame)
        self._protobuf_channel(channel, images.image_schema(frame))
        self._add(channel, log_ns, images.image_message(frame, log_ns))

    def _protobuf_channel(self, topic: str, schema: tuple[str, bytes]) -> None:
        if topic not in self._channels:
            schema_id = self._schemas.get(schema[0])
            if schema_id is None:
                schema_id = self._writer.register_schema(schema[0], "protobuf", schema[1])
                self._schemas[schema[0]] = schema_id
            self._channels[topic] = self._writer.register_channel(topic, "protobuf", schema_id)

    def request(self, client: bytes, request: Any, step: int, time: float) -> None:
        """An accepted request, applied at `step`; ignored unless it changes the line."""
        if isinstance(request, RECORDED_REQUESTS):
            recorded = RecordedRequest(
                step=step, time=time, client=client.hex(), request=cast(Any, request)
            )
            self._request(recorded)

    def watchdog(
        self, client: bytes, timeout: float, silent_for: float, step: int, time: float
    ) -> None:
        trip = WatchdogTrip(client=client.hex(), timeout=timeout, silent_for=silent_for)
        self._request(RecordedRequest(step=step, time=time, client="", request=trip))

    def _request(self, rec: RecordedRequest) -> None:
        # a reset's own time is on the old clock; everything else is at its step or later
        log = self._now_ns
        if not isinstance(rec.request, m.Reset):
            log = max(log, self._base_ns + round(rec.time * 1e9))
        self._add(TOPIC_REQUEST, log, json_encoder.encode(rec))

    def _add(self, topic: str, log_ns: int, data: bytes) -> None:
        if self.closed:
            return
        self._now_ns = max(self._now_ns, log_ns)
        self._writer.add_message(self._channels[topic], log_ns, data, log_ns)
        if self._now_ns - self._flushed_ns >= FLUSH_EVERY_NS:
            self._file.flush()
            self._flushed_ns = self._now_ns

    # ending ------------------------------------------------------------------------------
    def close(self) -> None:
        """Write the footer and close the file (idempotent)."""
        if self.closed:
            return
        self.closed = True
        try:
            self._writer.finish()
        finally:
            self._file.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _config_text(cfg: LineConfig) -> str:
    """The config file's text; a factory expanded into its one line config, so that the
    recording replays without the factory's cell templates."""
    if cfg.factory is None:
        return Path(cfg.source_path).read_text()
    from twin.factory.layout import expanded_toml

    return expanded_toml(cfg)
