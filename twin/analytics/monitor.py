"""Everything production-side that listens to a line's events: KPIs, genealogy, timeline."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from twin.analytics.genealogy import Genealogy
from twin.analytics.kpi import KpiTracker
from twin.analytics.timeline import Timeline
from twin.events import (
    Alarm,
    Estop,
    EstopReset,
    Event,
    EventsDropped,
    Fault,
    InterlockViolated,
    PartNotSeated,
    PickFailed,
    SafeState,
    Watchdog,
)

if TYPE_CHECKING:
    from twin.line import Line


# what a run report lists under "faults": trouble and what was done about it
_NOTEWORTHY = (
    Fault,
    Estop,
    EstopReset,
    Watchdog,
    SafeState,
    EventsDropped,
    Alarm,
    PickFailed,
    PartNotSeated,
    InterlockViolated,
)


class ProductionMonitor:
    def __init__(self, line: Line) -> None:
        stations = {
            dev_id: d.cfg.cycle_time for dev_id, d in line.devices.items() if d.kind == "station"
        }
        robots = [dev_id for dev_id, d in line.devices.items() if d.kind == "arm"]
        self.kpis = KpiTracker(stations, start=line.sim_time, robots=robots)
        self.genealogy = Genealogy()
        self.timeline = Timeline(list(stations), start=line.sim_time)
        self.faults: list[dict[str, Any]] = []

    def consume(self, events: Iterable[Event]) -> None:
        events = list(events)
        self.kpis.consume(events)
        self.genealogy.consume(events)
        self.timeline.consume(events)
        for e in events:
            if isinstance(e, _NOTEWORTHY):
                self.faults.append({"time": e.time, "device": e.device, "kind": e.kind, **e.data})
