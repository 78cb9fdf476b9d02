"""Request rate limiting: a token bucket per client, so a flood is answered, not queued.

Each client may send `burst` requests at once and `rate` per second on average; a request
beyond that is refused (`rate_limited`) without being decoded or carried out. Buckets of clients
that stayed quiet long enough to refill completely are forgotten, so clients that come and go
leave nothing behind. Time is wall-clock seconds passed in by the caller.
"""

from __future__ import annotations

from collections.abc import Hashable

DEFAULT_RATE = 20_000.0  # requests/s per client: far above any lockstep controller
DEFAULT_BURST = 2_000
DEFAULT_MAX_QUEUED = 1_000  # requests ZeroMQ queues per client before it stops reading it
PRUNE_EVERY_S = 10.0


class RateLimiter:
    def __init__(self, rate: float = DEFAULT_RATE, burst: int = DEFAULT_BURST) -> None:
        if rate < 0 or burst < 1:
            raise ValueError(f"need rate >= 0 (0 = off) and burst >= 1, got {rate}, {burst}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._buckets: dict[Hashable, list[float]] = {}  # client -> [tokens, last refill time]
        self._pruned_at = 0.0

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def admit(self, client: Hashable, now: float) -> bool:
        """Take one token from `client`'s bucket; False if it is empty."""
        rate = self.rate
        if not rate:
            return True
        if now - self._pruned_at > PRUNE_EVERY_S:
            self._prune(now)
        bucket = self._buckets.get(client)
        if bucket is None:
            self._buckets[client] = [self.burst - 1.0, now]
            return True
        tokens = bucket[0] + (now - bucket[1]) * rate
        if tokens > self.burst:
            tokens = self.burst  # a full bucket
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True

    def _prune(self, now: float) -> None:
        refill_s = self.burst / self.rate
        self._buckets = {c: b for c, b in self._buckets.items() if now - b[1] < refill_s}
        self._pruned_at = now

    def __len__(self) -> int:
        return len(self._buckets)
