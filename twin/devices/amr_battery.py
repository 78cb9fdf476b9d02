"""An AMR's battery: drained by driving (per metre, more with payload) and by the idle power
of the electronics, charged at a charger's power. Energies in Wh, power in W."""

from __future__ import annotations

from twin.config import BatteryConfig


class Battery:
    def __init__(self, cfg: BatteryConfig) -> None:
        self.cfg = cfg
        self.energy = cfg.initial * cfg.capacity  # Wh
        self.low_reported = cfg.initial < cfg.low

    @property
    def level(self) -> float:
        """State of charge, 0-1."""
        return self.energy / self.cfg.capacity

    @property
    def empty(self) -> bool:
        return self.energy <= 0.0

    @property
    def full(self) -> bool:
        return self.level >= self.cfg.full

    def drain(self, distance: float, payload: float, dt: float) -> bool:
        """Use the energy for `distance` m driven with `payload` kg over `dt` s; True when
        the level has just fallen below `low`."""
        cfg = self.cfg
        used = distance * (cfg.drive_energy + cfg.payload_energy * payload)
        used += cfg.idle_power * dt / 3600.0
        self.energy = max(0.0, self.energy - used)
        if not self.low_reported and self.level < cfg.low:
            self.low_reported = True
            return True
        return False

    def charge(self, power: float, dt: float) -> None:
        """Charge at `power` W for `dt` s (the idle draw is met by the charger), up to `full`."""
        cfg = self.cfg
        top = cfg.full * cfg.capacity
        if self.energy < top:
            self.energy = min(top, self.energy + power * dt / 3600.0)
        if self.level >= cfg.low:
            self.low_reported = False
