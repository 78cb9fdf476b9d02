"""The robot arm: motion profiles, move results, located picks, seating, activity.

The profile math is checked alone (pure functions); everything else runs the default cell
in real pybullet with its built-in controller off, as a user driving the arm would.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from twin.config import load, loads
from twin.devices.arm_motion import (
    CartesianLimits,
    CartesianTrajectory,
    JointLimits,
    JointTrajectory,
    Leg,
    SCurve,
)
from twin.devices.base import CommandError
from twin.line import Line

DEFAULT_LINE = Path(__file__).resolve().parents[1] / "configs" / "default_line.toml"


# --------------------------------------------------------------------------------------
# profiles, alone
# --------------------------------------------------------------------------------------


def derivatives(f, duration: float, dt: float = 1e-4):
    t = np.arange(0.0, duration + dt, dt)
    x = np.array([f(v) for v in t])
    v = np.gradient(x, dt, axis=0)
    a = np.gradient(v, dt, axis=0)
    return t, x, v, a


@pytest.mark.parametrize(
    "distance, v, a, j, expected",
    [
        # cruise reached: T = 2 (a/j + v/a) + (L/v - (a/j + v/a)) = L/v + a/j + v/a
        (0.4, 0.8, 4.0, 40.0, 0.4 / 0.8 + 4 / 40 + 0.8 / 4),
        # too short to cruise, long enough for full acceleration: Ta = Tj/2 + sqrt(Tj^2/4 + L/a)
        (0.1, 0.8, 4.0, 40.0, 2 * (0.05 + math.sqrt(0.05**2 + 0.1 / 4))),
        # very short: jerk alone, Tj = (L / 2j)^(1/3), T = 4 Tj
        (0.001, 0.8, 4.0, 40.0, 4 * (0.001 / 80) ** (1 / 3)),
        # trapezoid (infinite jerk): T = L/v + v/a
        (0.4, 0.8, 4.0, math.inf, 0.4 / 0.8 + 0.8 / 4),
    ],
    ids=["cruise", "no-cruise", "jerk-only", "trapezoid"],
)
def test_s_curve_duration_and_limits(distance, v, a, j, expected):
    p = SCurve(distance, v, a, j)
    assert p.duration == pytest.approx(expected, rel=1e-9)
    assert p.position(0) == 0 and p.position(p.duration) == pytest.approx(distance)
    _, x, vel, acc = derivatives(p.position, p.duration)
    assert np.all(np.diff(x) >= -1e-12)  # never backs up
    assert vel.max() <= v * 1.001
    if math.isfinite(j):
        assert np.abs(acc[2:-2]).max() <= a * 1.01


def _straight(rate: float):
    return lambda leg: np.full(7, rate)


def test_blended_corner_is_faster_and_stays_within_the_tool_limits():
    legs = [
        Leg(np.zeros(3), np.array([0.0, 0.0, 0.3]), 0.0, 0.0, 0.8),
        Leg(np.array([0.0, 0.0, 0.3]), np.array([0.5, 0.0, 0.3]), 0.0, 0.0, 0.8),
        Leg(np.array([0.5, 0.0, 0.3]), np.array([0.5, 0.0, 0.1]), 0.0, 0.0, 0.8),
    ]
    limits = CartesianLimits(acceleration=4.0, jerk=40.0)
    joints = JointLimits(np.full(7, 100.0), 1e6, 1e9)  # joints never bind here
    blended = CartesianTrajectory(legs, limits, joints, _straight(0.01))
    stopped = CartesianTrajectory(legs, limits, joints, _straight(0.01), blend=False)
    # stopping at each corner costs a braking and an acceleration (~0.3 s each)
    assert blended.duration < stopped.duration - 0.3
    _, x, v, a = derivatives(lambda t: blended.pose(t)[0], blended.duration, 1e-3)
    assert np.linalg.norm(x[-1] - legs[-1].end) < 1e-9
    assert np.linalg.norm(v, axis=1).max() <= 0.8 * 1.01
    assert np.linalg.norm(a[2:-2], axis=1).max() <= 4.0 * 1.02


def test_joint_move_is_synchronised_and_within_every_joints_limits():
    q0, q1 = np.zeros(3), np.array([1.0, 0.5, -0.2])
    limits = JointLimits(np.array([2.0, 0.25, 2.0]), 10.0, 100.0)
    traj = JointTrajectory(q0, q1, limits)
    # one S-curve on the fraction of the move: joint 1 (0.5 rad at 0.25 rad/s) sets the
    # speed, joint 0 (the longest way) the acceleration and jerk
    assert traj.duration == pytest.approx(SCurve(1.0, 0.25 / 0.5, 10.0, 100.0).duration)
    mid = traj.at(traj.duration / 2)
    assert mid == pytest.approx((q0 + q1) / 2)  # all joints halfway at half time
    _, _, v, a = derivatives(traj.at, traj.duration)
    assert np.all(np.abs(v).max(axis=0) <= limits.velocity * 1.001)
    assert np.abs(a[2:-2]).max() <= 10.0 * 1.01


# --------------------------------------------------------------------------------------
# the arm in the default cell
# --------------------------------------------------------------------------------------


def run_job(line: Line, command: str, args: dict | None = None, max_seconds: float = 20.0):
    """Send one job to the robot, step until it ends; return (signals, its arm_job_done
    event data, all robot events meanwhile)."""
    before = line.signals()["robot"]["jobs_done"]
    line.drain_events()
    line.apply("robot", command, args)
    for _ in range(round(max_seconds / line.dt)):
        line.step()
        if line.devices["robot"].jobs_done > before:
            break
    else:
        raise AssertionError(f"{command} did not end in {max_seconds} s")
    events = [e for e in line.drain_events() if e.device == "robot"]
    done = [e.data for e in events if e.kind == "arm_job_done"]
    assert len(done) == 1
    return line.signals()["robot"], done[0], events


@pytest.fixture()
def cell():
    with Line(load(DEFAULT_LINE)) as line:
        line.apply("source", "disable")
        yield line


def test_cycle_time_of_one_move_matches_the_profile_by_hand(cell):
    """A 0.4 m straight move at the travel height on the default line: S-curve with the
    config's 0.8 m/s, 4 m/s^2, 40 m/s^3: T = L/v + a/j + v/a = 0.5 + 0.1 + 0.2 = 0.8 s."""
    cfg = cell.devices["robot"].cfg
    h = cfg.travel_height
    run_job(cell, "move_to", {"position": [0.3, -0.2, h]})
    cell.step(20)  # let the arm come to rest on its point
    s, done, _ = run_job(cell, "move_to", {"position": [0.3, 0.2, h]})
    length = 0.4
    v, a, j = cfg.max_tool_speed, cfg.max_tool_acceleration, cfg.max_tool_jerk
    by_hand = length / v + a / j + v / a
    assert done["result"] == "ok"
    assert done["duration"] == pytest.approx(by_hand, rel=0.05)  # measured, command to done
    assert done["planned_duration"] == pytest.approx(by_hand, rel=0.01)
    assert s["planned_duration"] == pytest.approx(done["planned_duration"], abs=1e-4)
    assert math.dist(s["tool_position"], [0.3, 0.2, h]) < 0.004


