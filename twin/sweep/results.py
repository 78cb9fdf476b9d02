"""results.csv: one row per run, appended (and flushed) as each run finishes.

A run is identified by its scenario id (a hash of its parameter values) and its seed, so a
sweep started again with the same output directory skips the runs already recorded.
sweep.json in the directory fingerprints what the rows depend on besides the parameters
(base config, fixed overrides, duration, KPIs); resuming a different sweep there is refused.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

from twin.sweep.scenarios import Plan
from twin.sweep.spec import SweepError
from twin.sweep.worker import RunResult

RESULTS = "results.csv"
FINGERPRINT = "sweep.json"


def columns(plan: Plan) -> list[str]:
    return [
        "scenario",
        *plan.sweep.varied,
        "seed",
        *plan.sweep.kpis,
        "wall_time_s",
        "status",
        "error",
    ]


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def fingerprint(plan: Plan) -> dict[str, Any]:
    s = plan.sweep
    return {
        "line_sha256": hashlib.sha256(s.line_path.read_bytes()).hexdigest(),
        "set": s.set,
        "duration": s.duration,
        "kpis": s.kpis,
        "parameters": s.varied,
    }


def check_fingerprint(out: Path, plan: Plan) -> None:
    """Write sweep.json, or check that the results already in `out` are of this sweep."""
    path = out / FINGERPRINT
    mine = fingerprint(plan)
    if (out / RESULTS).exists() and path.exists():
        theirs = json.loads(path.read_text())
        diff = [k for k in mine if theirs.get(k) != mine[k]]
        if diff:
            raise SweepError(
                f"{out}: holds results of a different sweep ({', '.join(diff)} changed); "
                "use another --out or remove it"
            )
    path.write_text(json.dumps(mine, indent=2) + "\n")


class ResultsLog:
    """Append-only while running; rewritten in plan order at the end."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path = path
        self.header = header
        self.rows: list[dict[str, str]] = []
        if path.exists() and path.stat().st_size > 0:
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                if reader.fieldnames != header:
                    raise SweepError(
                        f"{path}: columns {reader.fieldnames} differ from this sweep's {header}; "
                        "use another --out"
                    )
                self.rows = [r for r in reader if r.get("status")]  # a torn last line is dropped
            self._rewrite(self.rows)
        else:
            self._rewrite([])
        self._file = path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=header)

    def finished(self, retry_failed: bool = False) -> set[tuple[str, int]]:
        """Keys of the runs already recorded (only the successful ones with retry_failed)."""
        return {
            (r["scenario"], int(r["seed"]))
            for r in self.rows
            if not retry_failed or r["status"] == "ok"
        }

    def append(self, result: RunResult, params: dict[str, Any]) -> None:
        row = {
            "scenario": result.scenario,
            **{p: cell(params.get(p)) for p in self.header if p in params},
            "seed": str(result.seed),
            **{k: cell(v) for k, v in result.kpis.items()},
            "wall_time_s": f"{result.wall_time_s:.3f}",
            "status": result.status,
            "error": result.error,
        }
        self._writer.writerow(row)
        self._file.flush()
        self.rows.append(row)

    def close(self, order: list[tuple[str, int]]) -> list[dict[str, str]]:
        """Rewrite the file sorted in plan order (the last row of a run wins); return the rows."""
        self._file.close()
        latest = {(r["scenario"], int(r["seed"])): r for r in self.rows}
        rank = {key: i for i, key in enumerate(order)}
        rows = sorted(
            latest.values(), key=lambda r: rank.get((r["scenario"], int(r["seed"])), len(rank))
        )
        self._rewrite(rows)
        return rows

    def _rewrite(self, rows: list[dict[str, str]]) -> None:
        tmp = self.path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.header)
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(self.path)
