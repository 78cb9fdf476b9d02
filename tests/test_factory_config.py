"""Factory files: cells placed from templates into one line config, and every mistake in a
factory file named by its file and field."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from twin.config import (
    AmrConfig,
    ArmConfig,
    ConfigError,
    DockConfig,
    LineConfig,
    SinkConfig,
    SourceConfig,
    StationConfig,
    load,
    loads,
)
from twin.sweep.toml_text import dumps

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SMALL = CONFIGS / "factory_small.toml"
FACTORIES = sorted(CONFIGS.glob("factory_*.toml"))
TEMPLATES = sorted((CONFIGS / "cells").glob("*.toml"))
AMR = AmrConfig(id="a", start="n")  # the default AMR the templates are laid out for


def small_raw() -> dict[str, Any]:
    return msgspec.toml.decode(SMALL.read_bytes())


def load_raw(raw: dict[str, Any], name: str = "factory_test.toml") -> LineConfig:
    """A factory document loaded as if it were a file next to the shipped ones."""
    return loads(dumps(raw), name, base_dir=CONFIGS)


# expansion ---------------------------------------------------------------------------------
def test_templates_are_line_configs_of_their_own():
    assert {p.stem for p in TEMPLATES} >= {"mill_cell", "drill_cell", "receiving", "shipping"}
    for path in TEMPLATES:
        cfg = load(path)
        assert cfg.factory is None and cfg.devices


def test_factory_small_expands_into_prefixed_cells():
    cfg = load(SMALL)
    spec = cfg.factory
    assert spec is not None
    roles = {c.id: (c.role, c.kind) for c in spec.cells}
    assert roles == {
        "receiving": ("receiving", "receiving"),
        "mill1": ("process", "mill"),
        "mill2": ("process", "mill"),
        "drill1": ("process", "drill"),
        "shipping": ("shipping", "shipping"),
    }
    mill1 = next(c for c in spec.cells if c.id == "mill1")
    assert mill1.devices == ["mill1_robot", "mill1_station", "mill1_in", "mill1_out"]
    assert (mill1.in_dock, mill1.out_dock, mill1.stations) == (
        "mill1_in",
        "mill1_out",
        ["mill1_station"],
    )
    receiving = next(c for c in spec.cells if c.id == "receiving")
    assert (receiving.source, receiving.out_dock, receiving.in_dock) == (
        "receiving_store",
        "receiving_load",
        None,
    )
    source = cfg.device("receiving_store")
    assert isinstance(source, SourceConfig) and source.dock == "receiving_load"
    sink = cfg.device("shipping_store")
    assert isinstance(sink, SinkConfig) and sink.dock == "shipping_unload"
    # the dock's approach node came with the template, prefixed and placed
    dock = cfg.device("mill1_in")
    assert isinstance(dock, DockConfig) and dock.node == "mill1_in_approach"
    assert cfg.network is not None
    nodes = {n.id: n.position for n in cfg.network.nodes}
    assert nodes["mill1_in_approach"] == pytest.approx([2.45, 1.6])
    # the cells' sequencer rules, renamed
    transfers = (
        [
            (t.arm, t.pick.dock or t.pick.station, t.place.dock or t.place.station)
            for t in cfg.controller.transfers
        ]
        if cfg.controller
        else []
    )
    assert ("mill1_robot", "mill1_in", "mill1_station") in transfers
    assert ("drill1_robot", "drill1_drill_b", "drill1_out") in transfers
    # the fleet: amr1, amr2 on the first park spots, with the fleet's AMR settings
    amrs = [d for d in cfg.devices if isinstance(d, AmrConfig)]
    assert [(a.id, a.start, a.max_speed) for a in amrs] == [
        ("amr1", "park1", 1.5),
        ("amr2", "park2", 1.5),
    ]


def test_routings_fill_the_cycle_times_of_each_cell_kind():
    cfg = load(SMALL)
    times = {d.id: d.cycle_times for d in cfg.devices if isinstance(d, StationConfig)}
    assert times["mill1_station"] == times["mill2_station"] == {"housing": 40.0, "cover": 25.0}
    assert times["drill1_drill_a"] == times["drill1_drill_b"] == {"housing": 50.0}


def test_a_cell_is_placed_with_its_pose():
    """Rotating and moving a cell moves every point of it alike: mill1 at (3, 3.1) facing
    south (yaw pi/2) has its in dock 0.55 m west of its robot, and the robot, station and
    docks keep the template's distances for any pose."""
    cfg = load(SMALL)
    robot, station, dock = (
        cfg.device("mill1_robot"),
        cfg.device("mill1_station"),
        cfg.device("mill1_in"),
    )
    assert isinstance(robot, ArmConfig) and isinstance(station, StationConfig)
    assert isinstance(dock, DockConfig)
    assert robot.position == pytest.approx([3.0, 3.1, 0.0])
    assert station.position == pytest.approx([3.0, 3.65, 0.0])  # template (0.55, 0) -> north
    assert dock.position == pytest.approx([2.45, 3.1, 0.0])  # template (0, 0.55) -> west
    assert dock.yaw == pytest.approx(math.pi / 2)
    template = load(CONFIGS / "cells" / "mill_cell.toml")
    raw = {
        "name": "one_cell",
        "part_types": [{"name": "housing", "size": [0.08, 0.08, 0.05], "mass": 0.35}],
        "cells": [
            {"id": "mill1", "template": "cells/mill_cell.toml", "position": [2.7, 3.3], "yaw": 0.7}
        ],
    }
    moved = load_raw(raw)
    for a, b in (("robot", "station"), ("robot", "in"), ("station", "out"), ("in", "out")):
        pa, pb = template.device(a).position, template.device(b).position  # type: ignore[union-attr]
        qa = moved.device("mill1_" + a).position  # type: ignore[union-attr]
        qb = moved.device("mill1_" + b).position  # type: ignore[union-attr]
        assert math.dist(qa, qb) == pytest.approx(math.dist(pa, pb))
    assert moved.device("mill1_in").yaw == pytest.approx(0.7)  # type: ignore[union-attr]