def _place_a_part(line: Line, yaw: float = 0.0, offset: float = 0.0, on: str = "mill"):
    station = line.devices[on]
    part = line.pool.spawn("housing", station.point(offset, offset, 0.026), yaw, line.sim_time)
    line.step(30)
    return part


def test_pick_and_place_report_planned_durations_activities_and_seating(cell):
    part = _place_a_part(cell)
    mill_point = cell.devices["mill"].point(0, 0, 0)
    out_point = cell.devices["outfeed"].point(-0.5, 0, 0)
    s, picked, ev_pick = run_job(cell, "pick", {"position": mill_point})
    assert picked["result"] == "ok" and s["holding"] == part.id
    assert s["activity"] == "waiting"  # idle with a part on the cup
    s, placed, ev_place = run_job(cell, "place", {"position": out_point})
    assert placed["result"] == "ok" and placed["seated"] is True and s["seated"] is True
    for done in (picked, placed):
        # the job takes its profile time, plus settling at each stop (and minus the part
        # of the search the seal made unnecessary)
        assert done["duration"] == pytest.approx(done["planned_duration"], rel=0.1)
    activities = [e.data["activity"] for e in ev_pick + ev_place if e.kind == "arm_activity"]
    assert activities == [
        "moving_to_pick",
        "picking",
        "waiting",
        "moving_to_place",
        "placing",
        "idle",
    ]


def test_joint_speeds_stay_within_the_models_limits(cell):
    robot = cell.devices["robot"]
    _place_a_part(cell)
    limit = robot.model.max_velocity
    peak = np.zeros(len(limit))
    cell.apply("robot", "pick", {"position": cell.devices["mill"].point(0, 0, 0)})
    for command, args in [
        (None, None),
        ("place", {"position": cell.devices["outfeed"].point(-0.5, 0, 0)}),
        ("home", None),
    ]:
        if command:
            cell.apply("robot", command, args)
        for _ in range(1000):
            cell.step()
            peak = np.maximum(peak, np.abs(cell.signals()["robot"]["joint_velocities"]))
            if not robot.busy:
                break
    assert np.all(peak <= limit * 1.1), (peak, limit)  # tracking overshoot within 10 %


