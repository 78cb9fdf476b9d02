"""What a task is to the env: spaces, how actions become commands, and how the reward is scored.

A task sees the line only through snapshots (the protocol's `state`) and sends commands
through a `Port`, so it behaves the same on every back end.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from gymnasium import spaces

from twin.devices.base import CommandError
from twin.gym.backends import Backend, Snapshot


class Port:
    """Sends commands to the back end; a refused command is counted, never raised."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.refused = 0
        self.last_error = ""

    def send(self, device: str, command: str, args: dict[str, Any] | None = None) -> bool:
        try:
            self.backend.command(device, command, args or {})
        except CommandError as e:
            self.refused += 1
            self.last_error = f"{device}.{command}: {e.code}: {e.message}"
            return False
        return True


class Task(Protocol):
    builtin_controller: bool  # whether the line's own sequencer runs during the episode
    observation_space: spaces.Box
    action_space: spaces.Box
    obs_names: list[str]  # one per observation element
    action_names: list[str]  # one per action element

    def bind(self, devices: list[dict[str, Any]], first: Snapshot, env_dt: float) -> None:
        """Build the spaces from the line's self-description and a first reading."""

    def start(self, snap: Snapshot, port: Port) -> None:
        """A new episode: forget scores, send any initial commands."""

    def act(self, action: np.ndarray, snap: Snapshot, port: Port) -> None:
        """Turn one action into commands, given the state before the step."""

    def score(self, snap: Snapshot, port: Port) -> tuple[float, dict[str, Any]]:
        """Reward for the step that led to `snap`, and info."""

    def observe(self, snap: Snapshot, time_left: float) -> np.ndarray: ...
