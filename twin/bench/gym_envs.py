"""Step rates of the Gymnasium envs, for `twin bench`: in-process, remote (a `twin serve`
subprocess in lockstep mode) and an AsyncVectorEnv of 2 in-process twins.

Each record is a dict with BenchResult's fields (name, ours, baseline, unit, details);
rates are env steps per wall-clock second under a random policy on twin/DefaultLine-v0
(one env step = 5 twin steps = 0.05 s simulated). As every benchmark does, each one
alternates short blocks of ours and of its baseline and reports medians, so both see the
same load on the machine: the in-process env against the bare Line stepping the same number
of twin steps without an env around it, the remote env and the vector env against the
in-process env.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from twin.bench.result import median
from twin.serve_process import ServeProcess

ENV_ID = "twin.gym:twin/DefaultLine-v0"
BLOCK = 10  # env steps per block: tens of ms, so ours and the baseline take turns often


def _stepper(env: gym.Env | gym.vector.VectorEnv) -> Callable[[], object]:
    """One env step under a seeded random policy, from a fresh episode."""
    env.reset(seed=0)
    env.action_space.seed(0)
    sample, step = env.action_space.sample, env.step
    return lambda: step(sample())


def _bare_stepper(line: Any, steps_per_action: int) -> Callable[[], object]:
    def step() -> None:
        line.step(steps_per_action)
        line.drain_events()

    return step


def _alternate(steps: list[Callable[[], object]], seconds: float) -> list[float]:
    """Each stepper BLOCK times in turn until `seconds` have passed (one round at least);
    the median rate of each, in calls per second."""
    rates: list[list[float]] = [[] for _ in steps]
    deadline = time.perf_counter() + seconds
    while not rates[0] or time.perf_counter() < deadline:
        for step, out in zip(steps, rates):
            t0 = time.perf_counter()
            for _ in range(BLOCK):
                step()
            out.append(BLOCK / (time.perf_counter() - t0))
    return [median(r) for r in rates]


def _record(name: str, ours: float, baseline: float | None, **details: Any) -> dict[str, Any]:
    return {
        "name": name,
        "ours": round(ours, 1),
        "baseline": None if baseline is None else round(baseline, 1),
        "unit": "env steps/s",
        "details": details,
    }


def measure(seconds: float) -> list[dict[str, Any]]:
    """Env step rates, each pair alternated for about `seconds` of wall-clock time."""
    from twin.automation import build_line
    from twin.config import load
    from twin.gym.env import DEFAULT_CONFIG

    env = gym.make(ENV_ID)
    twin_env: Any = env.unwrapped  # a twin.gym.env.TwinEnv
    spa, env_dt = twin_env.steps_per_action, twin_env.env_dt
    out = []
    try:
        local = _stepper(env)
        with build_line(load(DEFAULT_CONFIG)) as line:
            ours, bare = _alternate([local, _bare_stepper(line, spa)], seconds)
        out.append(_record("gym_inprocess", ours, bare, baseline_is="bare Line, same twin steps"))

        with ServeProcess(
            "--mode", "lockstep", "--no-builtin-controller", "--state-rate", "0"
        ) as server:
            remote_env = gym.make(ENV_ID, backend="remote", control=server.control)
            try:
                remote, base = _alternate([_stepper(remote_env), local], seconds)
            finally:
                remote_env.close()
        out.append(_record("gym_remote", remote, base, baseline_is="in-process env"))

        vec = gym.vector.AsyncVectorEnv([lambda: gym.make(ENV_ID)] * 2, context="spawn")
        try:
            rate, base = _alternate([_stepper(vec), local], seconds)
        finally:
            vec.close(terminate=True)
        out.append(
            _record("gym_async_vec2", 2 * rate, base, baseline_is="one in-process env", n_envs=2)
        )
    finally:
        env.close()
    for rec in out:
        rec["details"]["sim_s_per_step"] = env_dt
        rec["details"]["steps_per_block"] = BLOCK
    return out


if __name__ == "__main__":
    for rec in measure(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0):
        print(rec)
