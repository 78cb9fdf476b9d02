"""Traffic: reservations on the route network so AMRs never collide and never deadlock.

The floor is cut into resources, each with the shape an AMR's body can take on it: a node (a
circle of the body's half diagonal: it turns in place there), a lane (the body's width along
the lane, and beyond each end half its length plus its safety field's protective distance,
so nothing reserved around a lane ever stops an AMR on it), a dock (the docked body) and a
dock's path (from its approach node to the dock). Two resources conflict when their shapes
come closer than `clearance`. An AMR may hold a resource only while no other AMR holds one
that conflicts with it, so two bodies can never meet.

Two kinds of move, and no deadlock:
- a short move (at most `WHOLE_MAX` m) holds ALL of its route at once (its place, every
  lane and node to the goal, the dock path and dock), even where others are only queued: it
  never waits for another, so it always arrives, freeing what it passes as it goes; it may
  not end where anyone is queued;
- a longer move gets in line for its whole route at once, behind the moves booked before
  it, and takes its route part by part as it comes free, at most `HORIZON` m ahead: it
  follows AMRs driving ahead of it, and may pass through places others will use later. It
  queues only behind AMRs on their way, never near where they stop. Every resource goes to
  the moves in line for it in booking order, so a move in line waits only for older moves
  or short ones, never in a circle;
- a move in line whose next part is taken by an AMR standing still (one that stopped short
  of its goal), or that waits `FOLLOW_PATIENCE` s, ends where what it holds ends, leaves
  the line, and plans again from there;
- a route is planned around resources others hold; an AMR with no route waits holding only
  where it stands;
- an AMR that stands in the way of a waiting one and may be moved (idle, parked, or waiting
  itself and younger in the queue) is sent to the nearest free node off the waiting AMR's
  route; the oldest waiting AMR always gets its way, so every wait ends.

Nothing here reads the physics: it acts through the control port (`go_along`, `dock`,
`undock`) and reads the AMRs' signals (x, y, state, node, dock, moves_done, result).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from twin.config import AmrConfig
from twin.control.port import CommandPort
from twin.devices.amr_safety import SIDE_MARGIN
from twin.devices.base import CommandError
from twin.routes import RouteNetwork

Resource = tuple[str, ...]  # ("n", node), ("l", a, b) with a < b, ("d", dock), ("p", dock)
Point = tuple[float, float]

DOCK = "@"  # a place that is a dock is written "@<dock id>" (ids start with a letter)
MOVING_STATES = frozenset({"driving", "docking", "undocking"})
_AT_NODE = 0.12  # m: an AMR this close to a node is at it
_RETRY = 1.0  # s before a refused or failed command is sent again
BLOCKED_ALARM = 3  # moves in a row ended blocked before an alarm says so
_EVICT_PENALTY = 25.0  # m: a route through a movable AMR counts this much longer
_FOLLOW_PENALTY = 3.0  # m: a route behind another AMR counts this much longer
FOLLOW_PATIENCE = 15.0  # s a follower waits for the next part of its route before it stops
WHOLE_MAX = 6.0  # m: a move this short may hold all of its route at once, ahead of a queue
HORIZON = 4.0  # m ahead of an AMR that a longer move holds; the rest it queues for


def dock_place(dock: str) -> str:
    return DOCK + dock


def is_dock(place: str) -> bool:
    return place.startswith(DOCK)


def _node(n: str) -> Resource:
    return ("n", n)


def _lane(a: str, b: str) -> Resource:
    return ("l", a, b) if a < b else ("l", b, a)


# geometry -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Capsule:
    """The points within `radius` of the segment p-q (a circle when p == q)."""

    p: Point
    q: Point
    radius: float


def _point_segment(c: Point, p: Point, q: Point) -> float:
    dx, dy = q[0] - p[0], q[1] - p[1]
    den = dx * dx + dy * dy
    t = 0.0 if den == 0 else max(0.0, min(1.0, ((c[0] - p[0]) * dx + (c[1] - p[1]) * dy) / den))
    return math.hypot(c[0] - p[0] - t * dx, c[1] - p[1] - t * dy)


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def segment_distance(a: Point, b: Point, c: Point, d: Point) -> float:
    """Shortest distance between the segments a-b and c-d in the plane."""
    d1, d2 = _cross(c, d, a), _cross(c, d, b)
    d3, d4 = _cross(a, b, c), _cross(a, b, d)
    if ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and d1 and d2 and d3 and d4:
        return 0.0  # they cross
    return min(
        _point_segment(a, c, d),
        _point_segment(b, c, d),
        _point_segment(c, a, b),
        _point_segment(d, a, b),
    )


def gap(s: Capsule, t: Capsule) -> float:
    """Free space between two capsules (0 or less: they touch or overlap)."""
    return segment_distance(s.p, s.q, t.p, t.q) - s.radius - t.radius


# the reservation table --------------------------------------------------------------------
class Reservations:
    """Which AMR holds which resource; a resource is free for an AMR when no other AMR holds
    one that conflicts with it."""

    def __init__(self, shapes: Mapping[Resource, Capsule], clearance: float = 0.05) -> None:
        self.shapes = dict(shapes)
        keys = list(self.shapes)
        self.conflicts: dict[Resource, list[Resource]] = {r: [r] for r in keys}
        for i, r in enumerate(keys):
            for s in keys[i + 1 :]:
                if gap(self.shapes[r], self.shapes[s]) < clearance:
                    self.conflicts[r].append(s)
                    self.conflicts[s].append(r)
        self.holder: dict[Resource, str] = {}
        self.held: dict[str, set[Resource]] = {}
        # resources AMRs following others wait for, each in the order the moves were booked
        self.queued: dict[Resource, list[str]] = {}
        self.ticket: dict[str, int] = {}  # when each queued move was booked
        self._booked = 0

    def blockers(self, amr: str, r: Resource) -> set[str]:
        """The other AMRs holding something that conflicts with `r`."""
        holder = self.holder
        return {h for c in self.conflicts[r] if (h := holder.get(c)) is not None and h != amr}

    def queuers(self, amr: str, r: Resource) -> set[str]:
        """The other AMRs queued for something that conflicts with `r`."""
        queued = self.queued
        return {q for c in self.conflicts[r] for q in queued.get(c, ()) if q != amr}

    def free_for(self, amr: str, r: Resource) -> bool:
        """Nobody else holds or waits in line for anything that conflicts with `r`."""
        holder, queued = self.holder, self.queued
        return all(
            holder.get(c, amr) == amr and all(q == amr for q in queued.get(c, ()))
            for c in self.conflicts[r]
        )

    def takeable(self, amr: str, r: Resource) -> bool:
        """Nobody else holds anything that conflicts with `r` (some may wait in line)."""
        holder = self.holder
        return all(holder.get(c, amr) == amr for c in self.conflicts[r])

    def grantable(self, amr: str, r: Resource) -> bool:
        """Nobody else holds anything that conflicts with `r`, and nobody who booked before
        `amr` still waits in line for such a thing."""
        holder, mine = self.holder, self.ticket.get(amr, math.inf)
        return all(holder.get(c, amr) == amr for c in self.conflicts[r]) and not any(
            self.ticket[q] < mine for q in self.queuers(amr, r)
        )

    def queue(self, amr: str, resources: Iterable[Resource]) -> None:
        """Put `amr` in line, behind everyone already there, for each of `resources`."""
        self._booked += 1
        self.ticket[amr] = self._booked
        for r in resources:
            self.queued.setdefault(r, []).append(amr)

    def dequeue(self, amr: str, resources: Iterable[Resource]) -> None:
        for r in resources:
            line = self.queued.get(r)
            if line and amr in line:
                line.remove(amr)
                if not line:
                    del self.queued[r]

    def unqueue(self, amr: str) -> None:
        self.dequeue(amr, [r for r, line in self.queued.items() if amr in line])
        self.ticket.pop(amr, None)

    def acquire(self, amr: str, resources: Iterable[Resource]) -> bool:
        """All of `resources` for `amr`, or none (False) if any is not free for it."""
        wanted = list(resources)
        if not all(self.free_for(amr, r) for r in wanted):
            return False
        mine = self.held.setdefault(amr, set())
        for r in wanted:
            self.holder[r] = amr
            mine.add(r)
        return True

    def force(self, amr: str, r: Resource) -> None:
        """Hold `r` whatever others hold: where an AMR stands is its own (a start that the
        reservations would not allow)."""
        self.holder[r] = amr
        self.held.setdefault(amr, set()).add(r)

    def release(self, amr: str, resources: Iterable[Resource]) -> None:
        mine = self.held.get(amr, set())
        for r in resources:
            if self.holder.get(r) == amr:
                del self.holder[r]
                mine.discard(r)

    def release_all_but(self, amr: str, keep: Iterable[Resource]) -> None:
        self.release(amr, self.held.get(amr, set()) - set(keep))

    def violations(self) -> list[tuple[str, Resource, str, Resource]]:
        """Pairs of conflicting resources held by different AMRs (empty, always: for tests)."""
        out = []
        for r, a in self.holder.items():
            for c in self.conflicts[r]:
                b = self.holder.get(c)
                if b is not None and b != a:
                    out.append((a, r, b, c))
        return out


def network_shapes(
    net: RouteNetwork, length: float, width: float, protective: float = 0.0
) -> dict[Resource, Capsule]:
    """The shape of every resource for an AMR body of `length` x `width`; on a lane with
    its safety field's protective rectangle ahead (`protective` m beyond the bumper, the
    body's width and a margin wide), so nothing reserved around it ever stops it."""
    diag = math.hypot(length, width) / 2
    half_w = width / 2
    field_w = half_w + SIDE_MARGIN  # every capsule's radius but a node's
    # how far a capsule of that radius must reach past the body's centre to cover its ends
    beyond = length / 2 - math.sqrt(field_w**2 - half_w**2)
    ahead = beyond + protective
    shapes: dict[Resource, Capsule] = {}
    for n, pos in net.nodes.items():
        shapes[_node(n)] = Capsule(pos, pos, diag)
    for a, outs in net.out.items():
        for b in outs:
            if a > b and a in net.out.get(b, {}):
                continue  # a two-way lane: one resource, done from its other end
            pa, pb = net.nodes[a], net.nodes[b]
            ux, uy = pb[0] - pa[0], pb[1] - pa[1]
            size = math.hypot(ux, uy) or 1.0
            ux, uy = ux / size, uy / size
            # the field reaches ahead only: beyond the end it drives toward
            back = ahead if a in net.out.get(b, {}) else beyond
            shapes[_lane(a, b)] = Capsule(
                (pa[0] - ux * back, pa[1] - uy * back),
                (pb[0] + ux * ahead, pb[1] + uy * ahead),
                field_w,
            )
    for d, dock in net.docks.items():
        pos = (dock.position[0], dock.position[1])
        cx, cy = math.cos(dock.yaw) * beyond, math.sin(dock.yaw) * beyond
        shapes[("d", d)] = Capsule((pos[0] - cx, pos[1] - cy), (pos[0] + cx, pos[1] + cy), field_w)
        # the way in: straight along the dock's heading (the body's width), else it turns on
        # the way (the whole body's circle)
        ax, ay = net.nodes[dock.node]
        way = math.atan2(pos[1] - ay, pos[0] - ax)
        if abs(math.sin(way - dock.yaw)) < 0.09:  # within 5 degrees, either way round
            ux, uy = math.cos(way) * beyond, math.sin(way) * beyond
            shapes[("p", d)] = Capsule((ax - ux, ay - uy), (pos[0] + ux, pos[1] + uy), field_w)
        else:
            shapes[("p", d)] = Capsule((ax, ay), pos, diag)
    return shapes


