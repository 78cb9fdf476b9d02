"""Traffic and fleet logic without physics: reservations never let two AMRs share a node or
lane, a swap in a corridor resolves, random traffic on a grid never deadlocks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.fake_amrs import FakeFleet, rectangles_overlap
from twin.config import AmrConfig, DockConfig
from twin.factory.traffic import (
    Capsule,
    Reservations,
    TrafficManager,
    dock_place,
    gap,
    segment_distance,
)
from twin.routes import RouteNetwork

DT = 0.1  # s per scan in these tests


def network(
    nodes: dict[str, tuple[float, float]],
    lanes: list[tuple[str, str]],
    docks: dict[str, tuple[float, float, float, str]] | None = None,
) -> RouteNetwork:
    net = RouteNetwork(dict(nodes), {n: {} for n in nodes})
    for a, b in lanes:
        net._add(a, b, None)
        net._add(b, a, None)
    for d, (x, y, yaw, node) in (docks or {}).items():
        net.docks[d] = DockConfig(id=d, position=[x, y, 0.0], yaw=yaw, node=node)
    return net


def amrs(starts: dict[str, str]) -> list[AmrConfig]:
    return [AmrConfig(id=a, start=s) for a, s in starts.items()]


def run(
    net: RouteNetwork,
    starts: dict[str, str],
    goals: dict[str, list[str]],
    seconds: float,
) -> tuple[TrafficManager, FakeFleet, dict[str, int]]:
    """Drive each AMR through its goals in turn; check the invariants at every scan."""
    fleet = FakeFleet(net, starts)
    traffic = TrafficManager(net, amrs(starts), fleet)
    reached = dict.fromkeys(starts, 0)
    cfg = amrs(starts)[0]
    length, width = cfg.size[0], cfg.size[1]
    t = 0.0
    while t < seconds:
        for a, todo in goals.items():
            if reached[a] < len(todo):
                if traffic.arrived(a) and traffic.amrs[a].goal == todo[reached[a]]:
                    reached[a] += 1
                # then idle: it may be moved out of the others' way
                traffic.send(a, todo[reached[a]] if reached[a] < len(todo) else None)
        traffic.tick(t, fleet.signals())
        assert traffic.table.violations() == []
        fleet.step(DT)
        t += DT
        poses = [(f.pos[0], f.pos[1], f.yaw) for f in fleet.amrs.values()]
        for i, p in enumerate(poses):
            for q in poses[i + 1 :]:
                assert not rectangles_overlap(p, q, length, width), (t, poses)
        if all(reached[a] == len(g) for a, g in goals.items()):
            break
    return traffic, fleet, reached


def test_geometry_of_capsules() -> None:
    assert segment_distance((0, 0), (2, 0), (1, -1), (1, 1)) == 0.0  # crossing
    assert segment_distance((0, 0), (1, 0), (2, 0), (3, 0)) == pytest.approx(1.0)
    assert segment_distance((0, 0), (1, 0), (0.5, 2), (0.5, 3)) == pytest.approx(2.0)
    a, b = Capsule((0, 0), (0, 0), 0.5), Capsule((2, 0), (2, 0), 0.5)
    assert gap(a, b) == pytest.approx(1.0)


def test_reservations_grant_a_resource_and_its_conflicts_to_one_amr_only() -> None:
    shapes = {
        ("n", "a"): Capsule((0, 0), (0, 0), 0.5),
        ("n", "b"): Capsule((0.8, 0), (0.8, 0), 0.5),  # overlaps a
        ("n", "c"): Capsule((5, 0), (5, 0), 0.5),
    }
    table = Reservations(shapes, clearance=0.1)
    assert table.acquire("amr1", [("n", "a")])
    assert not table.acquire("amr2", [("n", "b")])  # conflicts with a, held by amr1
    assert not table.acquire("amr2", [("n", "c"), ("n", "a")])  # all or nothing
    assert table.holder.get(("n", "c")) is None
    assert table.acquire("amr2", [("n", "c")])
    assert table.acquire("amr1", [("n", "b")])  # its own reservations never block it
    assert table.violations() == []
    table.release("amr1", [("n", "a"), ("n", "b")])
    assert table.acquire("amr2", [("n", "b")])


def test_a_swap_in_a_corridor_resolves_through_the_siding() -> None:
    """a - b - c corridor with a siding s off b: two AMRs at a and c swap ends."""
    net = network(
        {"a": (0, 0), "b": (3, 0), "c": (6, 0), "s": (3, 3)},
        [("a", "b"), ("b", "c"), ("b", "s")],
    )
    traffic, fleet, reached = run(
        net, {"amr1": "a", "amr2": "c"}, {"amr1": ["c"], "amr2": ["a"]}, 120
    )
    assert reached == {"amr1": 1, "amr2": 1}
    assert fleet.amrs["amr1"].node == "c" and fleet.amrs["amr2"].node == "a"
    # one of them went into the siding to let the other pass
    went = [a for a, cmd, args in fleet.sent if cmd == "go_along" and "s" in args["nodes"]]
    assert went


def test_an_idle_amr_is_moved_off_a_needed_node() -> None:
    """amr2 stands idle in the middle of the only way; amr1 needs to pass."""
    net = network(
        {"a": (0, 0), "b": (3, 0), "c": (6, 0), "s": (3, 3)},
        [("a", "b"), ("b", "c"), ("b", "s")],
    )
    traffic, fleet, reached = run(net, {"amr1": "a", "amr2": "b"}, {"amr1": ["c"]}, 60)
    assert reached["amr1"] == 1
    assert fleet.amrs["amr2"].node == "s"


def test_docking_amrs_take_turns_at_one_dock() -> None:
    net = network(
        {"a": (0, 0), "b": (3, 0), "c": (6, 0), "d": (3, -3)},
        [("a", "b"), ("b", "c"), ("b", "d")],
        docks={"dk": (3, -4.5, -math.pi / 2, "d")},
    )
    goals = {"amr1": [dock_place("dk"), "a"], "amr2": [dock_place("dk"), "c"]}
    traffic, fleet, reached = run(net, {"amr1": "a", "amr2": "c"}, goals, 200)
    assert reached == {"amr1": 2, "amr2": 2}
    docked = [a for a, cmd, _ in fleet.sent if cmd == "dock"]
    assert sorted(docked) == ["amr1", "amr2"]


def test_an_amr_follows_one_driving_ahead_instead_of_waiting_for_it_to_arrive() -> None:
    """Two AMRs one behind the other on a long one-way corridor: the second sets off right
    behind the first (it queues for the lanes the first still holds), never closer than the
    reservations allow, and both arrive."""
    nodes = {f"n{i}": (2.0 * i, 0.0) for i in range(7)}
    net = RouteNetwork(dict(nodes), {n: {} for n in nodes})
    for i in range(6):
        net._add(f"n{i}", f"n{i + 1}", None)  # one way, eastbound
    starts = {"amr1": "n1", "amr2": "n0"}
    fleet = FakeFleet(net, starts)
    traffic = TrafficManager(net, amrs(starts), fleet)
    traffic.send("amr1", "n6")
    traffic.send("amr2", "n5")
    t, set_off = 0.0, None
    while t < 40.0 and not (traffic.arrived("amr1") and traffic.arrived("amr2")):
        traffic.tick(t, fleet.signals())
        assert traffic.table.violations() == []
        fleet.step(DT)
        t += DT
        if set_off is None and fleet.amrs["amr2"].pos[0] > 0.1:
            set_off = t
        gap = fleet.amrs["amr1"].pos[0] - fleet.amrs["amr2"].pos[0]
        assert gap > amrs(starts)[0].size[0], (t, gap)
    assert traffic.arrived("amr1") and traffic.arrived("amr2"), traffic.errors
    # whole-route reservations would hold it at n0 until the first had passed n5 (~9 s)
    assert set_off is not None and set_off < 4.0, set_off


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_traffic_on_a_grid_never_collides_or_deadlocks(seed: int) -> None:
    """Four AMRs on a 4 x 3 grid, each sent to 12 random nodes in turn."""
    nodes = {f"n{i}{j}": (2.0 * i, 2.0 * j) for i in range(4) for j in range(3)}
    lanes = [(f"n{i}{j}", f"n{i + 1}{j}") for i in range(3) for j in range(3)]
    lanes += [(f"n{i}{j}", f"n{i}{j + 1}") for i in range(4) for j in range(2)]
    net = network(nodes, lanes)
    rng = np.random.default_rng(seed)
    starts = {"amr1": "n00", "amr2": "n30", "amr3": "n02", "amr4": "n32"}
    names = sorted(nodes)
    goals = {a: [names[int(rng.integers(len(names)))] for _ in range(12)] for a in starts}
    for a, g in goals.items():  # no goal equal to the one before (nothing to do)
        goals[a] = [n for k, n in enumerate(g) if n != (g[k - 1] if k else starts[a])]
    traffic, fleet, reached = run(net, starts, goals, 900)
    assert reached == {a: len(g) for a, g in goals.items()}, traffic.errors


def test_an_amr_blocked_again_and_again_raises_an_alarm_and_clears_it_when_it_moves() -> None:
    net = network({"a": (0, 0), "b": (3, 0)}, [("a", "b")])
    fleet = FakeFleet(net, {"amr1": "a"})
    alarms: list[tuple[str, bool, int, str]] = []
    traffic = TrafficManager(
        net, amrs({"amr1": "a"}), fleet, on_alarm=lambda *args: alarms.append(args)
    )
    fleet.amrs["amr1"].obstacle = True  # e.g. a part fallen onto the lane
    traffic.send("amr1", "b")
    t = 0.0
    while t < 20.0:
        traffic.tick(t, fleet.signals())
        fleet.step(DT)
        t += DT
    assert len(alarms) == 1 and alarms[0][:3] == ("amr1", True, 3), alarms
    assert "blocked 3 times in a row" in alarms[0][3]
    assert not traffic.arrived("amr1")  # it keeps trying: the obstacle may be taken away
    fleet.amrs["amr1"].obstacle = False
    while t < 40.0 and not traffic.arrived("amr1"):
        traffic.tick(t, fleet.signals())
        fleet.step(DT)
        t += DT
    assert traffic.arrived("amr1")
    assert alarms[-1][:2] == ("amr1", False)
