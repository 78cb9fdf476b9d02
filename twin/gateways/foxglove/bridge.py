"""Republish a running twin's telemetry on a Foxglove WebSocket server (foxglove-sdk).

Channels, each advertised with its schema (clients decode with what is advertised):

| topic | encoding | schema |
|---|---|---|
| `state` | json | `twin.State` (jsonschema), the same bytes as in an MCAP recording |
| `event` | json | `twin.EventMsg` (jsonschema), as in a recording |
| `kpi` | json | `twin.Kpis` (jsonschema), generated the same way |
| `scene` | protobuf | `foxglove.SceneUpdate`: the line in 3D, with every state |
| `camera/<id>/<modality>`, `camera/<id>/calibration` | protobuf | as in a recording (twin.record.images), where the line has cameras |

Log times are simulated nanoseconds that keep increasing across a twin `reset`, as in a
recording. The SDK's server runs in its own thread and drops what a slow client cannot take
(`message_backlog_size`), so neither a Foxglove client nor this bridge slows the twin down.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import foxglove
import msgspec
from foxglove import Channel, Context, Schema
from foxglove.channels import SceneUpdateChannel

from twin.gateways.foxglove.cameras import CameraChannels
from twin.gateways.foxglove.scene import SceneBuilder
from twin.gateways.hmi.security import check_bind, parse_address
from twin.gateways.link import TwinLink
from twin.protocol import messages as m
from twin.record.format import channel_schemas, struct_schema

DEFAULT_ADDRESS = "127.0.0.1:8765"
BACKLOG = 256  # messages queued per Foxglove client before the oldest are dropped
_json = msgspec.json.Encoder()


@dataclass
class FoxgloveOptions:
    address: str = DEFAULT_ADDRESS
    control: str = "tcp://127.0.0.1:5555"
    telemetry: str = "tcp://127.0.0.1:5556"
    allow_remote: bool = False
    curve: tuple[str, str] | None = None
    tls: tuple[str, str] | None = None  # (certificate, key) PEM files: wss


class SimClock:
    """Simulated time as log nanoseconds that keep increasing across a twin `reset` (which
    restarts the line's own time), as in a recording."""

    def __init__(self) -> None:
        self.offset = 0
        self.last = 0

    def restart(self) -> None:
        """The line was rebuilt: its time starts again from 0, ours goes on."""
        self.offset = self.last

    def log_ns(self, time_s: float) -> int:
        ns = round(time_s * 1e9) + self.offset
        if ns < self.last - 1_000_000_000:  # a reset whose event we did not see
            self.restart()
            ns = round(time_s * 1e9) + self.offset
        self.last = max(self.last, ns)
        return ns


class FoxgloveBridge:
    def __init__(self, opts: FoxgloveOptions) -> None:
        self.opts = opts
        self.host, self.port = parse_address(opts.address)
        check_bind(
            self.host, opts.allow_remote, "Foxglove live", "(anyone who reaches it sees the line)"
        )
        self.context = Context()
        self.clock = SimClock()
        self.link: TwinLink | None = None
        self.server: foxglove.websocket.WebSocketServer | None = None
        self.line = ""
        schemas = channel_schemas()
        self.channels = {
            topic: self._channel(topic, *schemas[topic]) for topic in ("state", "event")
        }
        self.channels["kpi"] = self._channel("kpi", *struct_schema(m.Kpis))
        self.scene_channel = SceneUpdateChannel("scene", context=self.context)
        self.scene: SceneBuilder | None = None
        self.cameras: CameraChannels | None = None

    def _channel(self, topic: str, name: str, schema: bytes) -> Channel:
        return Channel(
            topic,
            schema=Schema(name=name, encoding="jsonschema", data=schema),
            message_encoding="json",
            context=self.context,
        )

    async def start(self) -> None:
        link = TwinLink(self.opts.control, self.opts.telemetry, curve=self.opts.curve)
        self.link = link
        link.start()
        describe = await link.request(m.Describe())
        self.line = describe.line
        self.scene = SceneBuilder(describe.devices, describe.part_types, describe.network)
        self.cameras = CameraChannels(
            describe.devices, self.opts.telemetry, self.context, self.clock.log_ns, self.opts.curve
        )
        cert, key = (Path(f).read_bytes() for f in self.opts.tls) if self.opts.tls else (None, None)
        self.server = foxglove.start_server(
            name=f"twin {describe.line}",
            host=self.host,
            port=self.port,
            context=self.context,
            message_backlog_size=BACKLOG,
            tls_cert=cert,
            tls_key=key,
        )
        self.port = self.server.port
        link.on_state, link.on_event, link.on_kpis = self._state, self._event, self._kpis
        self.cameras.start()

    @property
    def url(self) -> str:
        scheme = "wss" if self.opts.tls else "ws"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def _state(self, state: m.State) -> None:
        ns = self.clock.log_ns(state.time)
        self.channels["state"].log(_json.encode(state), log_time=ns)
        if self.scene is not None and self.scene_channel.has_sinks():
            self.scene_channel.log(self.scene.update(state, ns), log_time=ns)

    def _event(self, event: m.EventMsg) -> None:
        if event.kind == "reset":
            self.clock.restart()
        self.channels["event"].log(_json.encode(event), log_time=self.clock.log_ns(event.time))

    def _kpis(self, kpis: m.Kpis) -> None:
        self.channels["kpi"].log(_json.encode(kpis), log_time=self.clock.log_ns(kpis.time))

    async def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.cameras is not None:
            await self.cameras.close()
        if self.link is not None:
            await self.link.close()
