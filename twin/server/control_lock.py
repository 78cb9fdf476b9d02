"""Who may change the line: one control lease at a time, bound to a connection and a secret.

`take_control` gives the caller a lease: a random token that only the reply carries (never
telemetry, never a recording). A request changes the line only if it carries the token and
comes from the connection that took it (its ROUTER identity and, with Curve, its key): a
stranger who learns or reuses the routing id of the holder gets nothing, and a holder who
reconnects is a new client. Every lease has a bounded life: a holder that stays silent for
longer than its timeout loses control (with a watchdog, the watchdog is that timeout and the
line also safe-stops; without one, the server's lease timeout applies).

Time here is wall-clock (monotonic) seconds passed in by the caller: a lease is about real
silence, and nothing in this module touches the simulation.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass

DEFAULT_LEASE_S = 10.0
_RETIRED_KEPT = 64  # how many old leases are remembered, to say "stale" instead of "unknown"


def _same(a: str, b: str) -> bool:
    """Constant-time comparison (a lease is a secret), for any string a client may send."""
    return secrets.compare_digest(a.encode(), b.encode())


@dataclass
class Expiry:
    holder: bytes
    timeout: float
    silent_for: float
    watchdog: bool  # the timeout was the holder's watchdog (the line must safe-stop)


class LeaseRefused(Exception):
    """A lease that does not give control: `code` is not_controller, stale_lease or bad_lease."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ControlLock:
    def __init__(self, lease_timeout: float = DEFAULT_LEASE_S) -> None:
        if not lease_timeout > 0:
            raise ValueError(f"the lease timeout must be > 0 s, got {lease_timeout}")
        self.lease_timeout = lease_timeout
        self.holder: bytes | None = None  # the ROUTER identity of the holder's connection
        self.user: str | None = None  # its Curve key (None without Curve)
        self.lease: str | None = None
        self.watchdog: float | None = None
        self.last_seen = 0.0
        self._retired: OrderedDict[str, str] = OrderedDict()  # old lease -> why it ended

    @property
    def timeout(self) -> float:
        """Seconds of silence after which the holder loses control."""
        return self.watchdog if self.watchdog is not None else self.lease_timeout

    def holds(self, client: bytes, lease: str | None, user: str | None = None) -> bool:
        return (
            self.lease is not None
            and lease is not None
            and _same(lease, self.lease)
            and client == self.holder
            and user == self.user
        )

    def check(self, client: bytes, lease: str | None, user: str | None = None) -> None:
        """Raise LeaseRefused unless `client` holds control with `lease`."""
        if self.holds(client, lease, user):
            return
        if not lease:
            raise LeaseRefused(
                "not_controller",
                "this request changes the line: send take_control, then put the lease it "
                "returns in every such request"
                + (" (another client holds control)" if self.holder is not None else ""),
            )
        why = self._retired.get(lease)
        if why is not None:
            raise LeaseRefused("stale_lease", f"this lease is no longer valid: {why}")
        if self.lease is not None and _same(lease, self.lease):
            raise LeaseRefused(
                "bad_lease", "this lease belongs to another connection: take_control from here"
            )
        raise LeaseRefused("bad_lease", "this server never issued this lease")

    def take(
        self,
        client: bytes,
        lease: str | None,
        watchdog: float | None,
        now: float,
        user: str | None = None,
    ) -> str | None:
        """Give control to `client` with a fresh lease and return it; None if someone else
        holds control. The holder may take again (new watchdog) with its current lease."""
        if self.holder is not None and not self.holds(client, lease, user):
            return None
        self._retire("replaced by a new take_control")
        self.holder, self.user, self.watchdog, self.last_seen = client, user, watchdog, now
        self.lease = secrets.token_hex(16)
        return self.lease

    def renew(self, why: str) -> str:
        """A new lease for the same holder (after a reset: requests in flight for the old
        line are refused with stale_lease)."""
        assert self.lease is not None
        self._retire(why)
        self.lease = secrets.token_hex(16)
        return self.lease

    def release(self, why: str = "released") -> None:
        self._retire(why)
        self.holder = None
        self.user = None
        self.watchdog = None

    def _retire(self, why: str) -> None:
        if self.lease is not None:
            self._retired[self.lease] = why
            while len(self._retired) > _RETIRED_KEPT:
                self._retired.popitem(last=False)
        self.lease = None

    def touch(self, client: bytes, lease: str | None, now: float, user: str | None = None) -> None:
        """A request from the holder carrying its lease counts as a sign of life."""
        if self.holds(client, lease, user):
            self.last_seen = now

    def expired(self, now: float) -> Expiry | None:
        """The holder's silence if it outlasted its timeout (control is then released)."""
        if self.holder is None:
            return None
        silent = now - self.last_seen
        if silent <= self.timeout:
            return None
        expiry = Expiry(self.holder, self.timeout, silent, self.watchdog is not None)
        self.release(
            f"the holder was silent for {silent:.2f} s ("
            + ("watchdog" if expiry.watchdog else "lease timeout")
            + f" {expiry.timeout:g} s)"
        )
        return expiry