# AMRs ---------------------------------------------------------------------------------------
@dataclass
class _Step:
    command: str  # "undock", "go_along", "dock"
    nodes: list[str] = field(default_factory=list)  # go_along: the route
    dock: str = ""  # undock/dock: which dock
    sent_at_moves: int | None = None  # moves_done when sent (None: not sent yet)
    retry_at: float = 0.0


@dataclass
class _Amr:
    id: str
    place: str | None = None  # node or "@dock" where it stands (None while moving)
    goal: str | None = None  # where the fleet wants it
    evictable: bool = True  # may be moved away for others while at its goal
    steps: list[_Step] = field(default_factory=list)
    route: list[str] = field(default_factory=list)  # the route of the go_along under way
    passed: int = 0  # index in `route` of the last node reached
    target: str | None = None  # where the current steps end (the goal, or a place to evade to)
    waiting_since: float | None = None
    blocked: int = 0  # moves in a row that ended blocked
    pending: list[list[Resource]] = field(default_factory=list)  # following: still to take
    held_to: int = 0  # following: the last route index it holds
    sent_to: int = 0  # the route index the go_along under way ends at
    follow_wait_since: float | None = None  # following: since when the next part is taken
    aim: str | None = None  # the goal when the move under way was planned
    start: str | None = None  # following: where the move under way set off from
    along: list[float] = field(default_factory=list)  # following: route distance to each node
    signals: Mapping[str, Any] = field(default_factory=dict)

    @property
    def moving(self) -> bool:
        return bool(self.steps)


