"""The run plot: throughput, WIP and station activity over time, as a PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from twin.analytics.timeline import Timeline  # noqa: E402

ACTIVITY_COLORS = {
    "execute": "#2e9e44",
    "starved": "#f2c94c",
    "blocked": "#eb7d34",
    "idle": "#b8c2cc",
    "held": "#9b51e0",
    "down": "#d64545",
    "stopped": "#555555",
}


def plot_run(timeline: Timeline, end: float, out: str | Path, title: str = "") -> Path:
    out = Path(out)
    fig, (ax_tp, ax_wip, ax_st) = plt.subplots(
        3, 1, figsize=(10, 7.5), sharex=True, gridspec_kw={"height_ratios": [2, 1.3, 1.5]}
    )
    hours = 1 / 60.0  # plot in minutes
    t_done = np.array([t for t, _ in timeline.completed] + [end])
    n_done = np.array([n for _, n in timeline.completed] + [timeline.completed[-1][1]])
    ax_tp.step(t_done * hours, n_done, where="post", color="#1f5fa8", label="parts completed")
    ax_tp.set_ylabel("parts completed")
    window = max(end / 10, 60.0)
    grid = np.linspace(0, end, 200)
    finished = np.array([t for t, _ in timeline.completed[1:]])  # completion times only
    rate = [
        (
            np.searchsorted(finished, t, side="right")
            - np.searchsorted(finished, t - window, side="right")
        )
        / min(window, max(t, 1e-9))
        * 3600
        for t in grid
    ]
    ax_rate = ax_tp.twinx()
    ax_rate.plot(
        grid * hours, rate, color="#e07b39", lw=1.2, label=f"throughput ({window:.0f} s window)"
    )
    ax_rate.set_ylabel("parts / h")
    ax_tp.legend(loc="upper left")
    ax_rate.legend(loc="lower right")
    t_wip = np.array([t for t, _ in timeline.wip] + [end])
    n_wip = np.array([n for _, n in timeline.wip] + [timeline.wip[-1][1]])
    ax_wip.step(t_wip * hours, n_wip, where="post", color="#6a3d9a")
    ax_wip.set_ylabel("WIP (parts)")
    stations = list(timeline.activity)
    for row, station in enumerate(stations):
        for start, length, act in timeline.intervals(station, end):
            ax_st.broken_barh(
                [(start * hours, length * hours)],
                (row - 0.4, 0.8),
                color=ACTIVITY_COLORS.get(act, "#999"),
            )
    ax_st.set_yticks(range(len(stations)), stations)
    ax_st.set_xlabel("simulated time (min)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ACTIVITY_COLORS.values()]
    ax_st.legend(
        handles,
        ACTIVITY_COLORS,
        ncol=7,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.35),
        fontsize=8,
    )
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
