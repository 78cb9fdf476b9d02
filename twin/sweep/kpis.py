"""KPI paths: which values of a run's summary a sweep collects, checked before anything runs.

A KPI is a dotted path into `twin.run.RunSummary` as a dict: a top-level field such as
`throughput_per_hour`, or a path into its `kpis` (`kpis.oee.oee`, `kpis.lead_time_s.p90`,
`kpis.stations.mill.utilisation.execute`, `kpis.robots.robot.busy`, `kpis.bottleneck.resource`;
a factory's `kpis.factory.throughput_per_hour`, `kpis.factory.orders.on_time_delivery`,
`kpis.factory.fleet.busy`, ...: its fleet-wide figures, not each AMR's, whose number a sweep
may change). Values are numbers, except `kpis.bottleneck.resource`/`.kind`/`.station`/`.cell`
and `kpis.oee.pacing_station` (ids and names); a value that does not exist in a run (the lead
time before any part completed, the station of a robot bottleneck, the factory figures of a
plain line) is left empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twin.analytics.factory_kpi import AMR_ACTIVITIES
from twin.analytics.kpi import ALARMS, ROBOT_ACTIVITIES
from twin.events import ACTIVITIES
from twin.sweep.paths import PathError, get_value, parse

NUM, TEXT = "number", "text"
_SUMMARY = dict.fromkeys(
    (
        "sim_time_s",
        "steps",
        "wall_time_s",
        "real_time_factor",
        "parts_spawned",
        "parts_completed",
        "parts_scrapped",
        "parts_lost",
        "wip",
        "throughput_per_hour",
        "throughput_per_hour_second_half",
        "mean_lead_time_s",
    ),
    NUM,
)
_STATION: dict[str, Any] = {
    "utilisation": dict.fromkeys(ACTIVITIES, NUM),
    "time_s": dict.fromkeys(ACTIVITIES, NUM),
    **dict.fromkeys(
        ("processed", "good", "uptime", "availability", "performance", "quality", "oee"), NUM
    ),
}
_ROBOT: dict[str, Any] = {
    "utilisation": dict.fromkeys(ROBOT_ACTIVITIES, NUM),
    "time_s": dict.fromkeys(ROBOT_ACTIVITIES, NUM),
    "busy": NUM,
}
_FACTORY: dict[str, Any] = {
    "throughput_per_hour": NUM,
    "parts": dict.fromkeys(
        ("spawned", "completed", "shipped", "scrapped", "on_amrs", "in_cells"), NUM
    ),
    "orders": {
        **dict.fromkeys(
            (
                "arrived",
                "released",
                "completed",
                "late",
                "open",
                "parts_released",
                "on_time_delivery",
                "tardiness_s",
            ),
            NUM,
        ),
        "lead_time_s": dict.fromkeys(("mean", "p90", "max"), NUM),
    },
    "transports": dict.fromkeys(
        ("requested", "assigned", "done", "waiting", "wait_s", "duration_s"), NUM
    ),
    "fleet": {
        **dict.fromkeys(("amrs", "busy", "distance_m", "transports"), NUM),
        "utilisation": dict.fromkeys(AMR_ACTIVITIES, NUM),
    },
}
# mirrors twin.analytics.kpi.KpiTracker.snapshot; tests/test_sweep.py checks it against a run
KPI_SCHEMA: dict[str, Any] = {
    **_SUMMARY,
    "kpis": {
        **dict.fromkeys(
            (
                "time_s",
                "parts_spawned",
                "parts_completed",
                "parts_good",
                "parts_lost",
                "throughput_per_hour",
                "wip",
                "wip_mean",
            ),
            NUM,
        ),
        "lead_time_s": dict.fromkeys(("mean", "p50", "p90", "p95", "max"), NUM),
        "oee": {
            **dict.fromkeys(("availability", "performance", "quality", "oee"), NUM),
            "pacing_station": TEXT,
        },
        "stations": {"*": _STATION},
        "robots": {"@": _ROBOT},
        "alarms": dict.fromkeys(ALARMS, NUM),
        "pick_failures": NUM,
        "bottleneck": {
            "resource": TEXT,
            "kind": TEXT,
            "station": TEXT,
            "cell": TEXT,
            "active_share": NUM,
        },
        "factory": _FACTORY,
    },
}


def check_kpi(path: str, station_ids: list[str], robot_ids: Sequence[str] = ()) -> str:
    """Return the KPI's kind (number or text); raise PathError naming what is wrong."""
    node: Any = KPI_SCHEMA
    where = ""
    for key in parse(path):
        if not isinstance(node, dict):
            raise PathError(f"'{path}': {where} is a value, it has no field '{key}'")
        if "*" in node:
            if key not in station_ids:
                raise PathError(f"'{path}': no station '{key}' (stations: {station_ids})")
            node = node["*"]
        elif "@" in node:
            if key not in robot_ids:
                raise PathError(f"'{path}': no robot '{key}' (robots: {list(robot_ids)})")
            node = node["@"]
        elif key in node:
            node = node[key]
        else:
            raise PathError(
                f"'{path}': no KPI '{key}' in {where or 'the summary'} (known: {sorted(node)})"
            )
        where = f"{where}.{key}" if where else str(key)
    if isinstance(node, dict):
        raise PathError(f"'{path}' is a group of KPIs, name one of {sorted(node)}")
    return node


def leaves(stations: list[str], robots: Sequence[str] = ()) -> list[str]:
    """Every KPI path for a line with these stations and robots."""
    out: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        for key, child in node.items():
            keys = stations if key == "*" else list(robots) if key == "@" else [key]
            for k in keys:
                path = f"{prefix}.{k}" if prefix else k
                walk(child, path) if isinstance(child, dict) else out.append(path)

    walk(KPI_SCHEMA, "")
    return out


def extract(summary: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """The KPI values of one run's summary (as a dict)."""
    return {p: get_value(summary, p) for p in paths}
