"""Robot arm from URDF with a vacuum gripper, driven like a real robot controller.

The arm accepts joint targets and Cartesian jobs (move_to, pick, place). Cartesian moves
are straight lines of the tool at a speed limit, turned into joint targets as a robot
controller does: pybullet's IK at knots every few steps, joint targets interpolated between
them every step. The vacuum cup seals on a part only when a part is within `suction_reach`
of the cup (a short beam from the cup); while sealed, a fixed constraint holds the part, so
it hangs from the tool through physics and drops if the vacuum is switched off.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
import pybullet

from twin.config import ArmConfig
from twin.devices.base import Arg, BuildContext, CommandError, CommandSpec, Device, SignalSpec
from twin.sim.assets import resolve_asset

_ARRIVE_TOL = 0.004  # m: a Cartesian segment is done when the tool is this close
_SETTLE_LIMIT = 1.0  # s: give up waiting for the tool to settle after this long
_CLEARANCE = 0.004  # m: a placed part is released this far above the surface
_HOLD_FORCE = 400.0  # N: the vacuum constraint's strength
# time between two IK solutions along a path (a 50 Hz trajectory generator); the chord
# error between knots is far below _ARRIVE_TOL at the arm's speeds
_IK_KNOT_PERIOD = 0.02  # s


class _Segment:
    """One straight tool move; `search` ends it early when the cup touches a part."""

    def __init__(self, start: np.ndarray, end: np.ndarray, speed: float, search: bool = False):
        self.start, self.end = start, end
        self.length = float(np.linalg.norm(end - start))
        self.speed = speed
        self.search = search
        self.travelled = 0.0
        self.settling = 0.0
        self.settle_steps = 0
        # joint targets are interpolated from q0 (at travelled = knot_start) to q1 (knot_end)
        self.knot_start = self.knot_end = 0.0
        self.knot_q0: np.ndarray | None = None
        self.knot_q1: np.ndarray | None = None

    def point(self, travelled: float) -> np.ndarray:
        frac = travelled / self.length if self.length > 0 else 1.0
        return self.start + (self.end - self.start) * frac


class _Action:
    """A step of a job that is not a move: 'seal', 'release', 'check_sealed'."""

    def __init__(self, name: str) -> None:
        self.name = name


class Arm(Device):
    kind = "arm"
    signal_specs = (
        SignalSpec(name="state", type="str", doc="idle, moving, picking, placing, halted"),
        SignalSpec(name="busy", type="bool", doc="a job is running"),
        SignalSpec(
            name="result",
            type="str",
            doc="outcome of the last job: ok, no_part, not_reached, halted",
        ),
        SignalSpec(name="jobs_done", type="int", doc="jobs finished (any result)"),
        SignalSpec(name="vacuum", type="bool"),
        SignalSpec(name="holding", type="int|null", doc="id of the part on the cup"),
        SignalSpec(name="joint_positions", type="floats", unit="rad"),
        SignalSpec(name="joint_velocities", type="floats", unit="rad/s"),
        SignalSpec(name="tool_position", type="floats", unit="m"),
    )

    def __init__(self, cfg: ArmConfig, ctx: BuildContext) -> None:
        super().__init__(cfg, ctx)
        world = ctx.world
        c = world.client
        x, y, z = cfg.position
        if cfg.pedestal_height > 0:
            world.box(
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
            flags=pybullet.URDF_USE_SELF_COLLISION_EXCLUDE_PARENT,
        )
        self._read_model()
        self.tool_down = c.getQuaternionFromEuler([math.pi, 0, cfg.yaw])
        self.commands = self._command_specs()
        for j, q in zip(self.joints, self.home):
            c.resetJointState(self.body, j, q)
        for j, q in self.held.items():
            c.resetJointState(self.body, j, q)
            c.setJointMotorControl2(
                self.body, j, pybullet.POSITION_CONTROL, targetPosition=q, force=50
            )
        self.q = np.array(self.home, dtype=float)
        self.qd = np.zeros(len(self.joints))
        self.q_target = self.q.copy()
        self.tool = np.array(c.getLinkState(self.body, self.tool_index)[4])
        # cast only while the cup seeks a part (vacuum on, nothing held)
        self.cup_ray = world.rays.add(
            self.tool.tolist(), (self.tool - [0, 0, 0.01]).tolist(), active=False
        )
        self.queue: deque[_Segment | _Action] = deque()
        self.state = "idle"
        self.result = "none"
        self.jobs_done = 0
        self.vacuum = False
        self.holding: int | None = None
        self.constraint: int | None = None
        self._joint_move: tuple[np.ndarray, np.ndarray, float, float] | None = None
        self._pending_result: str | None = None
        self.grip_offset = np.zeros(2)  # part centre minus cup, in world x/y, while holding
        self._sensed_at = -1
        self._sent_target: np.ndarray | None = None
        self._was_still = False
        self._knot_steps = max(1, round(_IK_KNOT_PERIOD / world.dt))

    # model ---------------------------------------------------------------------------
    def _read_model(self) -> None:
        c, cfg = self.ctx.world.client, self.cfg
        names: dict[str, int] = {}
        movable: list[int] = []
        self.tool_index = -1
        lower, upper, max_force, max_vel = [], [], [], []
        for j in range(c.getNumJoints(self.body)):
            info = c.getJointInfo(self.body, j)
            name, jtype = info[1].decode(), info[2]
            names[name] = j
            if info[12].decode() == cfg.tool_link:
                self.tool_index = j
            if jtype in (pybullet.JOINT_REVOLUTE, pybullet.JOINT_PRISMATIC):
                movable.append(j)
                if name not in cfg.held_joints:
                    lower.append(info[8])
                    upper.append(info[9])
                    max_force.append(info[10] or 100.0)
                    max_vel.append(info[11] or 2.0)
        if self.tool_index < 0:
            raise ValueError(f"arm '{self.id}': model {cfg.model} has no link '{cfg.tool_link}'")
        unknown = sorted(set(cfg.held_joints) - set(names))
        if unknown:
            raise ValueError(f"arm '{self.id}': held_joints {unknown} not in model {cfg.model}")
        self.held = {names[n]: q for n, q in cfg.held_joints.items()}
        self.joints = [j for j in movable if j not in self.held]
        if len(cfg.home) != len(self.joints):
            raise ValueError(
                f"arm '{self.id}': home has {len(cfg.home)} values, the model has "
                f"{len(self.joints)} arm joints"
            )
        self.home = list(cfg.home)
        self.lower, self.upper = np.array(lower), np.array(upper)
        self.max_force, self.max_vel = max_force, np.array(max_vel)
        # IK works over every movable joint: held joints get a zero range at their value
        self._ik_index = [movable.index(j) for j in self.joints]
        ll, ul, jr, rest = [], [], [], []
        for j in movable:
            if j in self.held:
                # a zero range makes pybullet's null-space IK loop forever; keep the real one
                info = c.getJointInfo(self.body, j)
                lo, hi = sorted((info[8], info[9]))
                ll.append(lo)
                ul.append(hi)
                jr.append(max(hi - lo, 1e-3))
                rest.append(self.held[j])
            else:
                k = self.joints.index(j)
                ll.append(lower[k])
                ul.append(upper[k])
                jr.append(upper[k] - lower[k])
                rest.append(self.home[k])
        self._ik_limits = (ll, ul, jr, rest)
        self.shoulder = self.base + np.array([0, 0, 0.333])

    def _command_specs(self) -> tuple[CommandSpec, ...]:
        n = len(self.joints)
        pos = Arg(name="position", type="vec3", unit="m", doc="tool (cup) point in world frame")
        return (
            CommandSpec(
                name="move_joints",
                args=(
                    Arg(
                        name="positions",
                        type="floats",
                        length=n,
                        unit="rad",
                        doc=f"limits per joint: {list(zip(self.lower.round(4).tolist(), self.upper.round(4).tolist()))}",
                    ),
                ),
                doc="move to joint targets (interpolated at 50% of each joint's speed limit)",
            ),
            CommandSpec(
                name="move_to", args=(pos,), doc="straight-line tool move, cup pointing down"
            ),
            CommandSpec(
                name="pick",
                args=(pos,),
                doc="travel above position, search down to it until the cup seals on a part, "
                "lift to travel height; result ok or no_part",
            ),
            CommandSpec(
                name="place",
                args=(pos,),
                doc="carry the held part above position, lower it until its bottom is at "
                "position's z, release, lift; position is the surface point",
            ),
            CommandSpec(name="vacuum", args=(Arg(name="on", type="bool"),), doc="switch the cup"),
            CommandSpec(name="home", doc="joint move to the home pose"),
            CommandSpec(name="halt", doc="abort the job and hold the current pose"),
        )

    # commands ------------------------------------------------------------------------
    def check(self, command: str, args: dict[str, Any]) -> None:
        if command == "move_joints":
            self._check_limits(args["positions"])
        elif command in ("move_to", "pick", "place"):
            self._check_reach(command, args["position"])

    def _require_idle(self, command: str) -> None:
        self._sense()  # jobs start from where the tool really is
        if self.queue or self._joint_move is not None:
            raise CommandError("busy", f"arm '{self.id}': cannot {command} while {self.state}")

    def _check_reach(self, command: str, p: list[float]) -> np.ndarray:
        target = np.array(p)
        dist = float(np.linalg.norm(target - self.shoulder))
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
        q = self._check_limits(positions)
        self._require_idle("move_joints")
        self._start_joint_move(q)

    def cmd_home(self) -> None:
        self._require_idle("home")
        self._start_joint_move(np.array(self.home))

    def _start_joint_move(self, q: np.ndarray) -> None:
        duration = float(np.max(np.abs(q - self.q) / (0.5 * self.max_vel))) if len(q) else 0.0
        self._joint_move = (self.q.copy(), q, max(duration, self.ctx.world.dt), 0.0)
        self.state, self.result = "moving", "running"

    def cmd_move_to(self, position: list[float]) -> None:
        target = self._check_reach("move_to", position)
        self._require_idle("move_to")
        self.queue.append(_Segment(self.tool.copy(), target, self.cfg.max_tool_speed))
        self.state, self.result = "moving", "running"

    def _via_travel_height(self, xy: np.ndarray) -> np.ndarray:
        """Queue: up to travel height, across to above xy. Returns the point above xy."""
        h = self.cfg.travel_height
        here = self.tool.copy()
        up = np.array([here[0], here[1], max(h, here[2])])
        above = np.array([xy[0], xy[1], max(h, here[2])])
        if up[2] - here[2] > 1e-3:
            self.queue.append(_Segment(here, up, self.cfg.max_tool_speed))
        self.queue.append(_Segment(up, above, self.cfg.max_tool_speed))
        return above

    def cmd_pick(self, position: list[float]) -> None:
        target = self._check_reach("pick", position)
        self._require_idle("pick")
        if self.holding is not None:
            raise CommandError("holding", f"arm '{self.id}': already holding part {self.holding}")
        tallest = max(t.size[2] for t in self.ctx.pool.types.values())
        above = self._via_travel_height(target)
        near = np.array([target[0], target[1], target[2] + tallest + 0.03])
        self.queue.append(_Segment(above, near, self.cfg.max_tool_speed))
        self.queue.append(_Action("vacuum_on"))  # only now: never grab a part on the way
        self.queue.append(_Segment(near, target, self.cfg.search_speed, search=True))
        self.queue.append(_Action("check_sealed"))
        self.queue.append(
            _Segment(
                target, np.array([*target[:2], self.cfg.travel_height]), self.cfg.max_tool_speed
            )
        )
        self.state, self.result = "picking", "running"

    def cmd_place(self, position: list[float]) -> None:
        target = self._check_reach("place", position)
        self._require_idle("place")
        if self.holding is None:
            raise CommandError("not_holding", f"arm '{self.id}': place needs a part on the cup")
        height = self.ctx.pool.active[self.holding].size[2]
        # aim the part's centre, not the cup, at the commanded point
        cup = target[:2] - self.grip_offset
        drop = np.array([cup[0], cup[1], target[2] + height + _CLEARANCE])
        above = self._via_travel_height(drop)
        near = drop + [0, 0, 0.04]
        self.queue.append(_Segment(above, near, self.cfg.max_tool_speed))
        self.queue.append(_Segment(near, drop, self.cfg.search_speed))
        self.queue.append(_Action("release"))
        self.queue.append(
            _Segment(drop, np.array([*drop[:2], self.cfg.travel_height]), self.cfg.max_tool_speed)
        )
        self.state, self.result = "placing", "running"

    def cmd_vacuum(self, on: bool) -> None:
        self.vacuum = on
        if not on:
            self._release()

    def cmd_halt(self) -> None:
        self._halt("halted")

    def safe_state(self, reason: str) -> None:
        # hold the pose and keep the vacuum: dropping a part is never the safe choice
        self._halt("halted")

    def _halt(self, result: str) -> None:
        self._sense()
        busy = bool(self.queue) or self._joint_move is not None
        self.queue.clear()
        self._joint_move = None
        self.q_target = self.q.copy()
        if busy:
            self._finish(result)
        self.state = "halted" if busy else self.state

    # vacuum ---------------------------------------------------------------------------
    def _part_under_cup(self) -> int | None:
        body = int(self.ctx.world.rays.hit_body[self.cup_ray])
        return self.ctx.pool.part_at_body(body) if body >= 0 else None

    def _seal(self, part_id: int) -> None:
        c, pool = self.ctx.world.client, self.ctx.pool
        part = pool.active[part_id]
        if part.mass > self.cfg.max_payload:
            return
        tool_pos, tool_orn = c.getLinkState(self.body, self.tool_index)[4:6]
        part_pos, part_orn = c.getBasePositionAndOrientation(part.body)
        inv_pos, inv_orn = c.invertTransform(tool_pos, tool_orn)
        rel_pos, rel_orn = c.multiplyTransforms(inv_pos, inv_orn, part_pos, part_orn)
        self.constraint = c.createConstraint(
            self.body,
            self.tool_index,
            part.body,
            -1,
            pybullet.JOINT_FIXED,
            [0, 0, 0],
            rel_pos,
            [0, 0, 0],
            rel_orn,
        )
        c.changeConstraint(self.constraint, maxForce=_HOLD_FORCE)
        self.grip_offset = np.array(part_pos[:2]) - np.array(tool_pos[:2])
        self.holding = part_id
        self.emit("gripper_attached", part=part_id)

    def _release(self) -> None:
        if self.constraint is not None:
            self.ctx.world.client.removeConstraint(self.constraint)
            self.constraint = None
        if self.holding is not None:
            self.emit("gripper_released", part=self.holding)
            self.holding = None

    # stepping -------------------------------------------------------------------------
    def _ik(self, point: np.ndarray) -> np.ndarray:
        ll, ul, jr, rest = self._ik_limits
        q = self.ctx.world.client.calculateInverseKinematics(
            self.body,
            self.tool_index,
            point.tolist(),
            self.tool_down,
            lowerLimits=ll,
            upperLimits=ul,
            jointRanges=jr,
            restPoses=rest,
            # solved from the current pose for a point a few steps ahead: a few iterations
            # converge, and the end point is re-solved until the tool arrives (fewer
            # iterations make the settling longer and cost more than they save)
            maxNumIterations=8,
            residualThreshold=1e-4,
        )
        return np.clip(np.array(q)[self._ik_index], self.lower, self.upper)

    def _finish(self, result: str) -> None:
        self.result = result
        self.jobs_done += 1
        self.state = "idle"
        self.emit("arm_job_done", result=result, holding=self.holding)

    def before_step(self) -> None:
        dt = self.ctx.world.dt
        if self._joint_move is not None:
            q0, q1, duration, t = self._joint_move
            t += dt  # runs on past `duration` while the joints settle
            self._joint_move = (q0, q1, duration, t)
            self.q_target = q0 + (q1 - q0) * min(1.0, t / duration)
        while self.queue and isinstance(self.queue[0], _Action):
            self._run_action(self.queue.popleft())
        if self.queue:
            self._track(self.queue[0], dt)
        if self._sent_target is self.q_target:
            return  # unchanged (every change assigns a new array): pybullet keeps its targets
        self._sent_target = self.q_target
        self.ctx.world.client.setJointMotorControlArray(
            self.body,
            self.joints,
            pybullet.POSITION_CONTROL,
            targetPositions=self.q_target.tolist(),
            forces=self.max_force,
        )

    def _track(self, seg: _Segment, dt: float) -> None:
        """Joint targets along a straight tool move: IK at knots, interpolation between."""
        if seg.travelled < seg.length:
            before = seg.travelled
            seg.travelled = min(seg.length, before + seg.speed * dt)
            if seg.knot_q1 is None or seg.travelled > seg.knot_end + 1e-12:
                seg.knot_q0 = self.q_target
                seg.knot_start = before
                seg.knot_end = min(seg.length, before + self._knot_steps * seg.speed * dt)
                seg.knot_q1 = self._ik(seg.point(seg.knot_end))
            span = seg.knot_end - seg.knot_start
            frac = (seg.travelled - seg.knot_start) / span if span > 0 else 1.0
            self.q_target = seg.knot_q0 + (seg.knot_q1 - seg.knot_q0) * frac
        else:  # settling: refine the end point from where the arm now is
            if seg.settle_steps % self._knot_steps == 0:
                self.q_target = self._ik(seg.end)
            seg.settle_steps += 1

    def _run_action(self, action: _Action) -> None:
        if action.name == "check_sealed" and self.holding is None:
            # searched all the way down and found nothing: lift empty and report it
            self.vacuum = False
            lift = self.queue.popleft() if self.queue else None
            self.queue.clear()
            if lift is not None:
                self.queue.append(lift)
            self._pending_result = "no_part"
        elif action.name == "vacuum_on":
            self.vacuum = True
        elif action.name == "release":
            self.vacuum = False
            self._release()

    def _sense(self) -> None:
        """Read joints and tool pose (once per step at most)."""
        step = self.ctx.world.step_index
        if self._sensed_at == step:
            return
        self._sensed_at = step
        c = self.ctx.world.client
        states = c.getJointStates(self.body, self.joints)
        self.q = np.array([s[0] for s in states])
        self.qd = np.array([s[1] for s in states])
        self.tool = np.array(
            c.getLinkState(self.body, self.tool_index, computeForwardKinematics=1)[4]
        )

    @property
    def _still(self) -> bool:
        """Parked with nothing to watch: no job, no vacuum, no part on the cup."""
        return (
            not self.queue and self._joint_move is None and not self.vacuum and self.holding is None
        )

    def _only_travelling(self) -> bool:
        """Plain travel along a path: this step's logic needs no pose (nothing to seek, no
        move to check for arrival)."""
        if self._joint_move is not None or (self.vacuum and self.holding is None):
            return False
        seg = self.queue[0] if self.queue else None
        return isinstance(seg, _Segment) and not seg.search and seg.travelled < seg.length

    def after_step(self) -> None:
        if self._still and self._was_still:
            return  # the pose is only read when someone asks for the signals
        self._was_still = self._still
        if self._only_travelling():
            self.ctx.world.rays.set_active(self.cup_ray, False)
            return
        self._sense()
        rays = self.ctx.world.rays
        seeking = self.vacuum and self.holding is None
        if seeking:
            part = self._part_under_cup()
            if part is not None:
                self._seal(part)
                seeking = False
        rays.set_active(self.cup_ray, seeking)
        if seeking:
            rays.move(
                self.cup_ray,
                (self.tool + [0, 0, 0.002]).tolist(),
                (self.tool - [0, 0, self.cfg.suction_reach]).tolist(),
            )
        if self._joint_move is not None:
            q0, q1, duration, t = self._joint_move
            settled = np.max(np.abs(self.q - q1)) < 0.01
            if t >= duration and (settled or t >= duration + _SETTLE_LIMIT):
                self._joint_move = None
                self._finish("ok" if settled else "not_reached")
        if self.queue:
            seg = self.queue[0]
            if isinstance(seg, _Segment):
                if seg.search and self.holding is not None:
                    self.queue.popleft()
                    self.queue.popleft() if self.queue and isinstance(
                        self.queue[0], _Action
                    ) else None
                    lift = self.queue[0] if self.queue else None
                    if isinstance(lift, _Segment):
                        lift.start = self.tool.copy()
                        lift.length = float(np.linalg.norm(lift.end - lift.start))
                elif seg.travelled >= seg.length:
                    seg.settling += self.ctx.world.dt
                    if (
                        np.linalg.norm(self.tool - seg.end) < _ARRIVE_TOL
                        or seg.settling > _SETTLE_LIMIT
                    ):
                        self.queue.popleft()
            if not self.queue:
                self._finish(self._pending_result or "ok")
                self._pending_result = None

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "busy": bool(self.queue) or self._joint_move is not None,
            "result": self.result,
            "jobs_done": self.jobs_done,
            "vacuum": self.vacuum,
            "holding": self.holding,
        }

    def signals(self) -> dict[str, Any]:
        self._sense()
        return {
            **self.status(),
            "joint_positions": self.q.tolist(),
            "joint_velocities": self.qd.tolist(),
            "tool_position": self.tool.tolist(),
        }
