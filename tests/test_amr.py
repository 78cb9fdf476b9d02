"""AMRs with real pybullet physics: driving within their limits, a part riding on the deck,
the safety field, the battery, docking, refused commands and determinism.

Small lines are built from TOML strings; every run is a few simulated seconds. Limits are
checked from the AMR's own signals over time, as a client would see them.
"""

from __future__ import annotations

import math

import pytest

from twin.config import ConfigError, loads
from twin.devices.base import CommandError
from twin.line import Line

pytestmark = pytest.mark.timeout(120)

DT = 0.01

PARTS = """
name = "amr_test"
[part_pool]
lost_check_period = 0.1
[[part_types]]
name = "box"
size = [0.08, 0.08, 0.05]
mass = 0.35
[[part_types]]
name = "ingot"
size = [0.1, 0.1, 0.05]
mass = 30.0
"""

# a lane east, a corner north, and a one-way spur; a charger at the corner
NETWORK = """
[network]
nodes = [
  { id = "a", position = [0.0, 0.0] },
  { id = "b", position = [3.0, 0.0] },
  { id = "c", position = [3.0, 2.0] },
  { id = "e", position = [6.0, 0.0] },
  { id = "f", position = [0.0, 3.0] },
]
lanes = [
  { from = "a", to = "b" },
  { from = "b", to = "c", speed = 0.4 },
  { from = "b", to = "e", two_way = false },
  { from = "e", to = "f", two_way = false },
  { from = "f", to = "a", two_way = false },
]
chargers = [{ id = "ch1", node = "c", power = 360.0 }]
"""


def amr(id: str, start: str, **fields: object) -> str:
    extra = "\n".join(f"{k} = {_toml(v)}" for k, v in fields.items())
    return f'\n[[devices]]\nkind = "amr"\nid = "{id}"\nstart = "{start}"\n{extra}\n'


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    return repr(v)


def make_line(*fragments: str, network: str = NETWORK) -> Line:
    return Line(loads(PARTS + network + "".join(fragments), "<test>"))


def run(line: Line, seconds: float, until=None) -> list[dict]:
    """Step up to `seconds`; the AMR signals of every step (all AMRs), stopping early when
    `until(line)` holds."""
    out = []
    for _ in range(round(seconds / DT)):
        line.step()
        out.append({k: d.signals() for k, d in line.devices.items() if d.kind == "amr"})
        if until is not None and until(line):
            break
    return out


def idle(amr_id: str):
    return lambda line: line.devices[amr_id].state in ("idle", "docked")


def events(line: Line, kind: str) -> list[dict]:
    return [dict(e.data, device=e.device) for e in line.drain_events() if e.kind == kind]


def test_drives_a_route_within_its_speed_acceleration_and_turn_limits() -> None:
    limits = dict(max_speed=1.2, max_acceleration=0.6, max_deceleration=0.9, turn_rate=0.8)
    with make_line(amr("r1", "a", turn_acceleration=1.5, **limits)) as line:
        line.apply("r1", "go_to", {"node": "c"})
        trace = [s["r1"] for s in run(line, 30, idle("r1"))]
        end = trace[-1]
        assert (end["state"], end["node"], end["result"], end["moves_done"]) == (
            "idle",
            "c",
            "ok",
            1,
        )
        assert math.hypot(end["x"] - 3.0, end["y"] - 2.0) < 0.005
        assert abs(end["yaw"] - math.pi / 2) < 0.01  # facing along the last lane
        speed = [s["speed"] for s in trace]
        rate = [s["yaw_rate"] for s in trace]
        assert max(speed) == pytest.approx(1.2, abs=0.01)  # it does reach its top speed ...
        assert max(abs(v) for v in speed) <= 1.2 + 1e-3  # ... and never exceeds it
        accel = [(b - a) / DT for a, b in zip(speed, speed[1:])]
        assert max(accel) <= 0.6 * 1.02 + 1e-6
        assert min(accel) >= -0.9 * 1.02 - 1e-6
        assert max(abs(w) for w in rate) <= 0.8 + 1e-3
        assert max(abs(w) for w in rate) > 0.7  # it turned at the corner at about its rate
        turn_acc = [abs(b - a) / DT for a, b in zip(rate, rate[1:])]
        assert max(turn_acc) <= 1.5 * 1.02 + 1e-6
        # the lane b -> c is limited to 0.4 m/s: on it (x = 3) it never drives faster
        on_bc = [s["speed"] for s in trace if abs(s["x"] - 3.0) < 0.01 and s["y"] > 0.05]
        assert on_bc and max(on_bc) <= 0.4 + 1e-3
        # it stays on its lanes: at most a few mm beside them
        for s in trace:
            off = min(abs(s["y"]), abs(s["x"] - 3.0))
            assert off < 0.005, s
        # while driving `node` is '' and it reports its goal; at rest both are settled
        assert any(s["node"] == "" and s["goal"] == "c" for s in trace)
        (done,) = events(line, "amr_move_done")
        assert done["goal"] == "c" and done["result"] == "ok"
        assert done["distance"] == pytest.approx(5.0, abs=0.01)


