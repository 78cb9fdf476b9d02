"""Benchmarks of the layers built on the line: Gymnasium env step rates and sweep throughput."""

from __future__ import annotations

from twin.bench.result import BenchResult


def gym_envs(config: str, quick: bool = False) -> list[BenchResult]:
    """Env steps/s in-process (vs the bare Line), remote (vs in-process), 2 async envs."""
    from twin.bench.gym_envs import measure

    return [BenchResult(**rec) for rec in measure(1.5 if quick else 6.0)]


def sweep_throughput(config: str, quick: bool = False) -> list[BenchResult]:
    """Runs per minute with 2 workers against 1 on the same small sweep (ratio = speedup)."""
    from twin.bench.sweep_runs import measure

    one, two = measure((1, 2), duration=4.0 if quick else 20.0, replications=1 if quick else 2)
    return [
        BenchResult(
            name="sweep",
            ours=two["runs_per_min"],
            baseline=one["runs_per_min"],
            unit="runs/min",
            target=1.8,
            details={
                "workers": [1, 2],
                "runs": one["runs"],
                "failed": one["failed"] + two["failed"],
            },
        )
    ]
