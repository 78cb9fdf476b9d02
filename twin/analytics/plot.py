"""The run plot: throughput, WIP and station activity over time, as a PNG; a factory's adds
each AMR's activity and the orders completed on time and late."""

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


AMR_COLORS = {
    "driving_loaded": "#1f5fa8",
    "driving_empty": "#8fb8e8",
    "handling": "#2e9e44",
    "charging": "#f2c94c",
    "blocked": "#d64545",
    "idle": "#b8c2cc",
    "stopped": "#555555",
}


def plot_run(timeline: Timeline, end: float, out: str | Path, title: str = "") -> Path:
    out = Path(out)
    amrs = list(timeline.amr_activity)
    orders = len(timeline.orders_on_time) + len(timeline.orders_late) > 2
    ratios = [2, 1.3, max(1.5, 0.25 * len(timeline.activity))]
    if amrs:
        ratios.append(max(1.2, 0.3 * len(amrs)))
    if orders:
        ratios.append(1.3)
    fig, axes = plt.subplots(
        len(ratios),
        1,
        figsize=(10, 2.5 * sum(ratios) / 1.6 + 0.5),
        sharex=True,
        gridspec_kw={"height_ratios": ratios},
    )
    ax_tp, ax_wip, ax_st = axes[:3]
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
    _legend(ax_st, ACTIVITY_COLORS, ax_st is axes[-1])
    rest = list(axes[3:])
    if amrs:
        ax_amr = rest.pop(0)
        for row, amr in enumerate(amrs):
            for start, length, act in timeline.amr_intervals(amr, end):
                ax_amr.broken_barh(
                    [(start * hours, length * hours)],
                    (row - 0.4, 0.8),
                    color=AMR_COLORS.get(act, "#999"),
                )
        ax_amr.set_yticks(range(len(amrs)), amrs)
        _legend(ax_amr, AMR_COLORS, ax_amr is axes[-1])
    if orders:
        ax_ord = rest.pop(0)
        for series, color, label in (
            (timeline.orders_on_time, "#2e9e44", "orders completed on time"),
            (timeline.orders_late, "#d64545", "orders completed late"),
        ):
            t = np.array([t for t, _ in series] + [end])
            n = np.array([n for _, n in series] + [series[-1][1]])
            ax_ord.step(t * hours, n, where="post", color=color, label=label)
        ax_ord.set_ylabel("orders")
        ax_ord.legend(loc="upper left", fontsize=8)
    axes[-1].set_xlabel("simulated time (min)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _legend(ax: plt.Axes, colors: dict[str, str], below_label: bool) -> None:
    """A colour key under a bar panel (further down if the time axis label is there)."""
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    ax.legend(
        handles,
        list(colors),
        ncol=len(colors),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.35 if below_label else -0.12),
        fontsize=7,
        frameon=False,
    )