def test_drives_through_a_straight_node_and_stops_at_the_corner() -> None:
    net = """
[network]
nodes = [{ id = "a", position = [0.0, 0.0] }, { id = "m", position = [2.0, 0.0] },
         { id = "b", position = [4.0, 0.0] }, { id = "c", position = [4.0, 1.0] }]
lanes = [{ from = "a", to = "m" }, { from = "m", to = "b" }, { from = "b", to = "c" }]
"""
    with make_line(amr("r1", "a"), network=net) as line:
        line.apply("r1", "go_along", {"nodes": ["a", "m", "b", "c"]})
        trace = [s["r1"] for s in run(line, 20, idle("r1"))]
        at_m = min(trace, key=lambda s: abs(s["x"] - 2.0))
        assert at_m["speed"] > 0.9  # passes m at (nearly) full speed
        at_b = min(trace, key=lambda s: math.hypot(s["x"] - 4.0, s["y"]))
        assert abs(at_b["speed"]) < 0.02  # stops at the corner to turn in place
        assert trace[-1]["node"] == "c"


def loaded_amr_line(**amr_fields: object) -> Line:
    """An AMR docked at a dock whose source puts a part on its deck."""
    return make_line(
        """
[[devices]]
kind = "dock"
id = "d1"
position = [-1.0, 0.0, 0.0]
yaw = 0.0
node = "a"
[[devices]]
kind = "source"
id = "feed"
dock = "d1"
enabled = false
parts = [{ type = "box" }, { type = "ingot", weight = 0.0001 }]
""",
        amr("r1", "d1", **amr_fields),
    )


def test_a_part_rides_on_the_deck_through_turns_and_stops() -> None:
    with loaded_amr_line() as line:
        line.apply("feed", "spawn", {"type": "box"})
        run(line, 0.5)
        r1 = line.devices["r1"]
        assert (r1.load, r1.load_type, r1.load_mass) == (1, "box", 0.35)
        line.apply("r1", "undock")
        run(line, 20, idle("r1"))
        line.apply("r1", "go_to", {"node": "c"})
        run(line, 30, idle("r1"))
        (x, y, _), _ = line.pool.pose(1)
        assert math.hypot(x - r1.x, y - r1.y) < 0.01  # still on the deck centre
        assert r1.load == 1 and line.pool.left["lost"] == 0


def test_a_part_slides_off_when_the_amr_brakes_harder_than_friction_holds_it() -> None:
    # friction between deck and part: 0.05 x 0.8 = 0.04, i.e. it holds up to 0.39 m/s^2
    with loaded_amr_line(deck_friction=0.05, max_deceleration=6.0, max_acceleration=0.3) as line:
        line.apply("feed", "spawn", {"type": "box"})
        run(line, 0.5)
        line.apply("r1", "undock")
        run(line, 20, idle("r1"))
        line.apply("r1", "go_to", {"node": "e"})  # east along a-b-e at 1 m/s
        run(line, 6)
        r1 = line.devices["r1"]
        assert r1.speed > 0.9 and r1.load == 1  # accelerating gently, the part rode along
        line.estop("test")  # stop at once: 6 m/s^2
        run(line, 2)
        assert r1.speed == 0.0 and r1.state == "stopped"
        lost = events(line, "part_lost")
        assert [e["part"] for e in lost] == [1]  # it slid forward off the deck and fell
        assert r1.load is None