def _corners(x: float, y: float, yaw: float, hx: float, hy: float) -> list[tuple[float, float]]:
    c, s = math.cos(yaw), math.sin(yaw)
    return [
        (x + c * dx - s * dy, y + s * dx + c * dy)
        for dx, dy in ((-hx, -hy), (hx, -hy), (hx, hy), (-hx, hy))
    ]


def _gap(p: list[tuple[float, float]], q: list[tuple[float, float]]) -> float:
    """Separating-axis test of two convex polygons: the largest gap along an edge normal
    (negative: they overlap)."""
    best = -math.inf
    for poly in (p, q):
        for (x1, y1), (x2, y2) in zip(poly, poly[1:] + poly[:1], strict=True):
            nx, ny = y2 - y1, x1 - x2
            n = math.hypot(nx, ny)
            a = [(x * nx + y * ny) / n for x, y in p]
            b = [(x * nx + y * ny) / n for x, y in q]
            best = max(best, min(b) - max(a), min(a) - max(b))
    return best


@pytest.mark.parametrize("path", FACTORIES, ids=lambda p: p.stem)
def test_docked_amrs_are_within_reach_and_clear_of_the_cell(path: Path):
    """Each process cell's docks, placed with the cell's pose: the deck centre of a docked
    AMR is where the cell's arm reaches (0.45-0.65 m from its base, within its reach from the
    shoulder at deck height), and the docked AMR's body touches neither the pedestal nor a
    station table (nor the other docked AMR)."""
    cfg = load(path)
    assert cfg.factory is not None
    length, width, deck = AMR.size
    checked = 0
    for cell in cfg.factory.cells:
        if cell.role != "process":
            continue
        devices = [cfg.device(d) for d in cell.devices]
        arm = next(d for d in devices if isinstance(d, ArmConfig))
        docks = [d for d in devices if isinstance(d, DockConfig)]
        tables = [d for d in devices if isinstance(d, StationConfig)]
        pedestal = _corners(arm.position[0], arm.position[1], arm.yaw, 0.12, 0.12)
        bodies = []
        for dock in docks:
            base = arm.position[:2]
            horizontal = math.dist(base, dock.position[:2])
            assert 0.45 <= horizontal <= 0.65, (cell.id, dock.id, horizontal)
            shoulder = arm.pedestal_height + 0.333  # the Panda's shoulder above its base
            part_top = deck + 0.05
            assert math.hypot(horizontal, shoulder - part_top) < arm.reach
            body = _corners(dock.position[0], dock.position[1], dock.yaw, length / 2, width / 2)
            assert _gap(body, pedestal) > 0.1, (cell.id, dock.id)
            for t in tables:
                table = _corners(t.position[0], t.position[1], t.yaw, t.size[0] / 2, t.size[1] / 2)
                assert _gap(body, table) > 0.05, (cell.id, dock.id, t.id)
            bodies.append(body)
            checked += 1
        for i, a in enumerate(bodies):
            for b in bodies[i + 1 :]:
                assert _gap(a, b) > 0.1
    assert checked >= 6


