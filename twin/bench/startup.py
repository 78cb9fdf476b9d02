"""startup: seconds from starting `twin serve --mode fast` to the first telemetry message a
subscriber receives, against starting `python -c "import pybullet, zmq"` to its exit."""

from __future__ import annotations

import subprocess
import sys
import time

import zmq

from twin.bench.processes import ROOT, twin_serve
from twin.bench.result import BenchResult, interleave, median

FIRST_MESSAGE_TIMEOUT_MS = 30_000


def serve_to_first_message(config: str) -> float:
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    try:
        with twin_serve(config, "--mode", "fast") as server:
            sub.connect(server.wait_for("telemetry").split()[1])
            if not sub.poll(FIRST_MESSAGE_TIMEOUT_MS, zmq.POLLIN):
                raise TimeoutError("no telemetry from twin serve")
            return time.perf_counter() - server.started
    finally:
        sub.close(linger=0)
        ctx.term()


def import_only() -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import pybullet, zmq"],
        cwd=ROOT,
        check=True,
        timeout=60,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


def startup(config: str, *, quick: bool) -> BenchResult:
    reps = 2 if quick else 5
    ours, baseline = interleave([lambda: serve_to_first_message(config), import_only], reps)
    return BenchResult(
        name="startup",
        ours=median(ours),
        baseline=median(baseline),
        unit="s",
        better="lower",
        details={"repetitions": reps},
    )
