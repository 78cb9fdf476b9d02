"""PLC-like sequencer: runs a line from its signals only, the way a PLC program would.

Like a PLC it keeps an output image and writes a command only when an output changes. Its
taught positions (where to pick and place) come from the config's geometry, never from the
physics state; everything it decides on is a signal any external controller can read too.

- belts run unless their stop eye is blocked (accumulation at the pick point);
- stations are reset when Stopped or when Complete and emptied, started when Idle with a part;
- each arm works its transfers in priority order: pick when the source has a part and the
  destination is free (and not reserved by another arm), then place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from twin.config import SequencerConfig, Transfer
from twin.devices.base import CommandError

if TYPE_CHECKING:
    from twin.line import Line

Signals = Mapping[str, dict[str, Any]]  # device id -> its signals


class _ArmJob:
    def __init__(self, transfer: Transfer, phase: str, jobs_done: int) -> None:
        self.transfer = transfer
        self.phase = phase  # "picking" or "placing"
        self.jobs_done = jobs_done


class Sequencer:
    def __init__(self, cfg: SequencerConfig, line: Line) -> None:
        self.cfg = cfg
        self.line = line
        self.period = max(1, round(cfg.scan_time / line.dt))  # steps per PLC scan
        self._belt_out: dict[str, bool] = {}
        self._blocked_for: dict[str, float] = {}  # PLC on-delay timers for stop eyes
        self._jobs: dict[str, _ArmJob | None] = {t.arm: None for t in cfg.transfers}
        self._reserved: dict[str, str] = {}  # destination key -> arm
        self._pick_points = {id(t): self._pick_point(t) for t in cfg.transfers}
        self._place_points = {id(t): self._place_point(t) for t in cfg.transfers}
        self._stations = [d for d, dev in line.devices.items() if dev.kind == "station"]
        self.errors: list[str] = []

    # taught points from config geometry ----------------------------------------------
    def _pick_point(self, t: Transfer) -> list[float]:
        devices = self.line.devices
        if t.pick.eye is not None:
            eye = devices[t.pick.eye]
            belt = devices[eye.cfg.conveyor]
            return belt.point(eye.cfg.offset, 0, 0)
        return devices[t.pick.station].point(0, 0, 0)

    def _place_point(self, t: Transfer) -> list[float]:
        devices = self.line.devices
        if t.place.station is not None:
            return devices[t.place.station].point(0, 0, 0)
        return devices[t.place.conveyor].point(t.place.offset, 0, 0)

    @staticmethod
    def _dest_key(t: Transfer) -> str:
        return t.place.station or f"{t.place.conveyor}@{t.place.offset}"

    def restart(self) -> None:
        """After a stop: forget the output image so every output is written again."""
        self._belt_out.clear()
        self._blocked_for.clear()

    # scan ----------------------------------------------------------------------------
    def _send(self, device: str, command: str, args: dict[str, Any] | None = None) -> None:
        try:
            self.line.apply(device, command, args)
        except CommandError as e:  # a PLC logs and goes on; the next scan retries
            self.errors.append(e.message)
            del self.errors[:-20]

    def tick(self, s: Signals) -> None:
        dt = self.period * self.line.dt
        for rule in self.cfg.belts:
            blocked = rule.stop_eye is not None and s[rule.stop_eye]["blocked"]
            timer = self._blocked_for[rule.conveyor] = (
                self._blocked_for.get(rule.conveyor, 0.0) + dt if blocked else 0.0
            )
            run = not (blocked and timer >= rule.stop_delay - 1e-9)
            if self._belt_out.get(rule.conveyor) != run:
                self._belt_out[rule.conveyor] = run
                self._send(rule.conveyor, "run" if run else "stop")
        for dev_id in self._stations:
            self._scan_station(dev_id, s[dev_id])
        for arm in self._jobs:
            self._scan_arm(arm, s)

    def _scan_station(self, dev_id: str, st: dict[str, Any]) -> None:
        state = st["state"]
        if state == "Stopped" or (state == "Complete" and not st["part_present"]):
            self._send(dev_id, "reset")
        elif state == "Held" and not st["fault"]:  # held by a safe stop: carry on
            self._send(dev_id, "unhold")
        elif state == "Aborted":
            self._send(dev_id, "clear")
        elif (
            state == "Idle"
            and st["part_present"]
            and not st["fault"]
            and dev_id not in self._reserved
        ):
            self._send(dev_id, "start")

    def _source_ready(self, t: Transfer, s: Signals) -> bool:
        if t.pick.eye is not None:
            return s[t.pick.eye]["blocked"]
        st = s[t.pick.station]
        return st["state"] == "Complete" and st["part_present"]

    def _dest_ready(self, t: Transfer, s: Signals) -> bool:
        if self._dest_key(t) in self._reserved:
            return False
        if t.place.station is not None:
            st = s[t.place.station]
            return st["state"] == "Idle" and not st["part_present"]
        return t.place.clear_eye is None or not s[t.place.clear_eye]["blocked"]

    def _scan_arm(self, arm: str, s: Signals) -> None:
        a = s[arm]
        job = self._jobs[arm]
        if job is not None and (a["busy"] or a["jobs_done"] == job.jobs_done):
            return  # the robot is still on its job
        if job is not None:
            t = job.transfer
            picked = job.phase == "picking" and a["result"] == "ok"
            interrupted = a["result"] in ("halted", "not_reached")  # e.g. a safe stop
            if a["holding"] is not None and (picked or interrupted):
                self._send(arm, "place", {"position": self._place_points[id(t)]})
                self._jobs[arm] = _ArmJob(t, "placing", a["jobs_done"])
                return
            self._reserved.pop(self._dest_key(t), None)
            self._jobs[arm] = None
        if a["busy"] or a["holding"] is not None:
            return
        for t in self.cfg.transfers:
            if t.arm == arm and self._source_ready(t, s) and self._dest_ready(t, s):
                self._reserved[self._dest_key(t)] = arm
                self._send(arm, "pick", {"position": self._pick_points[id(t)]})
                self._jobs[arm] = _ArmJob(t, "picking", a["jobs_done"])
                return
