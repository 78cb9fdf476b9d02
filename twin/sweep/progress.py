"""Sweep progress: a tqdm bar with ETA on a terminal, one plain line per run otherwise."""

from __future__ import annotations

import sys
import time

from twin.sweep.worker import RunResult


class SweepProgress:
    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.enabled = enabled
        self.start = time.monotonic()
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="run", dynamic_ncols=True)

    def update(self, result: RunResult) -> None:
        self.done += 1
        self.failed += result.status != "ok"
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(failed=self.failed, refresh=False)
            return
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        note = f": {result.error}" if result.error else ""
        print(
            f"run {self.done}/{self.total}  {result.scenario} seed {result.seed} "
            f"{result.status} in {result.wall_time_s:.1f} s{note}  "
            f"elapsed {elapsed:.0f} s  ETA {eta:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
