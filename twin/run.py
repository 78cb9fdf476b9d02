"""Run a line headless for a simulated duration and summarise it (`twin run`)."""

from __future__ import annotations

import sys
import time
from typing import Any

import msgspec

from twin.analytics.monitor import ProductionMonitor
from twin.automation import AutomatedLine, build_line
from twin.config import LineConfig
from twin.devices.sink import Sink
from twin.line import Line
from twin.record.writer import Recorder, recording_info
from twin.telemetry import TelemetryStepper, state_message
from twin.vision.feed import recording_feed

RUN_MODE = "fast"
RUN_STATE_RATE = 10.0  # simulated Hz of the recorded state, as `twin serve` by default


class RunSummary(msgspec.Struct, kw_only=True):
    line: str
    config: str
    seed: int
    steps: int
    sim_time_s: float
    wall_time_s: float
    real_time_factor: float
    parts_spawned: int
    parts_completed: int
    parts_scrapped: int
    parts_lost: int  # fell off the line (part_lost events)
    wip: int
    throughput_per_hour: float
    throughput_per_hour_second_half: float
    mean_lead_time_s: float | None
    interrupted: bool
    kpis: dict[str, Any] = {}
    faults: list[dict[str, Any]] = []
    genealogy: list[dict[str, Any]] = []
    orders: list[dict[str, Any]] = []  # a factory's order records

    def lines(self) -> list[str]:
        lead = f"{self.mean_lead_time_s:.1f} s" if self.mean_lead_time_s is not None else "-"
        return [
            f"line            {self.line} ({self.config}, seed {self.seed})",
            f"simulated time  {self.sim_time_s:.1f} s in {self.steps} steps"
            + ("  (interrupted)" if self.interrupted else ""),
            f"wall time       {self.wall_time_s:.2f} s",
            f"real-time factor {self.real_time_factor:.1f}x",
            f"parts spawned   {self.parts_spawned}",
            f"parts completed {self.parts_completed}  (in process: {self.wip}, "
            f"scrapped: {self.parts_scrapped}, lost: {self.parts_lost})",
            f"throughput      {self.throughput_per_hour:.1f} parts/h "
            f"(second half: {self.throughput_per_hour_second_half:.1f} parts/h)",
            f"mean lead time  {lead}",
            *self._kpi_lines(),
        ]

    def _kpi_lines(self) -> list[str]:
        k = self.kpis
        if not k:
            return []
        oee = k["oee"]
        out = [
            f"WIP (mean)      {k['wip_mean']:.2f} parts",
            f"{'OEE (pooled)' if k.get('factory') else 'OEE (line)':<16}{oee['oee']:.1%}"
            f"  = availability {oee['availability']:.1%}"
            f" x performance {oee['performance']:.1%} x quality {oee['quality']:.1%}",
        ]
        for sid, s in k["stations"].items():
            u = s["utilisation"]
            out.append(
                f"  {sid:<13} OEE {s['oee']:.1%}  execute {u['execute']:.0%}  starved {u['starved']:.0%}"
                f"  blocked {u['blocked']:.0%}  held {u['held']:.0%}  down {u['down']:.0%}"
            )
        for rid, r in k.get("robots", {}).items():
            u = r["utilisation"]
            handling = u.get("picking", 0.0) + u.get("placing", 0.0)
            out.append(
                f"  {rid:<13} busy {r['busy']:.0%}  handling {handling:.0%}"
                f"  travelling {r['busy'] - handling:.0%}  waiting {u.get('waiting', 0.0):.0%}"
                f"  idle {u.get('idle', 0.0):.0%}"
            )
        raised = {a: n for a, n in k.get("alarms", {}).items() if n}
        if raised or k.get("pick_failures"):
            alarms = ", ".join(f"{a} {n}" for a, n in raised.items()) or "none"
            out.append(f"alarms          {alarms}; picks given up {k.get('pick_failures', 0)}")
        if k.get("factory"):
            out += factory_lines(k["factory"])
        if k["bottleneck"]:
            out.append(f"bottleneck      {k['bottleneck']['reason']}")
        if self.faults:
            out.append(f"faults          {len(self.faults)} fault events")
        return out


