"""The workspace of a pick-and-place task, from the taught points of `twin.geometry`."""

from __future__ import annotations

import numpy as np

from twin.config import ArmConfig, ConveyorConfig, LineConfig, StationConfig
from twin.geometry import pick_point, place_point


def first_arm(cfg: LineConfig) -> ArmConfig:
    for d in cfg.devices:
        if isinstance(d, ArmConfig):
            return d
    raise ValueError(f"line '{cfg.name}' has no arm: a pick-and-place task needs one")


def surfaces_z(cfg: LineConfig) -> list[float]:
    return [
        d.height if isinstance(d, ConveyorConfig) else d.size[2]
        for d in cfg.devices
        if isinstance(d, (ConveyorConfig, StationConfig))
    ]


def workspace(
    cfg: LineConfig, arm: ArmConfig, margin: float = 0.12
) -> tuple[np.ndarray, np.ndarray]:
    """A box the tool is kept in: around the arm's taught points, from just above the lowest
    work surface up to a little over travel height."""
    transfers = [t for t in (cfg.controller.transfers if cfg.controller else []) if t.arm == arm.id]
    points = [p for t in transfers for p in (pick_point(cfg, t), place_point(cfg, t))]
    if points:
        xy = np.array([p[:2] for p in points])
        lo_xy, hi_xy = xy.min(axis=0) - margin, xy.max(axis=0) + margin
    else:
        base = np.array(arm.position[:2])
        lo_xy, hi_xy = base - arm.reach / 2, base + arm.reach / 2
    z_lo = min(surfaces_z(cfg), default=arm.position[2] + 0.05) + 0.005
    z_hi = max(arm.travel_height, z_lo + 0.1) + 0.05
    return np.array([*lo_xy, z_lo]), np.array([*hi_xy, z_hi])
