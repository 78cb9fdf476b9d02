"""Sweep throughput: runs per minute of a small fixed sweep at 1, 2, ... workers (`twin bench`)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from twin.sweep.runner import run_sweep

LINE = Path(__file__).resolve().parents[2] / "configs" / "default_line.toml"
# 4 scenarios x 2 seeds = 8 runs of 20 s simulated on the default line
BENCH_SWEEP = """
name = "bench"
line = "{line}"
duration = {duration}
replications = {replications}
timeout = 600
kpis = ["throughput_per_hour", "kpis.wip_mean"]
[grid]
"devices.infeed.speed" = [0.2, 0.4]
"devices.mill.cycle_time" = [6.0, 9.0]
"""


def measure(
    workers_list: tuple[int, ...] = (1, 2), duration: float = 20.0, replications: int = 2
) -> list[dict[str, Any]]:
    """One dict per worker count: runs, wall_s, runs_per_min, speedup over the first count."""
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="twin-sweep-bench-") as tmp:
        sweep = Path(tmp) / "bench.toml"
        sweep.write_text(
            BENCH_SWEEP.replace("{line}", LINE.as_posix())
            .replace("{duration}", str(float(duration)))
            .replace("{replications}", str(int(replications)))
        )
        for workers in workers_list:
            start = time.perf_counter()
            outcome = run_sweep(
                sweep, workers=workers, out=Path(tmp) / f"w{workers}", progress=False
            )
            wall = time.perf_counter() - start
            rate = outcome.ran / wall * 60
            out.append(
                {
                    "name": "sweep_throughput",
                    "workers": workers,
                    "runs": outcome.ran,
                    "failed": outcome.failed,
                    "wall_s": wall,
                    "runs_per_min": rate,
                    "speedup": rate / out[0]["runs_per_min"] if out else 1.0,
                }
            )
    return out


if __name__ == "__main__":
    for row in measure():
        print(row)