def factory_lines(f: dict[str, Any]) -> list[str]:
    """The factory part of a run's summary: shipping, parts, orders, transports, AMRs."""
    p, o, t, fleet = f["parts"], f["orders"], f["transports"], f["fleet"]
    out = [
        f"shipped         {p['shipped']} parts, {f['throughput_per_hour']:.1f} parts/h",
        f"parts           spawned {p['spawned']} = completed {p['completed']}"
        f" + scrapped {p['scrapped']} + on AMRs {p['on_amrs']} + in cells {p['in_cells']}",
    ]
    if o["arrived"]:
        on_time = o["on_time_delivery"]
        share = f" ({on_time:.0%} on time)" if on_time is not None else ""
        out.append(
            f"orders          arrived {o['arrived']}, released {o['released']}, "
            f"completed {o['completed']}{share}, late {o['late']}, open {o['open']}"
        )
        lead = o["lead_time_s"]
        if lead:
            out.append(f"order lead time mean {lead['mean']:.1f} s, p90 {lead['p90']:.1f} s")
    if t["requested"] or t["done"]:
        wait = f"{t['wait_s']:.1f} s" if t["wait_s"] is not None else "-"
        took = f"{t['duration_s']:.1f} s" if t["duration_s"] is not None else "-"
        out.append(
            f"transports      done {t['done']}, waiting {t['waiting']}; "
            f"mean wait for an AMR {wait}, request to delivery {took}"
        )
    if fleet["amrs"]:
        out.append(f"fleet           {_amr_split(fleet)}  ({fleet['distance_m']:.0f} m driven)")
        for aid, a in f["amrs"].items():
            out.append(
                f"  {aid:<13} {_amr_split(a)}  {a['distance_m']:.0f} m, "
                f"{a['transports']} transports"
            )
    return out


def _amr_split(a: dict[str, Any]) -> str:
    u = a["utilisation"]
    return (
        f"busy {a['busy']:.0%}  loaded {u['driving_loaded']:.0%}  empty {u['driving_empty']:.0%}"
        f"  at docks {u['handling']:.0%}  charging {u['charging']:.0%}"
        f"  blocked {u['blocked']:.0%}  idle {u['idle']:.0%}"
        + (f"  stopped {u['stopped']:.0%}" if u["stopped"] else "")
    )


