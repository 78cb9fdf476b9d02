"""Evaluate a random or scripted policy on N twin envs (sync or async vector) and print the
step rate. No RL library needed.

    python examples/gym_random_policy.py --env twin/LineControl-v0 --envs 2 --vector async
    python examples/gym_random_policy.py --policy nominal --seconds 60

`nominal` is a scripted baseline: all actions 0, i.e. every setpoint mid-range (for
LineControl-v0: belts at half their max speed, parts released at the configured rate);
for DefaultLine-v0 it leaves the arm where it is.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import twin.gym  # noqa: F401  registers the envs in this process


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="twin/DefaultLine-v0", choices=twin.gym.ENV_IDS)
    ap.add_argument("--envs", type=int, default=2, help="number of envs")
    ap.add_argument("--vector", choices=["sync", "async"], default="async")
    ap.add_argument("--policy", choices=["random", "nominal"], default="random")
    ap.add_argument("--seconds", type=float, default=10.0, help="simulated seconds per env")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    env_id = "twin.gym:" + args.env  # workers import twin.gym by themselves
    fns = [lambda: gym.make(env_id) for _ in range(args.envs)]
    if args.vector == "async":
        envs = gym.vector.AsyncVectorEnv(fns, context="spawn")
    else:
        envs = gym.vector.SyncVectorEnv(fns)
    try:
        envs.reset(seed=args.seed)
        envs.action_space.seed(args.seed)
        probe = gym.make(env_id)
        env_dt = probe.unwrapped.env_dt
        probe.close()
        n_steps = max(1, round(args.seconds / env_dt))
        returns = np.zeros(args.envs)
        t0 = time.perf_counter()
        for _ in range(n_steps):
            if args.policy == "random":
                action = envs.action_space.sample()
            else:
                action = np.zeros(envs.action_space.shape, dtype=np.float32)
            _, reward, _, _, info = envs.step(action)
            returns += reward
        wall = time.perf_counter() - t0
    finally:
        envs.close()
    total = n_steps * args.envs
    print(
        f"{args.env} x{args.envs} ({args.vector}), {args.policy} policy, {args.seconds} s simulated"
    )
    print(f"return per env: {np.round(returns, 3).tolist()}")
    print(f"{total} env steps in {wall:.2f} s: {total / wall:.1f} steps/s")
    print(f"simulated/wall per env: {n_steps * env_dt / wall:.2f}x")


if __name__ == "__main__":
    main()
