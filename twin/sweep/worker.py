"""One run of one scenario, as executed inside a worker process (local or Ray)."""

from __future__ import annotations

import signal
import time
import traceback
from typing import Any

import msgspec

from twin.config import loads
from twin.run import run_line, summary_dict
from twin.sweep.kpis import extract
from twin.sweep.scenarios import RunTask


class RunResult(msgspec.Struct, kw_only=True):
    scenario: str
    seed: int
    status: str  # "ok" or "failed"
    kpis: dict[str, Any] = {}
    wall_time_s: float = 0.0
    error: str = ""

    @property
    def key(self) -> tuple[str, int]:
        return (self.scenario, self.seed)


def failed(task: RunTask, error: str, wall_time_s: float = 0.0) -> RunResult:
    return RunResult(
        scenario=task.scenario,
        seed=task.seed,
        status="failed",
        kpis=dict.fromkeys(task.kpis),
        wall_time_s=wall_time_s,
        error=error,
    )


def execute(task: RunTask) -> RunResult:
    """Build the scenario's line, run it headless, return its KPIs; never raises."""
    start = time.perf_counter()
    try:
        cfg = loads(task.config, task.source, base_dir=task.base_dir or None)
        summary = run_line(cfg, task.duration, seed=task.seed, progress=False)
        if summary.interrupted:
            raise KeyboardInterrupt("run interrupted")
        values = extract(summary_dict(summary), task.kpis)
    except BaseException as e:  # a failed run is a result, not a crash
        last = traceback.extract_tb(e.__traceback__)[-1:] if e.__traceback__ else []
        where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
        return failed(task, f"{type(e).__name__}: {e}{where}", time.perf_counter() - start)
    return RunResult(
        scenario=task.scenario,
        seed=task.seed,
        status="ok",
        kpis=values,
        wall_time_s=time.perf_counter() - start,
    )


def child_main(conn: Any, task: RunTask) -> None:
    """Entry point of a local worker process: one run, result through the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    result = execute(task)
    try:
        conn.send(result)
    finally:
        conn.close()
