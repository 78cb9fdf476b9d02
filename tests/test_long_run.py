"""A long run does not grow memory: parts are pooled and events drained."""

from __future__ import annotations

import resource
from pathlib import Path

from twin.automation import build_line
from twin.config import load

ROOT = Path(__file__).resolve().parents[1]


def rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def test_memory_and_bodies_stay_flat_over_a_long_run():
    line = build_line(load(ROOT / "configs" / "default_line.toml"))
    try:
        line.step(round(60 / line.dt))  # warm up: first parts, caches, pools
        line.drain_events()
        rss_warm, bodies_warm = rss_mib(), line.pool.bodies_created
        spawned_warm = line.counts()["parts_spawned"]
        for _ in range(4):
            line.step(round(40 / line.dt))
            line.drain_events()
        counts = line.counts()
        assert counts["parts_spawned"] - spawned_warm >= 6  # parts really cycled
        # no new bodies once the pool holds the line's work in process
        assert line.pool.bodies_created <= bodies_warm + 2
        assert line.pool.bodies_created < counts["parts_spawned"] / 2
        assert rss_mib() - rss_warm < 8.0
    finally:
        line.close()