def test_the_safety_field_slows_for_and_stops_before_another_amr_then_gives_up() -> None:
    net = """
[network]
nodes = [{ id = "a", position = [0.0, 0.0] }, { id = "m", position = [4.0, 0.0] },
         { id = "b", position = [6.0, 0.0] }]
lanes = [{ from = "a", to = "m" }, { from = "m", to = "b" }]
"""
    with make_line(amr("r1", "a", blocked_timeout=3.0), amr("r2", "m"), network=net) as line:
        line.apply("r1", "go_to", {"node": "b"})
        trace = [s["r1"] for s in run(line, 30, idle("r1"))]
        r1 = line.devices["r1"]
        # the other chassis starts 0.4 m before m: r1's bumper (0.4 m ahead of its centre)
        # must stay short of 4.0 - 0.4 - 0.4 = 3.2
        closest = max(s["x"] for s in trace)
        gap = 3.2 - closest
        assert 0.0 < gap <= 0.35 + 0.05, gap  # stopped within its protective field
        warned = [s for s in trace if s["safety"] == "warning"]
        assert warned and min(s["x"] for s in warned) > 3.2 - 1.2 - 0.15
        slow = [s["speed"] for s in trace if s["safety"] == "warning" and s["x"] > 2.6]
        assert max(slow) <= 0.3 + 0.01  # slowed to warning_speed before the stop
        states = [s["state"] for s in trace]
        assert "blocked" in states
        assert (r1.state, r1.result, r1.node, r1.goal) == ("idle", "blocked", "", "")
        done = events(line, "amr_move_done")
        assert [(e["goal"], e["result"]) for e in done] == [("b", "blocked")]
        blocked_at = next(i for i, s in enumerate(states) if s == "blocked")
        assert (len(states) - blocked_at) * DT == pytest.approx(3.0, abs=0.5)
        # it reports, then takes a new command: back to a
        line.apply("r1", "go_to", {"node": "a"})
        run(line, 30, idle("r1"))
        assert (r1.node, r1.result) == ("a", "ok")


def test_the_safety_field_sees_a_part_on_the_floor_and_resumes_when_it_is_gone() -> None:
    line = make_line(amr("r1", "a", safety={"height": 0.03}))
    line.cfg.part_pool.lost_check_period = 10.0
    with line:
        line.lost_parts.period = 1000  # a part on the floor stays there for this test
        part = line.pool.spawn("box", [2.0, 0.0, 0.025], 0.0, 0.0)
        line.apply("r1", "go_to", {"node": "b"})
        run(line, 12, lambda ln: ln.devices["r1"].state == "blocked")
        r1 = line.devices["r1"]
        assert r1.state == "blocked" and r1.safety == "protective"
        front = r1.x + 0.4
        assert 2.0 - 0.04 - front > 0.0  # stopped before it, not pushing it
        line.pool.release(part.id, "scrapped")  # someone picks it up
        run(line, 20, idle("r1"))
        assert (r1.node, r1.result, r1.safety) == ("b", "ok", "clear")


def test_battery_drains_with_distance_and_payload() -> None:
    battery = {"capacity": 20.0, "drive_energy": 0.5, "payload_energy": 0.05, "idle_power": 36.0}
    with loaded_amr_line(battery=battery, max_payload=50.0) as line:
        r1 = line.devices["r1"]
        line.apply("r1", "undock")
        run(line, 20, idle("r1"))
        empty_start, t0 = r1.battery, line.sim_time
        line.apply("r1", "go_to", {"node": "b"})
        run(line, 20, idle("r1"))
        t = line.sim_time - t0
        empty_used = (empty_start - r1.battery) * 20.0  # Wh
        assert empty_used == pytest.approx(3.0 * 0.5 + 36.0 * t / 3600, rel=0.01)
        # back loaded with the 30 kg ingot: 3 m x (0.5 + 0.05 x 30) Wh/m
        line.apply("r1", "go_to", {"node": "a"})
        run(line, 20, idle("r1"))
        line.apply("r1", "dock", {"dock": "d1"})
        run(line, 20, idle("r1"))
        line.apply("feed", "spawn", {"type": "ingot"})
        run(line, 0.5)
        assert r1.load_mass == 30.0
        line.apply("r1", "undock")
        run(line, 20, idle("r1"))
        start, t0 = r1.battery, line.sim_time
        line.apply("r1", "go_to", {"node": "b"})
        run(line, 20, idle("r1"))
        t = line.sim_time - t0
        used = (start - r1.battery) * 20.0
        assert used == pytest.approx(3.0 * (0.5 + 0.05 * 30.0) + 36.0 * t / 3600, rel=0.01)


