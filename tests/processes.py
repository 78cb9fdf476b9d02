"""Subprocess helpers for tests (servers come from the `serve` fixture in conftest.py)."""

from __future__ import annotations

import subprocess
import sys

from twin.serve_process import ROOT, SERVE, ServeProcess

__all__ = ["ROOT", "SERVE", "ServeProcess", "run_script"]


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
