"""Camera images for the HMI: the twin's `camera/<id>/rgb` telemetry, as JPEG data URLs.

The twin renders a camera only for a subscriber to its topic, so the feed subscribes while at
least one page is open and unsubscribes when the last one closes. Each camera's frames are
passed on at most MAX_FPS a second (a page shows the newest; older ones are dropped).
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import Callable

import zmq
import zmq.asyncio
from PIL import Image

from twin.gateways.link import cancel_and_wait
from twin.protocol import messages as m
from twin.protocol.codec import decode_telemetry

MAX_FPS = 4.0
JPEG_QUALITY = 80


def rgb_topic(camera: str) -> bytes:
    return f"camera/{camera}/rgb".encode()


def data_url(frame: m.CameraFrame) -> str:
    """The frame's image as a JPEG data URL a browser shows in an <img>."""
    if frame.encoding == "png":
        image = Image.open(io.BytesIO(frame.data)).convert("RGB")
    else:  # rgb8: H x W x 3 bytes, row-major
        image = Image.frombytes("RGB", (frame.width, frame.height), frame.data)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


class CameraFeed:
    def __init__(
        self,
        telemetry: str,
        cameras: list[str],
        on_frame: Callable[[m.CameraFrame, str], None],
        curve: tuple[str, str] | None = None,
    ) -> None:
        self.cameras = cameras
        self.on_frame = on_frame
        self._ctx = zmq.asyncio.Context()
        self._sub = self._ctx.socket(zmq.SUB)
        self._sub.setsockopt(zmq.LINGER, 0)
        self._sub.setsockopt(zmq.RCVHWM, 4 * max(1, len(cameras)))  # old frames are of no use
        if curve is not None:
            from twin.curve_keys import make_client_socket

            make_client_socket(self._sub, *curve)
        self._sub.connect(telemetry)
        self.watching = False
        self._sent: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, on: bool) -> None:
        """Subscribe (a page is open) or unsubscribe (none is): the twin renders accordingly."""
        if on == self.watching or not self.cameras:
            return
        self.watching = on
        for camera in self.cameras:
            self._sub.setsockopt(zmq.SUBSCRIBE if on else zmq.UNSUBSCRIBE, rgb_topic(camera))

    def start(self) -> None:
        if self.cameras:
            self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            _, payload = await self._sub.recv_multipart()
            try:
                frame = decode_telemetry(payload)
            except Exception:
                continue
            if not isinstance(frame, m.CameraFrame) or not self.watching:
                continue
            now = time.monotonic()
            if now - self._sent.get(frame.camera, 0.0) < 1.0 / MAX_FPS:
                continue
            self._sent[frame.camera] = now
            try:
                url = data_url(frame)
            except Exception:  # a frame we cannot read: skip it, keep the feed
                continue
            self.on_frame(frame, url)

    async def close(self) -> None:
        await cancel_and_wait([self._task])
        self._sub.close(linger=0)
        self._ctx.term()
