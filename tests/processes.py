"""Subprocess helpers for tests (servers come from the `serve` fixture in conftest.py)."""

from __future__ import annotations

import json
import subprocess
import sys

from twin.serve_process import ROOT, SERVE, ServeProcess

__all__ = ["ROOT", "SERVE", "ServeProcess", "run_example", "run_script"]


def run_example(script: str, *args: str, timeout: float) -> dict:
    """Run `examples/<script> args...` to its end (within `timeout` s): it must exit 0 and
    print its result as JSON on its last line, which is returned."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_script(code: str, *args: str, **kwargs) -> subprocess.Popen:
    """Start `python -c code args...` from the repo root (caller must kill it)."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )
