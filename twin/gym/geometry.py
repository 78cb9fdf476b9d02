"""Taught points of a pick-and-place task, from config geometry only (as the sequencer does)."""

from __future__ import annotations

import math

import numpy as np

from twin.config import ArmConfig, ConveyorConfig, LineConfig, StationConfig, Transfer


def conveyor_point(belt: ConveyorConfig, along: float) -> np.ndarray:
    c, s = math.cos(belt.yaw), math.sin(belt.yaw)
    x0, y0, _ = belt.position
    return np.array([x0 + c * along, y0 + s * along, belt.height])


def station_point(st: StationConfig) -> np.ndarray:
    return np.array([st.position[0], st.position[1], st.size[2]])


def pick_point(cfg: LineConfig, t: Transfer) -> np.ndarray:
    if t.pick.eye is not None:
        eye = cfg.device(t.pick.eye)
        return conveyor_point(cfg.device(eye.conveyor), eye.offset)
    return station_point(cfg.device(t.pick.station))


def place_point(cfg: LineConfig, t: Transfer) -> np.ndarray:
    if t.place.station is not None:
        return station_point(cfg.device(t.place.station))
    return conveyor_point(cfg.device(t.place.conveyor), t.place.offset)


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
