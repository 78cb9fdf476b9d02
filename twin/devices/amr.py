"""AMR: an autonomous mobile robot that drives the route network and carries one part.

This module is the device: commands, signals, states, events and the control cycle. The
parts it composes each do one job:

- `amr_interface`: its signals, commands, states and results, declared once;
- `amr_body`: the chassis in the physics scene and its force-limited motors;
- `amr_drive`: a move as straight segments, turned into and driven with speed profiles;
- `amr_safety`: the safety field, a fan of rays ahead in the direction of travel;
- `amr_battery`: drained by distance, payload and idle power, charged at chargers.

Per step an AMR costs one joint read while it moves (every few steps at rest), a motor
command when its velocity changes, a contact query every few steps to see its deck and a
ray fan at the safety scanner's rate: nothing per part. The pose is sensed after each
physics step; the next step's velocities are decided before it (a controller's cycle).
"""

from __future__ import annotations

import math
from typing import Any

from twin.config import AmrConfig
from twin.devices.amr_battery import Battery
from twin.devices.amr_body import AmrBody
from twin.devices.amr_drive import Drive, Segment, wrap
from twin.devices.amr_interface import SIGNALS, command_specs
from twin.devices.amr_safety import SafetyField
from twin.devices.base import BuildContext, CommandError, Device
from twin.devices.dock import Dock, dock_of
from twin.routes import RouteNetwork

_SCAN_PERIOD = 0.04  # s between two safety field scans (a 25 Hz scanner)
_LOAD_PERIOD = 0.04  # s between two looks at the deck and two battery updates
_IDLE_READ_PERIOD = 0.1  # s between two pose reads while at rest (it may be pushed)
_LOAD_GONE = 2  # looks in a row without the part before it counts as gone
_MOVING = ("driving", "docking", "undocking", "blocked")
# held back: commanded at least _STALL_SPEED but moving at less than _STALL_SHARE of it for
# _STALL_TIME (the motors' force is not enough to push through)
_STALL_SPEED = 0.05  # m/s
_STALL_SHARE = 0.2
_STALL_TIME = 0.5  # s


