"""`twin run`, `twin snapshot`, `twin check` as a user runs them: real subprocesses."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TWIN = [sys.executable, "-m", "twin.cli"]
REPORT_KEYS = {
    "sim_time_s",
    "wall_time_s",
    "real_time_factor",
    "parts_spawned",
    "parts_completed",
    "throughput_per_hour",
}


def twin(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([*TWIN, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_run_reports_finished_parts_faster_than_real_time(tmp_path):
    report = tmp_path / "r.json"
    out = twin("run", "configs/default_line.toml", "--duration", "60", "--report", str(report))
    assert out.returncode == 0, out.stderr
    data = json.loads(report.read_text())
    assert REPORT_KEYS <= data.keys()
    assert data["sim_time_s"] == 60.0
    assert data["parts_completed"] > 0
    assert data["parts_spawned"] >= data["parts_completed"]
    assert data["real_time_factor"] > 1.0
    assert data["throughput_per_hour"] == data["parts_completed"] / 60.0 * 3600
    for word in (
        "simulated time",
        "wall time",
        "real-time factor",
        "parts spawned",
        "parts completed",
        "throughput",
    ):
        assert word in out.stdout
    # not a terminal: plain progress lines instead of a bar
    assert "progress 100%" in out.stderr


def test_seed_changes_the_run_and_same_seed_repeats(tmp_path):
    def run(seed: str) -> dict:
        report = tmp_path / f"r{seed}-{time.monotonic_ns()}.json"
        out = twin("run", "--duration", "40", "--seed", seed, "--quiet", "--report", str(report))
        assert out.returncode == 0, out.stderr
        data = json.loads(report.read_text())
        return {k: v for k, v in data.items() if k not in ("wall_time_s", "real_time_factor")}

    first, again, other = run("3"), run("3"), run("4")
    assert first == again
    assert first["seed"] == 3 and other["seed"] == 4


def test_ctrl_c_stops_cleanly_and_still_reports(tmp_path):
    report = tmp_path / "r.json"
    proc = subprocess.Popen(
        [*TWIN, "run", "--duration", "3600", "--report", str(report)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # wait until the line is built and running (a cold start compiles and imports a lot)
        assert proc.stderr is not None
        first = ""
        deadline = time.monotonic() + 120
        while not first.startswith("running default_line"):  # pybullet prints a banner first
            first = _readline_within(proc.stderr, max(1.0, deadline - time.monotonic()))
            assert first, "twin run exited before running"
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        stdout, rest = proc.communicate(timeout=120)
        stderr = first + rest
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "(interrupted)" in stdout
    data = json.loads(report.read_text())
    assert data["interrupted"] is True
    assert 0 < data["sim_time_s"] < 3600


def _readline_within(stream, timeout: float) -> str:
    """One line from a subprocess pipe, or fail after `timeout` seconds."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"no output within {timeout} s")


def test_two_robot_line_produces_parts(tmp_path):
    report = tmp_path / "r.json"
    out = twin(
        "run", "configs/two_robot_line.toml", "--duration", "90", "--quiet", "--report", str(report)
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(report.read_text())["parts_completed"] > 0


def test_snapshot_renders_the_line(tmp_path):
    png = tmp_path / "line.png"
    out = twin("snapshot", "--out", str(png), "--settle", "2", "--width", "320", "--height", "200")
    assert out.returncode == 0, out.stderr
    image = np.asarray(Image.open(png))
    assert image.shape == (200, 320, 3)
    assert image.std() > 10  # a scene, not a blank frame


def test_bad_config_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    text = (
        (ROOT / "configs" / "default_line.toml")
        .read_text()
        .replace("cycle_time = 8.0", "cycle_time = -8.0")
    )
    bad.write_text(text)
    out = twin("run", str(bad), "--duration", "1")
    assert out.returncode == 2
    assert "bad.toml" in out.stderr and "cycle_time" in out.stderr and "Traceback" not in out.stderr
    assert twin("check", "configs/two_robot_line.toml").returncode == 0
