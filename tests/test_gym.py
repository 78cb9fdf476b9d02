"""Gymnasium envs over the twin: the checker, determinism, in-process == remote, vectorised use,
rendering. Remote tests run a real `twin serve --mode lockstep` subprocess."""

from __future__ import annotations

import importlib.metadata
import time

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import twin.gym

SERVER_ARGS = {
    "twin/DefaultLine-v0": ("--no-builtin-controller",),  # the env runs the line's rules
    "twin/LineControl-v0": (),  # the robot keeps running under the built-in sequencer
}
FAST = {"twin/LineControl-v0": {"steps_per_action": 10}}  # keep the suite quick


def _rollout(env: gym.Env, seed: int, steps: int) -> tuple[list[np.ndarray], list[float]]:
    actions = np.random.default_rng(seed).uniform(-1, 1, (steps, *env.action_space.shape))
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    for a in actions.astype(np.float32):
        obs, reward, terminated, truncated, _ = env.step(a)
        observations.append(obs)
        rewards.append(reward)
        assert not terminated and not truncated
    return observations, rewards


@pytest.mark.parametrize("env_id", twin.gym.ENV_IDS)
def test_registered_env_passes_the_checker(env_id: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array", render_size=(64, 40), **FAST.get(env_id, {}))
    try:
        check_env(env.unwrapped)
    finally:
        env.close()


def test_same_seed_same_observation_and_names_match_the_space() -> None:
    env = gym.make("twin/DefaultLine-v0")
    try:
        first, info = env.reset(seed=5)
        env.step(env.action_space.sample())
        again, info_again = env.reset(seed=5)
        _, info_other = env.reset(seed=6)
        assert np.array_equal(first, again) and info["seed"] == info_again["seed"]
        assert info_other["seed"] != info["seed"]  # the line seed follows the reset seed
        assert env.observation_space.contains(first)
        assert len(env.unwrapped.obs_names) == env.observation_space.shape[0]
        assert env.unwrapped.action_names == ["tool_vx", "tool_vy", "tool_vz", "vacuum"]
    finally:
        env.close()


@pytest.mark.parametrize("env_id", twin.gym.ENV_IDS)
def test_inprocess_and_remote_give_the_same_trajectory(env_id: str, serve) -> None:
    steps = 30
    local = gym.make(env_id, **FAST.get(env_id, {}))
    try:
        ref_obs, ref_rew = _rollout(local, seed=11, steps=steps)
    finally:
        local.close()
    with serve("--mode", "lockstep", "--state-rate", "0", *SERVER_ARGS[env_id]) as srv:
        remote = gym.make(env_id, backend="remote", control=srv.control, **FAST.get(env_id, {}))
        try:
            for _ in range(2):  # the second episode starts from the server's `reset`
                obs, rew = _rollout(remote, seed=11, steps=steps)
                assert rew == ref_rew
                for i, (a, b) in enumerate(zip(obs, ref_obs)):
                    assert np.array_equal(a, b), f"step {i} differs"
        finally:
            remote.close()
    # something happened: the arm moved / parts were released
    assert not np.array_equal(ref_obs[0], ref_obs[-1])


def test_remote_refuses_a_server_that_does_not_fit(serve) -> None:
    with serve("--mode", "lockstep", "--state-rate", "0") as srv:
        with pytest.raises(ValueError, match="no-builtin-controller"):
            gym.make("twin/DefaultLine-v0", backend="remote", control=srv.control)


def test_async_vector_env_runs_two_twins() -> None:
    envs = gym.vector.AsyncVectorEnv(
        # the "module:id" form registers the envs in each spawned worker
        [lambda: gym.make("twin.gym:twin/DefaultLine-v0")] * 2,
        context="spawn",
    )
    try:
        obs, _ = envs.reset(seed=[1, 2])
        assert obs.shape == (2, *envs.single_observation_space.shape)
        for _ in range(5):
            obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
        assert reward.shape == (2,)
        assert not np.array_equal(obs[0], obs[1])  # different seeds, different twins
    finally:
        envs.close(terminate=True)


def test_render_returns_rgb_of_the_configured_size() -> None:
    env = gym.make("twin/DefaultLine-v0", render_mode="rgb_array", render_size=(96, 60))
    try:
        env.reset(seed=0)
        img = env.render()
        assert img.shape == (60, 96, 3) and img.dtype == np.uint8
        assert img.std() > 0  # a picture, not a blank
    finally:
        env.close()


def test_episode_truncates_after_the_configured_time() -> None:
    env = gym.make("twin/LineControl-v0", steps_per_action=50, episode_seconds=1.0)
    try:
        env.reset(seed=0)
        t0 = time.monotonic()
        _, _, _, truncated, info = env.step(env.action_space.sample())
        assert not truncated
        _, _, _, truncated, info = env.step(env.action_space.sample())
        assert truncated and info["time"] == pytest.approx(1.0)
        assert time.monotonic() - t0 < 30
    finally:
        env.close()


def test_entry_point_is_declared() -> None:
    eps = importlib.metadata.entry_points(group="gymnasium.envs")
    assert any(ep.name == "twin" and ep.value == "twin.gym:register_envs" for ep in eps)
