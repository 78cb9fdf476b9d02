"""Fault models, all seeded: station breakdowns (MTBF/MTTR or scripted) and sensor faults."""

from __future__ import annotations

import numpy as np

from twin.config import ScriptedWindow, SensorFault


class Breakdowns:
    """When a station is broken: exponential times between failures and to repair, plus any
    scripted windows. Time-based (calendar) failures, so availability -> MTBF / (MTBF + MTTR).
    """

    def __init__(
        self,
        mtbf: float,
        mttr: float,
        scripted: list[ScriptedWindow],
        rng: np.random.Generator,
    ) -> None:
        self.mtbf, self.mttr, self.rng = mtbf, mttr, rng
        self.scripted = sorted((w.at, w.at + w.duration) for w in scripted)
        self.down_until: float | None = None
        self.next_failure = rng.exponential(mtbf) if mtbf > 0 else float("inf")

    @property
    def down(self) -> bool:
        return self.down_until is not None

    def update(self, now: float) -> str | None:
        """Advance to `now`; returns "failed" or "repaired" on a change, else None."""
        if self.down_until is not None:
            if now >= self.down_until - 1e-9:
                self.down_until = None
                return "repaired"
            return None
        while self.scripted and self.scripted[0][1] <= now:
            self.scripted.pop(0)  # windows already over (e.g. overlapping ones)
        if self.scripted and self.scripted[0][0] <= now + 1e-9:
            self.down_until = self.scripted.pop(0)[1]
            return "failed"
        if now >= self.next_failure:
            repair = self.rng.exponential(self.mttr)
            self.down_until = now + repair
            self.next_failure = self.down_until + self.rng.exponential(self.mtbf)
            return "failed"
        return None


class SensorFaults:
    """Applies stuck-on, stuck-off, dropout and noise faults to a binary sensor reading.

    Within its window a fault acts by kind: `stuck_on` / `stuck_off` force the reading;
    `dropout` loses the signal (reads clear) in short spells that start at random, `rate`
    per second on average, and last `duration` s each; `noise` inverts the reading for one
    step at random instants, `rate` per second on average. Both random kinds are Poisson
    processes in simulated time, so their statistics do not depend on the timestep.
    """

    def __init__(self, faults: list[SensorFault], rng: np.random.Generator) -> None:
        self.faults = faults
        self.rng = rng
        self.active: set[int] = set()
        self._next_at = [float("inf")] * len(faults)  # next random instant of fault i
        self._until = [float("-inf")] * len(faults)  # dropout i reads clear until then
        self.glitches = 0  # noise flips and drop-out spells so far

    def apply(self, reading: bool, now: float) -> tuple[bool, list[tuple[str, bool]]]:
        """Return the faulty reading and the (fault kind, active) changes at this step."""
        changes: list[tuple[str, bool]] = []
        for i, f in enumerate(self.faults):
            on = f.start <= now < f.end
            if on != (i in self.active):
                (self.active.add if on else self.active.discard)(i)
                changes.append((f.kind, on))
                if on and f.rate > 0:
                    self._next_at[i] = now + self.rng.exponential(1 / f.rate)
            if not on:
                continue
            if f.kind == "stuck_on":
                reading = True
            elif f.kind == "stuck_off":
                reading = False
            elif f.kind == "dropout":
                if now >= self._next_at[i]:
                    self._until[i] = self._next_at[i] + f.duration
                    self.glitches += 1
                    while self._next_at[i] <= now:  # spells that begin during a spell merge
                        self._next_at[i] += self.rng.exponential(1 / f.rate)
                if now < self._until[i]:
                    reading = False
            elif f.kind == "noise" and now >= self._next_at[i]:
                reading = not reading  # several instants within one step are one flip
                self.glitches += 1
                while self._next_at[i] <= now:
                    self._next_at[i] += self.rng.exponential(1 / f.rate)
        return reading, changes
