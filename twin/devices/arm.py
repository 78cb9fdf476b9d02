"""Robot arm from URDF with a vacuum cup, driven like a real robot controller.

The arm accepts joint targets and Cartesian jobs (move_to, pick, place). This module is the
device: commands, signals, events, and the loop that runs a job's steps. The parts it
composes each do one job and can be read alone:

- `arm_interface`: its signals, commands, results and activities, declared once;
- `arm_model`: the robot as its URDF describes it (joints, limits, tool, shoulder) and IK;
- `arm_jobs`: a command becomes steps (motions and cup actions), with the robot's activity;
- `arm_motion`: time-optimal jerk-limited profiles, blended at the corners of a path;
- `arm_tracking`: a profiled motion becomes joint targets, step by step;
- `arm_gripper`: the vacuum cup, locating the part to pick, checking it is seated;
- `arm_contacts`: what the arm touches, named as the line knows it.

Cartesian motions are turned into joint targets as a robot controller does: IK at knots
every few steps along the profiled path, joint targets interpolated between them each step.
A move that does not arrive ends `not_reached` (with the distance), one stopped by contact
ends `collision` (with what it hit).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
import pybullet

from twin.config import ArmConfig
from twin.devices import arm_jobs as jobs
from twin.devices.arm_contacts import Contact, ContactWatch, name_of
from twin.devices.arm_gripper import VacuumCup, locate_part, nearest_turn, seat_check
from twin.devices.arm_interface import SIGNALS, command_specs
from twin.devices.arm_model import RobotModel
from twin.devices.arm_motion import (
    CartesianLimits,
    CartesianTrajectory,
    JointLimits,
    JointTrajectory,
    Leg,
)
from twin.devices.arm_tracking import Follower
from twin.devices.base import BuildContext, CommandError, Device
from twin.sim.assets import resolve_asset

_CARRYING = ("moving", "moving_to_place")  # activities in which a held part may collide
_ARRIVE_TOL = 0.004  # m: a Cartesian move is done when the tool is this close to its end
_JOINT_TOL = 0.01  # rad: a joint move is done when every joint is this close
_SETTLE_LIMIT = 1.0  # s: a move not arrived this long after its profile ended is not_reached
# travel moves pass the base axis at least this fraction of the reach away (0.29 m for
# the default reach): closer, the base joint must swing faster than a straight line allows
_KEEP_OUT = 0.35
_MAX_COORD = 1e3  # m: targets further from the origin than this are refused outright
# time between two IK solutions along a path (a 33 Hz trajectory generator); the chord
# error between knots is far below _ARRIVE_TOL at the arm's speeds, and each knot's IK is
# the arm's main per-step cost (at 0.04 s the tracking lags enough to slow the cycle)
_IK_KNOT_PERIOD = 0.03  # s
_PLAN_SAMPLES = 3  # intervals per leg at which the joint motion is sampled when planning
_PLAN_ITERATIONS = 20  # IK iterations per sample (from the current pose: far points need more)
_FULL_TURN = 2 * math.pi
_PLAN_DECIMALS = 3  # legs are told apart to the mm (and mrad of yaw) when planning
_PLAN_MEMO_SIZE = 1024  # legs' sampled joint rates kept per robot
_REPLAN = 0.003  # m: a motion starting further than this from its planned start is replanned
# a leg this short (and turning the cup this little) from where the tool is is planned from
# the Jacobian at the current joints (one call) instead of IK along it (three solutions):
# along a few cm the joints move linearly with the tool
_SHORT_LEG = 0.05  # m
_SHORT_TURN = 0.1  # rad
_SINGULAR_GAIN = 20.0  # rad per m (or rad): beyond this the arm is near a singularity


class Arm(Device):
    kind = "arm"
    signal_specs = SIGNALS

    def __init__(self, cfg: ArmConfig, ctx: BuildContext) -> None:
        super().__init__(cfg, ctx)
        world = ctx.world
        c = world.client
        x, y, z = cfg.position
        self.pedestal: int | None = None
        if cfg.pedestal_height > 0:
            self.pedestal = world.box(
                [0.12, 0.12, cfg.pedestal_height / 2],
                [x, y, z + cfg.pedestal_height / 2],
                cfg.yaw,
                [0.25, 0.25, 0.28, 1],
            )
        self.base = np.array([x, y, z + cfg.pedestal_height])
        self.body = c.loadURDF(
            str(resolve_asset(cfg.model)),
            self.base.tolist(),
            c.getQuaternionFromEuler([0, 0, cfg.yaw]),
            useFixedBase=True,
            flags=pybullet.URDF_USE_SELF_COLLISION_EXCLUDE_PARENT | world.model_flags,
        )
        self.model = RobotModel(c, self.body, cfg, f"arm '{self.id}'")
        m = self.model
        self.joints, self.home = m.joints, m.home
        self.lower, self.upper = m.lower, m.upper
        m.set_pose(self.home)
        self.shoulder = m.find_shoulder()
        self.commands = command_specs(self.lower, self.upper)
        self.cart_limits = CartesianLimits(cfg.max_tool_acceleration, cfg.max_tool_jerk)
        self.joint_limits = JointLimits(
            m.max_velocity, cfg.max_joint_acceleration, cfg.max_joint_jerk
        )
        self.speeds = jobs.Speeds(
            cfg.max_tool_speed,
            cfg.search_speed,
            cfg.travel_height,
            base=(float(self.shoulder[0]), float(self.shoulder[1])),
            forward=cfg.yaw,
            keep_out=_KEEP_OUT * cfg.reach,
        )
        self.q, self.qd, self.tool, self.yaw = m.read()
        self.q_target = self.q.copy()
        # the tool yaw the controller commands (follows the plan). Yaws are kept continuous
        # and near the base's: a leg turns the wrist by the difference of its two yaws, so the
        # same heading read as -3.1 instead of 3.2 would turn it all the way round
        self.cmd_yaw = nearest_turn(self.yaw, cfg.yaw, _FULL_TURN)
        self.cup = VacuumCup(world, ctx.pool, self.body, m.tool_index, cfg)
        self.queue: deque[jobs.Step] = deque()
        self.running: Follower | None = None
        self.state = "idle"
        self.result = "none"
        self.activity = "idle"
        self.jobs_done = 0
        self.planned_duration = 0.0
        self.seated = False
        self._job_started = 0.0
        self._job_extra: dict[str, Any] = {}
        self._pending_result: str | None = None
        self._pick: dict[str, Any] = {}  # the pick in progress: target, part, attempts
        self._sensed_at = -1
        self._sent_target: np.ndarray | None = None
        self._was_still = False
        self._knot_steps = max(1, round(_IK_KNOT_PERIOD / world.dt))
        self._plan_memo: dict[tuple[float, ...], np.ndarray] = {}  # leg -> joint rates
        self._plan_points: dict[tuple[float, ...], np.ndarray] = {}  # of the motion planned
        self.touch = ContactWatch(c, self.body, {self.pedestal} if self.pedestal else set())

    # compatibility: what the cup holds is the arm's to report
    @property
    def vacuum(self) -> bool:
        return self.cup.vacuum

    @property
    def holding(self) -> int | None:
        return self.cup.holding

    # commands ------------------------------------------------------------------------
    def check(self, command: str, args: dict[str, Any]) -> None:
        if command == "move_joints":
            self._check_limits(args["positions"])
        elif command in ("move_to", "pick", "place"):
            self._check_reach(command, args["position"])

    @property
    def busy(self) -> bool:
        return bool(self.queue) or self.running is not None

    def _require_idle(self, command: str) -> None:
        self._sense()  # jobs start from where the tool really is
        if self.busy:
            raise CommandError("busy", f"arm '{self.id}': cannot {command} while {self.state}")

    def _check_reach(self, command: str, p: list[float]) -> np.ndarray:
        if any(abs(v) > _MAX_COORD for v in p):
            raise CommandError(
                "out_of_reach",
                f"arm '{self.id}': {command} target {p} is more than {_MAX_COORD:g} m out",
            )
        target = np.array(p)
        dist = math.dist(p, self.shoulder.tolist())
        if dist > self.cfg.reach:
            raise CommandError(
                "out_of_reach",
                f"arm '{self.id}': {command} target {p} is {dist:.3f} m from the shoulder, "
                f"beyond the reach of {self.cfg.reach} m",
            )
        if target[2] < 0.02:
            raise CommandError(
                "out_of_reach", f"arm '{self.id}': {command} target z={p[2]} m is at the floor"
            )
        return target

    def _start(self, state: str, steps: list[jobs.Step], **extra: Any) -> None:
        self.queue.extend(steps)
        self.state, self.result = state, "running"
        self.seated = self.seated if state != "placing" else False
        self._job_started = self.ctx.world.sim_time
        self._job_extra = extra
        self.planned_duration = self._plan_duration(steps)
        self._set_activity(steps[0].activity)

    def _check_limits(self, positions: list[float]) -> np.ndarray:
        q = np.array(positions)
        bad = [
            f"joint {i}: {v} not in [{lo:.4f}, {hi:.4f}] rad"
            for i, (v, lo, hi) in enumerate(zip(q, self.lower, self.upper))
            if not lo <= v <= hi
        ]
        if bad:
            raise CommandError(
                "out_of_range", f"arm '{self.id}': move_joints outside limits: {'; '.join(bad)}"
            )
        return q

    def cmd_move_joints(self, positions: list[float]) -> None:
        q = self._check_limits(positions)  # arguments before state (twin.command_rules)
        self._require_idle("move_joints")
        self._start("moving", [jobs.JointMotion(q, "moving")])

    def cmd_home(self) -> None:
        self._require_idle("home")
        self._start("moving", [jobs.JointMotion(np.array(self.home), "moving")])

    def cmd_move_to(self, position: list[float]) -> None:
        target = self._check_reach("move_to", position)
        self._require_idle("move_to")
        self._start("moving", jobs.move_to(self.tool, self.cmd_yaw, target, self.speeds))

    def cmd_pick(self, position: list[float]) -> None:
        target = self._check_reach("pick", position)
        self._require_idle("pick")
        if self.holding is not None:
            raise CommandError("holding", f"arm '{self.id}': already holding part {self.holding}")
        self._pick = {"target": target, "attempts": 0}
        found = self._locate(target)
        if found is not None and found.tilt > self.cfg.max_pick_tilt:
            # a part on its edge cannot be sealed on: refuse it without touching the queue
            self._start("picking", [jobs.Action("refuse", "picking")])
            self._pick["refused"] = (
                f"part {found.part} is tilted {math.degrees(found.tilt):.0f} deg "
                f"(max {math.degrees(self.cfg.max_pick_tilt):.0f} deg)"
            )
            return
        self._start("picking", self._plan_pick(target, found), part=found and found.part)

    def _locate(self, target: np.ndarray):
        tallest = max(t.size[2] for t in self.ctx.pool.types.values())
        return locate_part(self.ctx.world, self.ctx.pool, target, 2 * tallest + 0.02)

    def _plan_pick(self, target: np.ndarray, found) -> list[jobs.Step]:
        tallest = max(t.size[2] for t in self.ctx.pool.types.values())
        cup_yaw = self.cfg.yaw
        if found is not None:
            self._pick["part"] = found.part
            cup_yaw = nearest_turn(found.yaw, self.cfg.yaw, found.symmetry)
        return jobs.pick(self.tool, self.cmd_yaw, target, found, cup_yaw, tallest, self.speeds)

    def cmd_place(self, position: list[float], yaw: float | None = None) -> None:
        target = self._check_reach("place", position)
        self._require_idle("place")
        if self.holding is None:
            raise CommandError("not_holding", f"arm '{self.id}': place needs a part on the cup")
        part = self.ctx.pool.active[self.holding]
        hangs = self.cmd_yaw + self.cup.grip_yaw
        if yaw is None:  # square to the base: the turn of the part nearest to how it hangs
            period = math.pi / 2 if abs(part.size[0] - part.size[1]) < 1e-6 else math.pi
            part_yaw = nearest_turn(self.cfg.yaw, hangs, period)
        else:  # the turn of the asked yaw nearest to how the part hangs: the same heading
            part_yaw = nearest_turn(yaw, hangs, _FULL_TURN)
        cup, cup_yaw = self.cup.cup_for_part(target[:2], part_yaw)
        steps = jobs.place(
            self.tool,
            self.cmd_yaw,
            target,
            cup[:2],
            float(cup[2]),
            cup_yaw,
            part.size[2],
            self.speeds,
        )
        self._start("placing", steps, part=self.holding)

    def cmd_vacuum(self, on: bool) -> None:
        self.cup.vacuum = on
        if not on:
            self._release()

    def cmd_halt(self) -> None:
        self._halt("halted")

    def safe_state(self, reason: str) -> None:
        # hold the pose and keep the vacuum: dropping a part is never the safe choice
        self._halt("halted")

    def _halt(self, result: str, halted: bool = True, **extra: Any) -> None:
        """Stop where the arm is; a job in progress ends with `result`. A halt by command
        or safe stop leaves the arm `halted`; a move that failed leaves it idle."""
        self._sense()
        busy = self.busy
        self.queue.clear()
        self.running = None
        self.q_target = self.q.copy()
        if busy:
            self._finish(result, "halted" if halted else None, **extra)
            if halted:
                self.state = "halted"

    # planning -------------------------------------------------------------------------
    def _joint_rate(self, leg: Leg) -> np.ndarray:
        """max |dq/du| per joint along a leg (used for planning): from the Jacobian for a
        short leg from where the tool is, else from IK at a few points along it."""
        if self._starts_here(leg):
            rate = self._jacobian_rate(leg)
            if rate is not None:
                return rate
        return self._sampled_rate(leg)

    def _starts_here(self, leg: Leg) -> bool:
        """A short leg from the measured pose: the joints move along it as the Jacobian there
        says (a policy's small moves, re-planned every few steps, are all of this kind)."""
        return (
            self._sensed_at == self.ctx.world.step_index
            and float(np.linalg.norm(leg.end - leg.start)) <= _SHORT_LEG
            and abs(leg.yaw1 - leg.yaw0) <= _SHORT_TURN
            and float(np.linalg.norm(leg.start - self.tool)) <= _REPLAN
        )

    def _jacobian_rate(self, leg: Leg) -> np.ndarray | None:
        """|dq/du| from the least-norm joint motion for the tool's motion along the leg; None
        near a singularity, where it is no guide to what the IK will do."""
        jac = self.model.jacobian()
        twist = np.concatenate((leg.end - leg.start, (0.0, 0.0, leg.yaw1 - leg.yaw0)))
        try:
            dq = jac.T @ np.linalg.solve(jac @ jac.T, twist)
        except np.linalg.LinAlgError:
            return None
        size = float(np.linalg.norm(twist))
        if not np.all(np.isfinite(dq)) or float(np.max(np.abs(dq))) > _SINGULAR_GAIN * size:
            return None
        return np.abs(dq)

    def _sampled_rate(self, leg: Leg) -> np.ndarray:
        """max |dq/du| per joint from IK at a few points along the leg. A robot's jobs come
        back to the same legs between teach points: each leg is sampled once (to the mm)."""
        key = (
            *leg.start.round(_PLAN_DECIMALS).tolist(),
            *leg.end.round(_PLAN_DECIMALS).tolist(),
            round(leg.yaw0, _PLAN_DECIMALS),
            round(leg.yaw1, _PLAN_DECIMALS),
        )
        memo = self._plan_memo
        rate = memo.get(key)
        if rate is not None:
            return rate
        qs = []
        points = self._plan_points  # a leg's end is the next leg's start: solved once
        for k in range(_PLAN_SAMPLES + 1):
            u = k / _PLAN_SAMPLES
            point = leg.start + (leg.end - leg.start) * u
            yaw = leg.yaw0 + (leg.yaw1 - leg.yaw0) * u
            at = (*point.round(6).tolist(), round(yaw, 6))
            q = points.get(at)
            if q is None:
                q = points[at] = self.model.ik(point, yaw, _PLAN_ITERATIONS)
            qs.append(q)
        if len(memo) >= _PLAN_MEMO_SIZE:
            memo.clear()  # a policy's ever-new legs: keep the memory bounded
        rate = memo[key] = np.max(np.abs(np.diff(qs, axis=0)), axis=0) * _PLAN_SAMPLES
        return rate

    def _trajectory(self, step: jobs.Motion | jobs.JointMotion, q0: np.ndarray) -> Any:
        self._plan_points = {}
        if isinstance(step, jobs.JointMotion):
            return JointTrajectory(q0, step.target, self.joint_limits)
        return CartesianTrajectory(step.legs, self.cart_limits, self.joint_limits, self._joint_rate)

    def _plan_duration(self, steps: list[jobs.Step]) -> float:
        """The profile time of a whole job, each motion starting where the one before ends."""
        total = 0.0
        q = self.q
        for step in steps:
            if isinstance(step, jobs.Action):
                continue
            traj = step.planned = self._trajectory(step, q)
            total += traj.duration
            if isinstance(step, jobs.JointMotion):
                q = step.target
        return total

    # cup ------------------------------------------------------------------------------
    def _release(self) -> None:
        part = self.cup.release()
        if part is not None:
            self.emit("gripper_released", part=part)

    def _run_action(self, action: jobs.Action) -> None:
        if action.name == "vacuum_on":
            self.cup.vacuum = True
        elif action.name == "release":
            self.cup.vacuum = False
            self._release()
        elif action.name == "check_sealed" and self.holding is None:
            self._search_failed()
        elif action.name == "check_seated":
            self._check_seated(np.asarray(action.data["target"]))
        elif action.name == "refuse":
            self._pick_failed(self._pick.pop("refused"), attempts=0)
        elif action.name == "retry":
            found = self._locate(self._pick["target"])
            if found is None or found.tilt > self.cfg.max_pick_tilt:
                self._pick_failed("the part is no longer where it was", self._pick["attempts"])
                return
            self.queue.extendleft(reversed(self._plan_pick(self._pick["target"], found)))

    def _search_failed(self) -> None:
        """Searched down and the cup did not seal: try again, or give up."""
        self.cup.vacuum = False
        self._pick["attempts"] += 1
        lift = self.queue.popleft() if self.queue else None  # the lift after a seal
        self.queue.clear()
        if "part" not in self._pick:  # nothing was there to begin with
            if lift is not None:
                self.queue.append(lift)
            self._pending_result = "no_part"
            return
        if self._pick["attempts"] >= self.cfg.pick_attempts:
            self._pick_failed(
                f"no seal on part {self._pick['part']} after {self._pick['attempts']} attempts",
                self._pick["attempts"],
            )
            return
        self.queue.append(
            jobs.retreat(self.tool, self.cmd_yaw, self.cfg.travel_height, self.speeds)
        )
        self.queue.append(jobs.Action("retry", "picking"))

    def _pick_failed(self, reason: str, attempts: int) -> None:
        self.cup.vacuum = False
        self.queue.clear()
        if self.tool[2] < self.cfg.travel_height - 0.01:
            self.queue.append(
                jobs.retreat(self.tool, self.cmd_yaw, self.cfg.travel_height, self.speeds)
            )
        self._pending_result = "pick_failed"
        self.emit("pick_failed", reason=reason, attempts=attempts, part=self._pick.get("part"))

    def _check_seated(self, target: np.ndarray) -> None:
        part_id = self._job_extra.get("part")
        seated, offset = False, None
        if part_id is not None and part_id in self.ctx.pool.active:
            seated, offset = seat_check(self.ctx.world, self.ctx.pool, part_id, target, self.cfg)
        self.seated = seated
        self._job_extra["seated"] = seated
        if offset is not None:
            self._job_extra["offset"] = round(offset, 4)

    # finishing ------------------------------------------------------------------------
    def _set_activity(self, activity: str) -> None:
        if activity != self.activity:
            previous, self.activity = self.activity, activity
            self.emit("arm_activity", activity=activity, previous=previous)

    def _finish(self, result: str, activity: str | None = None, **extra: Any) -> None:
        self.result = result
        self.jobs_done += 1
        self.state = "idle"
        data = {k: v for k, v in self._job_extra.items() if k != "part"}
        data.update(extra)
        self.emit(
            "arm_job_done",
            result=result,
            holding=self.holding,
            planned_duration=round(self.planned_duration, 4),
            duration=round(self.ctx.world.sim_time - self._job_started, 4),
            **data,
        )
        self._job_extra = {}
        self._pick = {}
        self._set_activity(activity or ("waiting" if self.holding is not None else "idle"))

    # stepping -------------------------------------------------------------------------
    def before_step(self) -> None:
        while self.running is None and self.queue:
            step = self.queue[0]
            self._set_activity(step.activity)
            if isinstance(step, jobs.Action):
                self.queue.popleft()
                self._run_action(step)
                continue
            self._sense()
            traj = step.planned
            if isinstance(step, jobs.Motion):
                # the motion starts where the tool is (after an early stop, a retry...): plan
                # again unless that is where it was planned from
                first = step.legs[0]
                moved = float(np.linalg.norm(first.start - self.tool)) > _REPLAN
                if traj is None or moved or abs(first.yaw0 - self.cmd_yaw) > 0.01:
                    first.start, first.yaw0 = self.tool.copy(), self.cmd_yaw
                    traj = None
            if traj is None:
                traj = self._trajectory(step, self.q_target)
            self.running = Follower(step, traj, self.ctx.world.dt, self._knot_steps)
            held = self.holding
            self.touch.motion_started(self.ctx.pool.active[held].body if held is not None else None)
        if self.running is not None:
            q, yaw = self.running.advance(self.q_target, self.model.ik)
            self.q_target = q
            if yaw is not None:
                self.cmd_yaw = yaw
        if self._sent_target is self.q_target:
            return  # unchanged (every change assigns a new array): pybullet keeps its targets
        self._sent_target = self.q_target
        self.ctx.world.client.setJointMotorControlArray(
            self.body,
            self.joints,
            pybullet.POSITION_CONTROL,
            targetPositions=self.q_target.tolist(),
            forces=self.model.max_force,
        )

    def _sense(self) -> None:
        """Read joints and tool pose (once per step at most)."""
        step = self.ctx.world.step_index
        if self._sensed_at == step:
            return
        self._sensed_at = step
        self.q, self.qd, self.tool, self.yaw = self.model.read()

    def _contacts(self) -> list[Contact]:
        held = self.holding
        if held is None:
            return self.touch.contacts(None)
        # the part is watched on its way, not while it is lifted off (it may rub what it
        # lay on) nor lowered onto its place (that ends on touch)
        carrying = self.running is not None and self.running.step.activity in _CARRYING
        return self.touch.contacts(self.ctx.pool.active[held].body, carrying)

    def after_step(self) -> None:
        # still: parked with nothing to watch (no job, no vacuum, no part on the cup)
        cup = self.cup
        still = not self.queue and self.running is None and not cup.vacuum and cup.holding is None
        if still and self._was_still:
            return  # the pose is only read when someone asks for the signals
        self._was_still = still
        run = self.running
        if run is not None and not self.cup.seeking and not run.searching and run.profiled:
            # plain travel: look for collisions at the IK knots only, the pose is not needed
            self.cup.sleep()
            if run.at_knot:
                hit = self._contacts()
                if hit:
                    self._collided(hit)
            return
        self._sense()
        if self.cup.seeking:
            part = self.cup.part_under_cup()
            if part is not None and self.cup.seal(part):
                self.emit("gripper_attached", part=part)
        self.cup.aim(self.tool)
        if run is not None:
            self._watch(run)
        if self.running is None and not self.queue and self.state not in ("idle", "halted"):
            self._finish(self._pending_result or "ok")
            self._pending_result = None

    def _collided(self, hits: list[Contact]) -> None:
        body, _, point = hits[0]
        what = name_of(body, point, self.ctx.world.floor, self.ctx.pool, self.ctx.devices)
        self._halt("collision", halted=False, hit=what, at=[round(v, 4) for v in point])

    def _watch(self, run: Follower) -> None:
        """Decide whether the running step is over: arrived, sealed, touched, or stuck."""
        if run.searching and self.holding is not None and run.step.activity == "placing":
            if self._part_landed():
                self.running = None
                self.queue.popleft()
                return
            if run.profiled:
                return
        elif run.searching:
            touched = self._touched()
            if self.holding is None and touched is not None and self.cup.seeking:
                # the cup pressed on a part: that is what seals a suction cup
                part = self.ctx.pool.part_at_body(touched)
                if part is not None and self.cup.seal(part):
                    self.emit("gripper_attached", part=part)
            if self.holding is not None or touched is not None:
                self.running = None
                self.queue.popleft()
                return
        elif run.profiled:
            hit = self._contacts()
            if hit:
                self._collided(hit)
            return
        if run.profiled:
            return
        if isinstance(run.traj, JointTrajectory):
            err = float(np.max(np.abs(self.q - run.traj.q1)))
            arrived, distance = err < _JOINT_TOL, err
        else:
            end = run.traj.legs[-1].end
            distance = float(np.linalg.norm(self.tool - end))
            arrived = distance < _ARRIVE_TOL
        if arrived or run.searching:
            self.running = None
            self.queue.popleft()
            return
        if run.settling > _SETTLE_LIMIT:
            hit = self._contacts()
            if hit:
                self._collided(hit)
                return
            self._halt("not_reached", halted=False, distance=round(distance, 4))

    def _part_landed(self) -> bool:
        """The part on the cup rests on something (lowering it further would push)."""
        held = self.ctx.pool.active[self.holding].body  # type: ignore[index]
        for pt in self.ctx.world.client.getContactPoints(bodyA=held):
            if pt[2] != self.body and pt[8] <= 0.0005:
                return True
        return False

    def _touched(self) -> int | None:
        """The body the cup (or the wrist) is pressing on, if any: a search stops there."""
        for body, link, _ in self._contacts():
            if link in self.model.tool_links:
                return body
        return None

    # the pose signals: read from the physics only when asked (not part of a PLC scan)
    @property
    def joint_positions(self) -> list[float]:
        self._sense()
        return self.q.tolist()

    @property
    def joint_velocities(self) -> list[float]:
        self._sense()
        return self.qd.tolist()

    @property
    def tool_position(self) -> list[float]:
        self._sense()
        return self.tool.tolist()
