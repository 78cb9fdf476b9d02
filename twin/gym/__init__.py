"""Gymnasium environments over the twin, in-process or over the socket.

    import gymnasium as gym, twin.gym
    env = gym.make("twin/DefaultLine-v0")                       # pick-and-place, in-process
    env = gym.make("twin/LineControl-v0", backend="remote", control="tcp://127.0.0.1:5555")

Importing this package registers the envs (and so does the `gymnasium.envs` entry point for
Gymnasium versions that load plugins). Nothing heavy is imported here: Gymnasium may call
`register_envs` while it is still importing itself.

A task sees the line only as the protocol does (snapshots, commands, `describe`): the
in-process back end composes a line with `twin.automation` and `twin.telemetry`, the remote
one is a `twin.client`. Never imports the server.
"""

from __future__ import annotations

ENV_IDS = ("twin/DefaultLine-v0", "twin/LineControl-v0")

_ENTRY = "twin.gym.env:TwinEnv"
_SPECS = {
    "twin/DefaultLine-v0": {"task": "pick_place", "steps_per_action": 5, "episode_seconds": 60.0},
    "twin/LineControl-v0": {
        "task": "line_control",
        "steps_per_action": 25,
        "episode_seconds": 300.0,
    },
}


def register_envs() -> None:
    """Register the twin envs with Gymnasium (idempotent)."""
    from gymnasium.envs.registration import register, registry

    for env_id, kwargs in _SPECS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=_ENTRY, kwargs=dict(kwargs))


register_envs()
