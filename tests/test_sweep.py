"""Scenario sweeps: validation before running, identical results on every backend and worker
count, resume after an interruption, failed runs recorded while the rest complete."""

from __future__ import annotations

import csv
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from twin.config import load, loads
from twin.run import run_line, summary_dict
from twin.sweep import SweepError, run_sweep
from twin.sweep.kpis import leaves
from twin.sweep.paths import PathError, get_value, set_value
from twin.sweep.scenarios import plan
from twin.sweep.spec import load_sweep
from twin.sweep.stats import mean_ci95, t975
from twin.sweep.toml_text import dumps

ROOT = Path(__file__).resolve().parents[1]
LINE = ROOT / "configs" / "default_line.toml"
PYTHON = sys.executable

# 2 scenarios x 2 seeds, short runs; one scenario moves parts to the robot within the run
SMALL = """
name = "small"
line = "{line}"
duration = 8.0
replications = 2
timeout = 120
kpis = ["kpis.wip_mean", "kpis.stations.mill.utilisation.execute", "kpis.lead_time_s.mean",
        "steps", "kpis.bottleneck.resource"]
[set]
"devices.source.first_at" = 0.2
[grid]
"devices.infeed.speed" = [0.2, 0.5]
"""


def write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text.replace("{line}", str(LINE)))
    return path


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def without_wall(table: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in table]


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("sweep1")
    out = tmp / "out"
    outcome = run_sweep(write(tmp, SMALL), workers=1, out=out, progress=False)
    assert outcome.ran == 4 and outcome.failed == 0
    return out


# ---------------------------------------------------------------- building blocks (fast)


def test_paths_address_tables_lists_by_id_and_indices():
    raw = msgspec.toml.decode(LINE.read_bytes())
    set_value(raw, "devices.mill.cycle_time", 3.5)
    set_value(raw, "part_types.housing.mass", 0.5)
    set_value(raw, "physics.gravity[2]", -9.0)
    set_value(raw, "controller.transfers[0].place.offset", -0.7)
    set_value(raw, "devices.mill.mtbf", 100.0)  # fields the file leaves at their default
    set_value(raw, "devices.mill.mttr", 5.0)
    cfg = loads(dumps(raw))
    assert cfg.device("mill").cycle_time == 3.5
    assert cfg.part_types[0].mass == 0.5 and cfg.physics.gravity[2] == -9.0
    assert cfg.controller.transfers[0].place.offset == -0.7
    assert get_value(raw, "devices.infeed.speed") == 0.25
    with pytest.raises(PathError, match="no entry 'mil' in devices"):
        set_value(raw, "devices.mil.cycle_time", 1.0)
    with pytest.raises(PathError, match="index 9 out of range"):
        set_value(raw, "physics.gravity[9]", 1.0)
    with pytest.raises(PathError, match="bad segment"):
        set_value(raw, "devices..speed", 1.0)


def test_config_written_back_as_toml_is_the_same_config():
    raw = msgspec.toml.decode(LINE.read_bytes())
    assert loads(dumps(raw), str(LINE)) == load(LINE)


def test_grid_and_random_samples_expand_reproducibly(tmp_path):
    text = (
        SMALL
        + """
[random]
samples = 3
seed = 5
params."devices.mill.cycle_time" = { uniform = [4.0, 9.0] }
params.part_types.housing.mass = { choice = [0.3, 0.4] }
"""
    )
    first = plan(load_sweep(write(tmp_path, text)))
    again = plan(load_sweep(write(tmp_path, text)))
    assert len(first.scenarios) == 2 * 3 and len(first.tasks) == 6 * 2
    assert [s.params for s in first.scenarios] == [s.params for s in again.scenarios]
    assert all(4.0 <= s.params["devices.mill.cycle_time"] <= 9.0 for s in first.scenarios)
    assert first.sweep.varied == [
        "devices.infeed.speed",
        "devices.mill.cycle_time",
        "part_types.housing.mass",
    ]
    assert len({s.id for s in first.scenarios}) == 6


