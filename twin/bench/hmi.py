"""hmi: what the browser HMI costs the twin, and how soon a page shows a change.

hmi_free_run: the default line served in fast mode in this process (as free_run) while
`twin hmi` (its own process, at the priority it gives itself) serves two headless Chromium
pages, against the same server with no HMI: in the baseline blocks the HMI process has ended
(a stopped one would still hold a subscription the twin sends to, which may slow it) and
the browser (all its processes) is stopped (SIGSTOP), so nothing of the HMI runs then; each
block with the HMI starts it anew and opens the pages on it. Target: >= 0.95.
The browsers of an HMI run on the operators' machines, not on the twin's host; here they
must share its two cores, so the measured pages come from a Chromium started at the lowest
CPU priority (niceness 19, a batch task, without the right to raise it: Chromium run as
root would raise its display threads to -8), as an operator panel on the twin's own host
should be run. The same is then measured with two pages from a Chromium at normal priority
and reported in the details (normal_priority), with its own baseline and ratio. Blocks
alternate (with, without); medians are reported.
The details say where the CPU goes while the HMI serves (from /proc, in cores: CPU seconds per
wall second): Chromium's GPU process (WebGL drawn by the CPU), its two page processes, the rest
of Chromium, the HMI gateway, the Playwright driver; and the twin's own process with and
without the HMI (below 1: other processes on the machine took its core).

hmi_latency: `twin serve --mode realtime --rtf 10 --hmi` with one page open (from when its 3D
view is built), from the Chromium at normal priority. A subscriber in this process notes the
wall-clock time each station's (and the line's) PackML state change is published; the page
notes when it has painted the change (its station tile: at the start of the frame after the
one that drew it, with the browser's clock). The difference per change: p50 and p99 (ms).

Both need Chromium and Playwright for Python; without them they report a skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import zmq

from twin.bench.hosted import open_server, run_fast, served_rate
from twin.bench.processes import Child, twin_serve
from twin.bench.result import BenchResult, median
from twin.config import load
from twin.protocol.codec import decode_telemetry
from twin.protocol.messages import TOPIC_STATE, State

TARGET = 0.95
# Chromium as it runs on a machine without a GPU: WebGL drawn by SwiftShader (allowed by
# --enable-unsafe-swiftshader), the page composited in software. (--use-angle=swiftshader
# would also composite every frame through the emulated GPU: ~15 ms of CPU a frame.)
CHROMIUM_ARGS = ["--no-sandbox", "--enable-unsafe-swiftshader"]
LOWEST = 19  # the niceness of the measured browsers


def _lowest_priority(chromium: str, folder: str) -> tuple[str, str]:
    """A script that starts Chromium at niceness 19 for good (a batch task, which never
    preempts the twin when it wakes up), and how it does it. As root,
    Chromium would raise its compositor and IO threads to -8 (it may): the script drops the
    capability to raise priority first (setpriv); as another user it cannot anyway."""
    how = f"nice -n {LOWEST}"
    if shutil.which("chrt"):
        how += " chrt --batch 0"  # and never preempting the twin when it wakes up
    if os.geteuid() == 0 and shutil.which("setpriv"):
        how = f"setpriv --inh-caps -sys_nice --bounding-set -sys_nice {how}"
    elif os.geteuid() == 0:
        how += " (no setpriv: Chromium raises its display threads to -8)"
    script = Path(folder) / "chromium-lowest-priority"
    command = how.split(" (")[0]
    script.write_text(f'#!/bin/sh\nexec {command} "{chromium}" "$@"\n')
    script.chmod(0o755)
    return str(script), how


def _chromium() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def hmi(config: str, *, quick: bool) -> list[BenchResult]:
    chromium = _chromium()
    if chromium is None:
        why = "needs Chromium (apt-get install chromium) and Playwright for Python"
        return [
            BenchResult(name="hmi_free_run", ours=None, baseline=None, unit="steps/s", skipped=why),
            BenchResult(name="hmi_latency", ours=None, baseline=None, unit="ms", skipped=why),
        ]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory() as folder:
        lowest, how = _lowest_priority(chromium, folder)
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            normal_root = _chromium_roots()
            lowered = p.chromium.launch(executable_path=lowest, args=CHROMIUM_ARGS)
            try:
                lowest_root = _chromium_roots() - normal_root
                browsers = {"lowest": (lowered, lowest_root), "normal": (browser, normal_root)}
                free_run = _free_run(config, browsers, quick)
            finally:
                lowered.close()
            free_run.details["browser_priority"] = how
            return [free_run, _latency(browser, quick)]
        finally:
            browser.close()


def _wait_live(server, page) -> None:  # noqa: ANN001
    """Step until the page shows a state."""
    deadline = time.monotonic() + 30
    while page.evaluate("window.hmi && window.hmi.state ? window.hmi.state.step : 0") == 0:
        if time.monotonic() > deadline:
            raise TimeoutError("the HMI page never showed a state")
        run_fast(server, 40)


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _processes() -> dict[int, tuple[int, float, str]]:
    """pid -> (parent, CPU seconds used so far, command line), from Linux /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rfind(")") + 2 :].split()
        found[int(entry.name)] = (
            int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK, cmdline
        )  # fmt: skip
    return found


