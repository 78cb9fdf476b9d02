"""Configs that `twin check` accepts never crash the twin: every hostile config gets a one-line
error naming the file and the field, from `twin check` and from every command that loads a
config (run, serve, snapshot, sweep), as a user sees it: real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from twin.config import MAX_CONFIG_BYTES, ConfigError, loads

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = (ROOT / "configs" / "default_line.toml").read_text()
TWIN = [sys.executable, "-m", "twin.cli"]
ROBOT = "devices[4] (device 'robot')"
MILL = "devices[5] (device 'mill')"

pytestmark = pytest.mark.timeout(300)


def edit(old: str, new: str) -> Callable[[], str]:
    def make() -> str:
        assert old in DEFAULT, old
        return DEFAULT.replace(old, new, 1)

    return make


def robot(extra: str) -> Callable[[], str]:
    return edit("pedestal_height = 0.6\n", f"pedestal_height = 0.6\n{extra}\n")


def robot_yaw(value: str) -> Callable[[], str]:
    return edit("yaw = 0.0\npedestal_height = 0.6", f"yaw = {value}\npedestal_height = 0.6")


def deeply_nested() -> str:
    depth = 100_000
    return DEFAULT.replace('name = "default_line"', f'name = "x"\nx = {"[" * depth}{"]" * depth}')


# name -> (config text, the field the error names, what it says)
HOSTILE: dict[str, tuple[Callable[[], str], str, str]] = {
    "yaw-inf": (robot_yaw("inf"), f"{ROBOT}.yaw", "inf is not a finite number"),
    "yaw-in-degrees": (robot_yaw("90.0"), f"{ROBOT}.yaw", "Expected `float` <= 6.28"),
    "nan-position": (
        edit("position = [0.55, 0.0, 0.0]", "position = [nan, 0.0, 0.0]"),
        f"{MILL}.position[0]",
        "nan is not a finite number",
    ),
    "huge-position": (
        edit("position = [0.55, 0.0, 0.0]", "position = [1e300, 0.0, 0.0]"),
        f"{MILL}.position[0]",
        "<= 1000.0",
    ),
    "nan-gravity": (
        edit("gravity = [0.0, 0.0, -9.81]", "gravity = [0.0, 0.0, nan]"),
        "physics.gravity[2]",
        "nan is not a finite number",
    ),
    "model-not-an-arm": (
        edit('"franka_panda/panda.urdf"', '"plane.urdf"'),
        f"{ROBOT}.model",
        "'plane.urdf' has no movable joints: it is not a robot arm",
    ),
    "model-not-urdf": (
        edit('"franka_panda/panda.urdf"', '"plane.obj"'),
        f"{ROBOT}.model",
        "is not a URDF file",
    ),
    "tool-link-missing": (
        robot('tool_link = "flange"'),
        f"{ROBOT}.tool_link",
        "has no link 'flange' (links: panda_link1,",
    ),
    "home-wrong-length": (
        robot("home = [0.0, 0.1]"),
        f"{ROBOT}.home",
        "2 values, but model 'franka_panda/panda.urdf' has 7 arm joints",
    ),
    "home-outside-limits": (
        robot("home = [0.0, -0.4, 0.0, 0.5, 0.0, 1.9, 0.785]"),
        f"{ROBOT}.home[3]",
        "outside the limits of joint 'panda_joint4'",
    ),
    "held-joint-missing": (
        robot("held_joints = { gripper = 0.0 }"),
        f"{ROBOT}.held_joints.gripper",
        "has no movable joint 'gripper'",
    ),
    "model-path-escapes": (
        edit('"franka_panda/panda.urdf"', '"../../../../../../../../etc/passwd"'),
        f"{ROBOT}.model",
        "must not leave assets/ or pybullet_data",
    ),
    "model-path-absolute": (
        edit('"franka_panda/panda.urdf"', '"/proc/self/environ"'),
        f"{ROBOT}.model",
        "must be a path relative to assets/ or pybullet_data",
    ),
    "nested-100000-deep": (deeply_nested, "not valid TOML", "nested too deeply"),
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*TWIN, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode, err


def assert_one_line_error(code: int, stderr: str, *fragments: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, stderr
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("name", HOSTILE)
def test_check_and_run_refuse_a_hostile_config_in_one_line(tmp_path, name):
    make, field, problem = HOSTILE[name]
    path = write(tmp_path, name, make())
    with pytest.raises(ConfigError):  # in process, as a library user loads it
        loads(path.read_bytes(), str(path))
    procs = [start("check", str(path)), start("run", str(path), "--duration", "1", "--quiet")]
    for proc in procs:
        assert_one_line_error(*finish(proc), str(path), field, problem)


def test_every_command_that_loads_a_config_refuses_it_the_same_way(tmp_path):
    path = write(tmp_path, "yaw", HOSTILE["yaw-inf"][0]())
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(f'name = "s"\nline = "{path}"\nduration = 1.0\n')
    procs = {
        "serve": start("serve", str(path), "--mode", "lockstep"),
        "snapshot": start("snapshot", str(path), "--out", str(tmp_path / "x.png")),
        "sweep": start("sweep", str(sweep), "--out", str(tmp_path / "out"), "--quiet"),
    }
    for proc in procs.values():
        assert_one_line_error(*finish(proc), str(path), f"{ROBOT}.yaw", "not a finite number")


def test_check_refuses_a_device_file_without_reading_it():
    started = time.monotonic()
    code, err = finish(start("check", "/dev/zero"), timeout=30)
    assert_one_line_error(code, err, "/dev/zero", "not a regular file")
    assert time.monotonic() - started < 20


def test_check_refuses_a_fifo_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "line.toml"
    os.mkfifo(fifo)
    assert_one_line_error(*finish(start("check", str(fifo)), timeout=30), "not a regular file")


def test_check_refuses_a_file_over_the_size_cap(tmp_path):
    path = tmp_path / "big.toml"
    with path.open("w") as f:
        f.write(DEFAULT)
        f.write("#" * (MAX_CONFIG_BYTES + 1) + "\n")
    code, err = finish(start("check", str(path)), timeout=60)
    assert_one_line_error(code, err, str(path), f"larger than {MAX_CONFIG_BYTES // 2**20} MiB")


def test_a_hundred_thousand_part_types_are_checked_in_seconds(tmp_path):
    types = "".join(
        f'\n[[part_types]]\nname = "t{i}"\nsize = [0.05, 0.05, 0.05]\nmass = 0.1\n'
        for i in range(100_000)
    )
    text = DEFAULT.replace("[[devices]]", types + "\n[[devices]]", 1)
    good = write(tmp_path, "many", text)
    duplicate = write(tmp_path, "dup", text.replace('name = "t99999"', 'name = "t5"'))
    started = time.monotonic()
    procs = [start("check", str(good)), start("check", str(duplicate))]
    code, err = finish(procs[0], timeout=120)
    assert code == 0, err
    assert_one_line_error(
        *finish(procs[1], timeout=120), "part_types[100001].name", "duplicate part type 't5'"
    )
    assert time.monotonic() - started < 60  # it took minutes with a quadratic search


def test_check_vets_the_shipped_configs_and_they_build(tmp_path):
    for path in sorted((ROOT / "configs").glob("*line*.toml")):
        code, err = finish(start("check", str(path)))
        assert code == 0, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--seed", "-5"], "seed must be an integer from 0"),
        (["run", "--duration", "inf"], "must be a finite number > 0"),
        (["run", "--realtime", "nan"], "real-time factor must be a finite number > 0"),
        (["snapshot", "--out", "x.png", "--width", "100000"], "must be 16 to 4096 pixels"),
        (["snapshot", "--out", "x.png", "--settle", "nan"], "must be a finite number >= 0"),
    ],
)
def test_hostile_command_line_values_are_refused_in_one_line(args, message):
    code, err = finish(start(*args), timeout=60)
    assert code == 2 and "Traceback" not in err, err
    assert message in err.strip().splitlines()[-1], err
