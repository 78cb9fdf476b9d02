"""AMR transports from events: `transport_requested`, `_assigned` and `_done` paired into legs.

A request names its part, or (a part still to be released at the receiving store) its order;
an assignment takes the oldest open request of that part or order; from then on the leg
belongs to its AMR until the AMR delivers (`transport_done`, which names the part).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from twin.events import Event, TransportAssigned, TransportDone, TransportRequested


class Leg(msgspec.Struct, kw_only=True):
    """One AMR transport of a part, with its times (s; null until they happen)."""

    from_cell: str
    to_cell: str
    requested: float | None  # null: delivered without a request (an external fleet manager)
    amr: str | None = None
    assigned: float | None = None
    done: float | None = None


Key = int | tuple[str, str]  # a part id, or ("order", order id) for a part not yet released


class TransportMatcher:
    def __init__(self) -> None:
        self.open: dict[Key, list[Leg]] = {}  # requested, no AMR yet: oldest first
        self.under_way: dict[str, Leg] = {}  # AMR -> the leg it was assigned

    @staticmethod
    def _key(e: TransportRequested | TransportAssigned) -> Key:
        part = e.part
        return part if part is not None else ("order", getattr(e, "order", None) or "")

    @property
    def waiting(self) -> int:
        """Requests no AMR has been assigned to yet."""
        return sum(len(legs) for legs in self.open.values())

    def feed(self, e: Event) -> tuple[Literal["requested", "assigned", "done"], Leg] | None:
        """Apply one event; what happened to which leg, or None if it was no transport's."""
        if isinstance(e, TransportRequested):
            leg = Leg(from_cell=e.from_cell, to_cell=e.to_cell, requested=e.time)
            self.open.setdefault(self._key(e), []).append(leg)
            return "requested", leg
        if isinstance(e, TransportAssigned):
            key = self._key(e)
            legs = self.open.get(key)
            if not legs:
                return None  # an assignment without a request: nothing to time
            leg = legs.pop(0)
            if not legs:
                del self.open[key]
            leg.amr, leg.assigned = e.amr, e.time
            self.under_way[e.amr] = leg
            return "assigned", leg
        if isinstance(e, TransportDone):
            found: Leg | None = self.under_way.pop(e.amr, None)
            if found is not None:
                leg = found
            else:
                legs = self.open.get(e.part)
                if legs:
                    leg = legs.pop(0)
                    if not legs:
                        del self.open[e.part]
                else:
                    leg = Leg(from_cell=e.from_cell, to_cell=e.to_cell, requested=None)
                leg.amr = e.amr
            leg.done = e.time
            return "done", leg
        return None