def _descendants(roots: set[int], processes: dict[int, tuple[int, float, str]]) -> set[int]:
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo += [child for child, (parent, _, _) in processes.items() if parent == pid]
    return found


def _chromium_roots() -> set[int]:
    """The browser processes (not their children) of the Chromiums this process started."""
    processes = _processes()
    return {
        pid
        for pid in _descendants({os.getpid()}, processes)
        if "chromium" in processes[pid][2]
        and "chromium" not in processes.get(processes[pid][0], (0, 0.0, ""))[2]
    }


def _signal_tree(roots: set[int], sig: int) -> None:
    for pid in _descendants(roots, _processes()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _cpu_by_process(gateway: int) -> dict[int, tuple[str, float]]:
    """pid -> (its kind, CPU seconds used so far) for each process this benchmark started."""
    processes = _processes()
    used = {}
    for pid in _descendants({os.getpid()}, processes) - {os.getpid()}:
        _, seconds, cmdline = processes[pid]
        role = (
            "hmi_gateway" if pid == gateway
            else "chromium_gpu" if "--type=gpu-process" in cmdline
            else "chromium_pages" if "--type=renderer" in cmdline
            else "chromium_other" if "chromium" in cmdline
            else "playwright_driver"
        )  # fmt: skip
        used[pid] = (role, seconds)
    return used


def _cpu_by_role(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds each kind of process used between two samples (of the processes in both)."""
    used: dict[str, float] = {}
    for pid, (role, seconds) in after.items():
        if pid in before:
            used[role] = used.get(role, 0.0) + seconds - before[pid][1]
    return used


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def _start_hmi(server) -> Child:  # noqa: ANN001
    return Child(
        [sys.executable, "-m", "twin.gateways.hmi.command", "--address", "127.0.0.1:0",
         "--control", server.endpoints.control_addr, "--telemetry", server.endpoints.telemetry_addr],
        exits_on_stdin_close=False,
    )  # fmt: skip


def _free_run(config: str, browsers: dict, quick: bool) -> BenchResult:  # noqa: ANN001
    """For each browser in turn, blocks of the fast loop alternate: with `twin hmi` running
    and the browser's two pages showing it, and without: no HMI process (a stopped one would
    still hold a subscription the twin sends to) and the browser stopped."""
    block, reps = (300, 2) if quick else (2000, 8)
    server = open_server(load(config))
    measure = Path("/proc/self/stat").exists()
    phases: dict[str, dict] = {}
    hmi: Child | None = None
    stopped: set[int] = set()
    try:
        for name, (browser, root) in browsers.items():
            pages = [browser.new_page(viewport={"width": 1280, "height": 860}) for _ in range(2)]
            phase = phases[name] = {
                "with": [], "without": [], "cpu": {}, "twin": [0.0, 0.0], "wall": [0.0, 0.0]
            }  # fmt: skip
            for rep in range(reps):
                for running in (True, False) if rep % 2 == 0 else (False, True):
                    if running and hmi is None:
                        _signal_tree(stopped, signal.SIGCONT)
                        stopped = set()
                        hmi = _start_hmi(server)
                        url = _hmi_url(hmi, server)
                        for page in pages:
                            page.goto(url)
                        for page in pages:
                            _wait_live(server, page)
                        run_fast(server, 800)  # the 3D views built, the pages in their pace
                    elif not running and hmi is not None:
                        hmi.stop()
                        hmi = None
                        stopped = root
                        _signal_tree(stopped, signal.SIGSTOP)
                    run_fast(server, 400)
                    gateway = hmi.proc.pid if hmi is not None else 0
                    used = _cpu_by_process(gateway) if measure and running else {}
                    own, t0 = _own_cpu(), time.perf_counter()
                    phase["with" if running else "without"].append(served_rate(server, block))
                    phase["wall"][running] += time.perf_counter() - t0
                    phase["twin"][running] += _own_cpu() - own
                    if used:
                        spent = _cpu_by_role(used, _cpu_by_process(gateway))
                        for role, seconds in spent.items():
                            phase["cpu"][role] = phase["cpu"].get(role, 0.0) + seconds
            _signal_tree(stopped, signal.SIGCONT)
            stopped = set()
            for page in pages:
                page.close()
    finally:
        _signal_tree(stopped, signal.SIGCONT)
        if hmi is not None:
            hmi.stop()
        server.close()

    def summary(name: str) -> dict[str, Any]:
        phase = phases[name]
        wall = phase["wall"]
        return {
            "steps_per_s": median(phase["with"]),
            "baseline_steps_per_s": median(phase["without"]),
            "ratio": median(phase["with"]) / median(phase["without"]),
            "hmi_cpu_cores": {r: round(s / wall[1], 3) for r, s in sorted(phase["cpu"].items())},
            "twin_cpu_cores": {
                "with_hmi": round(phase["twin"][1] / wall[1], 3),
                "without": round(phase["twin"][0] / wall[0], 3),
            },
        }

    lowest = summary("lowest")
    return BenchResult(
        name="hmi_free_run",
        ours=lowest.pop("steps_per_s"),
        baseline=lowest.pop("baseline_steps_per_s"),
        unit="steps/s",
        target=TARGET,
        details={
            "browsers": 2,
            "steps_per_block": block,
            "repetitions": reps,
            **{k: v for k, v in lowest.items() if k != "ratio"},
            "normal_priority": summary("normal"),
        },
    )


def _hmi_url(child: Child, server) -> str:  # noqa: ANN001
    """The observer URL `twin hmi` prints, stepping the server so the HMI can connect."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run_fast(server, 8)
        while True:
            line = child._lines.get_nowait() if not child._lines.empty() else ""
            if line is None:
                raise RuntimeError("twin hmi exited")
            if not line:
                break
            if line.startswith("hmi "):
                return line.split()[1]
    raise TimeoutError("twin hmi did not start")


def _latency(browser, quick: bool) -> BenchResult:  # noqa: ANN001
    seconds = 6.0 if quick else 60.0
    changes: dict[tuple[str, str], list[tuple[int, float]]] = {}
    with twin_serve("--mode", "realtime", "--rtf", "10", "--hmi=127.0.0.1:0") as twin:
        telemetry = twin.wait_for("telemetry").split()[1]
        url = twin.wait_for("hmi ").split()[1]
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, TOPIC_STATE)
        sub.connect(telemetry)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        try:
            page.goto(url)
            # measured once the page is up: its 3D view built (loading it is not a change shown)
            page.wait_for_function(
                "window.hmi && window.hmi.state && window.hmi.scene", timeout=30_000
            )
            last: dict[str, str] = {}
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                if not sub.poll(100):
                    continue
                _, payload = sub.recv_multipart()
                received = time.time()
                state = decode_telemetry(payload)
                if not isinstance(state, State):
                    continue
                for device, signals in state.signals.items():
                    value = (
                        signals.get("state") if device == "line" or "progress" in signals else None
                    )
                    if isinstance(value, str) and last.get(device) != value:
                        if device in last:
                            changes.setdefault((device, value), []).append((state.step, received))
                        last[device] = value
            time.sleep(0.5)  # the last changes reach the page
            shown = page.evaluate("window.hmi.displayLog")
        finally:
            page.close()
            sub.close()
            ctx.term()
    latencies, arrivals = [], []
    for entry in shown:
        published = [
            c for c in changes.get((entry["device"], entry["state"]), []) if c[0] <= entry["step"]
        ]
        if published:
            latencies.append(entry["t"] - 1000 * max(published)[1])
            arrivals.append(entry["received"] - 1000 * max(published)[1])
    if not latencies:
        return BenchResult(name="hmi_latency", ours=None, baseline=None, unit="ms",
                           skipped="no state change was shown in the page")  # fmt: skip
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    return BenchResult(
        name="hmi_latency",
        ours=statistics.median(latencies),
        baseline=None,
        unit="ms",
        better="lower",
        details={
            "p50_ms": statistics.median(latencies),
            "p99_ms": p99,
            "changes": len(latencies),
            "arrival_p50_ms": statistics.median(arrivals),  # publication -> in the page
            "mode": "realtime x10",
            "measured": "publication -> painted in the page",
        },  # fmt: skip
    )
