"""Dock: a place on the floor where an AMR parks so a cell's arm, a source or a sink can
load or unload its deck.

The dock itself only knows which AMR is on it (the AMR reports docking and undocking) and
reads that AMR's deck; it costs nothing per step. An AMR claims the dock when it starts to
dock and frees it when it has undocked, so two AMRs never dock onto one dock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pybullet

from twin.config import DockConfig
from twin.devices.base import BuildContext, Device, SignalSpec

if TYPE_CHECKING:
    from twin.devices.amr import Amr

_MARK = 0.002  # m: the floor marking's thickness (visual only: nothing collides with it)


class Dock(Device):
    kind = "dock"
    signal_specs = (
        SignalSpec(name="occupied", type="bool", doc="an AMR is docked here (within tolerance)"),
        SignalSpec(name="amr", type="str", attr="amr_id", doc="the docked AMR, or ''"),
        SignalSpec(name="part", type="int|null", doc="the part on the docked AMR's deck"),
        SignalSpec(name="part_type", type="str", doc="its part type, or ''"),
        SignalSpec(name="empty_amr", type="bool", doc="a docked AMR with an empty deck"),
        SignalSpec(
            name="delivery",
            type="bool",
            doc="the docked AMR brought its part here (to be unloaded), rather than being "
            "loaded here",
        ),
        SignalSpec(name="claimed", type="str", doc="the AMR docking, docked or undocking, or ''"),
    )

    def __init__(self, cfg: DockConfig, ctx: BuildContext) -> None:
        super().__init__(cfg, ctx)
        self.docked: Amr | None = None
        self.claimed = ""
        c = ctx.world.client
        if ctx.world.visuals:
            vis = c.createVisualShape(
                pybullet.GEOM_BOX, halfExtents=[0.3, 0.2, _MARK / 2], rgbaColor=[0.2, 0.6, 0.3, 1]
            )
            c.createMultiBody(
                baseMass=0,
                baseCollisionShapeIndex=-1,
                baseVisualShapeIndex=vis,
                basePosition=[cfg.position[0], cfg.position[1], _MARK / 2],
                baseOrientation=c.getQuaternionFromEuler([0, 0, cfg.yaw]),
            )

    @property
    def occupied(self) -> bool:
        return self.docked is not None

    @property
    def amr_id(self) -> str:
        return self.docked.id if self.docked is not None else ""

    @property
    def part(self) -> int | None:
        return self.docked.load if self.docked is not None else None

    @property
    def part_type(self) -> str:
        return self.docked.load_type if self.docked is not None else ""

    @property
    def empty_amr(self) -> bool:
        amr = self.docked
        return amr is not None and amr.load is None and amr.load_mass == 0.0

    @property
    def delivery(self) -> bool:
        amr = self.docked
        return amr is not None and amr.load is not None and amr.load == amr.arrived_with


def dock_of(ctx: BuildContext, device_id: str, dock_id: str) -> Dock:
    """The dock a source, sink or AMR refers to (config validation guarantees it)."""
    dev = ctx.devices.get(dock_id)
    if not isinstance(dev, Dock):
        raise LookupError(f"device '{device_id}': dock '{dock_id}' not built")
    return dev
