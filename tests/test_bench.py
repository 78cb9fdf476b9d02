"""`twin bench --quick --json` runs every benchmark and reports well-formed numbers.

Speed itself is measured by the benchmarks, not asserted here: only that each one ran and
reported positive figures (or, for recording, an explicit skip).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = [sys.executable, "-m", "twin.bench.command"]
NAMES = [
    "free_run",
    "lockstep",
    "lockstep_batched",
    "lockstep_image",
    "lockstep_image_no_spin",
    "parts_scaling",
    "slow_subscriber",
    "startup",
    "record",
    "gym_inprocess",
    "gym_remote",
    "gym_async_vec2",
    "sweep",
    "hmi_free_run",
    "hmi_latency",
    "opcua_latency",
    "modbus_latency",
    "opcua_change_rate",
    "gateway_step_rate",
    "camera",
    "camera_free_run",
    "dataset",
    "factory_scaling",
    "factory_6cell",
]
REQUIRED = {"name", "ours", "baseline", "unit", "ratio"}
TIMEOUT_S = 300  # --quick takes ~60 s on 2 cores; generous for a loaded CI machine


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    """`twin bench` with these arguments in a subprocess, ended after TIMEOUT_S."""
    return subprocess.run(
        [*BENCH, *args], cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S
    )


@pytest.fixture(scope="module")
def quick_results() -> dict[str, dict]:
    proc = _bench("--quick", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return {r["name"]: r for r in results}


def test_every_benchmark_reports_one_line(quick_results: dict[str, dict]) -> None:
    assert list(quick_results) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_benchmark_has_required_keys_and_positive_numbers(
    quick_results: dict[str, dict], name: str
) -> None:
    result = quick_results[name]
    assert REQUIRED <= set(result)
    assert result["unit"]
    if result.get("skipped"):
        if name.startswith("hmi_"):  # a machine without Chromium says so
            assert "needs Chromium" in result["skipped"]
        else:
            assert name == "record" and "recording not available" in result["skipped"]
        assert result["ours"] is None and result["baseline"] is None
        return
    if name == "hmi_latency":  # a latency measured in the browser: no baseline to divide by
        assert _positive(result["details"]["p50_ms"]) and _positive(result["details"]["p99_ms"])
        assert result["details"]["p99_ms"] >= result["details"]["p50_ms"] == result["ours"]
        return
    for key in ("ours", "baseline", "ratio"):
        assert _positive(result[key]), f"{name}.{key} = {result[key]!r}"


def test_free_run_reports_real_time_factor(quick_results: dict[str, dict]) -> None:
    details = quick_results["free_run"]["details"]
    assert _positive(details["real_time_factor"])
    assert details["telemetry_received"] > 0  # the subscriber really got telemetry
    assert _positive(details["target_budget_us"])
    assert math.isfinite(details["line_only_us_over_bare"])


@pytest.mark.parametrize("name", ["lockstep", "lockstep_batched"])
def test_lockstep_reports_its_budget_and_the_line_alone(
    quick_results: dict[str, dict], name: str
) -> None:
    details = quick_results[name]["details"]
    assert _positive(details["target_budget_us"])
    assert math.isfinite(details["line_without_controller_us_over_bare"])
    assert details["round_trips_per_step"] == (2 if name == "lockstep" else 1)


def test_parts_scaling_reports_cost_per_part(quick_results: dict[str, dict]) -> None:
    per_count = quick_results["parts_scaling"]["details"]["per_count"]
    assert len(per_count) == 3
    for count, figures in per_count.items():
        assert figures["parts_on_line"] == int(count)
        assert _positive(figures["us_per_part_step"])


def test_slow_subscriber_reports_memory(quick_results: dict[str, dict]) -> None:
    details = quick_results["slow_subscriber"]["details"]
    assert _positive(details["rss_kib_start"]) and _positive(details["rss_kib_end"])


def test_gateway_benchmarks_report_latency_and_cost(quick_results: dict[str, dict]) -> None:
    for name in ("opcua_latency", "modbus_latency"):
        details = quick_results[name]["details"]
        assert details["p99_ms"] >= quick_results[name]["ours"] > 0
        assert details["sampling_ms"] == 10
    assert _positive(quick_results["gateway_step_rate"]["details"]["twin_cpu_ratio"])
    assert quick_results["gateway_step_rate"]["details"]["notifications_received"] > 0
    assert quick_results["opcua_change_rate"]["details"]["monitored_items"] > 50


def test_only_runs_the_named_benchmark() -> None:
    proc = _bench("--quick", "--only", "startup")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("startup") and "ratio" in lines[0]


def test_breakdown_splits_the_free_run_step_into_its_pieces() -> None:
    proc = _bench("--breakdown", "--quick", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    parts = result["parts_us_per_step"]
    for label in ("bullet stepSimulation", "ray batch (all beam sensors)", "controller scan"):
        assert _positive(parts[label]), label
    assert any(label.startswith("robot.") for label in parts)  # the arm's hooks are timed
    served = result["served_us_per_step"]
    top_level = sum(us for label, us in parts.items() if " > " not in label)
    # the timed pieces account for the step, but never for more than it
    assert top_level <= served and top_level + result["rest_us_per_step"] == pytest.approx(served)
    assert max(parts, key=parts.get) == "bullet stepSimulation"
    assert _positive(result["bare_us_per_step"])


def test_breakdown_prints_a_table() -> None:
    proc = _bench("--breakdown", "--quick")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("free run, 400 steps:")
    assert any(line.endswith("bullet stepSimulation") for line in lines)
    assert lines[-1].startswith("  ratio bare / served:")


@pytest.mark.parametrize(
    "name", ["lockstep", "lockstep_batched", "lockstep_image", "lockstep_image_no_spin"]
)
def test_lockstep_reports_the_cpu_of_server_and_baseline(
    quick_results: dict[str, dict], name: str
) -> None:
    details = quick_results[name]["details"]
    # each process's CPU over the timed blocks: at most its wall time (a core each at most:
    # a server and its sockets' thread could take two, the peer's too)
    for key in ("server_cpu_us_per_step", "baseline_peer_cpu_us_per_step"):
        assert _positive(details[key]), key
    cycle_us = 1e6 / quick_results[name]["ours"]
    assert details["server_cpu_us_per_step"] < 2 * cycle_us


def test_lockstep_image_splits_a_cycle(quick_results: dict[str, dict]) -> None:
    details = quick_results["lockstep_image"]["details"]
    split = details["cycle_split_us"]
    assert set(split) == {"transport_us", "encoding_us", "dispatch_us", "line_us", "physics_us"}
    assert math.isclose(sum(split.values()), details["cycle_us"], rel_tol=1e-6)
    assert _positive(split["physics_us"]) and _positive(split["encoding_us"])
    assert details["bytes"]["image_reply"] < 200  # values only, no maps


def test_factory_scaling_reports_each_factory_and_where_its_time_goes(
    quick_results: dict[str, dict],
) -> None:
    result = quick_results["factory_scaling"]
    assert result["better"] == "lower" and result["unit"] == "us/step"
    per_cells = result["details"]["per_cells"]
    assert list(per_cells) == ["1", "2"]  # --quick: the two smallest factories
    for cells, figures in per_cells.items():
        assert figures["amrs"] == int(cells)  # one AMR per cell
        assert _positive(figures["us_per_step"]) and _positive(figures["bare_us_per_step"])
        where = figures["where_us_per_step"]
        for label in ("physics (stepSimulation)", "devices: amr", "devices: arm", "controller"):
            assert _positive(where[label]), (cells, label, where)
    assert per_cells["2"]["devices"] > per_cells["1"]["devices"]
    six = quick_results["factory_6cell"]
    assert six["unit"] == "x real time" and six["target"] == 2.0
    assert six["details"]["amrs"] == 4
    assert _positive(six["details"]["bare_real_time_factor"])
