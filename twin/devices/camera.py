"""Camera: a pinhole camera fixed in the cell or carried by a robot link, rendered on demand.

A camera does nothing per step: it renders only when asked (a due frame somebody subscribes
to or records, a `get_image`, a dataset), with pybullet's CPU renderer (TinyRenderer) in the
line's own client. Poses are of the optical frame: x right, y down in the image, z forward
(the convention of ROS and Foxglove camera frames).
"""

from __future__ import annotations

import functools
import math
from statistics import NormalDist
from typing import Any

import numpy as np
import pybullet

from twin.config import CameraConfig
from twin.devices.base import BuildContext, CommandError, Device

MODALITIES = ("rgb", "depth", "segmentation")
_LIGHT = [1.5, -1.0, 3.0]  # the direction light comes from, as World.render


class Intrinsics:
    """Pinhole intrinsics of a W x H image with vertical field of view `fov` (square pixels,
    principal point in the centre), as pybullet's projection renders them."""

    def __init__(self, cfg: CameraConfig) -> None:
        self.width, self.height = cfg.width, cfg.height
        self.fov, self.near, self.far = cfg.fov, cfg.near, cfg.far
        self.fy = (cfg.height / 2) / math.tan(math.radians(cfg.fov) / 2)
        self.fx = self.fy
        self.cx, self.cy = cfg.width / 2, cfg.height / 2

    @property
    def k(self) -> list[float]:
        """The 3x3 camera matrix, row-major."""
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]

    def as_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "fx": self.fx,
            "fy": self.fy,
            "cx": self.cx,
            "cy": self.cy,
            "k": self.k,
            "fov": self.fov,
            "near": self.near,
            "far": self.far,
        }


