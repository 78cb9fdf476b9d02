"""What-if experiments: scenario sweeps over a line config, run headless in parallel.

A sweep file (TOML, see `twin.sweep.spec`) names a base line config, the config values to vary
(a grid and/or random samples, addressed by paths as in `twin.sweep.paths`), the number of
replications, the simulated duration and the KPIs to collect. `run_sweep` validates every
scenario first, then runs them on a local process pool or a Ray cluster and writes
results.csv (one row per run, appended as runs finish), summary.csv (mean and 95% CI per
scenario) and a plot. Runs go through `twin.run` like `twin run`; never imports the server.
"""

from __future__ import annotations

from typing import Any

from twin.sweep.spec import SweepError, load_sweep

__all__ = ["SweepError", "SweepOutcome", "load_sweep", "run_sweep"]


def __getattr__(name: str) -> Any:
    # the runner imports the twin and pybullet: only when a sweep is run, not for `twin --help`
    if name in ("run_sweep", "SweepOutcome"):
        from twin.sweep import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'twin.sweep' has no attribute '{name}'")
