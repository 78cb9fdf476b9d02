"""summary.csv: per scenario, the mean and 95% confidence interval of each KPI over its runs."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

from twin.sweep.results import cell
from twin.sweep.scenarios import Plan
from twin.sweep.stats import mean_ci95

SUMMARY = "summary.csv"


def summarise(plan: Plan, rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """One dict per scenario: params, ok and failed run counts, then `KPI.mean` and `KPI.ci95` (half-width)
    for numbers over the successful runs (`KPI.mode` for text KPIs)."""
    by_scenario: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_scenario.setdefault(r["scenario"], []).append(r)
    out = []
    for sc in plan.scenarios:
        runs = by_scenario.get(sc.id, [])
        ok = [r for r in runs if r["status"] == "ok"]
        entry: dict[str, Any] = {"scenario": sc.id, **sc.params}
        entry["ok"] = len(ok)
        entry["failed"] = len(runs) - len(ok)
        for k, kind in plan.kpi_kinds.items():
            values = [r[k] for r in ok if r[k] != ""]
            if kind == "number":
                entry[f"{k}.mean"], entry[f"{k}.ci95"] = mean_ci95([float(v) for v in values])
            else:
                entry[f"{k}.mode"] = Counter(values).most_common(1)[0][0] if values else None
        out.append(entry)
    return out


def write_summary(path: Path, plan: Plan, entries: list[dict[str, Any]]) -> None:
    header = ["scenario", *plan.sweep.varied, "ok", "failed"]
    for k, kind in plan.kpi_kinds.items():
        header += [f"{k}.mean", f"{k}.ci95"] if kind == "number" else [f"{k}.mode"]
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        for e in entries:
            writer.writerow({h: cell(e.get(h)) for h in header})
    tmp.replace(path)
