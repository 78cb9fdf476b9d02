"""The arm's planning of short moves (a policy's, re-planned every env step): from the
Jacobian at the current joints instead of IK along the leg, and as good as that.

Runs the default cell in real pybullet with its built-in controller off.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twin.config import load
from twin.devices.arm_jobs import Motion
from twin.devices.arm_motion import CartesianTrajectory, Leg
from twin.line import Line

DEFAULT_LINE = Path(__file__).resolve().parents[1] / "configs" / "default_line.toml"


@pytest.fixture(scope="module")
def cell():
    with Line(load(DEFAULT_LINE)) as line:
        line.apply("source", "disable")
        yield line


def _go(line: Line, position: list[float]) -> None:
    robot = line.devices["robot"]
    line.apply("robot", "move_to", {"position": position})
    for _ in range(500):
        line.step()
        if not robot.busy:
            break
    line.step(20)  # at rest on the point
    assert robot.result == "ok"


def test_the_models_jacobian_is_its_forward_kinematics_differentiated(cell):
    _go(cell, [0.35, -0.25, 0.95])
    model = cell.devices["robot"].model
    q, _, tool, yaw = model.read()
    jac = model.jacobian()
    assert jac.shape == (6, len(q))
    dq = np.linspace(-1.0, 1.0, len(q)) * 1e-4
    model.set_pose(q + dq)
    _, _, moved, turned = model.read()
    model.set_pose(q)
    # first order in dq: the remainder is of order 1e-8 m
    assert np.allclose(jac[:3] @ dq, moved - tool, atol=2e-8)
    assert jac[5] @ dq == pytest.approx(turned - yaw, abs=2e-8)  # the cup points down


@pytest.mark.parametrize("at", [[0.35, -0.25, 0.95], [0.45, 0.2, 0.85], [0.2, 0.3, 1.05]])
def test_a_short_move_is_timed_as_ik_along_it_would_time_it(cell, at):
    """Within 15 % of the plan from IK at points along the leg, for 2 to 5 cm moves in
    several directions, with the joints moving as far."""
    _go(cell, at)
    robot = cell.devices["robot"]
    robot._sense()
    rng = np.random.default_rng(7)
    calls = 0
    for length in (0.02, 0.035, 0.049):
        for _ in range(4):
            step = rng.normal(size=3)
            end = robot.tool + step / np.linalg.norm(step) * length
            leg = Leg(robot.tool.copy(), end, robot.cmd_yaw, robot.cmd_yaw, 0.8)
            assert robot._starts_here(leg)
            if robot._jacobian_rate(leg) is not None:
                calls += 1
            plans = []
            for rate in (robot._joint_rate, robot._sampled_rate):
                robot._plan_memo = {}
                plans.append(
                    CartesianTrajectory([leg], robot.cart_limits, robot.joint_limits, rate)
                )
            assert plans[0].duration == pytest.approx(plans[1].duration, rel=0.15)
            # and the fastest joint moves about as far (the null space may differ a little)
            fastest = np.max(robot._joint_rate(leg)) / np.max(robot._sampled_rate(leg))
            assert 0.8 < fastest < 1.25
    assert calls == 12  # none of these poses is near a singularity


def test_policy_sized_moves_arrive_and_keep_the_joint_speed_limits(cell):
    """A policy's stream of short moves, each from where the last one left the tool."""
    _go(cell, [0.35, -0.25, 0.95])
    robot = cell.devices["robot"]
    limit = robot.model.max_velocity
    rng = np.random.default_rng(3)
    peak = np.zeros(len(limit))
    for _ in range(10):
        target = np.array(robot.tool_position) + rng.uniform(-0.03, 0.03, 3)
        cell.apply("robot", "move_to", {"position": target.tolist()})
        for _ in range(300):
            cell.step()
            peak = np.maximum(peak, np.abs(robot.joint_velocities))
            if not robot.busy:
                break
        assert robot.result == "ok"
        assert np.linalg.norm(np.array(robot.tool_position) - target) < 0.004
    assert np.all(peak <= limit)


def test_a_leg_planned_before_is_planned_again_without_ik(cell, monkeypatch):
    """A robot's jobs come back to the same legs between its teach points: a leg sampled
    once is planned again from the joint rates kept for it, to the same trajectory; a leg
    that ends elsewhere is sampled anew."""
    _go(cell, [0.35, -0.25, 0.95])
    robot = cell.devices["robot"]
    solves = 0
    ik = robot.model.ik

    def counted(*args, **kwargs):
        nonlocal solves
        solves += 1
        return ik(*args, **kwargs)

    monkeypatch.setattr(robot.model, "ik", counted)
    start, yaw = robot.tool.copy(), robot.cmd_yaw

    def plan(end: list[float]) -> tuple[int, float]:
        nonlocal solves
        solves = 0
        motion = Motion([Leg(start.copy(), np.array(end), yaw, yaw, 0.8)], "moving")
        duration = robot._trajectory(motion, robot.q_target).duration
        return solves, duration

    first = plan([0.45, 0.2, 0.85])
    again = plan([0.45, 0.2, 0.85])
    elsewhere = plan([0.45, 0.1, 0.85])
    assert first[0] == 4  # the start, two points between, the end
    assert again == (0, first[1])
    assert elsewhere[0] == 4
    assert elsewhere[1] != first[1]
