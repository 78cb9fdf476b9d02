"""Image observations: the pick-and-place env observing a configured camera passes the
checker, gives the same images in-process and remote for the same seed and actions, and
runs vectorised in worker processes."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import twin.gym  # noqa: F401 - registers the envs
from twin.serve_process import ROOT

pytestmark = pytest.mark.timeout(180)

SMALL = (
    (ROOT / "configs" / "camera_line.toml")
    .read_text()
    .replace("width = 320\nheight = 240", "width = 64\nheight = 48")
    .replace("width = 160\nheight = 120", "width = 48\nheight = 36")
)
IMAGES = {"camera": "wrist", "image_modalities": ("rgb", "depth")}


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gym") / "camera_line.toml"
    path.write_text(SMALL)
    return path


def _rollout(env: gym.Env, seed: int, steps: int) -> list[dict]:
    actions = np.random.default_rng(seed).uniform(-1, 1, (steps, *env.action_space.shape))
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for a in actions.astype(np.float32):
        obs, *_ = env.step(a)
        out.append(obs)
    return out


def test_image_env_passes_the_checker_and_its_space(config):
    env = gym.make("twin/DefaultLine-v0", config=str(config), **IMAGES)
    try:
        check_env(env.unwrapped)
        obs, _ = env.reset(seed=3)
        assert env.observation_space.contains(obs)
        assert obs["rgb"].shape == (36, 48, 3) and obs["rgb"].dtype == np.uint8
        assert obs["depth"].shape == (36, 48, 1) and obs["depth"].dtype == np.float32
        assert set(obs) == {"signals", "rgb", "depth"}
    finally:
        env.close()


def test_a_camera_that_is_not_there_or_a_modality_it_lacks_is_refused(config):
    with pytest.raises(ValueError, match="'mill' is not a camera"):
        gym.make("twin/DefaultLine-v0", config=str(config), camera="mill")
    with pytest.raises(ValueError, match="image modality 'segmentation'"):
        gym.make(
            "twin/DefaultLine-v0",
            config=str(config),
            camera="overhead",
            image_modalities=("segmentation",),
        )


def test_same_seed_and_actions_give_the_same_images_in_process_and_remote(config, serve):
    steps = 12
    local = gym.make("twin/DefaultLine-v0", config=str(config), **IMAGES)
    try:
        ref = _rollout(local, seed=5, steps=steps)
    finally:
        local.close()
    # the wrist camera moves with the arm: the images change over the rollout
    assert not np.array_equal(ref[0]["rgb"], ref[-1]["rgb"])
    with serve(
        str(config), "--mode", "lockstep", "--state-rate", "0", "--no-builtin-controller"
    ) as srv:
        remote = gym.make(
            "twin/DefaultLine-v0",
            config=str(config),
            backend="remote",
            control=srv.control,
            **IMAGES,
        )
        try:
            got = _rollout(remote, seed=5, steps=steps)
        finally:
            remote.close()
    for i, (a, b) in enumerate(zip(got, ref)):
        for key in ("signals", "rgb", "depth"):
            assert np.array_equal(a[key], b[key]), f"step {i}: {key} differs"


def test_async_vector_env_runs_two_image_twins(config):
    path = str(config)
    envs = gym.vector.AsyncVectorEnv(
        [lambda: gym.make("twin.gym:twin/DefaultLine-v0", config=path, **IMAGES)] * 2,
        context="spawn",
    )
    try:
        obs, _ = envs.reset(seed=[1, 2])
        assert obs["rgb"].shape == (2, 36, 48, 3)
        for _ in range(3):
            obs, *_ = envs.step(envs.action_space.sample())
        assert obs["depth"].shape == (2, 36, 48, 1)
    finally:
        envs.close(terminate=True)