def test_battery_charges_at_a_charger_and_runs_flat_elsewhere() -> None:
    battery = {"capacity": 2.0, "initial": 0.6, "drive_energy": 0.2, "low": 0.3, "full": 0.9}
    with make_line(amr("r1", "a", battery=battery)) as line:
        r1 = line.devices["r1"]
        with pytest.raises(CommandError) as e:
            line.apply("r1", "charge")
        assert e.value.code == "not_at_charger"
        line.apply("r1", "go_to", {"node": "c"})
        run(line, 30, idle("r1"))
        before, t0 = r1.battery, line.sim_time
        line.apply("r1", "charge")
        trace = run(line, 3)
        assert all(s["r1"]["state"] == "charging" for s in trace)
        # 360 W: 0.1 Wh per s, 0.05 of the 2 Wh capacity per s; it stops at full (0.9)
        assert r1.battery == pytest.approx(before + 3 * 0.05, abs=0.002)
        run(line, 30, idle("r1"))
        assert r1.state == "idle" and r1.battery == pytest.approx(0.9)
        assert line.sim_time - t0 == pytest.approx((0.9 - before) / 0.05, abs=0.05)
        # drive around the one-way loop until the battery is flat: 1.8 Wh / 0.2 Wh/m = 9 m
        line.drain_events()
        line.apply("r1", "go_along", {"nodes": ["c", "b", "e", "f", "a", "b", "e", "f"]})
        run(line, 60, lambda ln: ln.devices["r1"].state == "battery_empty")
        run(line, 3)
        assert (r1.state, r1.result, r1.battery) == ("battery_empty", "battery_empty", 0.0)
        assert abs(r1.speed) < 1e-6
        evs = line.drain_events()
        low = [e.data for e in evs if e.kind == "battery_low"]
        assert len(low) == 1 and low[0]["level"] < 0.3
        done = [e.data for e in evs if e.kind == "amr_move_done"]
        assert done[-1]["result"] == "battery_empty"
        assert done[-1]["distance"] == pytest.approx(9.0, abs=0.7)  # braking after empty
        with pytest.raises(CommandError) as e:
            line.apply("r1", "go_to", {"node": "a"})
        assert e.value.code == "battery_empty"


def test_docking_only_from_the_approach_node_and_undocking() -> None:
    docks = """
[[devices]]
kind = "dock"
id = "d1"
position = [3.0, -1.5, 0.0]
yaw = -1.5707963
node = "b"
"""
    with make_line(docks, amr("r1", "a"), amr("r2", "c")) as line:
        r1, d1 = line.devices["r1"], line.devices["d1"]
        with pytest.raises(CommandError) as e:
            line.apply("r1", "dock", {"dock": "d1"})
        assert e.value.code == "not_at_dock" and "'b'" in e.value.message
        assert r1.state == "idle" and r1.moves_done == 0  # nothing applied
        line.apply("r1", "go_to", {"node": "b"})
        run(line, 20, idle("r1"))
        line.apply("r1", "dock", {"dock": "d1"})
        trace = [s["r1"] for s in run(line, 20, idle("r1"))]
        assert max(abs(s["speed"]) for s in trace) <= 0.15 + 1e-3  # creeps at dock_speed
        assert (r1.state, r1.dock_id, r1.node) == ("docked", "d1", "")
        assert math.hypot(r1.x - 3.0, r1.y + 1.5) < d1.cfg.tolerance
        assert abs(r1.yaw + math.pi / 2) < 0.01
        sig = d1.signals()
        assert (sig["occupied"], sig["amr"], sig["empty_amr"], sig["part"]) == (
            True,
            "r1",
            True,
            None,
        )
        # a docked AMR must undock before it drives; another cannot take the dock
        with pytest.raises(CommandError) as e:
            line.apply("r1", "go_to", {"node": "a"})
        assert e.value.code == "docked"
        line.apply("r2", "go_to", {"node": "b"})
        run(line, 20, idle("r2"))
        with pytest.raises(CommandError) as e:
            line.apply("r2", "dock", {"dock": "d1"})
        assert e.value.code == "dock_occupied" and "r1" in e.value.message
        line.apply("r2", "go_to", {"node": "c"})
        run(line, 20, idle("r2"))
        line.apply("r1", "undock")
        assert d1.signals()["occupied"] is False  # left the dock
        run(line, 20, idle("r1"))
        assert (r1.state, r1.node, r1.dock_id) == ("idle", "b", "")
        assert math.hypot(r1.x - 3.0, r1.y) < 0.005
        assert d1.signals()["claimed"] == ""