class TrafficManager:
    """Brings each AMR to the place the fleet manager sets with `send` (a node, or a dock
    written with `dock_place`), by reserved routes; `tick` once per scan."""

    def __init__(
        self,
        net: RouteNetwork,
        amrs: list[AmrConfig],
        port: CommandPort,
        *,
        clearance: float = 0.05,
        on_error: Callable[[str], None] | None = None,
        on_alarm: Callable[[str, bool, int, str], None] | None = None,
    ) -> None:
        """`on_alarm(amr, active, tries, message)`: an AMR keeps being blocked by something
        the reservations do not know (a part on the floor), or moves again."""
        self.net = net
        self.port = port
        length = max(a.size[0] for a in amrs)
        width = max(a.size[1] for a in amrs)
        protective = max(a.safety.protective for a in amrs)
        self.table = Reservations(network_shapes(net, length, width, protective), clearance)
        self.amrs: dict[str, _Amr] = {a.id: _Amr(a.id) for a in amrs}
        self._start = {a.id: a.start for a in amrs}
        self._on_error = on_error
        self._on_alarm = on_alarm
        self.now = 0.0
        self.errors: list[str] = []

    # what the fleet manager uses ------------------------------------------------------
    def send(self, amr: str, place: str | None, *, evictable: bool = False) -> None:
        """Bring `amr` to `place` (None: no goal, it stays where it is and may be moved for
        others). `evictable`: may be moved away again once there (a parking spot)."""
        a = self.amrs[amr]
        a.goal = place
        a.evictable = evictable or place is None

    def place(self, amr: str) -> str | None:
        """Where it stands (None while on its way)."""
        return self.amrs[amr].place

    def arrived(self, amr: str) -> bool:
        a = self.amrs[amr]
        return a.goal is not None and not a.moving and a.place == a.goal

    def held(self, amr: str) -> set[Resource]:
        return set(self.table.held.get(amr, set()))

    def node_of(self, place: str) -> str:
        """The network node of a place (a dock's approach node)."""
        return self.net.docks[place[1:]].node if is_dock(place) else place

    def distance(self, amr: str, place: str) -> float:
        """Route length from where `amr` is (or is going) to `place`, in m."""
        a = self.amrs[amr]
        here = a.place or a.target
        if here is None:
            return math.inf
        return self.net.distance(self.node_of(here), self.node_of(place))

    # scan ------------------------------------------------------------------------------
    def tick(self, now: float, signals: Mapping[str, Mapping[str, Any]]) -> None:
        self.now = now
        for a in self.amrs.values():
            a.signals = signals[a.id]
            if a.place is None and not a.moving:
                self._locate(a)
            if a.moving and a.pending:
                self._keep_following(a)
            if a.moving:
                self._follow(a)
            if a.moving and a.goal is not None and a.goal != a.aim:
                self._redirect(a)
        waiting = [
            a
            for a in self.amrs.values()
            if not a.moving and a.goal is not None and a.place != a.goal and a.place is not None
        ]
        for a in self.amrs.values():
            if a not in waiting:
                a.waiting_since = None
        for a in waiting:
            if a.waiting_since is None:
                a.waiting_since = now
        waiting.sort(key=lambda a: (a.waiting_since, a.id))
        stuck = [a for a in waiting if not self._start_move(a, a.goal or "")]
        for a in stuck:  # then, oldest first, clear the way of those that cannot go
            if not a.moving:
                self._make_way(a)

    def restart(self) -> None:
        """After a stop the AMRs stood still: send what is under way again."""
        for a in self.amrs.values():
            for step in a.steps[:1]:
                step.sent_at_moves = None
                step.retry_at = 0.0

    # where an AMR is -------------------------------------------------------------------
    def _locate(self, a: _Amr) -> None:
        """At start (or after a stop off the plan): the place it stands on, reserved."""
        s = a.signals
        dock = s.get("dock") or ""
        wanted: list[Resource]
        if dock:
            place = dock_place(dock)
            wanted = [("d", dock)]
        else:
            node = s.get("node") or self._nearest_node(s)
            place, wanted = node, [_node(node)]
        if not self.table.acquire(a.id, wanted):
            # where it stands is its own, even if too close to another: they move apart
            self._error(f"{a.id}: stands too close to another AMR at {place}")
            self.table.force(a.id, wanted[0])
        a.place = place

    def _nearest_node(self, s: Mapping[str, Any]) -> str:
        x, y = float(s.get("x", 0.0)), float(s.get("y", 0.0))
        return min(self.net.nodes, key=lambda n: math.dist(self.net.nodes[n], (x, y)))

    # moving ----------------------------------------------------------------------------
    def _plan(
        self,
        a: _Amr,
        target: str,
        *,
        through_movable: bool,
        ignoring: str = "",
        follow: bool = False,
    ) -> tuple[list[_Step], list[Resource], list[str]] | None:
        """The steps and resources from where `a` stands to `target`; with `through_movable`
        the route may pass AMRs that could be moved away (to find them)."""
        here = a.place
        assert here is not None
        steps: list[_Step] = []
        res: list[Resource] = []
        start = here
        if is_dock(here):
            dock = here[1:]
            steps.append(_Step("undock", dock=dock))
            res += [("d", dock), ("p", dock)]
            start = self.net.docks[dock].node
        goal_node = self.node_of(target)
        route = self._route(a, start, goal_node, through_movable, ignoring, follow)
        if route is None:
            return None
        res += [_node(n) for n in route]
        res += [_lane(x, y) for x, y in zip(route, route[1:], strict=False)]
        if len(route) > 1:
            steps.append(_Step("go_along", nodes=route))
        if is_dock(target):
            dock = target[1:]
            if follow and not all(
                self._usable(a, r, False, ignoring, follow)[0] for r in [("p", dock), ("d", dock)]
            ):
                return None  # the dock is taken by one that stays
            steps.append(_Step("dock", dock=dock))
            res += [("p", dock), ("d", dock)]
        return steps, res, route

    def _usable(
        self,
        a: _Amr,
        r: Resource,
        through_movable: bool,
        ignoring: str = "",
        follow: bool = False,
    ) -> tuple[bool, float]:
        blockers = self.table.blockers(a.id, r)
        blockers.discard(ignoring)
        if follow:  # behind those driving through `r` (and in line for it) without stopping
            ahead = blockers | self.table.queuers(a.id, r)
            if not ahead:
                return True, 0.0
            if all(self._followable(self.amrs[b], r) for b in ahead):
                return True, _FOLLOW_PENALTY
        if not blockers:
            return True, 0.0
        if through_movable and all(self._movable_for(a, self.amrs[b]) for b in blockers):
            return True, _EVICT_PENALTY
        return False, 0.0

    def _route(
        self,
        a: _Amr,
        start: str,
        goal: str,
        through_movable: bool,
        ignoring: str = "",
        follow: bool = False,
    ) -> list[str] | None:
        """Shortest route over resources usable by `a` (Dijkstra on the network)."""
        if not self._usable(a, _node(start), through_movable, ignoring, follow)[0]:
            return None
        best = {start: 0.0}
        came: dict[str, str] = {}
        heap = [(0.0, start)]
        while heap:
            d, n = heapq.heappop(heap)
            if n == goal:
                path = [goal]
                while path[-1] != start:
                    path.append(came[path[-1]])
                return path[::-1]
            if d > best[n]:
                continue
            for m, leg in self.net.out[n].items():
                ok_n, pen_n = self._usable(a, _node(m), through_movable, ignoring, follow)
                ok_l, pen_l = self._usable(a, _lane(n, m), through_movable, ignoring, follow)
                if not (ok_n and ok_l):
                    continue
                nd = d + leg.length + max(pen_n, pen_l)
                if nd < best.get(m, math.inf):
                    best[m] = nd
                    came[m] = n
                    heapq.heappush(heap, (nd, m))
        return None

    def _start_move(self, a: _Amr, target: str) -> bool:
        planned = self._plan(a, target, through_movable=False)
        if planned is not None and self._book_whole(a, planned[1], planned[2], target):
            a.pending = []
        else:
            planned = self._plan(a, target, through_movable=False, follow=True)
            if planned is None or not self._start_following(a, planned[2], target):
                return False
        steps, _, route = planned
        a.steps, a.route, a.passed, a.target, a.aim = steps, route, 0, target, a.goal
        a.place = None if steps else target
        if not steps:
            self._arrive(a)
        else:
            self._send_next(a)
        return True

    def _book_whole(self, a: _Amr, res: list[Resource], route: list[str], target: str) -> bool:
        """Hold all of a short move's route at once, ahead of AMRs only queued for parts of
        it: it never waits, so it always arrives and frees them; where it ends must be clear
        of every queue (those queued there would wait for it for ever)."""
        if self._along(route)[-1] > WHOLE_MAX:
            return False
        table = self.table
        end: Resource = ("d", target[1:]) if is_dock(target) else _node(target)
        if table.queuers(a.id, end) or not all(table.takeable(a.id, r) for r in res):
            return False
        for r in res:
            table.force(a.id, r)
        return True

    def _along(self, route: list[str]) -> list[float]:
        """The distance along `route` to each of its nodes, in m."""
        along = [0.0]
        for x, y in zip(route, route[1:], strict=False):
            along.append(along[-1] + self.net.out[x][y].length)
        return along

    def _groups(self, a: _Amr, route: list[str], target: str) -> list[list[Resource]]:
        """A move's resources in the order it needs them: where it starts (and its undocking),
        then each lane with the node it leads to, then the docking."""
        here = a.place or ""
        first: list[Resource] = [("d", here[1:]), ("p", here[1:])] if is_dock(here) else []
        groups = [[*first, _node(route[0])]]
        groups += [[_lane(x, y), _node(y)] for x, y in zip(route, route[1:], strict=False)]
        if is_dock(target):
            groups.append([("p", target[1:]), ("d", target[1:])])
        return groups

    def _start_following(self, a: _Amr, route: list[str], target: str) -> bool:
        """Set off behind AMRs driving the same way: hold where it starts (and its way off
        a dock), get in line for the rest and take it as those ahead leave it."""
        groups = self._groups(a, route, target)
        if len(groups) < 2 or not self.table.acquire(a.id, groups[0]):
            return False
        a.pending = groups[1:]
        a.held_to = 0
        a.start = a.place
        a.route, a.passed, a.along = route, 0, self._along(route)
        self.table.queue(a.id, [r for g in a.pending for r in g])
        self._extend(a)
        return True

    def _keep_following(self, a: _Amr) -> None:
        """Take what has come free of a followed route; stop following when the next part is
        held by an AMR that is not on its way (it stopped there: it may be waiting for this
        one), or after `FOLLOW_PATIENCE` s without progress."""
        if self._extend(a):
            a.follow_wait_since = None
            self._more_route(a)
        if not a.pending or not self._in_reach(a):
            a.follow_wait_since = None
            return
        if a.follow_wait_since is None:
            a.follow_wait_since = self.now
        blockers = {b for r in a.pending[0] for b in self.table.blockers(a.id, r)}
        standing = any(not self.amrs[b].moving for b in blockers)
        if standing or self.now - a.follow_wait_since > FOLLOW_PATIENCE:
            self._stop_following(a)

    def _stop_following(self, a: _Amr) -> None:
        """Give up the queued rest of a followed route: the move ends at the last node it
        holds; from there it plans again like any waiting AMR."""
        self.table.unqueue(a.id)
        a.pending, a.follow_wait_since = [], None
        if a.held_to >= len(a.route):
            return  # it holds all of it, the dock too
        first = a.steps[0] if a.steps else None
        start = a.start or ""
        set_off = first is None or first.sent_at_moves is not None
        if is_dock(start) and first is not None and first.command != "undock":
            set_off = True  # off the dock already
        if a.held_to == 0 and not set_off:
            # it has not set off: the move is called off, it stays where it stood
            keep = [("d", start[1:])] if is_dock(start) else [_node(start)]
            self.table.release_all_but(a.id, keep)
            a.place, a.steps, a.route, a.target = start, [], [], None
            return
        a.route = a.route[: a.held_to + 1]
        a.steps = [step for step in a.steps if step.command != "dock"]
        for step in a.steps:
            if step.command == "go_along":
                step.nodes = a.route
        a.target = a.route[-1]
        if a.steps and len(a.route) < 2:
            a.steps = [step for step in a.steps if step.command != "go_along"]
        if not a.steps:
            self._arrive(a)

    def _extend(self, a: _Amr) -> bool:
        """Take the next resources of a followed route that have come free, in order."""
        got = False
        table = self.table
        while (
            a.pending and self._in_reach(a) and all(table.grantable(a.id, r) for r in a.pending[0])
        ):
            group = a.pending.pop(0)
            for r in group:
                table.force(a.id, r)
            table.dequeue(a.id, group)
            a.held_to += 1
            got = True
        return got

    def _in_reach(self, a: _Amr) -> bool:
        """Is the next part of its route within `HORIZON` of where it is (or is it the part
        right after where it stands)?"""
        k = min(a.held_to + 1, len(a.along) - 1)  # the dock counts as at the route's end
        return a.held_to <= a.passed or a.along[k] - a.along[a.passed] <= HORIZON

    def _followable(self, b: _Amr, r: Resource) -> bool:
        """Will `b` leave `r` (and all near it) behind? Yes if it is on a move and `r` is
        not near where that move ends; then one may follow it through `r`."""
        if not b.moving or b.target is None:
            return False
        target = b.target
        end: Resource = ("d", target[1:]) if is_dock(target) else _node(target)
        return r not in self.table.conflicts[end]

    def _arrive(self, a: _Amr) -> None:
        self.table.unqueue(a.id)
        a.pending = []
        target = a.target or ""
        a.place, a.steps, a.route, a.target = target, [], [], None
        keep = [("d", target[1:])] if is_dock(target) else [_node(target)]
        self.table.release_all_but(a.id, keep)

    def _send_next(self, a: _Amr) -> None:
        step = a.steps[0]
        if self.now < step.retry_at:
            return
        if step.command == "go_along":
            rest = self._rest_of_route(a)
            if a.pending:  # following: only as far as it holds
                held = set(a.route[: a.held_to + 1])
                rest = [n for n in rest if n in held]
                if not rest or (len(rest) < 2 and (a.signals.get("node") or "") == rest[-1]):
                    return  # at the end of what it holds: wait for more
            elif len(rest) < 2 and (a.signals.get("node") or "") == rest[-1]:
                self._step_done(a)  # already at its end
                return
            args: dict[str, Any] = {"nodes": rest}
        elif step.command == "dock":
            if a.pending:
                return  # in line for the dock: docked once it has it
            args = {"dock": step.dock}
        else:
            args = {}
        try:
            self.port.send(a.id, step.command, args)
        except CommandError as e:
            step.retry_at = self.now + _RETRY
            self._error(f"{a.id}: {step.command} refused: {e.message}")
            return
        step.sent_at_moves = int(a.signals.get("moves_done", 0))
        if step.command == "go_along":
            a.sent_to = a.route.index(args["nodes"][-1])

    def _rest_of_route(self, a: _Amr) -> list[str]:
        """The route still to drive: from the node it stands on, or, stopped on a lane (the
        lane is still held), from the end of that lane ahead of it."""
        route, k = a.route, a.passed
        s = a.signals
        if (s.get("node") or "") == route[k] or k + 1 >= len(route):
            return route[k:]
        pos = (float(s.get("x", 0.0)), float(s.get("y", 0.0)))
        nodes = self.net.nodes
        ahead = _point_segment(pos, nodes[route[k]], nodes[route[k + 1]])
        if k > 0 and _point_segment(pos, nodes[route[k - 1]], nodes[route[k]]) < ahead:
            return route[k:]  # short of node k, on the lane that ends there
        return route[k + 1 :]

    def _follow(self, a: _Amr) -> None:
        step = a.steps[0]
        s = a.signals
        if step.command == "go_along":
            self._track_progress(a)
        if step.sent_at_moves is None:
            self._send_next(a)
            return
        if int(s.get("moves_done", 0)) == step.sent_at_moves or s.get("state") in MOVING_STATES:
            return  # still on its way
        if s.get("result") == "ok":
            if a.blocked >= BLOCKED_ALARM and self._on_alarm is not None:
                self._on_alarm(a.id, False, a.blocked, f"{a.id}: moving again")
            a.blocked = 0
            if step.command == "go_along":
                a.passed = a.sent_to
                self._release_behind(a)
                if a.sent_to < len(a.route) - 1 or a.pending:
                    step.sent_at_moves = None  # as far as it held: the rest when it is free
                    return
            self._step_done(a)
            return
        # blocked, halted, ...: the reservation still stands, send the rest of it again
        step.sent_at_moves = None
        step.retry_at = self.now + _RETRY
        self._error(f"{a.id}: {step.command} ended {s.get('result')}; sent again")
        if s.get("result") == "blocked":
            a.blocked += 1
            if a.blocked == BLOCKED_ALARM and self._on_alarm is not None:
                where = (
                    s.get("node")
                    or f"near ({float(s.get('x', 0)):.2f}, {float(s.get('y', 0)):.2f})"
                )
                self._on_alarm(
                    a.id,
                    True,
                    a.blocked,
                    f"{a.id}: blocked {a.blocked} times in a row {where} on its way to "
                    f"{a.target}: something not an AMR is in its path",
                )

    def _more_route(self, a: _Amr) -> None:
        """A follower got more of its route while driving: extend the move it is on."""
        step = a.steps[0]
        if step.command != "go_along" or step.sent_at_moves is None:
            return  # not driving yet (or stopped): the next send takes the new part along
        if a.signals.get("state") not in MOVING_STATES:
            return
        rest = self._rest_of_route(a)
        held = set(a.route[: a.held_to + 1])
        rest = [n for n in rest if n in held]
        if not rest or a.route.index(rest[-1]) <= a.sent_to:
            return
        try:
            self.port.send(a.id, "go_along", {"nodes": rest})
        except CommandError as e:
            self._error(f"{a.id}: go_along (more of the route) refused: {e.message}")
            return
        a.sent_to = a.route.index(rest[-1])

    def _redirect(self, a: _Amr) -> None:
        """Its goal changed on the way: end the move at the next node (keeping what is
        reserved up to there, freeing the rest); from there it goes to the new goal. A
        follower ends it where what it holds ends."""
        if a.pending:
            a.aim = a.goal
            self._stop_following(a)
            return
        step = a.steps[0]
        end = a.passed + 1
        if step.command != "go_along" or step.sent_at_moves is None or end >= len(a.route) - 1:
            return
        node = a.route[end]
        try:
            self.port.send(a.id, "go_along", {"nodes": [node]})
        except CommandError:
            return  # it carries on to where it was going
        step.sent_at_moves = int(a.signals.get("moves_done", 0))
        a.sent_to = end
        dropped = a.route[end + 1 :]
        res: list[Resource] = [_node(n) for n in dropped]
        res += [_lane(x, y) for x, y in zip(a.route[end:], dropped, strict=False)]
        res += [r for r in self.table.held.get(a.id, set()) if r[0] in "dp"]
        self.table.release(a.id, res)
        a.route, a.steps, a.target, a.aim = a.route[: end + 1], [step], node, a.goal
        step.nodes = a.route

    def _step_done(self, a: _Amr) -> None:
        a.steps.pop(0)
        if a.steps:
            self._send_next(a)
        else:
            self._arrive(a)

    def _track_progress(self, a: _Amr) -> None:
        """Free the nodes and lanes it has left behind (the lane it is on stays held, and
        with it everything near the node it just passed)."""
        s, route, nodes = a.signals, a.route, self.net.nodes
        at = s.get("node") or ""
        pos = (float(s.get("x", 0.0)), float(s.get("y", 0.0)))
        passed = a.passed
        for j in range(a.passed + 1, len(route)):
            pj = nodes[route[j]]
            if route[j] == at or math.dist(pos, pj) < _AT_NODE:
                passed = j
            elif j + 1 < len(route):  # beyond node j on the next lane?
                pk = nodes[route[j + 1]]
                dx, dy = pk[0] - pj[0], pk[1] - pj[1]
                t = (pos[0] - pj[0]) * dx + (pos[1] - pj[1]) * dy
                if t > 0 and _point_segment(pos, pj, pk) < _AT_NODE:
                    passed = j
        if passed != a.passed:
            a.passed = passed
            self._release_behind(a)

    def _release_behind(self, a: _Amr) -> None:
        route, i = a.route, a.passed
        behind = [_node(n) for n in route[:i]]
        behind += [_lane(x, y) for x, y in zip(route[:i], route[1 : i + 1], strict=False)]
        if i > 0 and a.steps and a.steps[0].command == "go_along":
            behind += [r for r in self.table.held.get(a.id, set()) if r[0] in "dp"]
            behind = [r for r in behind if not (r[0] in "dp" and self._dock_ahead(a, r[1]))]
        self.table.release(a.id, behind)

    def _dock_ahead(self, a: _Amr, dock: str) -> bool:
        return any(step.command == "dock" and step.dock == dock for step in a.steps)

    # making way ------------------------------------------------------------------------
    def _movable_for(self, a: _Amr, b: _Amr) -> bool:
        """May `b` be sent out of `a`'s way? Not while moving or busy at its goal; a waiting
        AMR only for one that waits longer."""
        if b.moving or b.place is None:
            return False
        if b.goal is None or (b.place == b.goal and b.evictable):
            return True
        if b.place == b.goal:
            return False
        return (b.waiting_since, b.id) > (a.waiting_since, a.id)

    def _make_way(self, a: _Amr) -> None:
        """`a` has no free route: move AMRs that stand on its best route out of the way."""
        planned = self._plan(a, a.goal or "", through_movable=True)
        if planned is None:
            return
        _, wanted, _ = planned
        blockers = sorted({b for r in wanted for b in self.table.blockers(a.id, r)})
        moved = False
        for b in blockers:
            other = self.amrs[b]
            if self._movable_for(a, other):
                self._evade(other, set(wanted), a)
                moved = moved or other.moving
        if moved:
            return
        # none of them can get out of the way (their only way out is where `a` stands):
        # `a` yields to a waiting one instead, and comes back when it has passed
        for b in blockers:
            other = self.amrs[b]
            if other.moving or other.place is None or other.goal in (None, other.place):
                continue
            theirs = self._plan(other, other.goal or "", through_movable=True, ignoring=a.id)
            if theirs is None:
                continue
            if any(a.id in self.table.blockers(other.id, r) for r in theirs[1]):
                self._evade(a, set(theirs[1]), other)
                if a.moving:
                    return
        # a movable one boxed in by `a` itself: `a` steps off its way out, then it moves aside
        for b in blockers:
            other = self.amrs[b]
            if not self._movable_for(a, other):
                continue
            way = self._refuge(other, set(wanted), None, passing=a.id)
            if way is not None:
                self._evade(a, set(way[1]), other)
                if a.moving:
                    return

    def _evade(self, b: _Amr, keep_clear: set[Resource], root: _Amr, depth: int = 0) -> None:
        """Send `b` to the nearest node it can reach that is clear of `keep_clear`; if every
        way out is blocked by AMRs that may be moved too, move those first (a few levels
        deep: the next scans then bring `b` out)."""
        found = self._refuge(b, keep_clear, None)
        if found is not None:
            if b.goal == b.place and b.evictable:
                b.goal = None  # parked: the fleet manager finds it another spot
            self._start_move(b, found[0])
            return
        if depth >= 3:
            return
        found = self._refuge(b, keep_clear, root)
        if found is None:
            return
        _, path = found
        clear = keep_clear | set(path)
        for name in sorted({c for r in path for c in self.table.blockers(b.id, r)}):
            c = self.amrs[name]
            if c is not root and c is not b and self._movable_for(root, c):
                self._evade(c, clear, root, depth + 1)

    def _refuge(
        self, b: _Amr, keep_clear: set[Resource], through_for: _Amr | None, passing: str = ""
    ) -> tuple[str, list[Resource]] | None:
        """The nearest node clear of `keep_clear` that `b` can drive to over free resources
        (or, with `through_for`, over resources held by AMRs movable for that one; or over
        what `passing` holds, as if it had gone), with the resources of the way there."""
        conflicts, table = self.table.conflicts, self.table
        here = b.place or ""
        start = self.node_of(here)
        lead: list[Resource] = [("p", here[1:]), _node(start)] if is_dock(here) else []

        def usable(r: Resource) -> bool:
            if table.free_for(b.id, r):
                return True
            if passing and table.blockers(b.id, r) == {passing} and not table.queuers(b.id, r):
                return True
            if through_for is None:
                return False
            return all(
                self.amrs[h] is not through_for and self._movable_for(through_for, self.amrs[h])
                for h in table.blockers(b.id, r)
            )

        if not all(usable(r) for r in lead):
            return None
        best = {start: 0.0}
        came: dict[str, str] = {}
        heap = [(0.0, start)]
        while heap:
            d, n = heapq.heappop(heap)
            if d > best[n]:
                continue
            clear = not any(c in keep_clear for c in conflicts[_node(n)])
            if clear and (n != start or is_dock(here)):
                path = [n]
                while path[-1] != start:
                    path.append(came[path[-1]])
                path.reverse()
                res = lead + [_node(x) for x in path]
                res += [_lane(x, y) for x, y in zip(path, path[1:], strict=False)]
                return n, res
            for m, leg in self.net.out[n].items():
                if not (usable(_node(m)) and usable(_lane(n, m))):
                    continue
                nd = d + leg.length
                if nd < best.get(m, math.inf):
                    best[m] = nd
                    came[m] = n
                    heapq.heappush(heap, (nd, m))
        return None

    def _error(self, message: str) -> None:
        self.errors.append(message)
        del self.errors[:-20]
        if self._on_error is not None:
            self._on_error(message)
