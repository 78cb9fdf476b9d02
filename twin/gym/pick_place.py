"""Pick-and-place: the policy drives one arm's tool and vacuum; the rest of the line runs by rules.

Action (4 values in [-1, 1]): tool velocity x, y, z (scaled to `speed` x the arm's
max_tool_speed, held for one env step) and vacuum (on if > 0). Each step the arm gets a
`move_to` to (tool + delta), clipped to a workspace box around the arm's taught points; a
job still running is halted first, so the latest action always wins.

Reward: + `place_reward` for each part set down on a station fixture (credited once per
part), + `deliver_reward` for each part that reaches a sink after a station finished it,
- `drop_penalty` for each part that falls to the floor, - `collision_penalty` for each step
the tool is held back from its target by more than `collision_tol` (it is pushing against
something: the protocol has no contact signal), - `refused_penalty` per refused command.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from twin.config import ArmConfig, LineConfig, SinkConfig, StationConfig
from twin.gym import geometry
from twin.gym.backends import Snapshot
from twin.gym.rules import line_rules
from twin.gym.spaces import SignalEncoder, unit_box
from twin.gym.task import Port


class PickPlaceTask:
    builtin_controller = False  # the env runs the line's rules itself, minus the transfers

    def __init__(
        self,
        cfg: LineConfig,
        *,
        arm: str | None = None,
        speed: float = 0.5,
        part_slots: int = 3,
        place_reward: float = 1.0,
        deliver_reward: float = 1.0,
        drop_penalty: float = 1.0,
        collision_penalty: float = 0.05,
        collision_tol: float = 0.02,
        refused_penalty: float = 0.01,
    ) -> None:
        self.cfg = cfg
        chosen = cfg.device(arm) if arm else geometry.first_arm(cfg)
        if not isinstance(chosen, ArmConfig):
            raise ValueError(f"'{arm}' is a {chosen.__struct_config__.tag}, not an arm")
        self.arm: ArmConfig = chosen
        self.speed = speed
        self.part_slots = part_slots
        self.weights = (place_reward, deliver_reward, drop_penalty, collision_penalty)
        self.collision_tol = collision_tol
        self.refused_penalty = refused_penalty
        self.low, self.high = geometry.workspace(cfg, self.arm)
        self.floor_z = min(geometry.surfaces_z(cfg), default=0.3) - 0.2
        self.stations = [d.id for d in cfg.devices if isinstance(d, StationConfig)]
        self.sinks = [d.id for d in cfg.devices if isinstance(d, SinkConfig)]
        self.action_space = unit_box(4)
        self.action_names = ["tool_vx", "tool_vy", "tool_vz", "vacuum"]

    def bind(self, devices: list[dict[str, Any]], first: Snapshot, env_dt: float) -> None:
        self.devices = devices
        self.env_dt = env_dt
        self.step_len = self.speed * self.arm.max_tool_speed * env_dt  # m per env step
        self.encoder = SignalEncoder(devices, first.signals)
        slots = [f"part{i}.{k}" for i in range(self.part_slots) for k in ("dx", "dy", "dz", "on")]
        self.obs_names = [*self.encoder.names, *slots, "time_left"]
        n_extra = len(slots) + 1
        low = np.concatenate([self.encoder.low, np.full(n_extra, -np.inf, np.float32)])
        high = np.concatenate([self.encoder.high, np.full(n_extra, np.inf, np.float32)])
        self.observation_space = spaces.Box(low, high, dtype=np.float32)

    # episode ---------------------------------------------------------------------------
    def start(self, snap: Snapshot, port: Port) -> None:
        self.rules = line_rules(self.cfg, self.env_dt, Port(port.backend))
        self.placed: set[int] = set()
        self.finished: set[int] = set()  # parts a station completed
        self.dropped: set[int] = set()
        self.sink_counts = {s: snap.signals[s]["count"] for s in self.sinks}
        self.target: np.ndarray | None = None
        self.totals = dict.fromkeys(("placed", "delivered", "dropped", "collisions"), 0)
        self.refused_seen = port.refused

    def act(self, action: np.ndarray, snap: Snapshot, port: Port) -> None:
        if self.rules is not None:
            self.rules.tick(snap.signals)
        arm = snap.signals[self.arm.id]
        a = np.clip(np.asarray(action, dtype=float), -1.0, 1.0)
        tool = np.array(arm["tool_position"])
        target = np.clip(tool + a[:3] * self.step_len, self.low, self.high)
        self.target = None
        if np.max(np.abs(target - tool)) > 1e-4:
            if arm["busy"]:
                port.send(self.arm.id, "halt")
            if port.send(self.arm.id, "move_to", {"position": target.tolist()}):
                self.target = target
        vacuum = bool(a[3] > 0)
        if vacuum != arm["vacuum"]:
            port.send(self.arm.id, "vacuum", {"on": vacuum})

    # scoring ---------------------------------------------------------------------------
    def score(self, snap: Snapshot, port: Port) -> tuple[float, dict[str, Any]]:
        sig = snap.signals
        holding = sig[self.arm.id]["holding"]
        placed = delivered = dropped = 0
        for st in self.stations:
            part = sig[st]["part"]
            if part is not None and part != holding and part not in self.placed:
                self.placed.add(part)
                placed += 1
            if part is not None and sig[st]["part_done"]:
                self.finished.add(part)
        for sk in self.sinks:
            count = sig[sk]["count"]
            if count > self.sink_counts[sk] and sig[sk]["last_part"] in self.finished:
                delivered += count - self.sink_counts[sk]
            self.sink_counts[sk] = count
        for p in snap.parts:
            if p["position"][2] < self.floor_z and p["id"] not in self.dropped:
                self.dropped.add(p["id"])
                dropped += 1
        tool = np.array(sig[self.arm.id]["tool_position"])
        collided = int(
            self.target is not None and np.linalg.norm(tool - self.target) > self.collision_tol
        )
        refused = port.refused - self.refused_seen
        self.refused_seen = port.refused
        w_place, w_deliver, w_drop, w_collide = self.weights
        reward = (
            w_place * placed
            + w_deliver * delivered
            - w_drop * dropped
            - w_collide * collided
            - self.refused_penalty * refused
        )
        for key, n in zip(self.totals, (placed, delivered, dropped, collided)):
            self.totals[key] += n
        return reward, dict(self.totals)

    # observation -----------------------------------------------------------------------
    def observe(self, snap: Snapshot, time_left: float) -> np.ndarray:
        values = self.encoder.encode(snap.signals, snap.time)
        tool = np.array(snap.signals[self.arm.id]["tool_position"])
        rel = sorted(
            (float(np.linalg.norm(d)), p["id"], d)
            for p in snap.parts
            for d in [np.array(p["position"]) - tool]
        )
        for i in range(self.part_slots):
            if i < len(rel):
                values.extend([*rel[i][2].tolist(), 1.0])
            else:
                values.extend([0.0, 0.0, 0.0, 0.0])
        values.append(time_left)
        return np.array(values, dtype=np.float32)
