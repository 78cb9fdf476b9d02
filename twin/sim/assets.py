"""Find model files: the project's assets/ first, then pybullet_data."""

from __future__ import annotations

from pathlib import Path

import pybullet_data

ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"
SEARCH_PATH = (ASSETS_DIR, Path(pybullet_data.getDataPath()))


def resolve_asset(name: str) -> Path:
    """Return the absolute path of a model file, or raise FileNotFoundError listing where we looked."""
    candidate = Path(name)
    if candidate.is_absolute():
        if candidate.is_file():
            return candidate
        raise FileNotFoundError(f"asset '{name}' does not exist")
    for root in SEARCH_PATH:
        path = root / name
        if path.is_file():
            return path
    where = ", ".join(str(r) for r in SEARCH_PATH)
    raise FileNotFoundError(f"asset '{name}' not found (searched {where})")