@pytest.mark.parametrize("path", FACTORIES, ids=lambda p: p.stem)
def test_shipped_factories_have_what_the_issue_asks(path: Path):
    cfg = load(path)
    spec = cfg.factory
    assert spec is not None and spec.orders is not None and cfg.network is not None
    process = [c for c in spec.cells if c.role == "process"]
    kinds = {c.kind for c in process}
    amrs = [d for d in cfg.devices if isinstance(d, AmrConfig)]
    assert len(kinds) >= 2
    assert {c.role for c in spec.cells} == {"receiving", "process", "shipping"}
    if path.stem == "factory_small":
        assert (len(process), len(amrs)) == (3, 2)
    if path.stem == "factory_6cell":
        assert (len(process), len(amrs)) == (6, 4)
        assert cfg.network.chargers
    # every product's routing names cells that exist, and the view looks at the floor
    for p in spec.orders.products:
        assert all(any(step.cell in (c.kind, c.id) for c in process) for step in p.routing)
    xs = [v for c in spec.cells for v in (c.footprint[0], c.footprint[2])]
    assert min(xs) <= cfg.view.target[0] <= max(xs)


def test_a_factory_loads_from_text_with_a_base_directory():
    text = SMALL.read_text()
    cfg = loads(text, "<factory>", base_dir=CONFIGS)
    assert cfg.factory is not None and len(cfg.factory.cells) == 5
    with pytest.raises(ConfigError, match=r"cells\[0\] \(cell 'receiving'\)\.template"):
        loads(text, "<factory>", base_dir=ROOT)


def test_cells_may_carry_their_own_prefix_and_kind():
    raw = small_raw()
    raw["cells"][1].update(prefix="m1-", kind="milling")
    for p in raw["orders"]["products"]:
        for step in p["routing"]:
            if step["cell"] == "mill":
                step["cell"] = "milling"
    raw["cells"][2]["kind"] = "milling"
    lanes = raw["network"]["lanes"]
    for lane in lanes:
        for end in ("from", "to"):
            if lane[end].startswith("mill1_"):
                lane[end] = "m1-" + lane[end][len("mill1_") :]
    cfg = load_raw(raw)
    assert cfg.device("m1-robot") and cfg.device("m1-in").node == "m1-in_approach"  # type: ignore[union-attr]
    assert {c.kind for c in cfg.factory.cells} >= {"milling", "drill"}  # type: ignore[union-attr]


# mistakes ----------------------------------------------------------------------------------
def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    from twin.sweep.paths import set_value

    return lambda raw: set_value(raw, path, value)


