"""Python inspectors named by tests/test_inspection.py's configs ("inspectors:NAME")."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np


def dark_is_bad(rgb: np.ndarray, mask: np.ndarray, part: dict[str, Any]) -> bool:
    """Pass a part unless its pixels are dark (what a trained model would decide)."""
    return bool(rgb[mask].mean() > 80)


def crashes(rgb: np.ndarray, mask: np.ndarray, part: dict[str, Any]) -> bool:
    raise RuntimeError("model weights not found")


def mumbles(rgb: np.ndarray, mask: np.ndarray, part: dict[str, Any]) -> str:
    return "maybe"


NOT_CALLABLE = 3


def hangs(rgb: np.ndarray, mask: np.ndarray, part: dict[str, Any]) -> bool:
    """An inspector stuck on its first part (a model server that never answers)."""
    threading.Event().wait(3600)
    return True
