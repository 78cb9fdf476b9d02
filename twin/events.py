"""Events: what happened on the line, stamped with step index and simulated time."""

from __future__ import annotations

from typing import Any

import msgspec


class Event(msgspec.Struct, frozen=True, kw_only=True):
    step: int
    time: float  # s of simulated time
    kind: str  # e.g. "part_spawned", "eye_blocked", "gripper_attached", "station_state"
    device: str  # the device id, or "line"
    data: dict[str, Any] = {}


class EventLog:
    """Collects events during a step; consumers drain them (telemetry, recorder, KPIs)."""

    def __init__(self, clock) -> None:
        self._clock = clock  # returns (step, time)
        self._pending: list[Event] = []
        self.counts: dict[str, int] = {}

    def emit(self, kind: str, device: str, **data: Any) -> None:
        step, time = self._clock()
        self._pending.append(Event(step=step, time=time, kind=kind, device=device, data=data))
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def drain(self) -> list[Event]:
        out, self._pending = self._pending, []
        return out
