"""Part conservation, asserted at the end of test runs: every part that entered the line is
completed, scrapped, lost or still in process. Nothing vanishes, nothing is counted twice."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from twin.events import Event, PartCompleted, PartLost, PartSpawned


def assert_parts_conserved(counts: Mapping[str, Any]) -> None:
    """`counts` as `Line.counts()`, a state message's `counts`, a run summary or the KPIs:
    parts_spawned = parts_completed + parts_scrapped + parts_lost + wip."""
    spawned = counts["parts_spawned"]
    left = {k: counts.get(k, 0) for k in ("parts_completed", "parts_scrapped", "parts_lost")}
    wip = counts["wip"]
    assert min(spawned, wip, *left.values()) >= 0, counts
    assert spawned == sum(left.values()) + wip, (
        f"parts not conserved: spawned {spawned} != {left} + wip {wip}"
    )


def assert_events_conserved(events: Iterable[Event], counts: Mapping[str, Any]) -> None:
    """The event stream of a whole run tells the same story as the counts."""
    n = {PartSpawned: 0, PartCompleted: 0, PartLost: 0}
    for e in events:
        if type(e) in n:
            n[type(e)] += 1
    assert n[PartSpawned] == counts["parts_spawned"], (n, counts)
    assert n[PartCompleted] == counts["parts_completed"], (n, counts)
    assert n[PartLost] == counts.get("parts_lost", 0), (n, counts)
    assert_parts_conserved(counts)


def summary_counts(summary: Any) -> dict[str, int]:
    """The counts of a `twin run` summary (a RunSummary or its JSON report)."""
    get = summary.get if isinstance(summary, Mapping) else lambda k: getattr(summary, k)
    keys = ("parts_spawned", "parts_completed", "parts_scrapped", "parts_lost", "wip")
    return {k: get(k) for k in keys}