def test_commands_are_refused_with_clear_errors_and_nothing_applied() -> None:
    with loaded_amr_line(max_payload=10.0) as line:
        r1 = line.devices["r1"]

        def refused(command: str, args: dict | None = None) -> CommandError:
            before = (r1.signals(), line.step_index)
            with pytest.raises(CommandError) as e:
                line.apply("r1", command, args)
            assert (r1.signals(), line.step_index) == before  # nothing applied
            return e.value

        e = refused("go_to", {"node": "nowhere"})
        assert e.code == "bad_value" and "'nowhere'" in e.message
        assert "['a', 'b', 'c', 'e', 'f']" in e.message  # names the known nodes
        e = refused("go_along", {"nodes": ["a", "nowhere"]})
        assert e.code == "bad_value" and "'nowhere' is not one of ['a'" in e.message
        e = refused("dock", {"dock": "d9"})
        assert e.code == "bad_value" and "'d1'" in e.message
        e = refused("go_along", {"nodes": ["a", "c"]})
        assert e.code == "bad_value" and "no lane from 'a' to 'c'" in e.message
        e = refused("go_along", {"nodes": "a"})
        assert e.code == "bad_type"
        e = refused("go_to", {"node": "b"})
        assert e.code == "docked"
        line.apply("r1", "undock")
        run(line, 20, idle("r1"))
        e = refused("go_along", {"nodes": ["c", "b"]})  # not a lane from where it stands
        assert e.code == "bad_value"
        # e is only reached one way: from a via b, and e -> f -> a leads back: reachable;
        # nothing leads into a network island
        line.apply("r1", "go_to", {"node": "e"})
        run(line, 30, idle("r1"))
        assert r1.node == "e"
        e = refused("go_along", {"nodes": ["e", "b"]})  # against a one-way lane
        assert e.code == "bad_value"
        # overloaded: a 30 kg ingot on a deck rated for 10 kg
        line.apply("r1", "go_to", {"node": "a"})
        run(line, 40, idle("r1"))
        line.apply("r1", "dock", {"dock": "d1"})
        run(line, 20, idle("r1"))
        line.apply("feed", "spawn", {"type": "ingot"})
        run(line, 0.5)
        assert r1.signals()["overloaded"] is True
        e = refused("undock")
        assert e.code == "overloaded" and "30.00 kg" in e.message


def test_an_unreachable_goal_is_refused() -> None:
    net = """
[network]
nodes = [{ id = "a", position = [0.0, 0.0] }, { id = "b", position = [2.0, 0.0] },
         { id = "x", position = [0.0, 3.0] }]
lanes = [{ from = "a", to = "b" }, { from = "x", to = "a", two_way = false }]
"""
    with make_line(amr("r1", "a"), network=net) as line:
        with pytest.raises(CommandError) as e:
            line.apply("r1", "go_to", {"node": "x"})
        assert e.value.code == "unreachable" and "'x'" in e.value.message
        assert line.devices["r1"].state == "idle"