class _Progress:
    """A tqdm bar on a terminal, a plain line every 10% otherwise."""

    def __init__(self, total_steps: int, enabled: bool) -> None:
        self.total = total_steps
        self.enabled = enabled
        self.bar = None
        self.next_tenth = 1
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, unit="step", unit_scale=True, dynamic_ncols=True)

    def update(self, done: int, n: int, parts_completed: int) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix(completed=parts_completed, refresh=False)
        elif done * 10 >= self.next_tenth * self.total:
            pct = 100 * done // self.total
            print(
                f"progress {pct:3d}%  parts completed {parts_completed}",
                file=sys.stderr,
                flush=True,
            )
            self.next_tenth = done * 10 // self.total + 1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_line(
    cfg: LineConfig,
    duration: float,
    *,
    seed: int | None = None,
    realtime_factor: float | None = None,
    gui: bool = False,
    progress: bool = True,
    plot: str | None = None,
    record: str | None = None,
    builtin_fleet: bool = True,
) -> RunSummary:
    """Step the line with its built-in controller for `duration` simulated seconds
    (a factory's AMRs without the built-in fleet manager if `builtin_fleet` is False)."""
    automated = build_line(cfg, seed=seed, gui=gui, builtin_fleet=builtin_fleet)
    line = automated.line
    monitor = ProductionMonitor(line)
    stepper = TelemetryStepper(
        automated,
        state_rate=RUN_STATE_RATE if record else 0.0,  # states only for the recording
        state=lambda: state_message(line, RUN_MODE),
        monitor=monitor,
    )
    rec = _recorder(record, cfg, automated, stepper) if record else None  # MCAP: states, events
    if progress:
        mode = f"real time x{realtime_factor:g}" if realtime_factor else "fast"
        print(
            f"running {cfg.name} for {duration:g} s simulated ({mode})", file=sys.stderr, flush=True
        )
    total = max(1, round(duration / line.dt))
    chunk = max(1, min(200, total // 100))  # progress and Ctrl-C checks without per-step cost
    bar = _Progress(total, progress)
    completed_at_half: int | None = None
    interrupted = False
    start = time.perf_counter()
    done = 0
    try:
        while done < total:
            n = min(chunk, total - done)
            stepper.advance(n)  # events go to the monitor (and the recording)
            done += n
            if realtime_factor:
                ahead = line.sim_time / realtime_factor - (time.perf_counter() - start)
                if ahead > 0:
                    time.sleep(ahead)
            if completed_at_half is None and done * 2 >= total:
                completed_at_half = line.counts()["parts_completed"]
            bar.update(done, n, line.counts()["parts_completed"])
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        if rec:
            rec.close()
    wall = time.perf_counter() - start
    stepper.flush_events()
    summary = _summarise(line, cfg, wall, interrupted, completed_at_half)
    summary.kpis = monitor.kpis.snapshot(line.sim_time)
    summary.faults = monitor.faults
    summary.genealogy = monitor.genealogy.as_list()
    summary.orders = monitor.genealogy.orders_list()
    if plot is not None:
        from twin.analytics.plot import plot_run

        plot_run(monitor.timeline, line.sim_time, plot, title=f"{cfg.name}, seed {line.seed}")
    line.close()
    return summary


def _recorder(
    path: str, cfg: LineConfig, automated: AutomatedLine, stepper: TelemetryStepper
) -> Recorder:
    """Record the run's telemetry (what a server would publish) to an MCAP file."""
    info = recording_info(
        cfg,
        source="run",
        seed=automated.line.seed,
        builtin_controller=automated.has_builtin_controller,
        builtin_fleet=automated.has_builtin_fleet,
        mode=RUN_MODE,
        timestep=automated.line.dt,
        state_rate=RUN_STATE_RATE,
        state_every=stepper.state_every,
    )
    recorder = Recorder(path, info)
    stepper.sinks.append(recorder.telemetry)
    stepper.cameras = recording_feed(automated.line)  # cameras render for the recording only
    return recorder


def _summarise(
    line: Line, cfg: LineConfig, wall: float, interrupted: bool, completed_at_half: int | None
) -> RunSummary:
    counts = line.counts()
    sim = line.sim_time
    sinks = [d for d in line.devices.values() if isinstance(d, Sink)]
    done_count = sum(s.count for s in sinks)
    lead = sum(s.lead_time_sum for s in sinks) / done_count if done_count else None
    second_half = counts["parts_completed"] - (completed_at_half or 0)
    return RunSummary(
        line=cfg.name,
        config=cfg.source_path,
        seed=line.seed,
        steps=line.step_index,
        sim_time_s=sim,
        wall_time_s=wall,
        real_time_factor=sim / wall if wall > 0 else 0.0,
        parts_spawned=counts["parts_spawned"],
        parts_completed=counts["parts_completed"],
        parts_scrapped=counts["parts_scrapped"],
        parts_lost=counts["parts_lost"],
        wip=counts["wip"],
        throughput_per_hour=counts["parts_completed"] / sim * 3600 if sim > 0 else 0.0,
        throughput_per_hour_second_half=(
            second_half / (sim / 2) * 3600 if sim > 0 and completed_at_half is not None else 0.0
        ),
        mean_lead_time_s=lead,
        interrupted=interrupted,
    )


def summary_dict(summary: RunSummary) -> dict[str, Any]:
    return msgspec.to_builtins(summary)
