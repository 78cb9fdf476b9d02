"""Everything production-side that listens to a line's events: KPIs, genealogy, timeline."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from twin.analytics.factory_kpi import CellInfo, FactoryKpiTracker
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
        by_type = {
            dev_id: dict(d.cfg.cycle_times)
            for dev_id, d in line.devices.items()
            if d.kind == "station" and d.cfg.cycle_times
        }
        self.kpis = KpiTracker(
            stations,
            start=line.sim_time,
            robots=robots,
            factory=factory_tracker(line),
            type_cycle_times=by_type,
        )
        self.genealogy = Genealogy()
        factory = self.kpis.factory
        self.timeline = Timeline(
            list(stations),
            start=line.sim_time,
            amrs={a: t.state for a, t in factory.fleet.amrs.items()} if factory else None,
        )
        self.faults: list[dict[str, Any]] = []

    def consume(self, events: Iterable[Event]) -> None:
        events = list(events)
        self.kpis.consume(events)
        self.genealogy.consume(events)
        self.timeline.consume(events)
        for e in events:
            if isinstance(e, _NOTEWORTHY):
                self.faults.append({"time": e.time, "device": e.device, "kind": e.kind, **e.data})


def factory_tracker(line: Line) -> FactoryKpiTracker | None:
    """The factory KPIs of a line with cells or AMRs (None for a plain line)."""
    cfg = line.cfg
    amrs = [d for d in line.devices.values() if d.kind == "amr"]
    if cfg.factory is None and not amrs:
        return None
    docks = {d_id for d_id, d in line.devices.items() if d.kind == "dock"}
    cells = {}
    shipping: set[str] = set()
    for cell in cfg.factory.cells if cfg.factory is not None else []:
        cells[cell.id] = CellInfo(cell.kind, cell.role, list(cell.stations), list(cell.devices))
        if cell.role == "shipping":
            shipping |= {
                d for d in cell.devices if getattr(line.devices.get(d), "kind", "") == "sink"
            }
    return FactoryKpiTracker(
        {a.id: "docked" if a.cfg.start in docks else "idle" for a in amrs},
        start=line.sim_time,
        shipping=shipping or None,  # no shipping cell named: every sink ships
        cells=cells,
    )
