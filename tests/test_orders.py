"""The order book: arrivals (from the book and seeded), release by push and CONWIP (never
past its cap), priorities, replacement of lost parts, completion and lateness."""

from __future__ import annotations

from typing import Any

import numpy as np

from twin.automation import build_line
from twin.config import (
    ArrivalsConfig,
    OrderConfig,
    OrdersConfig,
    PartMix,
    ProductConfig,
    ReleaseConfig,
    RoutingStep,
    load,
)
from twin.factory.orders import OrderBook


def products() -> list[ProductConfig]:
    return [
        ProductConfig(type="box", routing=[RoutingStep(cell="mill", cycle_time=10.0)]),
        ProductConfig(type="disc", routing=[RoutingStep(cell="lathe", cycle_time=12.0)]),
    ]


def book(cfg: OrdersConfig, seed: int = 0) -> tuple[OrderBook, list[tuple[str, dict[str, Any]]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    ob = OrderBook(cfg, np.random.default_rng(seed), lambda kind, **d: events.append((kind, d)))
    return ob, events


def kinds(events: list[tuple[str, dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [d for k, d in events if k == kind]


def test_book_orders_arrive_at_their_release_time_and_go_by_priority_then_due() -> None:
    cfg = OrdersConfig(
        products=products(),
        book=[
            OrderConfig(id="late_low", product="box", quantity=1, due=500, priority=0),
            OrderConfig(id="early_low", product="box", quantity=1, due=100, priority=0),
            OrderConfig(id="high", product="disc", quantity=2, due=900, priority=5),
            OrderConfig(id="held", product="box", quantity=1, due=50, priority=9, release=30),
        ],
    )
    ob, events = book(cfg)
    ob.advance(0.0)
    assert [d["order"] for d in kinds(events, "order_arrived")] == ["late_low", "early_low", "high"]
    assert [o.id for o in ob.releasable()] == ["high", "early_low", "late_low"]
    ob.advance(30.0)
    assert ob.next_release().id == "held"  # type: ignore[union-attr]
    assert kinds(events, "order_arrived")[-1] == {
        "order": "held",
        "product": "box",
        "quantity": 1,
        "due": 50,
        "priority": 9,
    }


def test_push_releases_every_part_of_an_order_and_it_completes_when_all_are_shipped() -> None:
    cfg = OrdersConfig(
        products=products(), book=[OrderConfig(id="o1", product="box", quantity=3, due=100)]
    )
    ob, events = book(cfg)
    ob.advance(0.0)
    for part in (11, 12, 13):
        order = ob.next_release()
        assert order is not None and order.id == "o1"
        ob.reserve(order)
        ob.released(order, part, now=1.0)
    assert ob.next_release() is None  # all three on their way
    assert kinds(events, "order_started") == [{"order": "o1"}]
    assert [d["part"] for d in kinds(events, "order_released")] == [11, 12, 13]
    ob.shipped(11, good=True, now=50.0)
    ob.lost(12)  # fell off: a replacement is released
    replacement = ob.next_release()
    assert replacement is not None and replacement.id == "o1"
    ob.reserve(replacement)
    ob.released(replacement, 14, now=60.0)
    ob.shipped(13, good=False, now=70.0)  # a reject does not count either
    ob.reserve(ob.next_release())  # type: ignore[arg-type]
    ob.released(ob.orders["o1"], 15, now=75.0)
    ob.shipped(14, good=True, now=80.0)
    assert kinds(events, "order_completed") == []
    ob.advance(100.0)
    assert kinds(events, "order_late") == [{"order": "o1", "due": 100}]
    ob.shipped(15, good=True, now=120.0)
    assert kinds(events, "order_completed") == [{"order": "o1", "lead_time": 120.0, "late": True}]
    assert ob.counts()["completed"] == 1 and ob.wip == 0


def test_conwip_never_exceeds_its_cap() -> None:
    cap = 4
    cfg = OrdersConfig(
        products=products(),
        arrivals=ArrivalsConfig(
            interval=5.0, quantity=[1, 4], products=[PartMix(type="box"), PartMix(type="disc")]
        ),
        release=ReleaseConfig(policy="conwip", wip_cap=cap),
    )
    ob, events = book(cfg, seed=3)
    rng = np.random.default_rng(0)
    in_factory: list[int] = []
    under_way: list[Any] = []
    part = 0
    most = 0
    for step in range(3000):
        now = step * 0.5
        ob.advance(now)
        while (order := ob.next_release()) is not None:  # fetch everything the policy allows
            ob.reserve(order)
            under_way.append(order)
        if under_way and rng.random() < 0.5:  # a release completes: the part exists
            part += 1
            ob.released(under_way.pop(0), part, now)
            in_factory.append(part)
        if in_factory and rng.random() < 0.15:  # a part leaves: shipped, reject or lost
            p = in_factory.pop(int(rng.integers(len(in_factory))))
            r = rng.random()
            ob.shipped(p, good=True, now=now) if r < 0.8 else ob.lost(p)
        most = max(most, ob.wip)
        assert ob.wip <= cap
        assert ob.wip == len(in_factory) + len(under_way)
    assert most == cap  # the cap was reached: the test means something
    assert len(kinds(events, "order_completed")) > 20


def test_push_lets_everything_go_that_has_arrived() -> None:
    cfg = OrdersConfig(
        products=products(),
        book=[OrderConfig(id=f"o{i}", product="box", quantity=5, due=100) for i in range(4)],
    )
    ob, _ = book(cfg)
    ob.advance(0.0)
    n = 0
    while (order := ob.next_release()) is not None:
        ob.reserve(order)
        n += 1
    assert n == 20 and ob.wip == 20


def test_seeded_arrivals_repeat_and_follow_the_config() -> None:
    arrivals = ArrivalsConfig(
        interval=60.0,
        quantity=[2, 5],
        due_in=900.0,
        products=[PartMix(type="box", weight=3), PartMix(type="disc", weight=1)],
        count=200,
        first_at=10.0,
    )
    cfg = OrdersConfig(products=products(), arrivals=arrivals)
    runs = []
    for _ in range(2):
        ob, events = book(cfg, seed=7)
        ob.advance(1e9)
        runs.append(kinds(events, "order_arrived"))
    assert runs[0] == runs[1] and len(runs[0]) == 200
    orders = list(ob.orders.values())
    assert orders[0].arrived == 10.0
    assert all(2 <= o.quantity <= 5 for o in orders)
    assert all(o.due == o.arrived + 900.0 for o in orders)
    gaps = np.diff([o.arrived for o in orders])
    assert 45 < gaps.mean() < 75  # exponential, mean 60
    share = sum(o.product == "box" for o in orders) / len(orders)
    assert 0.6 < share < 0.9  # weights 3:1
    other, _ = book(cfg, seed=8)
    other.advance(1e9)
    assert [o.arrived for o in other.orders.values()] != [o.arrived for o in orders]


def test_a_source_spawns_a_part_for_an_order_and_says_so() -> None:
    cfg = load("configs/default_line.toml")
    with build_line(cfg, builtin_controller=False) as line:
        source = next(d for d in cfg.devices if type(d).__name__ == "SourceConfig")
        line.apply(source.id, "disable")
        line.drain_events()
        line.apply(source.id, "spawn", {"type": source.parts[0].type, "order": "o7"})
        line.step(20)
        spawned = [e for e in line.drain_events() if e.kind == "part_spawned"]
    assert len(spawned) == 1 and spawned[0].order == "o7"
    assert spawned[0].data["order"] == "o7"