def _drop_lane(a: str, b: str) -> Callable[[dict[str, Any]], None]:
    def edit(raw: dict[str, Any]) -> None:
        raw["network"]["lanes"] = [
            ln for ln in raw["network"]["lanes"] if {ln["from"], ln["to"]} != {a, b}
        ]

    return edit


def _add_lane(a: str, b: str) -> Callable[[dict[str, Any]], None]:
    return lambda raw: raw["network"]["lanes"].append({"from": a, "to": b})


def _add_node(node_id: str, x: float, y: float) -> Callable[[dict[str, Any]], None]:
    return lambda raw: raw["network"]["nodes"].append({"id": node_id, "position": [x, y]})


def _both(*edits: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def edit(raw: dict[str, Any]) -> None:
        for e in edits:
            e(raw)

    return edit


def _del(index: int, key: str) -> Callable[[dict[str, Any]], None]:
    return lambda raw: raw["cells"][index].pop(key)


LANES = len(small_raw()["network"]["lanes"])

MISTAKES = [
    (  # a template that does not exist
        _set("cells[1].template", "cells/no_such_cell.toml"),
        ["cells[1] (cell 'mill1').template", "cannot read cell template", "no_such_cell.toml"],
    ),
    (  # no template at all
        _del(1, "template"),
        ["cells[1] (cell 'mill1')", "missing required field `template`"],
    ),
    (  # a factory used as a template
        _set("cells[1].template", "factory_small.toml"),
        ["cells[1] (cell 'mill1').template", "is a factory file"],
    ),
    (  # two cells whose prefixes make the same ids
        _set("cells[2].prefix", "mill1_"),
        ["cells[2] (cell 'mill2').prefix", "'mill1_robot'", "collides"],
    ),
    (  # a prefix that cannot start an id
        _set("cells[2].prefix", "2_"),
        ["cells[2] (cell 'mill2').prefix", "cannot start a device id"],
    ),
    (  # two cells of the same id
        _set("cells[2].id", "mill1"),
        ["cells[2] (cell 'mill1').id", "duplicate cell 'mill1'"],
    ),
    (  # the spurs to mill2 are gone: nothing reaches its docks
        _both(
            _drop_lane("j_mill2_in", "mill2_in_approach"),
            _drop_lane("j_mill2_out", "mill2_out_approach"),
        ),
        ["network.lanes", "dock 'mill2_in' cannot be reached"],
    ),
    (  # a lane straight through mill1
        _both(_add_node("x1", 6.0, 4.5), _add_lane("j_receiving", "x1")),
        [f"network.lanes[{LANES}]", "lane 'j_receiving' -> 'x1'", "crosses cell 'mill1'"],
    ),
    (  # a lane that brushes a cell: the AMR would scrape it
        _both(_add_node("x1", 1.85, 1.9), _add_node("x2", 1.85, 4.6), _add_lane("x1", "x2")),
        [f"network.lanes[{LANES}]", "passes 0.22 m from cell 'mill1'", "needs 0.28 m"],
    ),
    (  # a parking spot inside a cell
        _set("network.nodes[13].position", [3.0, 3.0]),
        ["network.nodes[13].position", "node 'park2'", "cell 'mill1'"],
    ),
    (  # two lanes that cross where there is no node
        _both(_add_node("x1", -2.0, 1.5), _add_node("x2", -2.0, -1.5), _add_lane("x1", "x2")),
        [f"network.lanes[{LANES}]", "crosses lane 'park1' -> 'nw' between nodes"],
    ),
    (  # mill2 moved onto mill1
        _set("cells[2].position", [4.0, 3.1]),
        ["cells[2] (cell 'mill2').position", "overlaps cell 'mill1'"],
    ),
    (  # a routing to a kind of cell the factory does not have
        _set("orders.products[0].routing[1].cell", "paint"),
        ["orders.products[0].routing[1].cell", "no cell and no cell kind 'paint'"],
    ),
    (  # one station, two cycle times for the same part
        lambda raw: raw["orders"]["products"][0]["routing"].append(
            {"cell": "mill1", "cycle_time": 9.0}
        ),
        ["orders.products[0].routing[2].cycle_time", "differs from the 40.0 s"],
    ),
    (  # an AMR start spot that is no node
        _set("fleet.start", ["park1", "nowhere"]),
        ["fleet.start[1]", "unknown node or dock 'nowhere'"],
    ),
    (  # a park spot that is no node
        _set("fleet.park[3]", "nowhere"),
        ["fleet.park[3]", "unknown node 'nowhere'"],
    ),
    (  # more AMRs than start spots
        _set("fleet.count", 5),
        ["fleet.count", "5 AMRs but only 4 start spots in fleet.park"],
    ),
    (  # two AMRs on one spot
        _both(
            _set("fleet.count", 0),
            _set("fleet.amrs", [{"id": "a", "start": "park1"}, {"id": "b", "start": "park1"}]),
        ),
        ["fleet.amrs", "'park1' is already the start of AMR 'a'"],
    ),
    (  # a bad AMR setting
        _set("fleet.amr.max_speed", -1.0),
        ["fleet.amr.max_speed", "Expected `float` > 0"],
    ),
    (  # an unknown key in a cell
        _set("cells[0].colour", 3),
        ["cells[0] (cell 'receiving')", "unknown field `colour`"],
    ),
    (  # an in dock the template does not have
        _set("cells[1].in_dock", "side"),
        ["cells[1] (cell 'mill1').in_dock", "has no dock 'side'"],
    ),
]


@pytest.mark.parametrize(("edit", "expected"), MISTAKES)
def test_a_mistake_names_the_file_and_the_field(edit, expected: list[str]):
    raw = small_raw()
    edit(raw)
    with pytest.raises(ConfigError) as info:
        load_raw(copy.deepcopy(raw))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("factory_test.toml: "), message
    for part in expected:
        assert part in message, message


def test_an_invalid_template_names_both_files(tmp_path: Path):
    bad = tmp_path / "bad_cell.toml"
    bad.write_text(
        (CONFIGS / "cells" / "mill_cell.toml")
        .read_text()
        .replace("cycle_time = 30.0", "cycle_time = -1.0")
    )
    raw = small_raw()
    raw["cells"][1]["template"] = str(bad)
    with pytest.raises(ConfigError) as info:
        load_raw(raw)
    message = str(info.value)
    assert message.startswith("factory_test.toml: cells[1] (cell 'mill1').template: ")
    assert f"{bad}: devices[1] (device 'station').cycle_time" in message
    assert "\n" not in message


def test_a_template_needs_docks_for_a_process_cell(tmp_path: Path):
    """A process cell whose template never picks from a dock: where would AMRs bring parts?"""
    text = (CONFIGS / "cells" / "mill_cell.toml").read_text()
    text = text.replace(
        '{ arm = "robot", pick = { dock = "in" }, place = { station = "station" } },\n', ""
    )
    (tmp_path / "no_in.toml").write_text(text)
    raw = small_raw()
    raw["cells"][1]["template"] = str(tmp_path / "no_in.toml")
    with pytest.raises(
        ConfigError, match=r"cells\[1\] \(cell 'mill1'\)\.template: .*needs an in dock"
    ):
        load_raw(raw)
    raw["cells"][1]["in_dock"] = "in"  # said explicitly: fine
    assert load_raw(raw).factory.cells[1].in_dock == "mill1_in"  # type: ignore[union-attr]


# every command takes factory files ------------------------------------------------------------
@pytest.mark.parametrize("path", FACTORIES, ids=lambda p: p.stem)
def test_twin_check_passes_the_shipped_factories(path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "twin.cli", "check", str(path.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{path.relative_to(ROOT)}: ok" in proc.stdout
    assert "cells:" in proc.stdout and "AMRs" in proc.stdout


def test_twin_check_names_a_mistake_in_a_factory(tmp_path: Path):
    text = SMALL.read_text().replace('template = "cells/', f'template = "{CONFIGS}/cells/')
    text = text.replace("cells/drill_cell.toml", "cells/nope.toml")
    path = tmp_path / "factory.toml"
    path.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "twin.cli", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert f"{path}: cells[4] (cell 'drill1').template: " in proc.stderr
    assert "nope.toml: cannot read cell template" in proc.stderr


def test_the_fleet_sweep_sets_factory_fields():
    """`configs/sweep_fleet.toml` varies fleet size and release policy: every scenario's
    config is a valid factory with that many AMRs and that policy, loadable where a sweep
    worker loads it (from the text, templates found beside the factory file)."""
    from twin.sweep.scenarios import plan
    from twin.sweep.spec import load_sweep

    sweep = load_sweep(CONFIGS / "sweep_fleet.toml")
    tasks = plan(sweep).tasks
    seen = set()
    for task in tasks:
        cfg = loads(task.config, task.source, base_dir=task.base_dir)
        assert cfg.factory is not None and cfg.factory.orders is not None
        amrs = sum(isinstance(d, AmrConfig) for d in cfg.devices)
        policy = cfg.factory.orders.release.policy
        assert cfg.factory.orders.arrivals is not None
        assert cfg.factory.orders.arrivals.interval == 200.0
        seen.add((amrs, policy))
    assert seen == {(n, p) for n in (1, 2, 3) for p in ("push", "conwip")}
    assert len(tasks) == 12
    # a sweep worker runs a scenario from its text alone (here a few seconds of it)
    from msgspec.structs import replace

    from twin.sweep.worker import execute

    result = execute(replace(tasks[-1], duration=3.0))
    assert result.status == "ok", result.error
    assert result.kpis["kpis.factory.fleet.busy"] is not None


def test_a_sweep_path_selects_a_product_by_its_type():
    from twin.sweep.paths import get_value, set_value

    raw = small_raw()
    set_value(raw, "orders.products.cover.routing[0].cycle_time", 12.0)
    assert get_value(raw, "orders.products.cover.routing[0].cycle_time") == 12.0
    cfg = load_raw(raw)
    assert cfg.device("mill2_station").cycle_times["cover"] == 12.0  # type: ignore[union-attr]


# the layout works physically --------------------------------------------------------------
def _wait(line: Any, cond: Callable[[], bool], limit: float, what: str) -> None:
    end = line.sim_time + limit
    while not cond():
        assert line.sim_time < end, f"{what}: not within {limit} s ({line.signals()})"
        line.step(10)


def test_a_part_travels_through_placed_cells_on_amrs():
    """factory_small's templates placed facing south (mill1) and north (drill1): an AMR
    docked at a placed in dock is where the cell's robot picks from, and one docked at the
    out dock is where it places. A part is loaded at receiving, driven to mill1, milled,
    placed on the AMR waiting at mill1's out dock, driven to drill1, drilled and placed on
    the AMR at drill1's out dock; nothing is lost on the way."""
    from twin.automation import build_line

    raw = small_raw()
    raw["fleet"] = {
        "amrs": [
            {"id": "a1", "start": "receiving_load"},
            {"id": "a2", "start": "mill1_out"},
            {"id": "a3", "start": "drill1_out"},
        ],
        "amr": {
            "dock_speed": 0.5,
            "max_speed": 2.0,
            "max_acceleration": 1.5,
            "max_deceleration": 2.0,
            "turn_rate": 2.0,
        },
    }
    raw["orders"]["products"][0]["routing"] = [
        {"cell": "mill", "cycle_time": 3.0},
        {"cell": "drill", "cycle_time": 3.0},
    ]
    raw["orders"]["book"] = []  # the test releases the part and drives the AMRs itself
    raw["orders"].pop("arrivals", None)
    line = build_line(load_raw(raw), builtin_fleet=False)
    try:
        signals = line.signals

        def drive(amr: str, command: str, args: dict[str, Any]) -> None:
            done = signals()[amr]["moves_done"]
            line.apply(amr, command, args)
            _wait(line, lambda: signals()[amr]["moves_done"] > done, 120, f"{amr} {command}")
            assert signals()[amr]["result"] == "ok", (amr, command, signals()[amr])

        line.step(10)
        assert [signals()[a]["state"] for a in ("a1", "a2", "a3")] == ["docked"] * 3
        line.apply("receiving_store", "spawn", {"type": "housing"})
        _wait(line, lambda: signals()["a1"]["load"] is not None, 10, "loaded at receiving")
        part = signals()["a1"]["load"]
        for amr, cell in (("a1", "mill1"), ("a2", "drill1")):
            drive(amr, "undock", {})
            drive(amr, "go_to", {"node": f"{cell}_in_approach"})
            drive(amr, "dock", {"dock": f"{cell}_in"})
            nxt = "a2" if cell == "mill1" else "a3"
            _wait(line, lambda a=nxt: signals()[a]["load"] == part, 60, f"through {cell}")
            assert signals()[amr]["load"] is None
        events = line.events.drain()
        assert not [e for e in events if e.kind in ("part_lost", "alarm")], events
        assert signals()["a3"]["load_type"] == "housing"
        # processed for the routing's cycle time of its type, not the template's default
        done = {e.device: e.cycle_time for e in events if e.kind == "process_finished"}
        assert done.keys() == {"mill1_station", "drill1_drill_a"}
        assert all(t == pytest.approx(3.0) for t in done.values()), done
    finally:
        line.close()


def test_a_factory_recording_replays_without_its_templates(tmp_path: Path):
    """The recording keeps the expanded line config: replayed from another directory, where
    the factory file and its templates are not, it reproduces the run bit for bit."""
    from twin.factory.layout import expanded_toml

    cfg = load(SMALL)
    assert loads(expanded_toml(cfg), str(SMALL)) == cfg  # the text is the same config
    rec = tmp_path / "factory.mcap"
    twin = [sys.executable, "-m", "twin.cli"]
    run = [*twin, "run", "configs/factory_small.toml", "--duration", "3", "--quiet"]
    proc = subprocess.run(
        [*run, "--record", str(rec)], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run(
        [*twin, "replay", "--verify", str(rec)],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_oee_counts_each_part_at_its_types_cycle_time():
    """A station that works each part for exactly its type's cycle time performs at 100%,
    though the times differ from its default cycle_time."""
    from twin.analytics.kpi import KpiTracker
    from twin.events import PartSpawned, ProcessFinished, StationActivity

    kpis = KpiTracker({"mill": 30.0}, type_cycle_times={"mill": {"housing": 40.0, "cover": 25.0}})
    t = 0.0
    events: list[Any] = [
        StationActivity(step=0, time=0.0, device="mill", activity="idle", previous="stopped")
    ]
    for part, (kind, cycle) in enumerate([("housing", 40.0), ("housing", 40.0), ("cover", 25.0)]):
        events.append(
            PartSpawned(
                step=0, time=t, device="src", part=part, type=kind, quality="good", defect=None
            )
        )
        events.append(
            StationActivity(step=0, time=t, device="mill", activity="execute", previous="idle")
        )
        t += cycle
        events.append(
            StationActivity(step=0, time=t, device="mill", activity="idle", previous="execute")
        )
        events.append(
            ProcessFinished(
                step=0,
                time=t,
                device="mill",
                part=part,
                cycle_time=cycle,
                quality="good",
                defect=None,
            )
        )
    kpis.consume(events)
    mill = kpis.station_kpis(t)["mill"]
    assert mill["processed"] == 3
    assert mill["performance"] == pytest.approx(1.0)
