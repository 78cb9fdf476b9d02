"""The alarm and event list the HMI shows: notable events, newest first, with acknowledge.

Alarms (faults, e-stops, watchdog trips, safe stops, failed picks, dropped events, refused
commands) stay marked until an operator acknowledges them; notices (e-stop reset, control
changes, pause, reset, line state) are listed for context and need no acknowledge. The list
is kept here, in the gateway, so every browser sees the same list and the same acks.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

import msgspec

from twin.protocol import messages as m

ALARM_KINDS = {"fault", "estop", "watchdog", "safe_state", "pick_failed", "events_dropped"}
NOTICE_KINDS = {
    "estop_reset",
    "control_taken",
    "control_released",
    "lease_expired",
    "paused",
    "resumed",
    "reset",
    "line_state",
}
MAX_ENTRIES = 200


class Entry(msgspec.Struct, kw_only=True):
    id: int
    step: int
    time: float
    kind: str
    device: str
    text: str
    alarm: bool  # needs an acknowledge
    acked: bool = False


def describe_event(kind: str, data: dict[str, Any]) -> str:
    """One line for people."""
    if kind == "fault":
        active = "active" if data.get("active") else "cleared"
        return f"{data.get('fault', 'fault')} {active}"
    if kind in ("estop", "safe_state"):
        return data.get("reason") or kind
    if kind == "watchdog":
        return f"controller {data.get('client', '')} silent for {data.get('silent_for', 0):.1f} s"
    if kind == "pick_failed":
        return f"{data.get('reason', '')} after {data.get('attempts', 0)} attempts"
    if kind == "events_dropped":
        return f"{data.get('count', 0)} events dropped"
    if kind == "line_state":
        return f"{data.get('old')} -> {data.get('new')} ({data.get('cause')})"
    if kind in ("control_taken", "control_released", "lease_expired"):
        return f"client {data.get('client', '')}"
    if kind == "reset":
        return f"line rebuilt, seed {data.get('seed')}"
    return ", ".join(f"{k}={v}" for k, v in data.items())


class AlarmList:
    def __init__(self) -> None:
        self.entries: deque[Entry] = deque(maxlen=MAX_ENTRIES)
        self._ids = itertools.count(1)

    def from_event(self, event: m.EventMsg) -> Entry | None:
        if event.kind not in ALARM_KINDS and event.kind not in NOTICE_KINDS:
            return None
        data = event.data if isinstance(event.data, dict) else {}
        # a fault clearing is news, not an alarm to acknowledge
        alarm = event.kind in ALARM_KINDS and not (event.kind == "fault" and not data.get("active"))
        return self._add(
            event.step,
            event.time,
            event.kind,
            event.device,
            describe_event(event.kind, data),
            alarm,
        )

    def refusal(self, step: int, time: float, device: str, text: str) -> Entry:
        """A command from the page that the twin (or the HMI) refused."""
        return self._add(step, time, "refused", device, text, True)

    def _add(self, step: int, time: float, kind: str, device: str, text: str, alarm: bool) -> Entry:
        entry = Entry(
            id=next(self._ids),
            step=step,
            time=time,
            kind=kind,
            device=device,
            text=text,
            alarm=alarm,
        )
        self.entries.append(entry)
        return entry

    def acknowledge(self, entry_id: int) -> bool:
        for entry in self.entries:
            if entry.id == entry_id and entry.alarm and not entry.acked:
                entry.acked = True
                return True
        return False

    def newest_first(self) -> list[Entry]:
        return list(reversed(self.entries))