class Amr(Device):
    kind = "amr"
    signal_specs = SIGNALS

    def __init__(self, cfg: AmrConfig, ctx: BuildContext) -> None:
        super().__init__(cfg, ctx)
        self.net: RouteNetwork = network_of(ctx)
        self.commands = command_specs(tuple(self.net.nodes), tuple(self.net.docks))
        world = ctx.world
        self.chassis = AmrBody(world, cfg)
        self.body = self.chassis.body  # its pybullet body, as other devices name theirs
        length, width, self.deck_height = cfg.size
        self.field = SafetyField(cfg.safety, length / 2, width / 2)
        self.pack = Battery(cfg.battery)
        self.drive = Drive(
            cfg.max_acceleration, cfg.max_deceleration, cfg.turn_rate, cfg.turn_acceleration
        )
        dt = world.dt
        self._scan_every = max(1, round(_SCAN_PERIOD / dt))
        self._load_every = max(1, round(_LOAD_PERIOD / dt))
        self._idle_read_every = max(1, round(_IDLE_READ_PERIOD / dt))
        self.state = "idle"
        self.node = ""
        self.dock_id = ""
        self.goal = ""
        self.result = ""
        self.moves_done = 0
        self.safety = "clear"
        self.load: int | None = None
        self.load_type = ""
        self.load_mass = 0.0
        self.arrived_with: int | None = None  # the part it had on its deck when it docked
        self._missing = 0
        self._halting = False
        self._blocked_for = 0.0
        self._stalled_for = 0.0
        self._move_distance = 0.0
        self._charger_power = 0.0
        # where it is on the network: ("node", n), ("lane", a, b), ("dock", d), ("dockway", d)
        self.where: tuple[str, ...]
        if cfg.start in self.net.docks:
            dock = self._dock(cfg.start)
            x, y, yaw = dock.cfg.position[0], dock.cfg.position[1], dock.cfg.yaw
            self.where = ("dock", dock.id)
            self.dock_id = dock.id
            self.state = "docked"
            dock.claimed, dock.docked = self.id, self
        else:
            (x, y), yaw = self.net.nodes[cfg.start], 0.0
            self.where = ("node", cfg.start)
            self.node = cfg.start
        self.chassis.place(x, y, yaw)
        self.x, self.y, self._yaw, self.vx, self.vy, self.yaw_rate = x, y, yaw, 0.0, 0.0, 0.0
        self._last_xy = (x, y)

    # signals -----------------------------------------------------------------------------
    @property
    def yaw(self) -> float:
        return wrap(self._yaw)

    @property
    def speed(self) -> float:
        return self.vx * math.cos(self._yaw) + self.vy * math.sin(self._yaw)

    @property
    def battery(self) -> float:
        return self.pack.level

    @property
    def overloaded(self) -> bool:
        return self.load_mass > self.cfg.max_payload + 1e-9

    # checks ------------------------------------------------------------------------------
    def _dock(self, dock_id: str) -> Dock:
        return dock_of(self.ctx, self.id, dock_id)

    def check(self, command: str, args: dict[str, Any]) -> None:
        """What the network alone decides (the nodes and docks named exist: their
        declared choices): a route's steps are lanes."""
        if command == "go_along":
            nodes = args["nodes"]
            for a, b in zip(nodes, nodes[1:]):
                if b not in self.net.out[a]:
                    raise CommandError(
                        "bad_value", f"amr '{self.id}': go_along: no lane from '{a}' to '{b}'"
                    )

    def _refuse(self, code: str, command: str, why: str) -> None:
        raise CommandError(code, f"amr '{self.id}': {command}: {why}")

    def _require_drivable(self, command: str) -> None:
        if self.state == "battery_empty":
            self._refuse("battery_empty", command, "the battery is empty (charge it first)")
        if self.overloaded:
            self._refuse(
                "overloaded",
                command,
                f"{self.load_mass:.2f} kg on the deck is more than max_payload "
                f"{self.cfg.max_payload} kg",
            )
        if self.state in ("docking", "undocking"):
            self._refuse("busy", command, f"cannot {command} while {self.state}")

    # commands ----------------------------------------------------------------------------
    def cmd_go_to(self, node: str) -> None:
        self._require_drivable("go_to")
        self._require_undocked("go_to")
        start, keep = self._route_start()
        if start is None:  # stopped on a lane: either end it may drive to
            options = []
            for end in self._lane_exits():
                path = self.net.route(end, node)
                if path:
                    extra = math.dist((self.x, self.y), self.net.nodes[end])
                    options.append((extra + self.net.length(path), path))
            path = min(options)[1] if options else []
        else:
            path = self.net.route(start, node)
        if not path:
            self._refuse("unreachable", "go_to", f"no route to node '{node}' from {self._here()}")
        self._drive_path(path, node, keep)

    def cmd_go_along(self, nodes: list[str]) -> None:
        self._require_drivable("go_along")
        self._require_undocked("go_along")
        start, keep = self._route_start()
        path = list(nodes)
        if start is None:
            if path[0] not in self._lane_exits():
                self._refuse(
                    "bad_value",
                    "go_along",
                    f"{self._here()} it can drive to {self._lane_exits()}, not '{path[0]}'",
                )
        else:
            seg = self.drive.segments[0] if keep else None
            if seg is not None and path[:2] == [seg.start, seg.end]:
                path = path[1:]  # the lane it is driving: the route goes on from its end
            if path[0] != start:
                path.insert(0, start)
            if len(path) > 1 and path[1] not in self.net.out[path[0]]:
                self._refuse("bad_value", "go_along", f"no lane from '{path[0]}' to '{path[1]}'")
        self._drive_path(path, path[-1], keep)

    def cmd_dock(self, dock: str) -> None:
        self._require_drivable("dock")
        target = self._dock(dock)
        if self.where == ("dock", dock):
            return  # already there
        on_way = self.where == ("dockway", dock)
        at_node = self.where == ("node", target.cfg.node) and not self.drive.active
        if not (on_way or at_node):
            self._refuse(
                "not_at_dock",
                "dock",
                f"docking onto '{dock}' starts at its approach node '{target.cfg.node}' "
                f"({self._here()})",
            )
        if target.claimed not in ("", self.id):
            self._refuse("dock_occupied", "dock", f"dock '{dock}' is taken by '{target.claimed}'")
        self._finish_halt()
        target.claimed = self.id
        x, y, _ = target.cfg.position
        seg = Segment(x, y, "dock_in", dock, target.cfg.node, self.cfg.dock_speed, target.cfg.yaw)
        self._begin_move(dock, [seg], "dock")

    def cmd_undock(self) -> None:
        self._require_drivable("undock")
        kind, *rest = self.where
        if kind not in ("dock", "dockway"):
            self._refuse("not_at_dock", "undock", f"not on a dock ({self._here()})")
        dock = self._dock(rest[0])
        self._finish_halt()
        if dock.docked is self:
            dock.docked = None
        self.dock_id = ""
        self.arrived_with = None
        x, y = self.net.nodes[dock.cfg.node]
        seg = Segment(x, y, "dock_out", dock.cfg.node, dock.id, self.cfg.dock_speed, None)
        self._begin_move(dock.cfg.node, [seg], "undock")

    def cmd_charge(self) -> None:
        power = self.net.charger_power.get(self.node, 0.0) if self.where[0] == "node" else 0.0
        if power <= 0.0:
            self._refuse("not_at_charger", "charge", f"no charger at {self._here()}")
        if self.drive.active or self.state in _MOVING:
            self._refuse("busy", "charge", f"cannot charge while {self.state}")
        self._finish_halt()
        self._charger_power = power
        self._set_state("charging", "charge")

    def cmd_stop(self) -> None:
        if self.state == "charging":
            self._set_state("idle", "stop")
        elif self.drive.active:
            self._halt("halted", "stopped", "stop")

    def safe_state(self, reason: str) -> None:
        if self.drive.active:
            self._halt("halted", "stopped", reason)

    # moves -------------------------------------------------------------------------------
    def _require_undocked(self, command: str) -> None:
        if self.where[0] in ("dock", "dockway"):
            self._refuse("docked", command, f"on dock '{self.where[1]}': undock first")

    def _lane_exits(self) -> list[str]:
        """The nodes it may drive to from where it stands on a lane: ahead, and back if the
        lane is two-way."""
        _, a, b = self.where
        return [b, a] if a in self.net.out[b] else [b]

    def _route_start(self) -> tuple[str | None, bool]:
        """Where a new route starts: the node it is at (or turning on), or the end of the
        lane it is driving (the lane is kept); None when it stands on a lane."""
        drive = self.drive
        if drive.active and not drive.turning and drive.segments[0].kind == "lane":
            return drive.segments[0].end, True
        if self.where[0] == "node":
            return self.where[1], False
        return None, False

    def _drive_path(self, path: list[str], goal: str, keep: bool) -> None:
        """Drive along the nodes of `path` (its first node is where it is, or the end of
        the lane it keeps driving)."""
        segments = []
        prev = path[0]
        px, py = self.net.nodes[prev] if keep or self.where[0] == "node" else (self.x, self.y)
        if self.where[0] == "lane" and not keep:
            # from a standstill on a lane: first to the chosen end of it
            _, a, b = self.where
            segments.append(self._lane_segment(b if prev == a else a, prev, self.x, self.y))
            px, py = self.net.nodes[prev]
        for nxt in path[1:]:
            segments.append(self._lane_segment(prev, nxt, px, py))
            prev, (px, py) = nxt, self.net.nodes[nxt]
        if keep:
            self.drive.extend(segments)  # the lane being driven is finished first
            self.goal = goal
            return
        self._finish_halt()
        if self.state == "charging":
            self._set_state("idle", "go_to")
        self._begin_move(goal, segments, "go_to")

    def _lane_segment(self, a: str, b: str, px: float, py: float) -> Segment:
        """Along the lane from `a` to `b`, starting at (px, py)."""
        x, y = self.net.nodes[b]
        leg = self.net.out[a][b]
        limit = self.cfg.max_speed if leg.speed is None else min(self.cfg.max_speed, leg.speed)
        heading = math.atan2(y - py, x - px) if math.hypot(x - px, y - py) > 1e-6 else None
        return Segment(x, y, "lane", b, a, limit, heading)

    def _begin_move(self, goal: str, segments: list[Segment], cause: str) -> None:
        self.goal = goal
        self._move_distance = 0.0
        self._blocked_for = self._stalled_for = 0.0
        if not segments:  # already there
            self._end_move("ok")
            self._set_state("idle", cause)
            return
        self.drive.start(segments, self.x, self.y)
        first = segments[0]
        new = {"lane": "driving", "dock_in": "docking", "dock_out": "undocking"}[first.kind]
        if first.kind == "dock_in":
            self.where, self.node = ("dockway", first.end), ""
        elif first.kind == "dock_out":
            self.where = ("dockway", first.start)
        self._set_state(new, cause)

    def _end_move(self, result: str) -> None:
        self.result = result
        self.moves_done += 1
        self.emit(
            "amr_move_done",
            goal=self.goal,
            result=result,
            distance=round(self._move_distance, 4),
        )
        self.goal = ""

    def _halt(self, result: str, state: str, cause: str) -> None:
        """Abandon the move: brake at full deceleration; the move ends with `result`."""
        self.drive.segments = []
        self._halting = True
        self.safety = "clear"
        self.field.clear()
        self._end_move(result)
        self._set_state(state, cause)

    def _finish_halt(self) -> None:
        """A new move starts from what is left of a braking one."""
        self._halting = False

    def _set_state(self, new: str, cause: str) -> None:
        if new != self.state:
            old, self.state = self.state, new
            self.emit("amr_state", old=old, new=new, cause=cause)

    def _here(self) -> str:
        kind, *rest = self.where
        if kind == "lane":
            return f"on the lane '{rest[0]}' -> '{rest[1]}'"
        if kind == "dockway":
            return f"between dock '{rest[0]}' and its approach node"
        return f"at {kind} '{rest[0]}'"

    # the control cycle -------------------------------------------------------------------
    def before_step(self) -> None:
        drive = self.drive
        if drive.active:
            self._follow()
        elif self._halting:
            vx, vy, w = drive.brake(self.ctx.world.dt)
            self.chassis.drive(vx, vy, w)
            if drive.at_rest:
                self._halting = False

    def _follow(self) -> None:
        world = self.ctx.world
        drive = self.drive
        seg = drive.segments[0]
        cap = math.inf
        if seg.kind == "lane" and not drive.turning:
            if self.where[0] == "node":
                self.where, self.node = ("lane", seg.start, seg.end), ""
            if world.step_index % self._scan_every == 0:
                travel = math.atan2(drive.direction[1], drive.direction[0])
                self.field.scan(world._id, self.x, self.y, travel, self._yaw)
            self.safety = self.field.status
            if self.safety == "protective":
                cap = 0.0
            elif self.safety == "warning":
                cap = self.cfg.safety.warning_speed
        else:
            self.field.clear()
            self.safety = "clear"
        vx, vy, w, finished = drive.update(self.x, self.y, self._yaw, world.dt, cap)
        self.chassis.drive(vx, vy, w)
        for done in finished:
            self._segment_done(done)
        if drive.active:
            self._watch_blocked(world.dt)

    def _watch_blocked(self, dt: float) -> None:
        """Blocked: the protective field is interrupted, or the chassis is held back (it
        pushes against something the field does not see: a low obstacle, a docking
        station). Blocked for blocked_timeout, the move ends `blocked`."""
        drive = self.drive
        held = (
            not drive.turning
            and abs(drive.v) >= _STALL_SPEED
            and math.hypot(self.vx, self.vy) < _STALL_SHARE * abs(drive.v)
        )
        self._stalled_for = self._stalled_for + dt if held else 0.0
        stalled = self._stalled_for >= _STALL_TIME - 1e-9
        if self.safety != "protective" and not stalled:
            self._blocked_for = 0.0
            if self.state == "blocked":
                self._set_state(self._moving_state(), "clear")
            return
        self._blocked_for += dt
        if self.state != "blocked" and (drive.v == 0.0 or stalled):
            self._set_state("blocked", "protective_field" if not stalled else "stalled")
        if self._blocked_for >= self.cfg.blocked_timeout - 1e-9:
            self._halt("blocked", "idle", "blocked_timeout")

    def _moving_state(self) -> str:
        kind = self.drive.segments[0].kind if self.drive.segments else "lane"
        return {"lane": "driving", "dock_in": "docking", "dock_out": "undocking"}[kind]

    def _segment_done(self, seg: Segment) -> None:
        if seg.kind == "lane":
            self.where, self.node = ("node", seg.end), seg.end
        elif seg.kind == "dock_in":
            dock = self._dock(seg.end)
            self.where, self.node, self.dock_id = ("dock", dock.id), "", dock.id
            dock.docked = self
            self.arrived_with = self.load
        else:  # dock_out
            dock = self._dock(seg.start)
            if dock.claimed == self.id:
                dock.claimed = ""
            self.where, self.node = ("node", seg.end), seg.end
        if self.drive.active:
            nxt = self.drive.segments[0]
            if nxt.kind == "dock_in":  # never chained today; kept for completeness
                self.where = ("dockway", nxt.end)
            return
        self._end_move("ok")
        self._set_state("docked" if seg.kind == "dock_in" else "idle", "arrived")

    # sensing -----------------------------------------------------------------------------
    def after_step(self) -> None:
        world = self.ctx.world
        if self.drive.active or self._halting or world.step_index % self._idle_read_every == 0:
            self._sense()
        if world.step_index % self._load_every == 0:
            self._look_at_deck()
            self._battery(world.dt * self._load_every)

    def _sense(self) -> None:
        self.x, self.y, self._yaw, self.vx, self.vy, self.yaw_rate = self.chassis.read()
        if self.state == "docked" and self.where[0] == "dock":
            dock = self._dock(self.where[1])
            dx, dy = self.x - dock.cfg.position[0], self.y - dock.cfg.position[1]
            if math.hypot(dx, dy) > dock.cfg.tolerance and dock.docked is self:
                dock.docked = None  # pushed off the dock
            elif math.hypot(dx, dy) <= dock.cfg.tolerance and dock.docked is None:
                dock.docked = self

    def _battery(self, dt: float) -> None:
        lx, ly = self._last_xy
        moved = math.hypot(self.x - lx, self.y - ly)
        self._last_xy = (self.x, self.y)
        self._move_distance += moved
        pack = self.pack
        if self.state == "charging":
            pack.charge(self._charger_power, dt)
            if pack.full:
                self._set_state("idle", "charged")
            return
        if pack.drain(moved, self.load_mass, dt):
            self.emit("battery_low", level=round(pack.level, 4))
        if pack.empty and self.state != "battery_empty":
            if self.drive.active:
                self._halt("battery_empty", "battery_empty", "battery_empty")
            else:
                self._set_state("battery_empty", "battery_empty")

    def _look_at_deck(self) -> None:
        pool = self.ctx.pool
        parts = [
            p
            for b in self.chassis.deck_contacts(self.deck_height)
            if (p := pool.part_at_body(b)) is not None
        ]
        if not parts:
            if self.load is not None:
                self._missing += 1
                if self._missing >= _LOAD_GONE or self.load not in pool.active:
                    self._unloaded()
            return
        self._missing = 0
        parts.sort()
        mass = sum(pool.active[p].mass for p in parts)
        if self.load not in parts:
            if self.load is not None:
                self._unloaded()
            self.put_on(parts[0])
        self.load_mass = mass

    def put_on(self, part_id: int) -> None:
        """A part is now on the deck (seen there, or put there by a source)."""
        if self.load == part_id:
            return
        part = self.ctx.pool.active[part_id]
        self.load, self.load_type = part_id, part.type
        self.load_mass = max(self.load_mass, part.mass)
        self._missing = 0
        self.emit("amr_loaded", part=part_id, type=part.type, mass=part.mass)

    def take_off(self, part_id: int) -> None:
        """The part has been taken off the deck (by a sink)."""
        if self.load == part_id:
            self._unloaded()

    def _unloaded(self) -> None:
        part = self.load
        self.load, self.load_type, self.load_mass = None, "", 0.0
        self._missing = 0
        self.arrived_with = None
        self.emit("amr_unloaded", part=part)


def network_of(ctx: BuildContext) -> RouteNetwork:
    """The line's route network, built once for all its AMRs."""
    net = getattr(ctx, "_route_network", None)
    if net is None:
        assert ctx.config is not None, "AMRs are built by a Line (it passes its config)"
        net = ctx._route_network = RouteNetwork.from_config(ctx.config)  # type: ignore[attr-defined]
    return net
