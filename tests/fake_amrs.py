"""A kinematic stand-in for AMRs on a route network (no physics), for the traffic and fleet
logic's unit tests: it obeys go_along / dock / undock like the AMR device, at a fixed speed,
and reports the same signals."""

from __future__ import annotations

import math
from typing import Any

from twin.devices.base import CommandError
from twin.routes import RouteNetwork


class FakeAmr:
    def __init__(self, amr_id: str, net: RouteNetwork, start: str) -> None:
        self.id = amr_id
        self.net = net
        if start in net.docks:
            d = net.docks[start]
            self.pos = (d.position[0], d.position[1])
            self.yaw, self.node, self.dock = d.yaw, "", start
            self.state = "docked"
        else:
            self.pos, self.yaw, self.node, self.dock = net.nodes[start], 0.0, start, ""
            self.state = "idle"
        self.path: list[tuple[float, float]] = []  # points still to drive to
        self.moves_done = 0
        self.result = ""
        self.load: int | None = None
        self.battery = 1.0
        self._end: tuple[str, str] = ("", "")  # node, dock when the move ends
        self._nodes_ahead: list[str] = []
        self.obstacle = False  # something ahead: every move ends blocked where it starts

    def signals(self) -> dict[str, Any]:
        return {
            "x": self.pos[0],
            "y": self.pos[1],
            "yaw": self.yaw,
            "state": self.state,
            "node": self.node,
            "dock": self.dock,
            "moves_done": self.moves_done,
            "result": self.result,
            "load": self.load,
            "load_type": "",
            "battery": self.battery,
            "goal": "",
        }

    def command(self, name: str, args: dict[str, Any]) -> None:
        ahead = self._nodes_ahead[0] if self._nodes_ahead else None
        if self.state == "driving" and name == "go_along" and args["nodes"][0] == ahead:
            self._extend(args["nodes"])  # as the AMR device: the lane being driven, then on
            return
        if self.state in ("driving", "docking", "undocking"):
            raise CommandError("busy", f"{self.id} is moving")
        if name == "go_along":
            nodes = args["nodes"]
            if self.dock:
                raise CommandError("docked", f"{self.id} is docked")
            if math.dist(self.pos, self.net.nodes[nodes[0]]) > 0.05:
                raise CommandError("bad_value", f"{self.id} is not at {nodes[0]}")
            for a, b in zip(nodes, nodes[1:], strict=False):
                if b not in self.net.out[a]:
                    raise CommandError("bad_value", f"no lane {a}->{b}")
            self.path = [self.net.nodes[n] for n in nodes[1:]]
            self._nodes_ahead = list(nodes[1:])
            self._end = (nodes[-1], "")
            self.state, self.node = "driving", nodes[0]
        elif name == "dock":
            d = self.net.docks[args["dock"]]
            if self.dock or math.dist(self.pos, self.net.nodes[d.node]) > 0.05:
                raise CommandError("not_at_dock", f"{self.id} is not at {d.node}")
            self.path = [(d.position[0], d.position[1])]
            self._nodes_ahead = [""]
            self._end = ("", args["dock"])
            self.state = "docking"
        elif name == "undock":
            if not self.dock:
                raise CommandError("not_docked", f"{self.id} is not docked")
            node = self.net.docks[self.dock].node
            self.path = [self.net.nodes[node]]
            self._nodes_ahead = [node]
            self._end = (node, "")
            self.dock, self.state = "", "undocking"
        else:
            raise CommandError("unknown_command", name)

    def _extend(self, nodes: list[str]) -> None:
        for a, b in zip(nodes, nodes[1:], strict=False):
            if b not in self.net.out[a]:
                raise CommandError("bad_value", f"no lane {a}->{b}")
        self.path = self.path[:1] + [self.net.nodes[n] for n in nodes[1:]]
        self._nodes_ahead = list(nodes)
        self._end = (nodes[-1], "")

    def step(self, dt: float, speed: float = 1.0) -> None:
        if not self.path:
            return
        if self.obstacle and self.state == "driving":
            self.path, self.state, self.result = [], "idle", "blocked"
            self.moves_done += 1
            return
        budget = speed * dt
        while self.path and budget > 0:
            tx, ty = self.path[0]
            d = math.dist(self.pos, (tx, ty))
            if d > 1e-9 and self.state == "driving":
                self.yaw = math.atan2(ty - self.pos[1], tx - self.pos[0])
            if d <= budget:
                self.pos = (tx, ty)
                budget -= d
                self.path.pop(0)
                self.node = self._nodes_ahead.pop(0)
            else:
                self.pos = (
                    self.pos[0] + (tx - self.pos[0]) * budget / d,
                    self.pos[1] + (ty - self.pos[1]) * budget / d,
                )
                self.node = ""
                budget = 0
        if not self.path:
            self.node, self.dock = self._end
            if self.dock:
                self.yaw = self.net.docks[self.dock].yaw
            self.state = "docked" if self.dock else "idle"
            self.moves_done += 1
            self.result = "ok"


class FakeFleet:
    """The AMRs, and the port commands go through."""

    def __init__(self, net: RouteNetwork, starts: dict[str, str]) -> None:
        self.amrs = {a: FakeAmr(a, net, s) for a, s in starts.items()}
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    def send(self, device: str, command: str, args: dict[str, Any] | None = None) -> None:
        self.amrs[device].command(command, args or {})
        self.sent.append((device, command, dict(args or {})))

    def signals(self) -> dict[str, dict[str, Any]]:
        return {a: amr.signals() for a, amr in self.amrs.items()}

    def step(self, dt: float) -> None:
        for amr in self.amrs.values():
            amr.step(dt)


def rectangles_overlap(
    a: tuple[float, float, float], b: tuple[float, float, float], length: float, width: float
) -> bool:
    """Do two AMR bodies (x, y, yaw) of length x width overlap? (separating axes)"""

    def corners(p: tuple[float, float, float]) -> list[tuple[float, float]]:
        x, y, yaw = p
        c, s = math.cos(yaw), math.sin(yaw)
        out = []
        for dx, dy in ((1, 1), (1, -1), (-1, -1), (-1, 1)):
            lx, ly = dx * length / 2, dy * width / 2
            out.append((x + c * lx - s * ly, y + s * lx + c * ly))
        return out

    ca, cb = corners(a), corners(b)
    for yaw in (a[2], a[2] + math.pi / 2, b[2], b[2] + math.pi / 2):
        ax, ay = math.cos(yaw), math.sin(yaw)
        pa = [x * ax + y * ay for x, y in ca]
        pb = [x * ax + y * ay for x, y in cb]
        if max(pa) < min(pb) or max(pb) < min(pa):
            return False
    return True
