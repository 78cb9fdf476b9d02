"""`twin dataset`: labelled frames that match the segmentation buffer, reproducible from the
seed with any number of workers, resumable; a real subprocess with worker processes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pybullet
import pytest

from twin.serve_process import ROOT
from twin.vision.dataset import DatasetSpec, _Scene, generate, rle_decode

pytestmark = pytest.mark.timeout(240)

FRAMES = 200
SMALL = (
    (ROOT / "configs" / "camera_line.toml")
    .read_text()
    .replace("width = 320\nheight = 240", "width = 64\nheight = 48")
)


def _digests(folder: Path, frames: range) -> dict[str, str]:
    out = {}
    for i in frames:
        for name in (f"images/{i:06d}.png", f"labels/{i:06d}.json"):
            out[name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("ds")
    config = folder / "line.toml"
    config.write_text(SMALL)
    out = folder / "out"
    done = subprocess.run(
        [sys.executable, "-m", "twin.cli", "dataset", str(config), "--frames", str(FRAMES)]
        + ["--out", str(out), "--workers", "2", "--seed", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert done.returncode == 0, done.stderr
    assert f"{FRAMES} frames ({FRAMES} made now)" in done.stdout
    assert "frame/s" in done.stderr  # the progress bar
    return config, out


def test_coco_file_has_every_frame_box_and_mask(dataset):
    config, out = dataset
    coco = json.loads((out / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["housing", "cover"]
    assert len(coco["images"]) == FRAMES and len(coco["annotations"]) > FRAMES
    for ann in coco["annotations"]:
        mask = rle_decode(ann["segmentation"])
        assert mask.shape == (48, 64) and mask.sum() == ann["area"] > 0
        rows, cols = np.nonzero(mask)
        x, y, w, h = ann["bbox"]
        assert (x, y, x + w - 1, y + h - 1) == (cols.min(), rows.min(), cols.max(), rows.max())
        assert len(ann["pose"]["position"]) == 3 and len(ann["pose_camera"]["orientation"]) == 4
    hidden = 0
    for i in range(FRAMES):
        labels = json.loads((out / f"labels/{i:06d}.json").read_text())
        hidden += sum(p["visible_pixels"] == 0 for p in labels["parts"])
        visible = [p for p in labels["parts"] if p["visible_pixels"] > 0]
        assert len(visible) == len(labels["annotations"])
    assert hidden > 0  # some parts were placed out of view or behind others


def test_labels_match_an_independent_segmentation_render(dataset):
    """Rebuild frames in this process, render the body-id buffer with bare getCameraImage
    from the labelled camera pose and intrinsics: one annotation per part body seen, with
    exactly its pixels; the frames are those the workers wrote, byte for byte."""
    config, out = dataset
    scene = _Scene(DatasetSpec(config=str(config), out=str(out), frames=FRAMES, seed=3))
    try:
        part_bodies = {b for bodies in scene.parts.values() for b in bodies}
        for i in range(0, FRAMES, 25):
            _, labels = scene.make(i)
            written = json.loads((out / f"labels/{i:06d}.json").read_text())
            assert json.loads(json.dumps(labels)) == written
            pose, k = labels["camera"]["pose"], labels["camera"]["intrinsics"]
            r = np.array(pybullet.getMatrixFromQuaternion(pose["orientation"])).reshape(3, 3)
            eye = np.array(pose["position"])
            view = scene.c.computeViewMatrix(
                eye.tolist(), (eye + r[:, 2]).tolist(), (-r[:, 1]).tolist()
            )
            projection = scene.c.computeProjectionMatrixFOV(k["fov"], 64 / 48, k["near"], k["far"])
            seg = np.reshape(scene.c.getCameraImage(64, 48, view, projection)[4], (48, 64))
            seen = {int(b) for b in np.unique(seg)} & part_bodies
            masks = [rle_decode(a["segmentation"]) for a in labels["annotations"]]
            assert len(masks) == len(seen)
            for body in seen:
                assert sum(np.array_equal(m, seg == body) for m in masks) == 1
    finally:
        scene.close()


def test_same_seed_same_files_with_one_worker_and_resumed(dataset, tmp_path):
    config, out = dataset
    again = tmp_path / "again"
    spec = DatasetSpec(config=str(config), out=str(again), frames=24, seed=3)
    assert generate(spec, workers=1, progress=False)["made"] == 24
    assert _digests(again, range(24)) == _digests(out, range(24))
    # an interrupted run: some frames missing; running again makes only those
    for i in (5, 6, 17):
        (again / f"labels/{i:06d}.json").unlink()
    (again / "images/000006.png").unlink()
    assert generate(spec, workers=1, progress=False)["made"] == 3
    assert _digests(again, range(24)) == _digests(out, range(24))
    other = DatasetSpec(config=str(config), out=str(tmp_path / "other"), frames=3, seed=4)
    generate(other, workers=1, progress=False)
    assert _digests(tmp_path / "other", range(3)) != _digests(out, range(3))
