"""An asyncio client of the twin's ZeroMQ protocol, shared by the gateways.

Requests go over one DEALER socket with an id each; a reader task hands each reply to the
request that waits for it. Telemetry (state, event, kpi) arrives on a SUB socket and is handed
to the callbacks the gateway registered. Every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import zmq
import zmq.asyncio

from twin.protocol import messages as m
from twin.protocol.codec import decode_reply, decode_telemetry, encode


async def cancel_and_wait(tasks: Iterable[asyncio.Task | None]) -> None:
    """Cancel background tasks and wait for each to end; whatever one raised on its way out
    is of no interest to a gateway that is closing."""
    running = [t for t in tasks if t is not None]
    for task in running:
        task.cancel()
    for task in running:
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass


class LinkError(Exception):
    """The twin refused a request: `code` and `message` are the twin's own."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class TwinLink:
    def __init__(
        self,
        control: str,
        telemetry: str,
        timeout: float = 5.0,
        curve: tuple[str, str] | None = None,
        state_period: float = 0.01,
    ) -> None:
        """`curve` = (this gateway's NAME.key_secret, the twin's server.key) for a twin
        served with --curve (twin keys generate)."""
        self.control = control
        self.telemetry = telemetry
        self.timeout = timeout
        self._ctx = zmq.asyncio.Context()
        self._dealer = self._socket(zmq.DEALER, curve)
        self._dealer.connect(control)
        self._sub = self._socket(zmq.SUB, curve)
        self._sub.setsockopt(zmq.RCVHWM, 10000)
        self._sub.connect(telemetry)
        for topic in (m.TOPIC_STATE, m.TOPIC_EVENT, m.TOPIC_KPI):
            self._sub.setsockopt(zmq.SUBSCRIBE, topic)
        self._ids = itertools.count(1)
        # states closer together than this are skipped (the newest wins): the fastest
        # sampling a gateway offers is 10 ms, more would cost the machine and help no one
        self.state_period = state_period
        self._latest_state: bytes | None = None
        self.lease: str | None = None  # the twin's control lease, sent with every request
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        # telemetry handlers, plain functions or coroutines
        self.on_state: Callable[[m.State], Awaitable[None] | None] | None = None
        self.on_event: Callable[[m.EventMsg], Awaitable[None] | None] | None = None
        self.on_kpis: Callable[[m.Kpis], Awaitable[None] | None] | None = None
        self.on_connection: Callable[[bool], Awaitable[None] | None] | None = None
        self.connected = True  # the twin answered at start (see watch)

    def _socket(self, kind: int, curve: tuple[str, str] | None) -> zmq.asyncio.Socket:
        sock = self._ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            from twin.curve_keys import make_client_socket

            make_client_socket(sock, *curve)
        return sock

    def start(self) -> None:
        """Start reading replies and telemetry (call from the running event loop)."""
        self._state_ready = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._read_replies()),
            asyncio.create_task(self._read_telemetry()),
            asyncio.create_task(self._states()),
            asyncio.create_task(self.watch()),
        ]

    async def request(self, req: Any, timeout: float | None = None) -> Any:
        """Send one request struct; the reply struct, or LinkError/TimeoutError."""
        req.id = next(self._ids)
        if req.lease is None and self.lease is not None:
            req.lease = self.lease
        elif req.lease == "":  # explicitly without the lease (see watch)
            req.lease = None
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[req.id] = future
        try:
            await self._dealer.send(encode(req))
            reply = await asyncio.wait_for(future, self.timeout if timeout is None else timeout)
        except TimeoutError:
            raise TimeoutError(
                f"no reply to '{m.request_tag(type(req))}' from the twin at {self.control}"
            ) from None
        finally:
            self._waiting.pop(req.id, None)
        if isinstance(reply, m.Error):
            raise LinkError(reply.code, reply.message)
        if isinstance(reply, m.ControlReply):  # take_control and reset hand out a lease
            self.lease = reply.lease
        elif isinstance(req, m.ReleaseControl):
            self.lease = None
        return reply

    async def _read_replies(self) -> None:
        while True:
            data = await self._dealer.recv()
            try:
                reply = decode_reply(data)
            except Exception:
                continue  # not ours to understand: a newer server's reply kind
            future = self._waiting.get(reply.id) if isinstance(reply.id, int) else None
            if future is not None and not future.done():
                future.set_result(reply)

    async def _read_telemetry(self) -> None:
        """Events and KPIs are handled in order; of the states only the newest is kept for
        the state task, so a gateway that falls behind skips stale states, never lags."""
        while True:
            topic, payload = await self._sub.recv_multipart()
            if topic == m.TOPIC_STATE:
                self._latest_state = payload
                self._state_ready.set()
                continue
            await self._handle(topic, payload)

    async def _states(self) -> None:
        """Hand the newest state to on_state, at most once per `state_period`."""
        while True:
            await self._state_ready.wait()
            self._state_ready.clear()
            payload, self._latest_state = self._latest_state, None
            started = time.monotonic()
            if payload is not None:
                await self._handle(m.TOPIC_STATE, payload)
            rest = self.state_period - (time.monotonic() - started)
            if rest > 0:
                await asyncio.sleep(rest)

    async def _handle(self, topic: bytes, payload: bytes) -> None:
        try:
            msg = decode_telemetry(payload)
        except Exception:
            return
        handler: Callable[[Any], Awaitable[None] | None] | None = {  # type: ignore[assignment]
            m.TOPIC_STATE: self.on_state,
            m.TOPIC_EVENT: self.on_event,
            m.TOPIC_KPI: self.on_kpis,
        }.get(topic)
        if handler is None:
            return
        try:
            result = handler(msg)
            if inspect.isawaitable(result):
                await result
        except Exception:  # a gateway bug must not stop the mirror
            traceback.print_exc()

    async def watch(self, period: float = 1.0) -> None:
        """Ask the twin every `period` s whether it is there; `connected` says the answer and
        `on_connection(bool)` hears each change. The probe carries no lease on purpose: it
        must not keep alive a control lease whose client has gone."""
        while True:
            try:
                await self.request(m.Hello(client="gateway", lease=""), timeout=period)
                up = True
            except (LinkError, TimeoutError):
                up = False
            if up != self.connected:
                self.connected = up
                if self.on_connection is not None:
                    result = self.on_connection(up)
                    if inspect.isawaitable(result):
                        await result
            await asyncio.sleep(period)

    async def close(self) -> None:
        await cancel_and_wait(self._tasks)
        self._dealer.close(linger=0)
        self._sub.close(linger=0)
        self._ctx.term()
