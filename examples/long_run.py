"""Run the default line for hours of simulated time and print resident memory as it goes.

    python examples/long_run.py --hours 3

Memory must stay flat: parts are pooled, events are drained, nothing accumulates per step.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from twin.automation import build_line
from twin.config import load

ROOT = Path(__file__).resolve().parents[1]


def rss_mib() -> float:
    """Current resident set size (Linux), MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=str(ROOT / "configs" / "default_line.toml"))
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--report-every", type=float, default=600.0, help="simulated seconds")
    args = parser.parse_args()
    line = build_line(load(args.config))
    chunk = round(args.report_every / line.dt)
    start = time.perf_counter()
    while line.sim_time < args.hours * 3600 - 1e-9:
        line.step(chunk)
        line.drain_events()
        counts = line.counts()
        print(
            f"sim {line.sim_time / 3600:5.2f} h  wall {time.perf_counter() - start:6.0f} s  "
            f"rss {rss_mib():6.1f} MiB  bodies {line.pool.bodies_created}  "
            f"spawned {counts['parts_spawned']}  completed {counts['parts_completed']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
