"""`twin dataset`: labelled synthetic images of a line's camera, with domain randomisation.

Every frame is made from its own seeded generator (the dataset seed and the frame's index),
so a frame's files do not depend on which worker made it, in what order, or whether the run
was resumed. Per frame, in the line as its config builds it:

- parts of the config's types are placed on whatever surface the camera sees (rays cast
  through random pixels), at random yaw, in random colours, some with a noise texture;
- distractor objects (boxes, cylinders, spheres of random size and colour) likewise;
- the camera's pose is jittered, the light's direction, colour and coefficients drawn.

Written to OUT: images/NNNNNN.png, labels/NNNNNN.json (that frame's COCO image and
annotations plus every placed part's 6-DoF pose, visible or not), and, once every frame
exists, annotations.json (COCO: images, annotations with boxes and RLE masks, categories
per part type; each annotation carries the part's pose in the world and in the camera
frame). A frame whose label file exists is not made again: an interrupted run resumes.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pybullet
from PIL import Image

from twin.config import ConfigError, LineConfig, PartType, load
from twin.devices.camera import Camera
from twin.line import Line

PARK = [0.0, 0.0, -50.0]  # m: where unused bodies wait, out of every view
TEXTURES = 4  # noise textures per worker (seeded, the same in every worker)
FRAMES_PER_TASK = 8  # frames a worker makes per task: builds once, then few round trips


@dataclass(frozen=True)
class DatasetSpec:
    config: str  # path of the line config
    out: str
    frames: int
    seed: int = 0
    camera: str | None = None  # default: the config's first camera
    max_parts: int = 6  # parts per frame: 1 to this many
    max_distractors: int = 3
    jitter_position: float = 0.03  # m, standard deviation per axis
    jitter_angle: float = 0.04  # rad, standard deviation per axis
    texture_share: float = 0.3  # share of parts with a noise texture


def pick_camera(cfg: LineConfig, wanted: str | None) -> str:
    cameras = [d.id for d in cfg.devices if type(d).__struct_config__.tag == "camera"]
    if not cameras:
        raise ConfigError(f"{cfg.source_path}: the line has no camera (add a kind = 'camera')")
    if wanted is None:
        return cameras[0]
    if wanted not in cameras:
        raise ConfigError(f"{cfg.source_path}: no camera '{wanted}' (cameras: {cameras})")
    return wanted


class _Scene:
    """One worker's line, camera, part and distractor bodies, and textures."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec
        cfg = load(spec.config)
        self.line = Line(cfg, seed=spec.seed)
        self.camera: Camera = self.line.devices[pick_camera(cfg, spec.camera)]  # type: ignore[assignment]
        self.c = self.line.world.client
        self.types: list[PartType] = list(cfg.part_types)
        self.parts: dict[str, list[int]] = {}  # type -> bodies
        for t in self.types:
            half = [s / 2 for s in t.size]
            vis = self.c.createVisualShape(pybullet.GEOM_BOX, halfExtents=half)
            col = self.c.createCollisionShape(pybullet.GEOM_BOX, halfExtents=half)
            self.parts[t.name] = [
                self.c.createMultiBody(0, col, vis, basePosition=PARK)
                for _ in range(spec.max_parts)
            ]
        self.distractors: list[tuple[int, float]] = []  # (body, half height)
        for shape in range(3 * spec.max_distractors):
            kind = shape % 3
            size = 0.03 + 0.02 * (shape // 3)
            if kind == 0:
                vis = self.c.createVisualShape(
                    pybullet.GEOM_BOX, halfExtents=[size, size / 2, size]
                )
            elif kind == 1:
                vis = self.c.createVisualShape(
                    pybullet.GEOM_CYLINDER, radius=size / 2, length=2 * size
                )
            else:
                vis = self.c.createVisualShape(pybullet.GEOM_SPHERE, radius=size)
            body = self.c.createMultiBody(0, -1, vis, basePosition=PARK)
            self.distractors.append((body, size))
        self.textures = self._textures()
        self.category = {t.name: i + 1 for i, t in enumerate(self.types)}

    def _textures(self) -> list[int]:
        """A plain white texture (index 0) and seeded noise textures."""
        rng = np.random.default_rng([self.spec.seed, 7_000_001])
        out = []
        # pybullet reads a texture file once, when it is loaded: the files can go at once
        with tempfile.TemporaryDirectory(prefix="twin-textures-") as folder:
            for i in range(TEXTURES + 1):
                if i == 0:
                    pixels = np.full((8, 8, 3), 255, dtype=np.uint8)
                else:
                    pixels = rng.integers(90, 256, size=(32, 32, 3), dtype=np.uint8)
                path = os.path.join(folder, f"texture{i}.png")
                Image.fromarray(pixels).save(path)
                out.append(self.c.loadTexture(path))
        return out

    # one frame -----------------------------------------------------------------------------
    def make(self, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        spec, c, cam = self.spec, self.c, self.camera
        rng = np.random.default_rng([spec.seed, index])
        for bodies in self.parts.values():
            for body in bodies:
                c.resetBasePositionAndOrientation(body, PARK, [0, 0, 0, 1])
        for body, _ in self.distractors:
            c.resetBasePositionAndOrientation(body, PARK, [0, 0, 0, 1])
        pose = self._jittered_pose(rng)
        n_parts = int(rng.integers(1, spec.max_parts + 1))
        n_distractors = int(rng.integers(0, spec.max_distractors + 1))
        spots = self._surface_points(pose, n_parts + n_distractors, rng)
        placed = []
        used = {t: 0 for t in self.parts}
        for spot in spots[:n_parts]:
            t = self.types[int(rng.integers(len(self.types)))]
            body = self.parts[t.name][used[t.name]]
            used[t.name] += 1
            yaw = float(rng.uniform(-math.pi, math.pi))
            position = [spot[0], spot[1], spot[2] + t.size[2] / 2]
            orientation = list(c.getQuaternionFromEuler([0, 0, yaw]))
            c.resetBasePositionAndOrientation(body, position, orientation)
            color = [*rng.uniform(0.05, 1.0, 3).tolist(), 1.0]
            textured = rng.random() < spec.texture_share
            texture = (
                self.textures[int(rng.integers(1, TEXTURES + 1))] if textured else self.textures[0]
            )
            c.changeVisualShape(body, -1, rgbaColor=color, textureUniqueId=texture)
            placed.append((body, t, position, orientation))
        order = rng.permutation(len(self.distractors))
        for spot, which in zip(spots[n_parts:], order):
            body, half = self.distractors[int(which)]
            yaw = float(rng.uniform(-math.pi, math.pi))
            c.resetBasePositionAndOrientation(
                body, [spot[0], spot[1], spot[2] + half], c.getQuaternionFromEuler([0, 0, yaw])
            )
            c.changeVisualShape(body, -1, rgbaColor=[*rng.uniform(0.05, 1.0, 3).tolist(), 1.0])
        light = {
            "lightDirection": [*rng.uniform(-2, 2, 2).tolist(), float(rng.uniform(1, 3))],
            "lightColor": rng.uniform(0.7, 1.0, 3).tolist(),
            "lightDistance": 3.0,
            "lightAmbientCoeff": float(rng.uniform(0.3, 0.8)),
            "lightDiffuseCoeff": float(rng.uniform(0.3, 0.9)),
            "lightSpecularCoeff": float(rng.uniform(0.0, 0.5)),
            "shadow": 0,
        }
        buffers: list[np.ndarray] = []
        rgb = cam.render(("rgb",), pose=pose, light=light, bodies=buffers, noise_rng=rng)["rgb"]
        return rgb, self._labels(index, pose, placed, buffers[0])

    def _jittered_pose(self, rng: np.random.Generator) -> tuple[list[float], list[float]]:
        pos, orn = self.camera.pose()
        spec = self.spec
        pos = (np.array(pos) + rng.normal(0.0, spec.jitter_position, 3)).tolist()
        turn = pybullet.getQuaternionFromEuler(rng.normal(0.0, spec.jitter_angle, 3).tolist())
        _, orn = pybullet.multiplyTransforms([0, 0, 0], orn, [0, 0, 0], turn)
        return pos, list(orn)

    def _surface_points(
        self, pose: tuple[list[float], list[float]], n: int, rng: np.random.Generator
    ) -> list[list[float]]:
        """Where rays through random pixels (the image's central 80 %) meet the scene."""
        k = self.camera.intrinsics
        r = np.array(pybullet.getMatrixFromQuaternion(pose[1])).reshape(3, 3)
        u = rng.uniform(0.1, 0.9, n) * k.width
        v = rng.uniform(0.1, 0.9, n) * k.height
        rays = np.stack([(u - k.cx) / k.fx, (v - k.cy) / k.fy, np.ones(n)], axis=1) @ r.T
        start = np.array(pose[0])
        ends = start + rays * k.far
        hits = self.c.rayTestBatch([start.tolist()] * n, ends.tolist())
        return [list(h[3]) for h in hits if h[0] >= 0]

    def _labels(
        self,
        index: int,
        pose: tuple[list[float], list[float]],
        placed: list[tuple[int, PartType, list[float], list[float]]],
        bodies: np.ndarray,
    ) -> dict[str, Any]:
        k = self.camera.intrinsics
        inverse = pybullet.invertTransform(pose[0], pose[1])
        image_id = index + 1
        annotations, parts = [], []
        for n, (body, t, position, orientation) in enumerate(placed):
            mask = bodies == body
            pixels = int(mask.sum())
            in_camera = pybullet.multiplyTransforms(*inverse, position, orientation)
            record = {
                "type": t.name,
                "category_id": self.category[t.name],
                "pose": {"position": position, "orientation": orientation},
                "pose_camera": {"position": list(in_camera[0]), "orientation": list(in_camera[1])},
                "visible_pixels": pixels,
            }
            parts.append(record)
            if pixels == 0:
                continue  # hidden or out of view: no box, no mask
            rows = np.flatnonzero(mask.any(axis=1))
            cols = np.flatnonzero(mask.any(axis=0))
            x0, y0 = int(cols[0]), int(rows[0])
            annotations.append(
                {
                    "id": image_id * 1000 + n,
                    "image_id": image_id,
                    "category_id": self.category[t.name],
                    "bbox": [x0, y0, int(cols[-1]) - x0 + 1, int(rows[-1]) - y0 + 1],
                    "area": pixels,
                    "segmentation": rle(mask),
                    "iscrowd": 0,
                    "pose": record["pose"],
                    "pose_camera": record["pose_camera"],
                }
            )
        return {
            "image": {
                "id": image_id,
                "file_name": f"images/{index:06d}.png",
                "width": k.width,
                "height": k.height,
            },
            "camera": {
                "pose": {"position": pose[0], "orientation": pose[1]},
                "intrinsics": k.as_dict(),
            },
            "annotations": annotations,
            "parts": parts,
        }

    def close(self) -> None:
        self.line.close()


def rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO's uncompressed run-length encoding: column-major runs, starting with zeros."""
    flat = np.asarray(mask, dtype=np.uint8).flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def rle_decode(encoded: dict[str, Any]) -> np.ndarray:
    h, w = encoded["size"]
    values = np.zeros(h * w, dtype=bool)
    at = 0
    for i, run in enumerate(encoded["counts"]):
        if i % 2:
            values[at : at + run] = True
        at += run
    return values.reshape((h, w), order="F")


# writing ------------------------------------------------------------------------------------
def _label_path(out: Path, index: int) -> Path:
    return out / "labels" / f"{index:06d}.json"


def _make_frames(spec: DatasetSpec, indices: list[int]) -> int:
    """A worker's task: make these frames (skipping any written meanwhile)."""
    scene = _worker_scene(spec)
    out = Path(spec.out)
    for index in indices:
        label = _label_path(out, index)
        if label.exists():
            continue
        rgb, labels = scene.make(index)
        image = out / "images" / f"{index:06d}.png"
        tmp = image.with_suffix(".tmp")
        Image.fromarray(rgb).save(tmp, format="PNG")
        os.replace(tmp, image)
        tmp = label.with_suffix(".tmp")
        tmp.write_text(json.dumps(labels))
        os.replace(tmp, label)  # last: a label file means the frame is complete
    return len(indices)


_SCENE: _Scene | None = None


def _worker_scene(spec: DatasetSpec) -> _Scene:
    global _SCENE
    if _SCENE is None or _SCENE.spec != spec:
        if _SCENE is not None:
            _SCENE.close()
        _SCENE = _Scene(spec)
    return _SCENE


def _tasks(spec: DatasetSpec) -> Iterator[list[int]]:
    out = Path(spec.out)
    todo = [i for i in range(spec.frames) if not _label_path(out, i).exists()]
    for start in range(0, len(todo), FRAMES_PER_TASK):
        yield todo[start : start + FRAMES_PER_TASK]


def generate(spec: DatasetSpec, *, workers: int = 1, progress: bool = True) -> dict[str, int]:
    """Make the frames not made yet, then write annotations.json; returns counts."""
    cfg = load(spec.config)  # a bad config or camera fails here, before any worker starts
    pick_camera(cfg, spec.camera)
    out = Path(spec.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    tasks = list(_tasks(spec))
    todo = sum(len(t) for t in tasks)
    from tqdm import tqdm

    bar = tqdm(total=spec.frames, initial=spec.frames - todo, unit="frame", disable=not progress)
    try:
        if workers <= 1:
            for task in tasks:
                bar.update(_make_frames(spec, task))
        else:
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                for done in pool.map(_make_frames, [spec] * len(tasks), tasks):
                    bar.update(done)
    finally:
        bar.close()
        global _SCENE
        if _SCENE is not None:
            _SCENE.close()
            _SCENE = None
    return write_coco(spec, cfg) | {"made": todo}


def write_coco(spec: DatasetSpec, cfg: LineConfig) -> dict[str, int]:
    """annotations.json from every frame's label file, in frame order."""
    out = Path(spec.out)
    images, annotations = [], []
    for index in range(spec.frames):
        labels = json.loads(_label_path(out, index).read_text())
        images.append(labels["image"])
        annotations.extend(labels["annotations"])
    coco = {
        "info": {
            "description": f"twin dataset of {cfg.name}, camera {pick_camera(cfg, spec.camera)}",
            "seed": spec.seed,
        },
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i + 1, "name": t.name, "supercategory": "part"}
            for i, t in enumerate(cfg.part_types)
        ],
    }
    (out / "annotations.json").write_text(json.dumps(coco))
    return {"frames": len(images), "annotations": len(annotations)}
