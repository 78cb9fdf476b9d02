"""Line-level control: the policy sets belt speeds and the part release rate; robots and
stations keep running under the built-in sequencer.

Action (values in [-1, 1]): one per setpoint command the line declares (a command with a
single float argument with min and max, e.g. each conveyor's `set_speed`), mapped onto
[min, max]; then one per source: the release rate in [0, `max_rate_factor` / interval]
parts/s. Sources are disabled at reset and release parts by `spawn` as the rate accrues.
A setpoint is sent only when it moves by more than 1% of its range.

Reward: + `complete_reward` per part completed at a sink, - `wip_penalty` per part on the
line per second, - `blocked_penalty` per blocked device (a station holding a finished part,
a source whose drop zone is occupied) per second.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from twin.config import LineConfig, SourceConfig, StationConfig
from twin.gym.backends import Snapshot
from twin.gym.spaces import SignalEncoder, unit_box, unit_to_range
from twin.gym.task import Port

_DEADBAND = 0.01  # of the range


def setpoints(devices: list[dict[str, Any]]) -> list[tuple[str, str, str, float, float]]:
    """(device, command, arg, min, max) for every single-float-argument command with bounds."""
    out = []
    for dev in devices:
        for cmd in dev["commands"]:
            args = cmd["args"]
            if len(args) == 1 and args[0]["type"] == "float":
                lo, hi = args[0].get("min"), args[0].get("max")
                if lo is not None and hi is not None:
                    out.append((dev["id"], cmd["name"], args[0]["name"], float(lo), float(hi)))
    return out


class LineControlTask:
    builtin_controller = True

    def __init__(
        self,
        cfg: LineConfig,
        *,
        max_rate_factor: float = 2.0,
        complete_reward: float = 1.0,
        wip_penalty: float = 0.01,
        blocked_penalty: float = 0.05,
    ) -> None:
        self.cfg = cfg
        self.sources = [
            (d.id, max_rate_factor / d.interval) for d in cfg.devices if isinstance(d, SourceConfig)
        ]
        self.weights = (complete_reward, wip_penalty, blocked_penalty)
        self.stations = [d.id for d in cfg.devices if isinstance(d, StationConfig)]

    def bind(self, devices: list[dict[str, Any]], first: Snapshot, env_dt: float) -> None:
        self.env_dt = env_dt
        self.setpoints = setpoints(devices)
        self.action_names = [f"{d}.{c}.{a}" for d, c, a, _, _ in self.setpoints] + [
            f"{s}.rate" for s, _ in self.sources
        ]
        self.action_space = unit_box(len(self.action_names))
        self.encoder = SignalEncoder(devices, first.signals)
        self.obs_names = [*self.encoder.names, "wip", "time_left"]
        low = np.concatenate([self.encoder.low, np.zeros(2, np.float32)])
        high = np.concatenate([self.encoder.high, np.full(2, np.inf, np.float32)])
        self.observation_space = spaces.Box(low, high, dtype=np.float32)

    def start(self, snap: Snapshot, port: Port) -> None:
        self.sent: dict[int, float] = {}
        self.credit = {s: 1.0 for s, _ in self.sources}  # the first part goes at once
        for s, _ in self.sources:
            port.send(s, "disable")
        self.completed = snap.counts["parts_completed"]
        self.totals = {"completed": 0, "wip_seconds": 0.0, "blocked_seconds": 0.0}

    def act(self, action: np.ndarray, snap: Snapshot, port: Port) -> None:
        a = np.asarray(action, dtype=float)
        for i, (dev, cmd, arg, lo, hi) in enumerate(self.setpoints):
            value = unit_to_range(a[i], lo, hi)
            if abs(value - self.sent.get(i, np.inf)) > _DEADBAND * (hi - lo):
                if port.send(dev, cmd, {arg: value}):
                    self.sent[i] = value
        for j, (src, max_rate) in enumerate(self.sources):
            rate = unit_to_range(a[len(self.setpoints) + j], 0.0, max_rate)
            # accrue at most one part: a blocked drop zone must not build a burst
            self.credit[src] = min(1.0, self.credit[src] + rate * self.env_dt)
            if self.credit[src] >= 1.0 and not snap.signals[src]["blocked"]:
                if port.send(src, "spawn"):
                    self.credit[src] -= 1.0

    def score(self, snap: Snapshot, port: Port) -> tuple[float, dict[str, Any]]:
        done = snap.counts["parts_completed"] - self.completed
        self.completed = snap.counts["parts_completed"]
        wip = snap.counts["wip"]
        sig = snap.signals
        blocked = sum(sig[s]["blocked"] for s in self.stations) + sum(
            sig[s]["blocked"] for s, _ in self.sources
        )
        w_done, w_wip, w_blocked = self.weights
        dt = self.env_dt
        self.totals["completed"] += done
        self.totals["wip_seconds"] += wip * dt
        self.totals["blocked_seconds"] += blocked * dt
        return w_done * done - w_wip * wip * dt - w_blocked * blocked * dt, dict(self.totals)

    def observe(self, snap: Snapshot, time_left: float) -> np.ndarray:
        values = self.encoder.encode(snap.signals, snap.time)
        values += [float(snap.counts["wip"]), time_left]
        return np.array(values, dtype=np.float32)
