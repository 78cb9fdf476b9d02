"""Local backend: one fresh headless twin process per run, at most `workers` at a time.

Processes are started with the 'forkserver' method (a clean server that has imported the
twin but never connected pybullet; 'spawn' where forkserver does not exist), so no pybullet
state is ever shared across a fork. One process per run makes the per-run time limit
simple and robust: a run past its limit is killed, recorded as failed, and its slot reused;
a run that crashes its process (a segfault in native code) fails alone.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from twin.sweep.scenarios import RunTask
from twin.sweep.worker import RunResult, child_main, failed


def default_workers() -> int:
    """All the cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _context() -> Any:
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["twin.sweep.worker"])
        return ctx
    return mp.get_context("spawn")


@dataclass
class _Running:
    task: RunTask
    process: Any
    conn: Any
    started: float


def run_local(
    tasks: list[RunTask],
    on_result: Callable[[RunResult], None],
    *,
    workers: int | None = None,
    timeout: float | None = None,
) -> None:
    """Run every task; call on_result (in this process) as each one finishes."""
    ctx = _context()
    workers = workers or default_workers()
    pending = deque(tasks)
    running: list[_Running] = []
    try:
        while pending or running:
            while pending and len(running) < workers:
                task = pending.popleft()
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=child_main, args=(send, task), daemon=True)
                proc.start()
                send.close()
                running.append(_Running(task, proc, recv, time.monotonic()))
            wait_for = None
            if timeout is not None:
                soonest = min(r.started + timeout for r in running)
                wait_for = max(0.0, soonest - time.monotonic())
            wait([r.conn for r in running] + [r.process.sentinel for r in running], wait_for)
            for r in list(running):
                result = _collect(r, timeout)
                if result is not None:
                    running.remove(r)
                    on_result(result)
    finally:
        for r in running:  # interrupted: leave nothing behind
            r.process.kill()
            r.process.join()
            r.conn.close()


def _collect(r: _Running, timeout: float | None) -> RunResult | None:
    """The run's result if it has ended (finished, crashed or timed out), else None."""
    elapsed = time.monotonic() - r.started
    result: RunResult | None = None
    if r.conn.poll():
        try:
            result = r.conn.recv()
        except EOFError:
            result = failed(r.task, _exit_text(r.process), elapsed)
    elif not r.process.is_alive():
        result = failed(r.task, _exit_text(r.process), elapsed)
    elif timeout is not None and elapsed >= timeout:
        r.process.kill()
        result = failed(r.task, f"timeout: run exceeded its time limit of {timeout:g} s", elapsed)
    if result is not None:
        r.process.join()
        r.conn.close()
    return result


def _exit_text(process: Any) -> str:
    process.join()
    code = process.exitcode
    if code is not None and code < 0:
        return f"worker process killed by signal {-code}"
    return f"worker process exited with code {code} before reporting a result"
