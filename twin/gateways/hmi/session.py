"""One browser connected to the HMI: its role, its outgoing queue, its request budget.

Telemetry must never wait for a browser. Each session sends only the newest `state`, at most
STATE_HZ times a second (CHANGE_HZ when a device's discrete state changed: a PackML state, an
e-stop), and the newest `kpis`, at most KPI_HZ times a second (a slow page
skips frames instead of falling behind; a twin in fast mode publishes hundreds of states and
tens of KPIs a second, more than a page can show), and a bounded queue of other messages
(oldest dropped when full); its own task sends them, and a send that does not complete within
SEND_TIMEOUT_S (a client that never reads) ends the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Callable
from typing import Any

SEND_TIMEOUT_S = 10.0
MAX_QUEUED = 256  # non-state messages waiting for a slow page
RATE_PER_S = 10.0  # requests a page may send per second on average ...
BURST = 20  # ... and at once
MAX_REFUSED_IN_A_ROW = 200  # a page that keeps sending what is refused is disconnected
# states sent to a page per second at most (the newest each time): the twin's own telemetry
# rate in real time (10 Hz), which the page's numbers (5 a second) and 3D view follow; more
# would only be parsed and dropped
STATE_HZ = 10.0
# ... but a state in which a device's discrete state changed (a PackML state, an e-stop) goes
# out as soon as one is due at this rate, so that an operator sees the change within a frame
CHANGE_HZ = 20.0
KPI_HZ = 2.0  # the page draws its KPI cards twice a second

_ids = itertools.count(1)


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.last = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Newest:
    """A stream of which a page needs only the newest message, at most `hz` a second."""

    def __init__(
        self, latest: Callable[[], str | None], hz: float, urgent_hz: float | None = None
    ) -> None:
        self.latest = latest  # the newest message as JSON (encoded once, shared by the pages)
        self.period = 1.0 / hz
        self.urgent_period = 1.0 / (urgent_hz or hz)
        self.pending = False
        self.urgent = False  # a pending message that should not wait a full period
        self.sent_at = -1e9

    def wait(self, now: float) -> float | None:
        """Seconds until the newest message may be sent; None if there is none to send."""
        if not self.pending:
            return None
        return max(0.0, self.sent_at + (self.urgent_period if self.urgent else self.period) - now)

    def take(self, now: float) -> str | None:
        self.pending = self.urgent = False
        self.sent_at = now
        return self.latest()


class Session:
    def __init__(
        self,
        websocket: Any,
        role: str,
        why: str,
        peer: str,
        latest_state: Callable[[], str | None],
        latest_camera: Callable[[str], str | None] = lambda camera: None,
        latest_kpis: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.id = next(_ids)
        self.websocket = websocket
        self.role = role
        self.why = why
        self.label = f"HMI browser {self.id} at {peer}"
        self.budget = TokenBucket(RATE_PER_S, BURST)
        self.refused_in_a_row = 0
        self._queue: deque[str] = deque(maxlen=MAX_QUEUED)
        self._state = Newest(latest_state, STATE_HZ, CHANGE_HZ)
        self._kpis = Newest(latest_kpis, KPI_HZ)
        self._latest_camera = latest_camera  # a camera's newest image message
        self._cameras_pending: set[str] = set()
        self._wake = asyncio.Event()
        self._closing: tuple[int, str] | None = None
        self._closed = asyncio.Event()
        self.closed_cleanly = False  # the browser closed the WebSocket on purpose

    @property
    def controller(self) -> bool:
        return self.role == "controller"

    def push(self, text: str) -> None:
        self._queue.append(text)
        self._wake.set()

    def state_ready(self, changed: bool = False) -> None:
        """A new state: the page gets the newest one when its turn comes (older are skipped);
        sooner if `changed` (a device's discrete state differs from the last state's)."""
        self._state.pending = True
        self._state.urgent |= changed
        self._wake.set()

    def kpis_ready(self) -> None:
        """New KPIs: as for the state, the newest when their turn comes."""
        self._kpis.pending = True
        self._wake.set()

    def camera_ready(self, camera: str) -> None:
        self._cameras_pending.add(camera)
        self._wake.set()

    async def send_forever(self) -> None:
        """Returns (by TimeoutError or a closed socket) when the browser stops taking data."""
        streams = (self._state, self._kpis)
        while True:
            now = time.monotonic()
            waits = [w for w in (s.wait(now) for s in streams) if w is not None]
            if not waits or min(waits) > 0:
                # a new message, or a stream's turn (faster would only queue up in the socket
                # and delay what the page shows)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(waits) if waits else None)
                self._wake.clear()
            while self._queue:
                await self._send(self._queue.popleft())
            for stream in streams:
                if stream.wait(time.monotonic()) == 0.0:
                    text = stream.take(time.monotonic())
                    if text is not None:
                        await self._send(text)
            while self._cameras_pending:
                image = self._latest_camera(self._cameras_pending.pop())
                if image is not None:
                    await self._send(image)
            if self._closing is not None:
                await self.websocket.close(*self._closing)
                self._closed.set()
                return

    async def close_after_sending(self, code: int, reason: str) -> None:
        """Close once what is queued (e.g. the refusals that explain why) has been sent."""
        self._closing = (code, reason)
        self._wake.set()
        try:
            await asyncio.wait_for(self._closed.wait(), SEND_TIMEOUT_S)
        except TimeoutError:
            pass

    async def _send(self, text: str) -> None:
        await asyncio.wait_for(self.websocket.send_text(text), SEND_TIMEOUT_S)
