"""TwinEnv: a Gymnasium env over one twin, composed of a back end and a task.

One env step = `steps_per_action` twin steps (commands first, then the steps). Episodes are
truncated after `episode_seconds` of simulated time; the twin never ends them itself.
`reset(seed=s)` rebuilds the line with a seed drawn from the env's generator seeded with s,
so the same seed and actions give the same trajectory, in-process or remote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from twin.config import CameraConfig, LineConfig, load
from twin.gym.backends import Backend, InProcessBackend, RemoteBackend, Snapshot
from twin.gym.line_control import LineControlTask
from twin.gym.pick_place import PickPlaceTask
from twin.gym.task import Port, Task

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "default_line.toml"
TASKS = {"pick_place": PickPlaceTask, "line_control": LineControlTask}


class TwinEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        task: str = "pick_place",
        config: str | Path | LineConfig = DEFAULT_CONFIG,
        *,
        backend: str = "inprocess",
        control: str | None = None,
        steps_per_action: int = 5,
        episode_seconds: float = 60.0,
        render_mode: str | None = None,
        render_size: tuple[int, int] = (320, 200),
        timeout: float = 10.0,
        task_options: dict[str, Any] | None = None,
        camera: str | None = None,
        image_modalities: tuple[str, ...] | list[str] = ("rgb",),
    ) -> None:
        """`camera`: observe images from this configured camera too; the observation is then
        a dict of "signals" (the task's vector) and one array per modality in
        `image_modalities`: "rgb" (H, W, 3) uint8, "depth" (H, W, 1) float32 in m."""
        if task not in TASKS:
            raise ValueError(f"unknown task '{task}' (known: {sorted(TASKS)})")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if steps_per_action < 1 or episode_seconds <= 0:
            raise ValueError("steps_per_action must be >= 1 and episode_seconds > 0")
        self.cfg = config if isinstance(config, LineConfig) else load(config)
        self.task: Task = TASKS[task](self.cfg, **(task_options or {}))
        self.backend = self._backend(backend, control, timeout, render_mode)
        self.render_mode = render_mode
        self.render_size = render_size
        self.steps_per_action = steps_per_action
        self.env_dt = steps_per_action * self.cfg.physics.timestep
        self.episode_seconds = episode_seconds
        first = self.backend.reset(self.cfg.physics.seed)
        self.task.bind(self.backend.describe(), first, self.env_dt)
        self.camera = camera
        self.image_modalities = tuple(image_modalities)
        self.observation_space = self._observation_space()
        self.action_space = self.task.action_space
        self.port = Port(self.backend)
        self._snap: Snapshot | None = None

    def _backend(
        self, kind: str, control: str | None, timeout: float, render_mode: str | None
    ) -> Backend:
        need = self.task.builtin_controller
        if kind == "inprocess":
            return InProcessBackend(
                self.cfg, builtin_controller=need, visuals=render_mode is not None
            )
        if kind == "remote":
            if control is None:
                raise ValueError("backend='remote' needs control='tcp://host:port'")
            if render_mode is not None:
                raise ValueError("render_mode needs backend='inprocess' (no render request)")
            return RemoteBackend(self.cfg, control, builtin_controller=need, timeout=timeout)
        raise ValueError(f"backend must be 'inprocess' or 'remote', got {kind!r}")

    def _observation_space(self) -> spaces.Space:
        if self.camera is None:
            return self.task.observation_space
        cam = next((d for d in self.cfg.devices if d.id == self.camera), None)
        if not isinstance(cam, CameraConfig):
            raise ValueError(f"camera '{self.camera}' is not a camera of the line's config")
        images: dict[str, spaces.Space] = {}
        for modality in self.image_modalities:
            if modality not in ("rgb", "depth") or modality not in cam.modalities:
                raise ValueError(
                    f"image modality {modality!r}: the camera renders {cam.modalities}; "
                    "observations take rgb and depth"
                )
            if modality == "rgb":
                images["rgb"] = spaces.Box(0, 255, (cam.height, cam.width, 3), np.uint8)
            else:
                images["depth"] = spaces.Box(0.0, cam.far, (cam.height, cam.width, 1), np.float32)
        return spaces.Dict({"signals": self.task.observation_space, **images})

    def _observe(self, snap: Snapshot, time_left: float) -> Any:
        signals = self.task.observe(snap, time_left)
        if self.camera is None:
            return signals
        out: dict[str, np.ndarray] = {"signals": signals}
        for modality in self.image_modalities:
            image = self.backend.image(self.camera, modality)
            out[modality] = image if modality == "rgb" else image[:, :, None]
        return out

    @property
    def obs_names(self) -> list[str]:
        return self.task.obs_names

    @property
    def action_names(self) -> list[str]:
        return self.task.action_names

    def _time_left(self, snap: Snapshot) -> float:
        return max(0.0, self.episode_seconds - (snap.time - self._t0))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        line_seed = int(self.np_random.integers(0, 2**31 - 1))
        snap = self.backend.reset(line_seed)
        self._t0 = snap.time
        self.task.start(snap, self.port)
        self._snap = snap
        return self._observe(snap, self._time_left(snap)), {"seed": line_seed}

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self._snap is None:
            raise RuntimeError("call reset() before step()")
        self.task.act(action, self._snap, self.port)
        snap = self.backend.step(self.steps_per_action)
        self._snap = snap
        reward, info = self.task.score(snap, self.port)
        left = self._time_left(snap)
        info["time"] = snap.time
        info["refused"] = self.port.refused
        obs = self._observe(snap, left)
        return obs, float(reward), False, left <= 1e-9, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        w, h = self.render_size
        return self.backend.render(w, h)

    def close(self) -> None:
        backend = getattr(self, "backend", None)
        if backend is not None:
            backend.close()
            del self.backend