def look_at_rotation(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The optical frame's axes (columns x right, y down, z forward) looking from eye to target
    with the world's +z up in the image (+y when looking straight up or down)."""
    z = target - eye
    z = z / np.linalg.norm(z)
    up = np.array([0.0, 0.0, 1.0])
    if abs(float(z @ up)) > 0.999:
        up = np.array([0.0, 1.0, 0.0])
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.column_stack([x, y, z])


def _quaternion(r: np.ndarray) -> list[float]:
    """Rotation matrix -> quaternion [x, y, z, w]."""
    m = r
    t = m[0, 0] + m[1, 1] + m[2, 2]
    if t > 0:
        s = math.sqrt(t + 1.0) * 2
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = [s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = [(m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4, (m[1, 0] - m[0, 1]) / s]
    return [float(v) for v in q]


class Camera(Device):
    kind = "camera"

    def __init__(self, cfg: CameraConfig, ctx: BuildContext) -> None:
        super().__init__(cfg, ctx)
        self.intrinsics = Intrinsics(cfg)
        self.modalities: tuple[str, ...] = tuple(cfg.modalities)
        # a frame is due every `every` steps (the rate in simulated Hz, on the step grid)
        self.every = max(1, round(1.0 / (cfg.rate * ctx.world.dt)))
        self.frames = 0  # frames rendered so far
        self._rng = ctx.rng(cfg.id + "/camera-noise")
        self._client = ctx.world.client
        self._mount: tuple[int, int] | None = None  # (body, link index)
        if cfg.mount is not None:
            body = ctx.devices[cfg.mount.arm].body  # type: ignore[attr-defined]
            self._mount = (body, _link_index(self._client, body, cfg.mount.link))
            self._offset = (list(cfg.position), list(pybullet.getQuaternionFromEuler(cfg.rpy)))
        else:
            assert cfg.look_at is not None  # the config's check
            eye = np.array(cfg.position, dtype=float)
            r = look_at_rotation(eye, np.array(cfg.look_at, dtype=float))
            self._fixed = ([float(v) for v in eye], _quaternion(r))
        fov, w, h = cfg.fov, cfg.width, cfg.height
        self._projection = self._client.computeProjectionMatrixFOV(
            fov=fov, aspect=w / h, nearVal=cfg.near, farVal=cfg.far
        )

    # pose -------------------------------------------------------------------------------
    def pose(self) -> tuple[list[float], list[float]]:
        """Position and orientation [x, y, z, w] of the optical frame in the world, now."""
        if self._mount is None:
            return self._fixed
        body, link = self._mount
        state = self._client.getLinkState(body, link, computeForwardKinematics=1)
        pos, orn = pybullet.multiplyTransforms(state[4], state[5], *self._offset)
        return list(pos), list(orn)

    def pose_dict(self) -> dict[str, list[float]]:
        pos, orn = self.pose()
        return {"position": pos, "orientation": orn}

    # rendering --------------------------------------------------------------------------
    def check_modality(self, modality: str) -> None:
        if modality not in self.modalities:
            raise CommandError(
                "unknown_modality",
                f"camera '{self.id}' renders {list(self.modalities)}, not {modality!r}",
            )

    def render(
        self,
        modalities: tuple[str, ...] | None = None,
        *,
        pose: tuple[list[float], list[float]] | None = None,
        light: dict[str, Any] | None = None,
        bodies: list[np.ndarray] | None = None,
        noise_rng: np.random.Generator | None = None,
    ) -> dict[str, np.ndarray]:
        """One frame now: {modality: image}. rgb (H, W, 3) uint8; depth (H, W) float32 in m
        along the optical axis (0: nothing within `far`); segmentation (H, W) int32, the id
        of the part seen at each pixel, 0 where no part is.

        For datasets: `pose` replaces the camera's own, `light` adds getCameraImage's light
        arguments, `bodies` (a list) receives the raw body-uid buffer, and `noise_rng` draws
        the noise instead of the camera's own generator (a frame seeded on its own)."""
        wanted = self.modalities if modalities is None else modalities
        cfg, c = self.cfg, self._client
        pos, orn = self.pose() if pose is None else pose
        r = np.array(pybullet.getMatrixFromQuaternion(orn)).reshape(3, 3)
        eye = np.array(pos)
        view = c.computeViewMatrix(
            cameraEyePosition=pos,
            cameraTargetPosition=(eye + r[:, 2]).tolist(),
            cameraUpVector=(-r[:, 1]).tolist(),
        )
        segment = "segmentation" in wanted or bodies is not None
        flags = 0 if segment else pybullet.ER_NO_SEGMENTATION_MASK
        w, h = cfg.width, cfg.height
        _, _, rgba, zbuf, seg = c.getCameraImage(
            w,
            h,
            viewMatrix=view,
            projectionMatrix=self._projection,
            renderer=pybullet.ER_TINY_RENDERER,
            flags=flags,
            **(light or {"lightDirection": _LIGHT}),
        )
        self.frames += 1
        out: dict[str, np.ndarray] = {}
        noise = cfg.noise
        rng = self._rng if noise_rng is None else noise_rng
        if "rgb" in wanted:
            rgb = np.reshape(np.asarray(rgba, dtype=np.uint8), (h, w, 4))[:, :, :3]
            if noise is not None and noise.rgb > 0:
                # rounding rgb + N(0, s) to a level is rgb + a whole-level draw: taken from a
                # table of the rounded normal's quantiles, a quarter of a float draw's cost
                levels = _rounded_normal(noise.rgb)[rng.integers(0, _LEVELS, rgb.shape, np.uint16)]
                rgb = np.clip(rgb.astype(np.int16) + levels, 0, 255)
            out["rgb"] = np.ascontiguousarray(rgb, dtype=np.uint8)
        if "depth" in wanted:
            z = np.reshape(np.asarray(zbuf, dtype=np.float32), (h, w))
            near, far = cfg.near, cfg.far
            depth = far * near / (far - (far - near) * z)
            empty = z >= 1.0 - 1e-7
            if noise is not None and noise.depth > 0:
                depth = depth + rng.standard_normal(depth.shape, dtype=np.float32) * noise.depth
            if noise is not None and noise.depth_quantum > 0:
                depth = np.rint(depth / noise.depth_quantum) * noise.depth_quantum
            depth[empty] = 0.0
            out["depth"] = np.clip(depth, 0.0, far).astype(np.float32)
        if segment:
            uids = np.reshape(np.asarray(seg, dtype=np.int64), (h, w))
            if bodies is not None:
                bodies.append(uids)
            if "segmentation" in wanted:
                out["segmentation"] = self._part_ids(uids)
        return out

    def _part_ids(self, bodies: np.ndarray) -> np.ndarray:
        """Body uid per pixel (-1: nothing) -> part id per pixel (0: no part)."""
        by_body = self.ctx.pool.by_body
        size = max(int(bodies.max()), max(by_body, default=0)) + 2
        lut = np.zeros(size, dtype=np.int32)
        for body, part in by_body.items():
            lut[body + 1] = part
        return lut[bodies + 1]

    # description ------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        cfg = self.cfg
        out = super().describe()
        out["camera"] = {
            "intrinsics": self.intrinsics.as_dict(),
            "pose": self.pose_dict(),
            "frame": "optical: x right, y down, z forward",
            "mount": None if cfg.mount is None else {"arm": cfg.mount.arm, "link": cfg.mount.link},
            "rate": cfg.rate,
            "modalities": list(self.modalities),
            "encoding": cfg.encoding,
        }
        return out


_LEVELS = 1 << 16  # quantiles in a rounded-normal table


@functools.cache
def _rounded_normal(sigma: float) -> np.ndarray:
    """N(0, sigma) rounded to whole levels, as _LEVELS equally likely quantiles."""
    dist = NormalDist(0.0, sigma)
    quantiles = [dist.inv_cdf((i + 0.5) / _LEVELS) for i in range(_LEVELS)]
    return np.rint(quantiles).astype(np.int16)


def _link_index(client: Any, body: int, link: str) -> int:
    for j in range(client.getNumJoints(body)):
        if client.getJointInfo(body, j)[12].decode() == link:
            return j
    raise LookupError(f"the model has no link '{link}'")  # the config's check prevents this
