"""Step rates of the Gymnasium envs, for `twin bench`: in-process, remote (a `twin serve`
subprocess in lockstep mode) and an AsyncVectorEnv of 2 in-process twins.

Each record is a dict with BenchResult's fields (name, ours, baseline, unit, details);
rates are env steps per wall-clock second under a random policy on twin/DefaultLine-v0
(one env step = 5 twin steps = 0.05 s simulated). The in-process baseline is the bare
Line stepping the same number of twin steps without an env around it.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import gymnasium as gym

from twin.serve_process import ServeProcess

ENV_ID = "twin.gym:twin/DefaultLine-v0"


def _env_rate(env: gym.Env | gym.vector.VectorEnv, seconds: float, n_envs: int = 1) -> float:
    env.reset(seed=0)
    env.action_space.seed(0)
    steps, t0 = 0, time.perf_counter()
    while steps == 0 or time.perf_counter() - t0 < seconds:
        env.step(env.action_space.sample())
        steps += 1
    return steps * n_envs / (time.perf_counter() - t0)


def _bare_line_rate(seconds: float, steps_per_action: int) -> float:
    from twin.automation import build_line
    from twin.config import load
    from twin.gym.env import DEFAULT_CONFIG

    with build_line(load(DEFAULT_CONFIG)) as line:
        steps, t0 = 0, time.perf_counter()
        while steps == 0 or time.perf_counter() - t0 < seconds:
            line.step(steps_per_action)
            line.drain_events()
            steps += 1
        return steps / (time.perf_counter() - t0)


def _record(name: str, ours: float, baseline: float | None, **details: Any) -> dict[str, Any]:
    return {
        "name": name,
        "ours": round(ours, 1),
        "baseline": None if baseline is None else round(baseline, 1),
        "unit": "env steps/s",
        "details": details,
    }


def measure(seconds: float) -> list[dict[str, Any]]:
    """Env step rates, each measured for about `seconds` of wall-clock time."""
    env = gym.make(ENV_ID)
    twin_env: Any = env.unwrapped  # a twin.gym.env.TwinEnv
    spa, env_dt = twin_env.steps_per_action, twin_env.env_dt
    try:
        local = _env_rate(env, seconds)
    finally:
        env.close()
    bare = _bare_line_rate(seconds, spa)
    out = [_record("gym_inprocess", local, bare, baseline_is="bare Line, same twin steps")]

    with ServeProcess(
        "--mode", "lockstep", "--no-builtin-controller", "--state-rate", "0"
    ) as server:
        env = gym.make(ENV_ID, backend="remote", control=server.control)
        try:
            remote = _env_rate(env, seconds)
        finally:
            env.close()
    out.append(_record("gym_remote", remote, local, baseline_is="in-process env"))

    vec = gym.vector.AsyncVectorEnv([lambda: gym.make(ENV_ID)] * 2, context="spawn")
    try:
        rate = _env_rate(vec, seconds, n_envs=2)
    finally:
        vec.close(terminate=True)
    out.append(_record("gym_async_vec2", rate, local, baseline_is="one in-process env", n_envs=2))
    for rec in out:
        rec["details"]["sim_s_per_step"] = env_dt
    return out


if __name__ == "__main__":
    for rec in measure(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0):
        print(rec)