def test_move_into_the_station_table_does_not_report_ok(cell):
    robot = cell.devices["robot"]
    inside = cell.devices["mill"].point(-0.1, -0.1, -0.3)  # 0.3 m down into the table
    assert math.dist(inside, robot.shoulder) < robot.cfg.reach  # within reach: accepted
    s, done, _ = run_job(cell, "move_to", {"position": inside})
    assert done["result"] in ("not_reached", "collision")
    assert s["result"] == done["result"] and not s["busy"]
    if done["result"] == "collision":
        assert done["hit"] == "mill"
    else:
        assert done["distance"] > 0.05
    # the arm is usable again: it backs out of the contact
    s, done, _ = run_job(cell, "move_to", {"position": [0.3, 0.0, 1.0]})
    assert done["result"] == "ok"


def test_huge_target_is_refused_without_a_numpy_warning(cell):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for p in ([1e300, 0.0, 1.0], [1e308, -1e308, 1e308]):
            with pytest.raises(CommandError) as exc:
                cell.apply("robot", "move_to", {"position": p})
            assert exc.value.code == "out_of_reach"
        cell.step()
    assert not cell.signals()["robot"]["busy"]


def test_shoulder_is_read_from_the_model():
    """The reach is measured from the shoulder the URDF defines (0.333 m above the Panda's
    base), wherever the base is mounted."""
    text = DEFAULT_LINE.read_text().replace("pedestal_height = 0.6", "pedestal_height = 0.4")
    with Line(loads(text, "<test>")) as line:
        robot = line.devices["robot"]
        assert robot.shoulder[2] == pytest.approx(0.4 + 0.333, abs=1e-4)
        assert robot.shoulder[:2] == pytest.approx([0.0, 0.0], abs=1e-4)


def test_pick_finds_a_turned_and_shifted_part_and_places_it_square(cell):
    part = _place_a_part(cell, yaw=0.5, offset=0.012)  # 29 deg off, 17 mm off the point
    s, done, _ = run_job(cell, "pick", {"position": cell.devices["mill"].point(0, 0, 0)})
    assert done["result"] == "ok" and s["holding"] == part.id
    out = cell.devices["outfeed"].point(-0.5, 0, 0)
    s, done, _ = run_job(cell, "place", {"position": out})
    assert done["result"] == "ok" and done["seated"]
    cell.step(30)
    pos, orn = cell.pool.pose(part.id)
    yaw = cell.world.client.getEulerFromQuaternion(orn)[2]
    # square to the base (yaw 0) modulo the square part's quarter turn, within 3 deg
    assert abs((math.degrees(yaw) + 45) % 90 - 45) < 3.0
    assert math.dist(pos[:2], out[:2]) < 0.01


def test_pick_refuses_a_part_on_its_edge_with_pick_failed(cell):
    mill = cell.devices["mill"]
    c = cell.world.client
    part = cell.pool.spawn("housing", mill.point(0, 0, 0.041), 0.0, cell.sim_time)
    c.resetBasePositionAndOrientation(
        part.body, mill.point(0, 0, 0.041), c.getQuaternionFromEuler([math.pi / 2, 0, 0])
    )
    cell.step(50)
    tool_z = cell.signals()["robot"]["tool_position"][2]
    s, done, events = run_job(cell, "pick", {"position": mill.point(0, 0, 0)})
    assert done["result"] == "pick_failed" and s["holding"] is None and not s["vacuum"]
    failed = [e.data for e in events if e.kind == "pick_failed"]
    assert len(failed) == 1 and failed[0]["attempts"] == 0 and "tilted" in failed[0]["reason"]
    assert s["tool_position"][2] >= min(tool_z, cell.devices["robot"].cfg.travel_height) - 0.01


