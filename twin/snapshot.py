"""Render a line headless to a PNG (`twin snapshot`)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from twin.automation import build_line
from twin.config import LineConfig


def snapshot(
    cfg: LineConfig,
    out: str | Path,
    *,
    settle_s: float = 0.0,
    width: int | None = None,
    height: int | None = None,
) -> Path:
    """Build the line, optionally run it for `settle_s` simulated seconds, and save a picture."""
    out = Path(out)
    with build_line(cfg, visuals=True) as line:
        if settle_s > 0:
            line.step(round(settle_s / line.dt))
        rgb = line.world.render(cfg.view, width, height)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(out)
    return out