def test_t_quantiles_and_confidence_interval():
    assert t975(1) == pytest.approx(12.706, abs=1e-3)
    assert t975(30) == pytest.approx(2.0423, abs=1e-4)
    assert t975(40) == pytest.approx(2.0211, abs=1e-4)
    assert t975(120) == pytest.approx(1.9799, abs=1e-4)
    mean, half = mean_ci95([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.3027 / math.sqrt(3), rel=1e-4)
    assert mean_ci95([5.0]) == (5.0, None)


def test_kpi_names_match_what_a_run_reports():
    summary = summary_dict(run_line(load(LINE), 1.0, progress=False))
    for path in leaves(["mill"], ["robot"]):
        get_value(summary, path)  # every documented KPI exists (or is None, like lead times)

    def flat(d, prefix):
        for k, v in d.items():
            p = f"{prefix}.{k}"
            yield from flat(v, p) if isinstance(v, dict) else ([p] if v is not None else [])

    reported = {p for p in flat(summary["kpis"], "kpis") if "reason" not in p}
    assert reported <= set(leaves(["mill"], ["robot"]))  # and nothing a run reports is missing


# ---------------------------------------------------------------- bad sweep files


@pytest.mark.parametrize(
    "change, message",
    [
        ('"devices.mil.cycle_time" = [5.0]', "no entry 'mil' in devices"),
        ('"devices.mill.cycle_time" = [5.0, -1.0]', "cycle_time"),
        ('"devices.mill.cycle_tim" = [5.0]', "unknown field `cycle_tim`"),
        ('"devices.infeed.speed" = [0.2, 0.9]', "exceeds max_speed"),
        ('"devices.mill.cycle_time" = 5.0', "expected a non-empty list"),
    ],
)
def test_bad_grid_is_rejected_before_any_run(tmp_path, change, message):
    text = SMALL.split("[grid]")[0] + "[grid]\n" + change + "\n"
    with pytest.raises(SweepError, match=message) as err:
        run_sweep(write(tmp_path, text), out=tmp_path / "out", progress=False)
    assert "sweep.toml" in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ("durations = 5.0", "unknown field `durations`"),
        ('kpis = ["kpis.oee.oeee"]', "no KPI 'oeee'"),
        ('kpis = ["kpis.stations.lathe.oee"]', "no station 'lathe'"),
        ('kpis = ["kpis.oee"]', "group of KPIs"),
        ("replications = 0", "replications"),
        (
            'random = { samples = 2, params = { "devices.mill.cycle_time" = { normal = [1, 2] } } }',
            "unknown field `normal`",
        ),
    ],
)
def test_bad_sweep_keys_are_rejected_before_any_run(tmp_path, change, message):
    key = change.split(" =")[0]
    head, tail = SMALL.split("[set]")
    kept = [line for line in head.splitlines() if not line.startswith(key + " =")]
    if key == "kpis":  # the default list spans two lines
        kept = [line for line in kept if not line.startswith(("kpis", "        "))]
    text = "\n".join([*kept, change, "[set]"]) + tail
    with pytest.raises(SweepError, match=message):
        run_sweep(write(tmp_path, text), out=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_cli_rejects_a_bad_sweep_with_exit_code_2(tmp_path):
    path = write(tmp_path, SMALL.replace("devices.infeed.speed", "devices.belt.speed"))
    proc = subprocess.run(
        [PYTHON, "-m", "twin.sweep.command", str(path), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "no entry 'belt' in devices" in proc.stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- running


def test_results_and_summary(one_worker):
    table = rows(one_worker / "results.csv")
    assert [(r["devices.infeed.speed"], r["seed"]) for r in table] == [
        ("0.2", "7"), ("0.2", "8"), ("0.5", "7"), ("0.5", "8"),
    ]  # fmt: skip
    assert all(r["status"] == "ok" and r["error"] == "" for r in table)
    assert all(float(r["steps"]) == 800 for r in table)
    summary = rows(one_worker / "summary.csv")
    assert [(s["ok"], s["failed"]) for s in summary] == [("2", "0"), ("2", "0")]
    assert (
        "kpis.wip_mean.ci95" in summary[0]
        and summary[0]["kpis.bottleneck.resource.mode"] == "robot"
    )
    assert (one_worker / "plot.png").stat().st_size > 1000


def test_two_workers_give_identical_results(one_worker, tmp_path):
    run_sweep(write(tmp_path, SMALL), workers=2, out=tmp_path / "out", progress=False)
    assert without_wall(rows(tmp_path / "out" / "results.csv")) == without_wall(
        rows(one_worker / "results.csv")
    )


def test_ray_backend_gives_identical_results(one_worker, tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'twin[ray]')")
    run_sweep(
        write(tmp_path, SMALL), backend="ray", workers=2, out=tmp_path / "out", progress=False
    )
    assert without_wall(rows(tmp_path / "out" / "results.csv")) == without_wall(
        rows(one_worker / "results.csv")
    )


def test_interrupted_sweep_resumes_without_redoing_finished_runs(one_worker, tmp_path):
    sweep, out = write(tmp_path, SMALL), tmp_path / "out"
    proc = subprocess.Popen(
        [PYTHON, "-m", "twin.sweep.command", str(sweep), "--out", str(out), "--workers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # wait for the first finished run
            if (out / "results.csv").exists() and len(rows(out / "results.csv")) >= 1:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    before = rows(out / "results.csv")
    assert 1 <= len(before) < 4

    outcome = run_sweep(sweep, workers=2, out=out, progress=False)
    done_before = {(r["scenario"], int(r["seed"])) for r in before}
    assert outcome.skipped == len(before) and outcome.ran == 4 - len(before)
    assert not done_before & set(outcome.ran_keys)
    after = rows(out / "results.csv")
    kept = {(r["scenario"], r["seed"]): r["wall_time_s"] for r in before}
    assert all(
        kept[(r["scenario"], r["seed"])] == r["wall_time_s"]
        for r in after
        if (r["scenario"], r["seed"]) in kept
    )
    assert without_wall(after) == without_wall(rows(one_worker / "results.csv"))

    again = run_sweep(sweep, workers=2, out=out, progress=False)  # complete: nothing to do
    assert again.ran == 0 and again.skipped == 4


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_failing_and_overlong_runs_are_recorded_and_the_rest_complete(tmp_path, backend):
    if backend == "ray":
        pytest.importorskip(
            "ray", reason="the ray extra is not installed (pip install 'twin[ray]')"
        )
    text = """
name = "failing"
line = "{line}"
duration = 3.0
timeout = 12.0
kpis = ["kpis.wip_mean"]
[grid]
"devices.mill.cycle_time" = [6.0, 8.0]
"physics.timestep" = [0.005, 0.000001]  # 5000x the steps: over the timeout on any machine
"""
    out = tmp_path / "out"
    outcome = run_sweep(write(tmp_path, text), backend=backend, workers=2, out=out, progress=False)
    table = {
        (r["devices.mill.cycle_time"], r["physics.timestep"]): r
        for r in rows(tmp_path / "out" / "results.csv")
    }
    assert outcome.ran == 4 and outcome.failed == 2
    for cycle in ("6.0", "8.0"):
        ok = table[(cycle, "0.005")]
        assert ok["status"] == "ok" and float(ok["kpis.wip_mean"]) > 0
        slow = table[(cycle, "1e-06")]
        assert slow["status"] == "failed" and slow["error"].startswith("timeout")
        assert 12.0 <= float(slow["wall_time_s"]) < 30
    summary = rows(tmp_path / "out" / "summary.csv")
    assert sorted(s["failed"] for s in summary) == ["0", "0", "1", "1"]


def test_a_run_that_raises_is_a_failed_result():
    """A worker records an exception as the run's error instead of dying with it."""
    from twin.sweep.scenarios import RunTask
    from twin.sweep.worker import execute

    task = RunTask(
        scenario="s", seed=1, config="name = 3", source="broken.toml", duration=1.0, kpis=["steps"]
    )
    result = execute(task)
    assert result.status == "failed" and "broken.toml" in result.error
    assert result.kpis == {"steps": None}


def test_a_scenario_whose_arm_cannot_be_built_is_refused_before_running(tmp_path):
    text = """
name = "unbuildable"
line = "{line}"
duration = 3.0
[grid]
"devices.robot.tool_link" = ["panda_grasptarget", "no_such_link"]
"""
    with pytest.raises(SweepError, match=r"tool_link: model .* has no link 'no_such_link'"):
        plan(load_sweep(write(tmp_path, text)))