def test_a_stop_ends_the_move_halted_and_a_new_goal_continues_from_the_lane() -> None:
    with make_line(amr("r1", "a")) as line:
        r1 = line.devices["r1"]
        line.apply("r1", "go_to", {"node": "b"})
        run(line, 2.0)
        line.apply("r1", "stop")
        run(line, 3)
        assert (r1.state, r1.result, r1.node, r1.goal) == ("stopped", "halted", "", "")
        assert 0.5 < r1.x < 2.0 and abs(r1.speed) < 1e-6
        line.apply("r1", "go_to", {"node": "a"})  # back along the two-way lane
        run(line, 20, idle("r1"))
        assert (r1.node, r1.result) == ("a", "ok")


def test_the_same_commands_give_the_same_poses_bit_for_bit() -> None:
    def trajectory() -> list[tuple]:
        with loaded_amr_line() as line:
            line.apply("feed", "spawn", {"type": "box"})
            run(line, 0.3)
            line.apply("r1", "undock")
            run(line, 8)
            line.apply("r1", "go_to", {"node": "c"})
            return [
                (s["r1"]["x"], s["r1"]["y"], s["r1"]["yaw"], s["r1"]["speed"])
                for s in run(line, 10)
            ] + [line.pool.pose(1)]

    assert trajectory() == trajectory()


def test_describe_tells_the_network_and_the_amr_and_dock_geometry() -> None:
    with loaded_amr_line() as line:
        desc = line.describe()
        net = desc["network"]
        assert [n["id"] for n in net["nodes"]] == ["a", "b", "c", "e", "f"]
        bc = next(lane for lane in net["lanes"] if lane["from"] == "b" and lane["to"] == "c")
        assert (bc["two_way"], bc["length"], bc["speed"]) == (True, 2.0, 0.4)
        assert bc["direction"] == [0.0, 1.0]
        assert net["chargers"] == [{"id": "ch1", "node": "c", "power": 360.0}]
        assert net["docks"] == [{"id": "d1", "node": "a", "position": [-1.0, 0.0, 0.0], "yaw": 0.0}]
        devices = {d["id"]: d for d in desc["devices"]}
        assert devices["d1"]["geometry"]["deck_point"] == [-1.0, 0.0, 0.7]
        assert devices["d1"]["geometry"]["approach"] == [0.0, 0.0]
        assert devices["r1"]["geometry"]["deck_height"] == 0.7
        assert devices["feed"]["geometry"] == {"dock": "d1", "deck_point": [-1.0, 0.0, 0.7]}
        names = [c["name"] for c in devices["r1"]["commands"]]
        assert names == ["go_to", "go_along", "dock", "undock", "charge", "stop"]
        schema = desc["signals_schema"]["properties"]["r1"]["properties"]
        assert schema["state"]["enum"][:3] == ["idle", "driving", "docking"]
        assert {"amr_state", "amr_move_done", "amr_loaded", "amr_unloaded", "battery_low"} <= {
            e["kind"] for e in desc["events"]
        }
    with make_line(amr("r1", "a")) as line:
        assert line.describe()["network"]["docks"] == []


@pytest.mark.parametrize(
    ("fragment", "field", "problem"),
    [
        (amr("r1", "a") + amr("r2", "a"), "(device 'r2').start", "two AMRs cannot start"),
        (amr("r1", "zz"), "(device 'r1').start", "neither a node nor a dock"),
        (
            amr("r1", "a") + amr("r2", "b", size=[0.8, 0.56, 0.5]),
            "(device 'r2').size",
            "deck height",
        ),
        (
            '[[devices]]\nkind = "dock"\nid = "d1"\nposition = [0.0, 1.0, 0.0]\nnode = "a"\n'
            '[[devices]]\nkind = "sink"\nid = "s"\n',
            "(device 's').conveyor",
            "exactly one of 'conveyor' or 'dock'",
        ),
        (
            '[[devices]]\nkind = "dock"\nid = "d1"\nposition = [0.0, 1.0, 0.2]\nnode = "a"\n',
            "(device 'd1').position",
            "a dock is on the floor",
        ),
        (
            '[[devices]]\nkind = "sink"\nid = "s"\ndock = "a"\n' + amr("r1", "a"),
            "(device 's').dock",
            "refers to dock 'a', which is not defined",
        ),
    ],
)
def test_config_errors_name_the_file_and_field(fragment: str, field: str, problem: str) -> None:
    with pytest.raises(ConfigError) as e:
        loads(PARTS + NETWORK + fragment, "factory.toml")
    msg = str(e.value)
    assert msg.startswith("factory.toml: ") and field in msg and problem in msg, msg


