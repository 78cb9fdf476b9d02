"""The chosen KPI against the varied parameters: mean with 95% CI error bars.

x is the first varied parameter; each combination of the others is one line (one
parameter: one line; two: one line per value of the second).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twin.sweep.scenarios import Plan


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def plot_sweep(path: Path, plan: Plan, entries: list[dict[str, Any]], kpi: str) -> Path | None:
    """Write the plot; None if there is nothing to draw (no successful run)."""
    points = [e for e in entries if e.get(f"{kpi}.mean") is not None]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    varied = plan.sweep.varied
    x_name, others = (varied[0], varied[1:]) if varied else ("scenario", [])
    xs_all = [e.get(x_name, e["scenario"]) for e in points]
    numeric = all(_is_number(x) for x in xs_all)
    categories = list(dict.fromkeys(map(str, xs_all)))

    series: dict[str, list[dict[str, Any]]] = {}
    for e in points:
        label = ", ".join(
            f"{p} = {e[p]:g}" if _is_number(e[p]) else f"{p} = {e[p]}" for p in others
        )
        series.setdefault(label, []).append(e)

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    for label, es in series.items():
        es = sorted(es, key=lambda e: e[x_name] if numeric else categories.index(str(e[x_name])))
        xs = [e[x_name] if numeric else categories.index(str(e[x_name])) for e in es]
        ys = [e[f"{kpi}.mean"] for e in es]
        err = [e[f"{kpi}.ci95"] or 0.0 for e in es]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=4, label=label or None)
    if not numeric:
        ax.set_xticks(range(len(categories)), categories)
    ax.set_xlabel(x_name)
    ax.set_ylabel(kpi)
    reps = max(e["ok"] for e in points)
    ax.set_title(f"{plan.sweep.name}: {kpi} (mean, 95% CI over {reps} runs)", fontsize=10)
    ax.grid(True, alpha=0.3)
    if others:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
