"""PLC-like sequencer: runs a line from its signals only, the way a PLC program would.

Like a PLC it keeps an output image and writes a command only when an output changes. Its
taught positions (where to pick and place) come from the config's geometry, never from the
physics state; everything it decides on is a signal any external controller can read too.

- belts run unless their stop eye is blocked (accumulation at the pick point);
- stations are reset when Stopped (or Complete at the end of a batch and emptied), started
  when Idle, cleared when Aborted, unheld after a safe stop; in Execute a station suspends
  and unsuspends itself as parts come and go;
- each arm works its transfers in priority order: pick when the source has a part and the
  destination may be loaded (its interlock; not reserved by another arm), then place; a
  dock is a source while the AMR docked there has delivered a part (`delivery`) and a
  destination while the AMR docked there has an empty deck (`empty_amr`);
- while a station works, the arm that will unload it waits above it, so the unload starts
  the moment the part is done (it would otherwise start from wherever the arm last was);
- a part a station reports as not seated is picked up and placed again;
- a pick, place or re-seat that fails is retried after `retry_delay`, at most `max_retries`
  times; then an `alarm` is raised and that source or destination is left alone until its
  signals change (an operator cleared it), so a failure never becomes an endless loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twin.config import ArmConfig, LineConfig, SequencerConfig, StationConfig, Transfer
from twin.control.port import CommandPort, Signals
from twin.devices.base import CommandError
from twin.geometry import pick_point, place_point

AlarmSink = Callable[..., None]
"""Called as ``(device, alarm=..., active=..., tries=..., message=...)`` when the sequencer
raises or clears an alarm; the composing code turns it into an `alarm` event."""


class _ArmJob:
    def __init__(self, transfer: Transfer, phase: str, jobs_done: int) -> None:
        self.transfer = transfer
        # "picking", "placing", "positioning", "reseat_pick", "reseat_place"
        self.phase = phase
        self.jobs_done = jobs_done


class Sequencer:
    """Scans every `period` steps of `dt` s; reads only the signals it is handed, acts only
    through `port`, and takes its taught points from the line config's geometry."""

    def __init__(
        self,
        line_cfg: LineConfig,
        port: CommandPort,
        dt: float,
        rules: SequencerConfig | None = None,
        on_alarm: AlarmSink | None = None,
    ) -> None:
        cfg = rules if rules is not None else line_cfg.controller
        if cfg is None:
            raise ValueError(f"line '{line_cfg.name}' has no [controller] section")
        self.cfg = cfg
        self.port = port
        self.dt = dt
        self.period = max(1, round(cfg.scan_time / dt))  # steps per PLC scan
        self._belt_out: dict[str, bool] = {}
        self._blocked_for: dict[str, float] = {}  # PLC on-delay timers for stop eyes
        self._jobs: dict[str, _ArmJob | None] = {t.arm: None for t in cfg.transfers}
        self._reserved: dict[str, str] = {}  # destination key -> arm
        self._pick_points = {id(t): pick_point(line_cfg, t) for t in cfg.transfers}
        self._place_points = {id(t): place_point(line_cfg, t) for t in cfg.transfers}
        arms = {d.id: d for d in line_cfg.devices if isinstance(d, ArmConfig)}
        self._above_points = {
            id(t): [*self._pick_points[id(t)][:2], arms[t.arm].travel_height] for t in cfg.transfers
        }
        self._stations = [d.id for d in line_cfg.devices if isinstance(d, StationConfig)]
        self._seat_keys = {st: f"{st}/seat" for st in self._stations}
        # each transfer's keys, looked up at every scan rather than built
        self._source_keys = {id(t): self._source_key(t) for t in cfg.transfers}
        self._dest_keys = {id(t): self._dest_key(t) for t in cfg.transfers}
        self._transfers = {arm: [t for t in cfg.transfers if t.arm == arm] for arm in self._jobs}
        self._on_alarm = on_alarm
        self._waiting_at: dict[str, str | None] = {}  # arm -> station it waits above
        # arm -> (transfer, phase) of a place it was refused, with the part still on its cup
        self._unplaced: dict[str, tuple[Transfer, str]] = {}
        self._now = 0.0
        self._failures: dict[str, int] = {}  # source/destination key -> failed tries in a row
        self._retry_at: dict[str, float] = {}  # key -> no new try before this time
        # key -> (alarm, device it was raised on, what its source or destination looked like)
        self._alarms: dict[str, tuple[str, str, Any]] = {}
        self.errors: list[str] = []

    @staticmethod
    def _dest_key(t: Transfer) -> str:
        return t.place.station or t.place.dock or f"{t.place.conveyor}@{t.place.offset}"

    @staticmethod
    def _source_key(t: Transfer) -> str:
        return t.pick.eye or f"{t.pick.station or t.pick.dock}/unload"

    def restart(self) -> None:
        """After a stop: forget the output image so every output is written again."""
        self._belt_out.clear()
        self._blocked_for.clear()
        self._waiting_at.clear()

    # scan ----------------------------------------------------------------------------
    def _send(self, device: str, command: str, args: dict[str, Any] | None = None) -> bool:
        try:
            self.port.send(device, command, args)
        except CommandError as e:  # a PLC logs and goes on; the next scan retries
            self.errors.append(e.message)
            del self.errors[:-20]
            return False
        return True

    def tick(self, s: Signals) -> None:
        dt = self.period * self.dt
        self._now += dt
        for rule in self.cfg.belts:
            if rule.stop_eye is None:  # a belt without a stop eye always runs
                if self._belt_out.get(rule.conveyor) is not True:
                    self._belt_out[rule.conveyor] = True
                    self._send(rule.conveyor, "run")
                continue
            blocked = s[rule.stop_eye]["blocked"]
            timer = self._blocked_for[rule.conveyor] = (
                self._blocked_for.get(rule.conveyor, 0.0) + dt if blocked else 0.0
            )
            run = not (blocked and timer >= rule.stop_delay - 1e-9)
            if self._belt_out.get(rule.conveyor) != run:
                self._belt_out[rule.conveyor] = run
                self._send(rule.conveyor, "run" if run else "stop")
        for dev_id in self._stations:
            self._scan_station(dev_id, s[dev_id])
        if self._alarms:
            self._clear_alarms(s)
        for arm in self._jobs:
            self._scan_arm(arm, s)

    def _scan_station(self, dev_id: str, st: Mapping[str, Any]) -> None:
        state = st["state"]
        if st["seated"]:
            self._succeeded(self._seat_keys[dev_id])
        if state == "Stopped" or (state == "Complete" and not st["part_present"]):
            self._send(dev_id, "reset")
        elif state == "Held" and not st["fault"]:  # held by a safe stop: carry on
            self._send(dev_id, "unhold")
        elif state == "Aborted":
            self._send(dev_id, "clear")
        elif state == "Idle" and not st["fault"]:
            self._send(dev_id, "start")

    # alarms and retries --------------------------------------------------------------
    def _signature(self, key: str, s: Signals) -> Any:
        """What an operator's intervention changes: the part at a source or on a station."""
        device = key.split("/")[0].split("@")[0]
        sig = s[device]
        return sig.get("part"), sig.get("blocked"), sig.get("part_present")

    def _failed(self, key: str, alarm: str, device: str, message: str, s: Signals) -> None:
        tries = self._failures[key] = self._failures.get(key, 0) + 1
        if tries > self.cfg.max_retries:
            self._failures.pop(key, None)
            self._alarms[key] = (alarm, device, self._signature(key, s))
            if self._on_alarm is not None:
                self._on_alarm(device, alarm=alarm, active=True, tries=tries, message=message)
        else:
            self._retry_at[key] = self._now + self.cfg.retry_delay

    def _succeeded(self, key: str) -> None:
        self._failures.pop(key, None)
        self._retry_at.pop(key, None)

    def _may_try(self, key: str) -> bool:
        return key not in self._alarms and self._now >= self._retry_at.get(key, 0.0)

    def _clear_alarms(self, s: Signals) -> None:
        for key, (alarm, device, sig) in list(self._alarms.items()):
            if self._signature(key, s) != sig:
                del self._alarms[key]
                if self._on_alarm is not None:
                    self._on_alarm(device, alarm=alarm, active=False)

    # arms ----------------------------------------------------------------------------
    def _source_ready(self, t: Transfer, s: Signals) -> bool:
        if not self._may_try(self._source_keys[id(t)]):
            return False
        if t.pick.eye is not None:
            return s[t.pick.eye]["blocked"]
        if t.pick.dock is not None:  # an AMR docked there has brought a part
            return bool(s[t.pick.dock]["delivery"])
        st = s[t.pick.station or ""]
        return bool(st["unload_ok"] and st["part_done"])

    def _dest_ready(self, t: Transfer, s: Signals) -> bool:
        key = self._dest_keys[id(t)]
        if key in self._reserved or not self._may_try(key):
            return False
        if t.place.station is not None:
            return s[t.place.station]["load_ok"]
        if t.place.dock is not None:  # an AMR with an empty deck is docked there
            return bool(s[t.place.dock]["empty_amr"])
        return t.place.clear_eye is None or not s[t.place.clear_eye]["blocked"]

    def _start(
        self,
        arm: str,
        t: Transfer,
        phase: str,
        command: str,
        point: list[float],
        a: Mapping[str, Any],
        s: Signals,
    ) -> None:
        self._waiting_at[arm] = None
        if self._send(arm, command, {"position": point}):
            self._jobs[arm] = _ArmJob(t, phase, a["jobs_done"])
            return
        # refused (out of reach, a limit): a failed try like a job that ends badly, so it
        # is retried and then raises an alarm instead of waiting in silence
        message = f"{arm}: {command} refused: {self.errors[-1]}"
        if command == "pick":
            self._reserved.pop(self._dest_key(t), None)
            key = self._source_key(t) if phase == "picking" else f"{t.place.station}/seat"
            device = t.pick.eye or t.pick.station or t.pick.dock or self._dest_key(t)
            self._failed(key, "pick_failed", device, message, s)
        else:
            self._failed(self._dest_key(t), "place_failed", arm, message, s)
            self._unplaced[arm] = (t, phase)  # placed again when a retry is due

    def _job_done(self, arm: str, job: _ArmJob, a: Mapping[str, Any], s: Signals) -> None:
        """The arm finished `job` with `a["result"]`: go on, retry or raise an alarm."""
        t, result, holding = job.transfer, a["result"], a["holding"]
        self._jobs[arm] = None
        if job.phase == "positioning" or t is None:
            return
        if job.phase in ("picking", "reseat_pick"):
            key = self._source_key(t) if job.phase == "picking" else f"{t.place.station}/seat"
            if holding is not None:
                if job.phase == "picking":
                    self._succeeded(key)
                phase = "placing" if job.phase == "picking" else "reseat_place"
                self._start(arm, t, phase, "place", self._place_points[id(t)], a, s)
                return
            self._reserved.pop(self._dest_key(t), None)
            if result == "halted":
                return  # a safe stop is no failure: the next scan picks again
            device = t.pick.eye or t.pick.station or t.pick.dock or self._dest_key(t)
            self._failed(key, "pick_failed", device, f"{arm}: pick ended {result}", s)
            return
        # placing or reseat_place
        dest = self._dest_key(t)
        if holding is not None:  # not let go: the place did not happen (e.g. not_reached)
            if result != "halted":  # a safe stop is no failure: just place again
                self._failed(dest, "place_failed", arm, f"{arm}: place ended {result}", s)
            if dest not in self._alarms:
                self._start(arm, t, job.phase, "place", self._place_points[id(t)], a, s)
            return
        self._reserved.pop(dest, None)
        if result == "ok":
            self._succeeded(dest)

    def _scan_arm(self, arm: str, s: Signals) -> None:
        a = s[arm]
        job = self._jobs[arm]
        if job is not None and (a["busy"] or a["jobs_done"] == job.jobs_done):
            return  # the robot is still on its job
        if job is not None:
            self._job_done(arm, job, a, s)
            if self._jobs[arm] is not None:
                return
        if a["busy"]:
            return
        if a["holding"] is not None:
            unplaced = self._unplaced.get(arm)
            if unplaced is not None and self._may_try(self._dest_key(unplaced[0])):
                del self._unplaced[arm]
                t, phase = unplaced
                self._start(arm, t, phase, "place", self._place_points[id(t)], a, s)
            return
        self._unplaced.pop(arm, None)  # its part was taken off the cup
        transfers = self._transfers[arm]
        for t in transfers:
            if self._reseat_needed(t, s):
                self._reserved[self._dest_key(t)] = arm
                self._start(arm, t, "reseat_pick", "pick", self._place_points[id(t)], a, s)
                return
            if self._source_ready(t, s) and self._dest_ready(t, s):
                self._reserved[self._dest_key(t)] = arm
                self._start(arm, t, "picking", "pick", self._pick_points[id(t)], a, s)
                return
        if self.cfg.prepare_next:
            self._wait_above_busy_station(arm, transfers, a, s)

    def _reseat_needed(self, t: Transfer, s: Signals) -> bool:
        """A part this arm loaded lies on the station but not seated: pick and place it again."""
        station = t.place.station
        if station is None or station in self._reserved:
            return False
        st = s[station]
        if st["seated"] is not False or st["part_done"] or not st["unload_ok"]:
            return False
        key = f"{station}/seat"
        return self._may_try(key) and self._failed_seat(key, station, s)

    def _failed_seat(self, key: str, station: str, s: Signals) -> bool:
        """Count a not-seated part as a failed place; True while a retry is allowed."""
        self._failed(key, "part_not_seated", station, f"{station}: part not seated", s)
        return key not in self._alarms

    def _wait_above_busy_station(
        self, arm: str, transfers: list[Transfer], a: Mapping[str, Any], s: Signals
    ) -> None:
        """Wait above the station this arm will unload next, while it works on its part."""
        for t in transfers:
            station = t.pick.station
            if station is None:
                continue
            st = s[station]
            working = (
                st["part_present"] and not st["part_done"] and st["seated"] and not st["fault"]
            )
            if working and self._waiting_at.get(arm) != station:
                self._waiting_at[arm] = station
                if self._send(arm, "move_to", {"position": self._above_points[id(t)]}):
                    self._jobs[arm] = _ArmJob(t, "positioning", a["jobs_done"])
                return