def test_a_part_the_cup_cannot_hold_ends_in_pick_failed_after_the_attempts():
    heavy = """
[[part_types]]
name = "anvil"
size = [0.08, 0.08, 0.05]
mass = 5.0
"""
    text = DEFAULT_LINE.read_text() + heavy
    with Line(loads(text, "<test>")) as line:
        line.apply("source", "disable")
        mill = line.devices["mill"]
        part = line.pool.spawn("anvil", mill.point(0, 0, 0.026), 0.0, line.sim_time)
        line.step(30)
        s, done, events = run_job(line, "pick", {"position": mill.point(0, 0, 0)}, 40.0)
        attempts = line.devices["robot"].cfg.pick_attempts
        assert done["result"] == "pick_failed" and s["result"] == "pick_failed"
        assert s["holding"] is None
        failed = [e.data for e in events if e.kind == "pick_failed"]
        assert len(failed) == 1 and failed[0]["attempts"] == attempts
        assert failed[0]["part"] == part.id
        # the searches stop on touch: the part is still where it was, upright
        pos, orn = line.pool.pose(part.id)
        assert math.dist(pos[:2], mill.point(0, 0, 0)[:2]) < 0.01
        # and the arm is free again, lifted to the travel height
        assert s["tool_position"][2] == pytest.approx(
            line.devices["robot"].cfg.travel_height, abs=0.01
        )


@pytest.mark.parametrize("there", ["cover", "housing"])
def test_place_on_an_occupied_spot_is_not_ok_and_seated(cell, there):
    """A flat cover (3 cm) on the spot: the part is lowered onto it and released there, not
    seated. A housing (5 cm) on the spot: the carried part runs into it on the way down."""
    _place_a_part(cell)
    out = cell.devices["outfeed"].point(-0.5, 0, 0)
    height = cell.pool.types[there].size[2]
    obstacle = cell.pool.spawn(there, [out[0], out[1], out[2] + height / 2 + 0.001], 0.0, 0.0)
    cell.step(30)
    run_job(cell, "pick", {"position": cell.devices["mill"].point(0, 0, 0)})
    s, done, _ = run_job(cell, "place", {"position": out})
    if there == "cover":
        assert done["result"] == "ok"
        assert done["seated"] is False and s["seated"] is False
    else:
        assert done["result"] == "collision" and done["hit"] == f"part {obstacle.id}"
        assert s["seated"] is False


def test_travel_past_the_base_axis_is_routed_around_it():
    """From one side of the robot to the other, the straight line passes over the base
    (the shoulder singularity); the planned legs keep `keep_out` from the axis."""
    from twin.devices import arm_jobs

    s = arm_jobs.Speeds(0.8, 0.15, 1.05, base=(0.0, 0.0), forward=0.0, keep_out=0.3)
    tool = np.array([0.03, 0.45, 1.05])
    steps = arm_jobs.pick(tool, 0.0, np.array([-0.02, -0.45, 0.75]), None, 0.0, 0.05, s)
    legs = steps[0].legs
    points = [leg.start + (leg.end - leg.start) * u for leg in legs for u in np.linspace(0, 1, 50)]
    assert min(math.hypot(p[0], p[1]) for p in points) >= 0.3 - 1e-9
    assert legs[0].end[0] > 0  # passed in front of the base (its yaw 0 faces +x)
    # a move that stays clear of the axis stays straight
    far = arm_jobs.pick(
        np.array([0.5, 0.4, 1.05]), 0.0, np.array([0.5, -0.4, 0.75]), None, 0.0, 0.05, s
    )
    assert len(far[0].legs) == 2  # across, down


def test_every_arm_job_on_the_two_robot_line_arrives():
    """Both robots of the two-cell line reach every pick and place point (robot_2 travels
    past its own base axis to pick), under the built-in controller for 100 s."""
    from twin.automation import build_line

    with build_line(load(DEFAULT_LINE.parent / "two_robot_line.toml")) as line:
        events = []
        for _ in range(10):
            line.step(1000)
            events += line.drain_events()
    done = [e for e in events if e.kind == "arm_job_done"]
    assert len(done) > 12
    assert {e.data["result"] for e in done} <= {"ok", "halted"}, [
        (e.device, e.time, e.data) for e in done if e.data["result"] not in ("ok", "halted")
    ]


def test_a_carried_part_that_hits_a_belt_stops_the_move_as_a_collision(cell):
    part = _place_a_part(cell)
    run_job(cell, "pick", {"position": cell.devices["mill"].point(0, 0, 0)})
    out = cell.devices["outfeed"].point(-0.5, 0, 0)
    # the cup 3 cm above the belt: the 5 cm part under it would go 2 cm into the belt
    s, done, _ = run_job(cell, "move_to", {"position": [out[0], out[1], out[2] + 0.03]})
    assert done["result"] == "collision" and done["hit"] == "outfeed"
    assert s["holding"] == part.id  # the vacuum holds on: dropping a part is never safe
    assert cell.pool.pose(part.id)[0][2] - 0.025 > out[2] - 0.005  # stopped on, not in, it
