"""Which camera frames are wanted and when they are due: a camera nobody wants never renders.

`CameraDemand` holds what is wanted: the telemetry topics subscribed to (prefixes, as ZeroMQ
matches them) and whether a recorder takes every frame. It outlives a line's rebuild.
`CameraFeed` turns the demand into frames at each camera's rate, on the step grid: a camera
at `rate` Hz has a frame due every round(1 / (rate * dt)) steps, so frames depend on simulated
time only.
"""

from __future__ import annotations

from twin.devices.camera import Camera
from twin.line import Line
from twin.protocol.messages import CameraFrame
from twin.vision.frames import camera_topic, frame_messages

NEVER = 1 << 62  # steps until a frame is due when none is wanted


class CameraDemand:
    def __init__(self) -> None:
        self.prefixes: set[bytes] = set()  # telemetry subscriptions
        self.record_all = False  # a recorder takes every camera's every modality
        self.version = 0  # bumped on every change, so feeds recompute

    def subscribe(self, prefix: bytes) -> None:
        if prefix.startswith(b"camera") or b"camera".startswith(prefix):  # others never match
            self.prefixes.add(prefix)
            self.version += 1

    def unsubscribe(self, prefix: bytes) -> None:
        self.prefixes.discard(prefix)
        self.version += 1

    def record(self) -> None:
        self.record_all = True
        self.version += 1

    def wants(self, topic: bytes) -> bool:
        return self.record_all or any(topic.startswith(p) for p in self.prefixes)


class CameraFeed:
    def __init__(self, line: Line, demand: CameraDemand) -> None:
        self.line = line
        self.demand = demand
        self.cameras = [d for d in line.devices.values() if isinstance(d, Camera)]
        self._version = -1
        self._wanted: list[tuple[Camera, tuple[str, ...]]] = []

    def wanted(self) -> list[tuple[Camera, tuple[str, ...]]]:
        """The cameras somebody wants, each with the modalities wanted."""
        if self._version != self.demand.version:
            self._version = self.demand.version
            self._wanted = []
            for cam in self.cameras:
                mods = tuple(
                    m for m in cam.modalities if self.demand.wants(camera_topic(cam.id, m))
                )
                if mods:
                    self._wanted.append((cam, mods))
        return self._wanted

    def steps_to_due(self) -> int:
        """Steps from now until the next wanted frame is due (NEVER with none wanted)."""
        wanted = self.wanted()
        if not wanted:
            return NEVER
        step = self.line.step_index
        return min(cam.every - step % cam.every for cam, _ in wanted)

    def due(self) -> list[tuple[bytes, CameraFrame]]:
        """The frames due at the line's step now: rendered, one message per modality."""
        wanted = self.wanted()
        if not wanted:
            return []
        line = self.line
        step, time = line.step_index, line.sim_time
        out = []
        for cam, mods in wanted:
            if step % cam.every == 0:
                for msg in frame_messages(cam, step, time, mods):
                    out.append((camera_topic(cam.id, msg.modality), msg))
        return out


def recording_feed(line: Line) -> CameraFeed:
    """A feed of every camera's every frame, as a recording takes them."""
    demand = CameraDemand()
    demand.record()
    return CameraFeed(line, demand)
