"""The gateway's hold on the twin's control, on behalf of one of its own clients.

A gateway has one connection to the twin, so it holds the twin's control lease for whichever
of its clients (an OPC UA session, the Modbus clients) acted last with the controller role:
the first write or method call takes it (`take_control` with a watchdog), and the gateway
heartbeats the twin while that client shows signs of life. When the client goes quiet for
`idle_timeout` s (or disconnects), the heartbeats stop, so the twin's own watchdog trips and
puts the line in its safe state, exactly as if the client had talked to the twin directly.
Another client cannot act while the holder is alive: it gets a refusal naming the holder. The
same user (by name) in a new session, e.g. a PLC that reconnected, takes over at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from twin.gateways.link import LinkError, TwinLink
from twin.protocol import messages as m

_LOST = ("not_controller", "stale_lease", "bad_lease")  # the twin no longer knows our lease


class LeaseRefused(Exception):
    """Another client of this gateway holds control (or the twin gave it to someone else)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Lease:
    def __init__(self, link: TwinLink, watchdog: float = 2.0, idle_timeout: float = 5.0) -> None:
        self.link = link
        self.watchdog = watchdog
        self.idle_timeout = idle_timeout
        self.owner: Any = None
        self.owner_label = ""
        self.last_seen: dict[int, float] = {}  # id(owner) -> monotonic time of its last request
        self.held = False
        self._lock = asyncio.Lock()
        self._heartbeat: asyncio.Task[None] | None = None

    def touch(self, owner: Any) -> None:
        """`owner` sent something: a sign of life."""
        self.last_seen[id(owner)] = time.monotonic()

    def forget(self, owner: Any) -> None:
        """`owner` is gone (session closed)."""
        self.last_seen.pop(id(owner), None)

    def _alive(self, owner: Any) -> bool:
        seen = self.last_seen.get(id(owner))
        return seen is not None and time.monotonic() - seen <= self.idle_timeout

    async def acquire(self, owner: Any, label: str) -> None:
        """Hold the twin's control for `owner`, or LeaseRefused."""
        self.touch(owner)
        async with self._lock:
            # the same user in a new session (a PLC that reconnected) takes over at once
            other = self.owner is not None and self.owner is not owner and self.owner_label != label
            if other and self._alive(self.owner):
                raise LeaseRefused(
                    "control_held",
                    f"{self.owner_label} holds control through this gateway; "
                    f"it is released {self.idle_timeout:g} s after that client goes quiet",
                )
            if not self.held:
                try:
                    await self.link.request(m.TakeControl(watchdog=self.watchdog))
                except LinkError as e:
                    raise LeaseRefused(e.code, f"the twin refused control: {e.message}") from None
                self.held = True
                if self._heartbeat is None or self._heartbeat.done():
                    self._heartbeat = asyncio.create_task(self._keep_alive())
            self.owner, self.owner_label = owner, label

    async def command(self, owner: Any, label: str, device: str, command: str, args: dict) -> None:
        """Carry out one device command for `owner` under the lease (LinkError if refused)."""
        await self.acquire(owner, label)
        try:
            await self.link.request(m.Command(device=device, command=command, args=args))
        except LinkError as e:
            # the twin's watchdog or lease timeout took it meanwhile: once more
            if e.code in ("not_controller", "stale_lease"):
                self.held = False
                await self.acquire(owner, label)
                await self.link.request(m.Command(device=device, command=command, args=args))
            else:
                raise

    async def _keep_alive(self) -> None:
        period = max(0.05, self.watchdog / 4)
        while self.held:
            await asyncio.sleep(period)
            if self.owner is None or not self._alive(self.owner):
                # the client went quiet: stop vouching for it, the twin's watchdog trips
                self.held, self.owner, self.owner_label = False, None, ""
                return
            try:
                await self.link.request(m.Heartbeat(), timeout=self.watchdog)
            except (LinkError, TimeoutError):
                self.held = False
                return

    async def release(self) -> None:
        if self.held:
            self.held = False
            try:
                await self.link.request(m.ReleaseControl(), timeout=1.0)
            except (LinkError, TimeoutError):
                pass
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        self.owner = None
