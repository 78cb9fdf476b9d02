"""Run a sweep: validate every scenario, skip runs already recorded, run the rest on a backend,
append each result as it finishes, then write the summary and the plot."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from twin.sweep.local import run_local
from twin.sweep.plot import plot_sweep
from twin.sweep.progress import SweepProgress
from twin.sweep.results import RESULTS, ResultsLog, check_fingerprint, columns
from twin.sweep.scenarios import Plan, plan
from twin.sweep.spec import SweepError, load_sweep
from twin.sweep.summary import SUMMARY, summarise, write_summary
from twin.sweep.worker import RunResult

Backend = Literal["local", "ray"]
PLOT = "plot.png"


@dataclass
class SweepOutcome:
    out: Path
    scenarios: int
    runs: int  # in the plan
    ran: int  # in this session
    skipped: int  # recorded by an earlier session
    failed: int  # failed runs in results.csv
    interrupted: bool = False
    ran_keys: list[tuple[str, int]] = field(default_factory=list)
    plot: Path | None = None

    def lines(self) -> list[str]:
        return [
            f"sweep           {self.scenarios} scenarios, {self.runs} runs "
            f"({self.ran} ran now, {self.skipped} already done)"
            + (
                "  (interrupted: run again with the same --out to resume)"
                if self.interrupted
                else ""
            ),
            f"failed runs     {self.failed}",
            f"results         {self.out / RESULTS}",
            f"summary         {self.out / SUMMARY}",
            f"plot            {self.plot or '- (no successful run)'}",
        ]


def run_sweep(
    sweep_file: str | Path,
    *,
    backend: Backend = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    retry_failed: bool = False,
) -> SweepOutcome:
    """Raises SweepError (naming the file and field) before any run if anything is invalid."""
    _check_backend(backend, ray_address)
    sweep = load_sweep(sweep_file)
    p = plan(sweep)
    out_dir = Path(out) if out is not None else Path("out") / "sweeps" / sweep.name
    out_dir.mkdir(parents=True, exist_ok=True)
    check_fingerprint(out_dir, p)
    log = ResultsLog(out_dir / RESULTS, columns(p))
    done = log.finished(retry_failed)
    todo = [t for t in p.tasks if t.key not in done]
    params = {sc.id: sc.params for sc in p.scenarios}
    if progress:
        print(
            f"sweep {sweep.name}: {len(p.scenarios)} scenarios x seeds = {len(p.tasks)} runs, "
            f"{len(p.tasks) - len(todo)} already done, {len(todo)} to run on {backend}",
            file=sys.stderr,
            flush=True,
        )
    bar = SweepProgress(len(todo), enabled=progress)
    ran: list[tuple[str, int]] = []

    def on_result(result: RunResult) -> None:
        log.append(result, params[result.scenario])
        ran.append(result.key)
        bar.update(result)

    interrupted = False
    try:
        if backend == "ray":
            from twin.sweep.ray_backend import run_ray

            run_ray(todo, on_result, workers=workers, timeout=sweep.timeout, address=ray_address)
        else:
            run_local(todo, on_result, workers=workers, timeout=sweep.timeout)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        rows = log.close([t.key for t in p.tasks])
    return _finish(p, out_dir, rows, ran, len(p.tasks) - len(todo), interrupted)


def _check_backend(backend: str, ray_address: str | None) -> None:
    if backend not in ("local", "ray"):
        raise SweepError(f"unknown backend '{backend}' (expected local or ray)")
    if backend == "local" and ray_address is not None:
        raise SweepError("a Ray address needs the ray backend (--backend ray)")
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        raise SweepError("the ray backend needs Ray: pip install 'twin[ray]' (or 'ray>=2')")


def _finish(
    p: Plan,
    out_dir: Path,
    rows: list[dict[str, str]],
    ran: list[tuple[str, int]],
    skipped: int,
    interrupted: bool,
) -> SweepOutcome:
    entries = summarise(p, rows)
    write_summary(out_dir / SUMMARY, p, entries)
    plot = plot_sweep(out_dir / PLOT, p, entries, p.sweep.plot_kpi)
    keys = {t.key for t in p.tasks}
    failed = sum(1 for r in rows if r["status"] != "ok" and (r["scenario"], int(r["seed"])) in keys)
    return SweepOutcome(
        out=out_dir,
        scenarios=len(p.scenarios),
        runs=len(p.tasks),
        ran=len(ran),
        skipped=skipped,
        failed=failed,
        interrupted=interrupted,
        ran_keys=ran,
        plot=plot,
    )
