"""Who may change the line, and the watchdog that takes control back from a silent holder.

Time here is wall-clock (monotonic) seconds passed in by the caller: a watchdog is about
real silence, and nothing in this module touches the simulation.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Expiry:
    holder: bytes
    timeout: float
    silent_for: float


class ControlLock:
    def __init__(self) -> None:
        self.holder: bytes | None = None
        self.timeout: float | None = None  # watchdog seconds, None = no watchdog
        self.last_seen = 0.0

    def holds(self, client: bytes) -> bool:
        return self.holder is not None and self.holder == client

    def take(self, client: bytes, timeout: float | None, now: float) -> bool:
        """Give control to `client` (again, with a new timeout); False if someone else has it."""
        if self.holder is not None and self.holder != client:
            return False
        self.holder, self.timeout, self.last_seen = client, timeout, now
        return True

    def release(self) -> None:
        self.holder, self.timeout = None, None

    def touch(self, client: bytes, now: float) -> None:
        """Any request from the holder counts as a sign of life."""
        if self.holds(client):
            self.last_seen = now

    def expired(self, now: float) -> Expiry | None:
        """The holder's silence if it outlasted the watchdog (control is then released)."""
        if self.holder is None or self.timeout is None:
            return None
        silent = now - self.last_seen
        if silent <= self.timeout:
            return None
        expiry = Expiry(self.holder, self.timeout, silent)
        self.release()
        return expiry
