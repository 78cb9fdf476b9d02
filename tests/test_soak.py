"""Soak: a fast-mode twin producing parts with its built-in controller for a long time, while a
controller client reconnects over and over (take/release control, commands) and subscribers
come and go. The server's memory (RSS) and open file descriptors must stay flat.

Deselected by default; run it with

    TWIN_SOAK_SECONDS=3600 .venv/bin/pytest -m soak tests/test_soak.py -s

(TWIN_SOAK_SECONDS: wall-clock seconds, default 3600). It prints the samples it took.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from processes import ServeProcess

from twin.client import Client, TwinError, TwinTimeout

DURATION_S = float(os.environ.get("TWIN_SOAK_SECONDS", "3600"))
WARMUP_FRACTION = 0.25  # samples before this share of the run only set the baseline
SAMPLE_EVERY_S = max(1.0, DURATION_S / 120)
MAX_RSS_GROWTH = 0.10
MAX_FD_GROWTH = 8  # a few client connections may be open at the moment of a sample

pytestmark = [pytest.mark.soak, pytest.mark.timeout(int(DURATION_S * 1.5) + 120)]


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _controller(server: ServeProcess, stop: threading.Event, counts: dict) -> None:
    while not stop.is_set():
        try:
            with Client(server.control, timeout=10) as c:
                c.hello("soak-controller")
                c.take_control(watchdog=5.0)
                c.command("outfeed", "set_speed", speed=0.3)
                c.get_state()
                c.release_control()
                counts["controller"] += 1
        except (TwinError, TwinTimeout) as e:
            counts["errors"].append(repr(e))
        stop.wait(0.05)


def _subscriber(server: ServeProcess, stop: threading.Event, counts: dict) -> None:
    while not stop.is_set():
        with Client(server.control, server.telemetry, timeout=10) as c:
            c.subscribe(["state", "event", "kpi"])
            try:
                for _ in range(20):
                    c.recv_telemetry(timeout=10)
                counts["subscriber"] += 1
            except TwinTimeout as e:
                counts["errors"].append(repr(e))
        stop.wait(0.05)


def test_soak_memory_and_fds_stay_flat(serve):
    with serve("--mode", "fast") as server:
        pid = server.proc.pid
        stop = threading.Event()
        counts: dict = {"controller": 0, "subscriber": 0, "errors": []}
        threads = [
            threading.Thread(target=f, args=(server, stop, counts), daemon=True)
            for f in (_controller, _subscriber, _subscriber)
        ]
        for t in threads:
            t.start()
        samples = []  # (elapsed s, rss KiB, fds, parts completed)
        t0 = time.monotonic()
        try:
            with Client(server.control, timeout=30) as probe:
                while (elapsed := time.monotonic() - t0) < DURATION_S:
                    completed = probe.get_state().counts["parts_completed"]
                    samples.append((elapsed, _rss_kib(pid), _fds(pid), completed))
                    print(
                        f"soak t={elapsed:7.1f}s rss={samples[-1][1]} KiB "
                        f"fds={samples[-1][2]} parts={completed}",
                        flush=True,
                    )
                    time.sleep(SAMPLE_EVERY_S)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert server.proc.poll() is None, server.stderr_text()
        print(
            f"soak cycles: {counts['controller']} controller, "
            f"{counts['subscriber']} subscriber; errors: {len(counts['errors'])}"
        )
        assert not counts["errors"], counts["errors"][:5]
        assert counts["controller"] > 0 and counts["subscriber"] > 0
        warm = [s for s in samples if s[0] >= DURATION_S * WARMUP_FRACTION]
        assert len(warm) >= 3
        rss0, fds0 = warm[0][1], min(s[2] for s in warm[:3])
        assert max(s[1] for s in warm) <= rss0 * (1 + MAX_RSS_GROWTH), samples
        assert max(s[2] for s in warm) <= fds0 + MAX_FD_GROWTH, samples
        assert samples[-1][3] > samples[0][3], "no parts were produced"
        assert server.stop() == 0
