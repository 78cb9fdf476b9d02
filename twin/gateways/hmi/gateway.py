"""The HMI gateway: a protocol client of the twin that serves the page to browsers.

One TwinLink mirrors the twin's telemetry; each state is encoded to JSON once and offered to
every browser session (sessions keep only the newest, see session.py). Page requests are
checked here for shape and role, then sent to the twin, which checks them like any client's;
refusals come back to the page with the twin's own code and message and land in the alarm
list. Control is held with the gateway's lease (twin.gateways.lease) on behalf of the one
controller-role browser that acted last; a browser that goes quiet lets the twin's watchdog
trip, a browser that closes its page releases control.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from twin.gateways.hmi import messages as ops
from twin.gateways.hmi.alarms import AlarmList, Entry
from twin.gateways.hmi.cameras import CameraFeed
from twin.gateways.hmi.security import (
    check_bind,
    controller_token,
    parse_address,
    role_for,
    same_origin,
)
from twin.gateways.hmi.session import CHANGE_HZ, MAX_REFUSED_IN_A_ROW, Session
from twin.gateways.lease import Lease, LeaseRefused
from twin.gateways.link import LinkError, TwinLink
from twin.protocol import messages as m

STATIC = Path(__file__).with_name("static")
DEFAULT_ADDRESS = "127.0.0.1:8080"
MAX_SESSIONS = 64
CLEAN_CLOSE = (1000, 1001)  # normal closure, going away (tab closed, page left)
_json = msgspec.json.Encoder()


@dataclass
class HmiOptions:
    address: str = DEFAULT_ADDRESS
    control: str = "tcp://127.0.0.1:5555"
    telemetry: str = "tcp://127.0.0.1:5556"
    allow_remote: bool = False
    curve: tuple[str, str] | None = None  # (this gateway's NAME.key_secret, the twin's server.key)
    tls: tuple[str, str] | None = None  # (certificate file, key file): serve https/wss
    watchdog: float = 2.0  # s: the twin safe-stops if the controlling browser goes silent
    idle_timeout: float = 5.0  # s without a sign of life from the controlling browser


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the command owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HmiGateway:
    def __init__(self, opts: HmiOptions) -> None:
        self.opts = opts
        self.host, self.port = parse_address(opts.address)
        check_bind(self.host, opts.allow_remote)
        if opts.tls is not None:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(*opts.tls)
        self.token = controller_token()
        self.sessions: set[Session] = set()
        self.alarms = AlarmList()
        self.link: TwinLink | None = None
        self.lease: Lease | None = None
        self.twin_role = "controller"
        self.welcome: dict[str, Any] = {}
        self._state: m.State | None = None
        self._discrete: tuple[Any, ...] = ()  # what of the last state a change of is urgent
        self._packml: list[str] = []  # the line and its stations
        self._state_json: str | None = None
        self._kpis: m.Kpis | None = None
        self._kpis_json: str | None = None
        self._step, self._time = 0, 0.0
        self._control_seen: tuple[bool, int] = (False, 0)
        self._server: _QuietServer | None = None
        self.cameras: CameraFeed | None = None
        self._camera_json: dict[str, str] = {}
        self._serving: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        # the twin may publish hundreds of states a second (fast mode): only those a page can
        # be sent are decoded
        link = TwinLink(
            self.opts.control,
            self.opts.telemetry,
            curve=self.opts.curve,
            state_period=1 / CHANGE_HZ,
        )
        self.link = link
        link.start()
        hello = await link.request(m.Hello(client="hmi"))
        describe = await link.request(m.Describe())
        self.twin_role = hello.role
        self._packml = [d["id"] for d in describe.devices if d.get("kind") in ("station", "line")]
        self.lease = Lease(link, watchdog=self.opts.watchdog, idle_timeout=self.opts.idle_timeout)
        self.welcome = {
            "type": "welcome",
            "line": describe.line,
            "mode": describe.mode,
            "timestep": describe.timestep,
            "builtin_controller": hello.builtin_controller,
            "devices": describe.devices,
            "part_types": describe.part_types,
            "network": describe.network,  # the AMR route network (null without one)
            "packml": describe.packml,
            "watchdog": self.opts.watchdog,
        }
        self._on_state(await link.request(m.GetState()))
        self._on_kpis(await link.request(m.GetKpis()))
        link.on_state, link.on_event, link.on_kpis = self._on_state, self._on_event, self._on_kpis
        cameras = [d["id"] for d in describe.devices if d.get("kind") == "camera"]
        self.cameras = CameraFeed(self.opts.telemetry, cameras, self._on_camera, self.opts.curve)
        self.cameras.start()
        await self._serve()

    async def _serve(self) -> None:
        app = Starlette(
            routes=[
                Route("/", self._index),
                WebSocketRoute("/ws", self._websocket),
                Mount("/static", StaticFiles(directory=STATIC), name="static"),
            ]
        )
        config = uvicorn.Config(
            app,
            host=self.host,
            port=self.port,
            log_level="warning",
            access_log=False,  # the controller token is in the page's URL
            lifespan="off",
            ws="websockets-sansio",  # a send waits for a full socket buffer: see session.py
            ws_max_size=ops.MAX_MESSAGE_BYTES,
            # a page gets about 25 kB/s (states of 2 kB, 10 a second; camera images are JPEG):
            # deflating them would cost the HMI and the browser CPU for nothing
            ws_per_message_deflate=False,
            limit_concurrency=2 * MAX_SESSIONS,  # beyond: HTTP 503, not unbounded work
            ws_ping_interval=5.0,
            ws_ping_timeout=10.0,
            ssl_certfile=self.opts.tls[0] if self.opts.tls else None,
            ssl_keyfile=self.opts.tls[1] if self.opts.tls else None,
        )
        self._server = _QuietServer(config)
        self._serving = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._serving.done():
                self._serving.result()  # raises why it could not listen
                raise OSError(f"the HMI could not listen on {self.opts.address}")
            await asyncio.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        scheme = "https" if self.opts.tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/"

    @property
    def controller_url(self) -> str:
        return f"{self.url}?token={self.token}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            for session in list(self.sessions):
                with contextlib.suppress(Exception):
                    await session.websocket.close(code=1001)
        if self._serving is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._serving, 5.0)
        if self.lease is not None:
            await self.lease.release()
        if self.cameras is not None:
            await self.cameras.close()
        if self.link is not None:
            await self.link.close()

    # -- telemetry to every page -----------------------------------------------------------
    def _on_state(self, state: m.State) -> None:
        self._step, self._time = state.step, state.time
        self._state = state
        self._state_json = None  # encoded when a page is sent it, once for all pages
        discrete = _discrete(state, self._packml)
        changed, self._discrete = discrete != self._discrete, discrete
        for session in self.sessions:
            session.state_ready(changed)
        self._control_changed()

    def latest_state_json(self) -> str | None:
        if self._state_json is None and self._state is not None:
            self._state_json = _json.encode(self._state).decode()
        return self._state_json

    def _on_camera(self, frame: m.CameraFrame, url: str) -> None:
        self._camera_json[frame.camera] = _json.encode(
            {"type": "camera", "camera": frame.camera, "step": frame.step, "time": frame.time,
             "width": frame.width, "height": frame.height, "url": url}
        ).decode()  # fmt: skip
        for session in self.sessions:
            session.camera_ready(frame.camera)

    def latest_camera_json(self, camera: str) -> str | None:
        return self._camera_json.get(camera)

    def _on_kpis(self, kpis: m.Kpis) -> None:
        self._kpis = kpis
        self._kpis_json = None  # encoded when a page is sent them, as for the state
        for session in self.sessions:
            session.kpis_ready()

    def latest_kpis_json(self) -> str | None:
        if self._kpis_json is None and self._kpis is not None:
            self._kpis_json = _json.encode(self._kpis).decode()
        return self._kpis_json

    def _on_event(self, event: m.EventMsg) -> None:
        entry = self.alarms.from_event(event)
        if entry is not None:
            self._broadcast_alarm(entry)

    def _broadcast(self, text: str) -> None:
        for session in self.sessions:
            session.push(text)

    def _broadcast_alarm(self, entry: Entry) -> None:
        self._broadcast(_json.encode({"type": "alarm", "entry": entry}).decode())

    def _control_changed(self, force: bool = False) -> None:
        """Tell every page who holds control through this HMI, when that changed."""
        lease = self.lease
        if lease is None:
            return
        seen = (lease.held, id(lease.owner) if lease.held else 0)
        if seen == self._control_seen and not force:
            return
        self._control_seen = seen
        for session in self.sessions:
            session.push(self._control_message(session))

    def _control_message(self, session: Session) -> str:
        lease = self.lease
        held = lease is not None and lease.held
        you = held and lease is not None and lease.owner is session
        return _json.encode(
            {
                "type": "control",
                "you": you,
                "hmi": held,
                "holder": lease.owner_label if held and lease is not None else "",
                "watchdog": self.opts.watchdog,
            }
        ).decode()

    # -- HTTP and WebSocket ----------------------------------------------------------------
    async def _index(self, request: Any) -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def _websocket(self, websocket: WebSocket) -> None:
        if not same_origin(websocket.headers.get("origin"), websocket.headers.get("host")):
            await websocket.close(code=1008)  # before accept: the handshake gets HTTP 403
            return
        if len(self.sessions) >= MAX_SESSIONS:
            await websocket.close(code=1013)
            return
        peer = websocket.client.host if websocket.client else None
        role, why = role_for(
            self.token, websocket.query_params.get("token"), peer, websocket.url.scheme == "wss"
        )
        if self.twin_role != "controller":
            role, why = "observer", "read-only: the twin gives this HMI the observer role"
        await websocket.accept()
        session = Session(
            websocket,
            role,
            why,
            peer or "?",
            self.latest_state_json,
            self.latest_camera_json,
            self.latest_kpis_json,
        )
        welcome = {
            **self.welcome,
            "role": role,
            "why": why,
            "session": session.id,
            "alarms": self.alarms.newest_first(),
        }
        session.push(_json.encode(welcome).decode())
        session.push(self._control_message(session))
        session.kpis_ready()
        session.state_ready()
        self.sessions.add(session)
        if self.cameras is not None:
            self.cameras.watch(True)
        tasks = [
            asyncio.create_task(session.send_forever()),
            asyncio.create_task(self._receive(session)),
            asyncio.create_task(self._vouch(session)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
            self.sessions.discard(session)
            if self.cameras is not None and not self.sessions:
                self.cameras.watch(False)  # nobody looks: the twin stops rendering
            with contextlib.suppress(Exception):
                await websocket.close()
            await self._forget(session)

    async def _vouch(self, session: Session) -> None:
        """While a page's connection is alive, it is a sign of life for the lease held for it.
        The connection is what shows it (the server pings it every 5 s and the browser
        answers, even from a background tab whose timers the browser throttles)."""
        while True:
            if self.lease is not None and session.controller:
                self.lease.touch(session)
            await asyncio.sleep(1.0)

    async def _forget(self, session: Session) -> None:
        """A page is gone. Closed on purpose (the tab closed, the operator left): the control
        held for it is given back. Lost (network down, browser crashed, no close frame): its
        signs of life stop, so the twin's watchdog trips and safe-stops the line."""
        lease = self.lease
        if lease is None:
            return
        if lease.held and lease.owner is session and session.closed_cleanly:
            await lease.release()
        lease.forget(session)
        self._control_changed()

    async def _receive(self, session: Session) -> None:
        try:
            while True:
                message = await session.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    session.closed_cleanly = message.get("code") in CLEAN_CLOSE
                    return
                data = message.get("text")
                if data is None:
                    data = message.get("bytes") or b""
                await self._handle(session, data)
                if session.refused_in_a_row > MAX_REFUSED_IN_A_ROW:
                    await session.close_after_sending(1008, "too many refused requests")
                    return
        except WebSocketDisconnect as e:
            session.closed_cleanly = e.code in CLEAN_CLOSE

    # -- page requests ---------------------------------------------------------------------
    async def _handle(self, session: Session, data: str | bytes) -> None:
        try:
            op = ops.decode(data)  # cheap (at most 16 KiB), and gives the ref to answer with
        except ValueError as e:
            self._reply(session, None, "bad_request", str(e))
            return
        if not session.budget.take():
            self._reply(session, op.ref, "rate_limited", "too many requests; slow down")
            return
        if isinstance(op, ops.Ping):
            if session.controller and self.lease is not None:
                self.lease.touch(session)
            return
        if not session.controller:
            self._reply(session, op.ref, "forbidden", session.why, op)
            return
        try:
            detail = await self._carry_out(session, op)
        except (LinkError, LeaseRefused) as e:
            self._reply(session, op.ref, e.code, e.message, op)
        except TimeoutError as e:
            self._reply(session, op.ref, "twin_unreachable", str(e), op)
        else:
            session.refused_in_a_row = 0
            session.push(
                _json.encode(
                    {"type": "reply", "ref": op.ref, "ok": True, "detail": detail}
                ).decode()
            )
        self._control_changed()

    async def _carry_out(self, session: Session, op: ops.PageOp) -> str:
        assert self.link is not None and self.lease is not None
        lease, label = self.lease, session.label
        if isinstance(op, ops.Ack):
            if not self.alarms.acknowledge(op.id):
                raise LinkError("unknown_alarm", f"no unacknowledged alarm {op.id}")
            self._broadcast(_json.encode({"type": "acked", "id": op.id}).decode())
            return f"alarm {op.id} acknowledged"
        if isinstance(op, ops.Estop):  # the red button needs no lease, like on the wire
            await self.link.request(m.Estop(reason=op.reason))
            return "e-stop"
        if isinstance(op, ops.Command):
            await lease.command(session, label, op.device, op.command, op.args)
            return f"{op.device} {op.command}"
        if isinstance(op, ops.Release):
            if lease.held and lease.owner is session:
                await lease.release()
            return "control released"
        request = {ops.EstopReset: m.EstopReset, ops.Pause: m.Pause, ops.Resume: m.Resume}[
            type(op)
        ]()
        await lease.acquire(session, label)
        try:
            await self.link.request(request)
        except LinkError as e:
            if e.code not in ("not_controller", "stale_lease"):
                raise
            lease.held = False  # the twin took control back meanwhile: take it again, once
            await lease.acquire(session, label)
            await self.link.request(type(request)())
        return str(type(op).__struct_config__.tag)

    def _reply(
        self, session: Session, ref: int | None, code: str, message: str, op: Any = None
    ) -> None:
        session.refused_in_a_row += 1
        session.push(
            _json.encode(
                {"type": "reply", "ref": ref, "ok": False, "code": code, "message": message}
            ).decode()
        )
        # refusals of an operator's commands are alarms; an observer's pokes are not
        if op is not None and session.controller and code != "rate_limited":
            device = getattr(op, "device", "line")
            what = getattr(op, "command", type(op).__struct_config__.tag)
            entry = self.alarms.refusal(
                self._step, self._time, device, f"{what} refused ({code}): {message}"
            )
            self._broadcast_alarm(entry)


def _discrete(state: m.State, packml: list[str]) -> tuple[Any, ...]:
    """What of a state a page shows at once (the PackML states of the line and its stations,
    e-stop, pause, who controls): a change in it is sent without waiting for the next period."""
    states = tuple(state.signals.get(device, {}).get("state") for device in packml)
    return (state.estopped, state.paused, state.controlled, states)
