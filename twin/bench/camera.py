"""camera: a 320x240 RGB + depth + segmentation camera (configs/camera_line.toml's overhead).

- `camera`: frames per second of ours (render, encode as `camera` messages, publish on a
  PUB socket) against bare `getCameraImage` of the same view in the same world, alternated;
- `camera_free_run`: the fast loop of the camera line with the camera subscribed at its
  5 Hz against the same line with nobody subscribed (its camera never renders);
- `dataset`: `twin dataset` frames per second with 2 workers against 1 worker.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pybullet
import zmq

from twin.bench.hosted import open_server, served_rate
from twin.bench.result import BenchResult, interleave, median
from twin.config import load
from twin.devices.camera import Camera
from twin.line import Line
from twin.protocol.codec import encode
from twin.serve_process import ROOT
from twin.vision.dataset import DatasetSpec, generate
from twin.vision.frames import camera_topic, frame_messages

CAMERA_CONFIG = str(ROOT / "configs" / "camera_line.toml")
CAMERA = "overhead"
TARGET = 0.9


def _ours_fps(line: Line, pub: zmq.Socket, frames: int) -> float:
    cam = line.devices[CAMERA]
    assert isinstance(cam, Camera)
    t0 = time.perf_counter()
    for _ in range(frames):
        for msg in frame_messages(cam, line.step_index, line.sim_time, cam.modalities):
            pub.send_multipart([camera_topic(CAMERA, msg.modality), encode(msg)])
    return frames / (time.perf_counter() - t0)


def _bare_fps(line: Line, frames: int) -> float:
    cam = line.devices[CAMERA]
    c = line.world.client
    cfg = cam.cfg
    view = c.computeViewMatrix(cfg.position, cfg.look_at, [0, 1, 0])  # type: ignore[attr-defined]
    projection = c.computeProjectionMatrixFOV(cfg.fov, cfg.width / cfg.height, cfg.near, cfg.far)  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    for _ in range(frames):
        c.getCameraImage(
            cfg.width,  # type: ignore[attr-defined]
            cfg.height,  # type: ignore[attr-defined]
            viewMatrix=view,
            projectionMatrix=projection,
            renderer=pybullet.ER_TINY_RENDERER,
        )
    return frames / (time.perf_counter() - t0)


def camera_rate(quick: bool) -> BenchResult:
    frames, reps = (2, 3) if quick else (5, 10)
    line = Line(load(CAMERA_CONFIG))
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind("tcp://127.0.0.1:*")
    try:
        line.step(300)  # a part in view
        ours, bare = interleave(
            [lambda: _ours_fps(line, pub, frames), lambda: _bare_fps(line, frames)], reps
        )
    finally:
        pub.close(linger=0)
        ctx.term()
        line.close()
    return BenchResult(
        name="camera",
        ours=median(ours),
        baseline=median(bare),
        unit="frames/s",
        target=TARGET,
        details={"resolution": "320x240", "modalities": 3, "frames_per_block": frames},
    )


def camera_free_run(quick: bool) -> BenchResult:
    block, reps = (100, 3) if quick else (200, 10)
    cfg = load(CAMERA_CONFIG)
    plain = open_server(cfg)
    watched = open_server(cfg)
    watched.host.camera_demand.subscribe(f"camera/{CAMERA}/".encode())
    try:
        ours, baseline = interleave(
            [lambda: served_rate(watched, block), lambda: served_rate(plain, block)], reps
        )
        frames = watched.host.line.devices[CAMERA].frames  # type: ignore[attr-defined]
        unwatched = plain.host.line.devices[CAMERA].frames  # type: ignore[attr-defined]
    finally:
        plain.close()
        watched.close()
    return BenchResult(
        name="camera_free_run",
        ours=median(ours),
        baseline=median(baseline),
        unit="steps/s",
        details={
            "camera_rate_hz": cfg.device(CAMERA).rate,  # type: ignore[union-attr]
            "frames_rendered": frames,
            "frames_rendered_unwatched": unwatched,
        },
    )


def dataset_rate(quick: bool) -> BenchResult:
    frames = 16 if quick else 64
    rates = {}
    with tempfile.TemporaryDirectory(prefix="twin-bench-") as tmp:
        for workers in (1, 2):
            spec = DatasetSpec(
                config=CAMERA_CONFIG, out=str(Path(tmp) / str(workers)), frames=frames
            )
            t0 = time.perf_counter()
            generate(spec, workers=workers, progress=False)
            rates[workers] = frames / (time.perf_counter() - t0)
    return BenchResult(
        name="dataset",
        ours=rates[2],
        baseline=rates[1],
        unit="frames/s",
        details={"frames": frames, "resolution": "320x240", "per_worker_frames_per_s": rates[1]},
    )


def camera(config: str, *, quick: bool) -> list[BenchResult]:
    """The three camera lines (the config argument is ignored: the camera line is used)."""
    return [camera_rate(quick), camera_free_run(quick), dataset_rate(quick)]