def test_a_route_extended_while_driving_goes_on_without_stopping() -> None:
    """As a traffic manager drives it: one lane at a time, the next sent before the end."""
    net = """
[network]
nodes = [{ id = "a", position = [0.0, 0.0] }, { id = "m", position = [3.0, 0.0] },
         { id = "b", position = [6.0, 0.0] }]
lanes = [{ from = "a", to = "m" }, { from = "m", to = "b" }]
"""
    with make_line(amr("r1", "a"), network=net) as line:
        r1 = line.devices["r1"]
        line.apply("r1", "go_along", {"nodes": ["a", "m"]})
        run(line, 2.5)
        assert r1.state == "driving" and r1.node == ""
        line.apply("r1", "go_along", {"nodes": ["a", "m", "b"]})  # the lane being driven, on
        trace = [s["r1"] for s in run(line, 20, idle("r1"))]
        at_m = min(trace, key=lambda s: abs(s["x"] - 3.0))
        assert at_m["speed"] > 0.9
        assert (r1.node, r1.result, r1.moves_done) == ("b", "ok", 1)
        # stopped while driving back, then sent on: it brakes within its limits, then goes
        line.apply("r1", "go_to", {"node": "a"})
        run(line, 5.0)
        line.apply("r1", "stop")
        run(line, 0.2)
        line.apply("r1", "go_to", {"node": "b"})  # reverse while still braking
        trace = [s["r1"] for s in run(line, 20, idle("r1"))]
        speed = [s["speed"] for s in trace]
        accel = [(b - a) / DT for a, b in zip(speed, speed[1:])]
        assert max(abs(a) for a in accel) <= 0.8 * 1.02 + 1e-6
        assert (r1.node, r1.result) == ("b", "ok")


def test_an_estop_while_docking_stops_it_on_the_way_and_docking_goes_on_after() -> None:
    with loaded_amr_line(dock_speed=0.2) as line:
        r1, d1 = line.devices["r1"], line.devices["d1"]
        line.apply("r1", "undock")
        run(line, 2.0)
        line.estop("test")
        run(line, 1.0)
        assert (r1.state, r1.result, r1.dock_id, r1.node) == ("stopped", "halted", "", "")
        assert -0.9 < r1.x < -0.1 and r1.speed == 0.0  # between the dock and its node
        with pytest.raises(CommandError) as e:
            line.apply("r1", "dock", {"dock": "d1"})
        assert e.value.code == "estopped"
        line.estop_reset()
        with pytest.raises(CommandError) as e:
            line.apply("r1", "go_to", {"node": "b"})
        assert e.value.code == "docked"
        assert d1.signals()["claimed"] == "r1"  # still its dock
        line.apply("r1", "dock", {"dock": "d1"})
        run(line, 10, idle("r1"))
        assert (r1.state, r1.dock_id) == ("docked", "d1") and d1.signals()["amr"] == "r1"


def test_held_back_by_what_the_field_does_not_see_it_reports_blocked() -> None:
    with make_line(amr("r1", "a", blocked_timeout=2.0)) as line:
        r1 = line.devices["r1"]
        line.world.box([0.05, 0.5, 0.03], [2.0, 0.0, 0.03])  # a kerb below the scanner
        line.apply("r1", "go_to", {"node": "b"})
        trace = [s["r1"] for s in run(line, 20, idle("r1"))]
        assert r1.safety == "clear" and all(s["safety"] == "clear" for s in trace)
        assert r1.x + 0.4 < 1.95 + 0.01  # it did not get through
        evs = line.drain_events()
        causes = [e.data["cause"] for e in evs if e.kind == "amr_state"]
        assert causes == ["go_to", "stalled", "blocked_timeout"]
        done = [e.data for e in evs if e.kind == "amr_move_done"]
        assert [d["result"] for d in done] == ["blocked"]
        assert (r1.state, r1.result) == ("idle", "blocked")
