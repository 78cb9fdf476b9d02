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
    """Collects events during a step; consumers drain them (telemetry, recorder, KPIs).

    A line nobody drains must not grow without bound: past `max_pending` the oldest events
    are dropped and counted in `dropped`.
    """

    def __init__(self, clock, max_pending: int = 100_000) -> None:
        self._clock = clock  # returns (step, time)
        self._pending: list[Event] = []
        self.max_pending = max_pending
        self.dropped = 0
        self.counts: dict[str, int] = {}

    def emit(self, kind: str, device: str, **data: Any) -> None:
        step, time = self._clock()
        self._pending.append(Event(step=step, time=time, kind=kind, device=device, data=data))
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if len(self._pending) > self.max_pending:
            excess = len(self._pending) - self.max_pending // 2
            del self._pending[:excess]  # amortised: trim in halves, not one by one
            self.dropped += excess

    def drain(self) -> list[Event]:
        out, self._pending = self._pending, []
        return out
