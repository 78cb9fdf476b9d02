"""A server's `reset` rebuilds the line without keeping the old one's memory: the resident
size after several resets is what it was after the first build (it grew by ~90 MB with the
first reset when freed memory stayed in the process)."""

from __future__ import annotations

import pytest

from twin.client import Client

pytestmark = pytest.mark.timeout(180)


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_resets_do_not_grow_the_servers_memory(serve):
    with (
        serve("--mode", "lockstep") as server,
        Client(server.control, server.telemetry, timeout=60) as c,
    ):
        c.take_control()
        c.step(50)
        before = _rss_mib(server.proc.pid)
        after = []
        for seed in (1, 2, 3):
            c.reset(seed=seed, timeout=60)
            c.step(50)
            after.append(_rss_mib(server.proc.pid))
        # one line is ~45 MB headless; the new line is built before the old is closed, then
        # the old one's memory goes back to the OS
        print(f"RSS before resets {before:.0f} MiB, after each: {[round(a) for a in after]}")
        assert max(after) < before + 25, (before, after)
        assert server.stop() == 0
