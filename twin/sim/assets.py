"""Find model files: the project's assets/ first, then pybullet_data.

A config names models by a path relative to one of these roots; absolute paths and paths
that climb out of the roots (`../../etc/passwd`) are refused, so a config can make the twin
read only the model files it ships with.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pybullet_data

ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"
SEARCH_PATH = (ASSETS_DIR, Path(pybullet_data.getDataPath()))


def resolve_asset(name: str) -> Path:
    """Return the absolute path of a model file under a search root, or raise
    FileNotFoundError saying why the name is refused or where we looked."""
    candidate = PurePosixPath(name)
    if not name or candidate.is_absolute() or Path(name).is_absolute() or "\\" in name:
        raise FileNotFoundError(
            f"asset '{name}' must be a path relative to assets/ or pybullet_data"
        )
    if ".." in candidate.parts:
        raise FileNotFoundError(f"asset '{name}' must not leave assets/ or pybullet_data ('..')")
    for root in SEARCH_PATH:
        path = (root / name).resolve()
        # a symlink inside a root may still point elsewhere: the real file must be inside
        if path.is_relative_to(root.resolve()) and path.is_file():
            return path
    where = ", ".join(str(r) for r in SEARCH_PATH)
    raise FileNotFoundError(f"asset '{name}' not found (searched {where})")
