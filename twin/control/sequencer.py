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

from typing import Any

from twin.config import LineConfig, SequencerConfig, StationConfig, Transfer
from twin.control.port import CommandPort, Signals
from twin.devices.base import CommandError
from twin.geometry import pick_point, place_point


class _ArmJob:
    def __init__(self, transfer: Transfer, phase: str, jobs_done: int) -> None:
        self.transfer = transfer
        self.phase = phase  # "picking" or "placing"
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
        self._stations = [d.id for d in line_cfg.devices if isinstance(d, StationConfig)]
        self.errors: list[str] = []

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
            self.port.send(device, command, args)
        except CommandError as e:  # a PLC logs and goes on; the next scan retries
            self.errors.append(e.message)
            del self.errors[:-20]

    def tick(self, s: Signals) -> None:
        dt = self.period * self.dt
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
