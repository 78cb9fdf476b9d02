"""Camera channels on Foxglove live, as in a recording (twin.record.images): for each camera
modality `camera/<id>/<modality>` (foxglove.RawImage, or CompressedImage for PNG),
`camera/<id>/calibration` (foxglove.CameraCalibration) and `camera/<id>/pose`
(foxglove.FrameTransform from `world`, the scene's frame).

The twin renders a camera only for a subscriber to its topic, so the bridge subscribes to a
camera's topics only while a Foxglove client subscribes to one of its channels.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio
from foxglove import Channel, Context, Schema
from foxglove.messages import CompressedImage, RawImage

from twin.gateways.link import cancel_and_wait
from twin.protocol import messages as m
from twin.protocol.codec import decode_telemetry
from twin.record import images

WATCH_EVERY_S = 0.5  # how often Foxglove subscriptions are looked at


def _protobuf(topic: str, name: str, data: bytes, context: Context) -> Channel:
    return Channel(
        topic,
        schema=Schema(name=name, encoding="protobuf", data=data),
        message_encoding="protobuf",
        context=context,
    )


class CameraChannels:
    def __init__(
        self,
        devices: list[dict[str, Any]],
        telemetry: str,
        context: Context,
        log_ns: Callable[[float], int],
        curve: tuple[str, str] | None = None,
    ) -> None:
        self.log_ns = log_ns
        self.images: dict[str, Channel] = {}  # topic -> channel
        self.calibrations: dict[str, Channel] = {}  # camera -> channel
        self.poses: dict[str, Channel] = {}  # camera -> channel
        for dev in devices:
            info = dev.get("camera") if dev.get("kind") == "camera" else None
            if not info:
                continue
            camera = dev["id"]
            name, data = images.calibration_schema()
            self.calibrations[camera] = _protobuf(images.calibration_channel(camera), name, data, context)  # fmt: skip
            name, data = images.pose_schema()
            self.poses[camera] = _protobuf(images.pose_channel(camera), name, data, context)
            for modality in info.get("modalities", []):
                png = modality == "rgb" and info.get("encoding") == "png"
                schema = (CompressedImage if png else RawImage).get_schema()
                topic = f"camera/{camera}/{modality}"
                self.images[topic] = _protobuf(topic, schema.name, schema.data, context)
        self._ctx = zmq.asyncio.Context()
        self._sub = self._ctx.socket(zmq.SUB)
        self._sub.setsockopt(zmq.LINGER, 0)
        self._sub.setsockopt(zmq.RCVHWM, 8)  # old frames are of no use
        if curve is not None:
            from twin.curve_keys import make_client_socket

            make_client_socket(self._sub, *curve)
        self._sub.connect(telemetry)
        self._subscribed: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        if self.images:
            self._tasks = [asyncio.create_task(self._watch()), asyncio.create_task(self._read())]

    async def _watch(self) -> None:
        while True:
            for topic, channel in self.images.items():
                camera = topic.split("/")[1]
                wanted = (
                    channel.has_sinks()
                    or self.calibrations[camera].has_sinks()
                    or self.poses[camera].has_sinks()
                )
                if wanted != (topic in self._subscribed):
                    option = zmq.SUBSCRIBE if wanted else zmq.UNSUBSCRIBE
                    self._sub.setsockopt(option, topic.encode())
                    (self._subscribed.add if wanted else self._subscribed.discard)(topic)
            await asyncio.sleep(WATCH_EVERY_S)

    async def _read(self) -> None:
        while True:
            _, payload = await self._sub.recv_multipart()
            try:
                frame = decode_telemetry(payload)
            except Exception:
                continue
            if not isinstance(frame, m.CameraFrame):
                continue
            channel = self.images.get(images.image_channel(frame))
            if channel is None:
                continue
            ns = self.log_ns(frame.time)
            channel.log(images.image_message(frame, ns), log_time=ns)
            calibration = self.calibrations[frame.camera]
            if calibration.has_sinks():
                calibration.log(images.calibration_message(frame, ns), log_time=ns)
            pose = self.poses[frame.camera]
            if pose.has_sinks():
                pose.log(images.pose_message(frame, ns), log_time=ns)

    async def close(self) -> None:
        await cancel_and_wait(self._tasks)
        self._sub.close(linger=0)
        self._ctx.term()
