"""Ray backend: the same runs as ray.remote tasks on `ray.init(address=...)`.

address None starts a local Ray instance; "auto" or "ray://host:10001" joins a cluster whose
nodes have this package installed (`pip install 'twin[ray]'`). At most `workers` runs are in
flight (default: the cluster's CPUs), so a run's time limit counts from about when it
starts; a run past its limit is cancelled with force (its worker process is killed) and
recorded as failed. Ray does not retry a failed run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from twin.sweep.scenarios import RunTask
from twin.sweep.worker import RunResult, execute, failed


def run_ray(
    tasks: list[RunTask],
    on_result: Callable[[RunResult], None],
    *,
    workers: int | None = None,
    timeout: float | None = None,
    address: str | None = None,
) -> None:
    """Run every task as a Ray task; call on_result (in this process) as each one finishes."""
    try:
        import ray
    except ImportError:
        raise RuntimeError(
            "the ray backend needs Ray: pip install 'twin[ray]' (or 'ray>=2')"
        ) from None
    started_here = not ray.is_initialized()
    if started_here:
        if address is None:
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    try:
        limit = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        remote = ray.remote(num_cpus=1, max_retries=0)(execute)
        pending = list(reversed(tasks))
        running: dict[object, tuple[RunTask, float]] = {}
        try:
            while pending or running:
                while pending and len(running) < limit:
                    task = pending.pop()
                    running[remote.remote(task)] = (task, time.monotonic())
                wait_for = None
                if timeout is not None:
                    soonest = min(t0 + timeout for _, t0 in running.values())
                    wait_for = max(0.0, soonest - time.monotonic())
                done, _ = ray.wait(list(running), num_returns=1, timeout=wait_for)
                for ref in done:
                    task, t0 = running.pop(ref)
                    try:
                        on_result(ray.get(ref))
                    except Exception as e:  # a worker that died, or Ray itself failing
                        on_result(failed(task, f"{type(e).__name__}: {e}", time.monotonic() - t0))
                now = time.monotonic()
                for ref, (task, t0) in list(running.items()):
                    if timeout is not None and now - t0 >= timeout:
                        ray.cancel(ref, force=True)
                        del running[ref]
                        text = f"timeout: run exceeded its time limit of {timeout:g} s"
                        on_result(failed(task, text, now - t0))
        finally:
            for ref in running:
                ray.cancel(ref, force=True)
    finally:
        if started_here:
            ray.shutdown()
