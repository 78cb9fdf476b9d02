"""The AMR route network, from the line config alone: nodes, lanes, docks and chargers as a
directed graph, with shortest routes and the straight legs an AMR drives.

Used by the AMR device (where to drive), the fleet and traffic managers (which route, which
nodes to reserve), `describe` and the config checks, so they cannot disagree. Nothing here
reads the physics.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twin.config import AmrConfig, DockConfig, LineConfig

Fail = Callable[[str, str], None]


@dataclass(frozen=True)
class Leg:
    """One straight lane of a route, driven from `start` to `end`."""

    start: str
    end: str
    length: float  # m
    speed: float | None  # m/s limit on this lane (None: the AMR's own)


@dataclass
class RouteNetwork:
    """Nodes (id -> x, y) and the lanes out of each node."""

    nodes: dict[str, tuple[float, float]]
    out: dict[str, dict[str, Leg]] = field(default_factory=dict)
    docks: dict[str, DockConfig] = field(default_factory=dict)  # dock id -> its config
    chargers: dict[str, str] = field(default_factory=dict)  # charger id -> node
    charger_power: dict[str, float] = field(default_factory=dict)  # node -> W (best charger)

    @classmethod
    def from_config(cls, cfg: LineConfig) -> RouteNetwork:
        net = cfg.network
        nodes = {n.id: (n.position[0], n.position[1]) for n in net.nodes} if net else {}
        graph = cls(nodes, {n: {} for n in nodes})
        if net is not None:
            for lane in net.lanes:
                graph._add(lane.from_, lane.to, lane.speed)
                if lane.two_way:
                    graph._add(lane.to, lane.from_, lane.speed)
            graph.chargers = {c.id: c.node for c in net.chargers}
            for c in net.chargers:
                graph.charger_power[c.node] = max(c.power, graph.charger_power.get(c.node, 0.0))
        graph.docks = {d.id: d for d in cfg.devices if isinstance(d, DockConfig)}
        return graph

    def _add(self, a: str, b: str, speed: float | None) -> None:
        length = math.dist(self.nodes[a], self.nodes[b])
        self.out[a][b] = Leg(a, b, length, speed)

    def route(self, start: str, goal: str, closed: frozenset[str] = frozenset()) -> list[str]:
        """The shortest node sequence from `start` to `goal` (both included), avoiding the
        nodes in `closed`; empty if there is none."""
        if start not in self.nodes or goal not in self.nodes:
            return []
        if start == goal:
            return [start]
        best = {start: 0.0}
        came: dict[str, str] = {}
        heap = [(0.0, start)]
        while heap:
            d, node = heapq.heappop(heap)
            if node == goal:
                path = [goal]
                while path[-1] != start:
                    path.append(came[path[-1]])
                return path[::-1]
            if d > best[node]:
                continue
            for nxt, leg in self.out[node].items():
                if nxt in closed and nxt != goal:
                    continue
                nd = d + leg.length
                if nd < best.get(nxt, math.inf):
                    best[nxt] = nd
                    came[nxt] = node
                    heapq.heappush(heap, (nd, nxt))
        return []

    def legs(self, path: list[str]) -> list[Leg]:
        return [self.out[a][b] for a, b in zip(path, path[1:], strict=False)]

    def length(self, path: list[str]) -> float:
        """Length of a route in m."""
        return sum(leg.length for leg in self.legs(path))

    def distance(self, start: str, goal: str) -> float:
        """Length of the shortest route in m (inf if there is none)."""
        path = self.route(start, goal)
        return sum(leg.length for leg in self.legs(path)) if path else math.inf

    def reachable(self, start: str) -> set[str]:
        seen = {start}
        todo = [start]
        while todo:
            for nxt in self.out[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen


def network_description(cfg: LineConfig) -> dict[str, Any] | None:
    """The route network as `describe` tells it: nodes with positions, lanes with their
    direction and length, chargers, and docks with their approach node (None: no network)."""
    if cfg.network is None:
        return None
    graph = RouteNetwork.from_config(cfg)
    lanes = []
    for lane in cfg.network.lanes:
        (ax, ay), (bx, by) = graph.nodes[lane.from_], graph.nodes[lane.to]
        length = math.hypot(bx - ax, by - ay)
        lanes.append(
            {
                "from": lane.from_,
                "to": lane.to,
                "two_way": lane.two_way,
                "length": length,
                "direction": [(bx - ax) / length, (by - ay) / length] if length else [0.0, 0.0],
                "speed": lane.speed,
            }
        )
    return {
        "nodes": [{"id": n.id, "position": list(n.position)} for n in cfg.network.nodes],
        "lanes": lanes,
        "chargers": [{"id": c.id, "node": c.node, "power": c.power} for c in cfg.network.chargers],
        "docks": [
            {"id": d.id, "node": d.node, "position": list(d.position), "yaw": d.yaw}
            for d in graph.docks.values()
        ],
    }


def check_network(cfg: LineConfig, fail: Fail) -> None:
    """What ranges cannot say about the network: lanes, chargers, docks and AMR starts name
    nodes that exist, and every dock and charger can be reached from every node."""
    net = cfg.network
    docks = [d for d in cfg.devices if isinstance(d, DockConfig)]
    amrs = [d for d in cfg.devices if isinstance(d, AmrConfig)]
    if net is None:
        if docks or amrs:
            first = (docks or amrs)[0]
            fail("network", f"'{first.id}' needs a [network] of nodes and lanes (none given)")
        return
    names: set[str] = set()
    for i, n in enumerate(net.nodes):
        if n.id in names:
            fail(f"network.nodes[{i}].id", f"duplicate node '{n.id}'")
        names.add(n.id)

    def node(field_name: str, ref: str) -> None:
        if ref not in names:
            known = ", ".join(sorted(names)[:12])
            fail(field_name, f"unknown node '{ref}' (known: [{known}])")

    for i, lane in enumerate(net.lanes):
        node(f"network.lanes[{i}].from", lane.from_)
        node(f"network.lanes[{i}].to", lane.to)
        if lane.from_ == lane.to:
            fail(f"network.lanes[{i}].to", f"a lane from '{lane.from_}' to itself")
    for i, c in enumerate(net.chargers):
        node(f"network.chargers[{i}].node", c.node)
    dock_ids = {d.id for d in docks}
    for d in docks:
        node(f"devices (device '{d.id}').node", d.node)
        if d.position[2] != 0.0:
            fail(
                f"devices (device '{d.id}').position",
                f"z = {d.position[2]} m: a dock is on the floor (z = 0), where AMRs drive",
            )
    starts: dict[str, str] = {}
    for a in amrs:
        if a.start not in names and a.start not in dock_ids:
            fail(f"devices (device '{a.id}').start", f"'{a.start}' is neither a node nor a dock")
        if a.start in starts:
            fail(
                f"devices (device '{a.id}').start",
                f"'{a.start}' is where '{starts[a.start]}' starts: two AMRs cannot start on one spot",
            )
        starts[a.start] = a.id
        if a.size[2] != amrs[0].size[2]:
            fail(
                f"devices (device '{a.id}').size",
                f"deck height {a.size[2]} m differs from '{amrs[0].id}' ({amrs[0].size[2]} m): "
                "arms are taught one deck height at every dock",
            )
    graph = RouteNetwork.from_config(cfg)
    # every node must reach every dock's and charger's node, and back: otherwise an AMR can
    # get to a place it never leaves
    targets = {d.node: f"dock '{d.id}'" for d in docks}
    targets.update({c.node: f"charger '{c.id}'" for c in net.chargers})
    if not targets:
        return
    for name in sorted(names):
        missing = sorted(targets[t] for t in targets if t not in graph.reachable(name))
        if missing:
            fail("network.lanes", f"{missing[0]} cannot be reached from node '{name}'")
