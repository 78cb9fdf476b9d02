"""Turn one request (bytes from one client) into one reply (bytes), whatever the bytes are.

Nothing a client sends may crash the server: every failure becomes an error reply naming the
problem, and the line is only changed by requests that passed every check.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import msgspec

import twin
from twin.command_rules import apply_commands
from twin.devices.base import CommandError
from twin.devices.camera import Camera
from twin.protocol import messages as m
from twin.protocol.codec import (
    MAX_MESSAGE_BYTES,
    ProtocolError,
    decode_request,
    encode,
    peek_request_id,
)
from twin.server.control_lock import ControlLock, LeaseRefused
from twin.server.curve import CONTROLLER
from twin.server.host import LineHost
from twin.server.image import ImageError, ProcessImage
from twin.vision.frames import frame_messages

# request types by what they may do (sets: a lookup per request instead of isinstance chains)
_OPEN = frozenset(m.OPEN_REQUESTS)
_READ_ONLY = frozenset(m.READ_ONLY_REQUESTS)


class Refused(Exception):
    """A well-formed request the server will not carry out now."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Dispatcher:
    def __init__(
        self, host: LineHost, lock: ControlLock, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.host = host
        self.lock = lock
        self.clock = clock  # wall-clock for lease silence, read after each request is done
        self.image: ProcessImage | None = None
        # whoever sends the replies may let a step's last telemetry wait until the reply is
        # out, if it calls host.settle() right after sending (the server loop does): the
        # controller's cycle then does not wait for the state message's build and sends
        self.defer_telemetry = False
        self._last_cycle: tuple[list[Any], list[int]] = ([], [])
        self._images = 0  # layout numbers never repeat within a server's life
        self._schema: dict[str, Any] | None = None
        # called with (client, request, step, time) for every accepted request, the step and
        # time being those before it took effect (the recorder keeps the ones that change things)
        self.on_accepted: Callable[[bytes, Any, int, float], None] | None = None
        self._handlers: dict[type, Callable[..., Any]] = {
            m.Hello: self._hello,
            m.Describe: self._describe,
            m.GetState: self._get_state,
            m.Command: self._command,
            m.Step: self._step,
            m.TakeControl: self._take_control,
            m.ReleaseControl: self._release_control,
            m.Heartbeat: self._heartbeat,
            m.Pause: self._pause,
            m.Resume: self._resume,
            m.Reset: self._reset,
            m.Estop: self._estop,
            m.EstopReset: self._estop_reset,
            m.GetKpis: self._get_kpis,
            m.GetGenealogy: self._get_genealogy,
            m.DeclareImage: self._declare_image,
            m.ImageCycle: self._image_cycle,
            m.GetImage: self._get_image,
        }

    # entry point -----------------------------------------------------------------------
    def handle(
        self,
        client: bytes,
        payload: bytes,
        now: float,
        role: str = CONTROLLER,
        user: str | None = None,
    ) -> bytes:
        """The encoded reply to `payload` from `client` (its ROUTER identity; `user` its Curve
        key); `now` is wall-clock; `role` is the client's (Curve key) role: an observer may
        only send read-only requests."""
        self.host.settle()  # what the last request's steps left due goes out first
        request_id = None
        lease = None
        lock = self.lock
        checked = None  # the lease a request that needs control was checked against
        try:
            request = decode_request(payload)
            request_id, lease = request.id, request.lease
            kind = type(request)
            if role != CONTROLLER and kind not in _READ_ONLY:
                raise Refused(
                    "forbidden",
                    f"'{m.request_tag(type(request))}' needs the controller role; "
                    f"this client's key has the {role} role (read-only requests only)",
                )
            if kind not in _OPEN:
                lock.check(client, lease, user)
                checked = lock.lease
            told = self.on_accepted is not None  # a recorder: it learns when the request came
            if told:
                line = self.host.line
                step, sim_time = line.step_index, line.sim_time
            reply = self._handlers[kind](client, request, now, user)
            if isinstance(reply, m.HelloReply):
                reply.role = role
            if told:
                self._accepted(client, request, reply, step, sim_time)
        except (ProtocolError, Refused, CommandError, LeaseRefused) as e:
            if isinstance(e, ProtocolError):
                request_id = e.request_id
            reply = self._error(e.code, e.message, request_id)
        except Exception as e:  # a server bug must not take the line down with it
            traceback.print_exc(file=sys.stderr)
            reply = self._error("internal", f"{type(e).__name__}: {e}", request_id)
        # silence counts from the end of the holder's last request, so a long step is not it
        if checked is not None and lock.lease is checked:
            lock.last_seen = self.clock()  # the holder's lease, checked and still the lease
        else:
            lock.touch(client, lease, self.clock(), user)
        self.host.controlled = lock.holder is not None
        return encode(reply)

    def _defer(self) -> bool:
        """Whether a step's last telemetry may wait for the reply: not while a recorder is
        told of requests (the recording keeps a step's telemetry before its request)."""
        return self.defer_telemetry and self.on_accepted is None

    def _accepted(self, client: bytes, request: Any, reply: Any, step: int, t: float) -> None:
        """Tell on_accepted (the recorder) what changed the line, never with the lease (a
        secret), and an image cycle as the step or commands it amounted to."""
        assert self.on_accepted is not None
        if isinstance(request, m.ImageCycle):
            batch, where = self._last_cycle
            if request.n:
                cmds = [m.StepCommand(device=d, command=c, args=a) for d, c, a in batch]
                self.on_accepted(client, m.Step(id=request.id, n=request.n, commands=cmds), step, t)
            else:
                refused = {r[0] for r in reply.refused}
                for (d, c, a), i in zip(batch, where):
                    if i not in refused:
                        self.on_accepted(client, m.Command(device=d, command=c, args=a), step, t)
            return
        if request.lease is not None:
            request = msgspec.structs.replace(request, lease=None)
        self.on_accepted(client, request, step, t)

    def refuse(self, client: bytes, payload: bytes, now: float, code: str, message: str) -> bytes:
        """An error reply to `payload` without carrying it out (e.g. rate_limited): the request
        is not decoded beyond its id (so it is no sign of life: its lease is not read)."""
        return encode(self._error(code, message, peek_request_id(payload)))

    def _stamp(self, reply: Any, request_id: Any) -> Any:
        reply.id = request_id
        reply.step = self.host.line.step_index
        reply.time = self.host.line.sim_time
        return reply

    def _error(self, code: str, message: str, request_id: Any) -> m.Error:
        return self._stamp(m.Error(code=code, message=message), request_id)

    def _ok(self, request: Any, detail: str = "") -> m.Ok:
        return self._stamp(m.Ok(detail=detail), request.id)

    # open requests ---------------------------------------------------------------------
    def _hello(self, client: bytes, req: m.Hello, now: float, user: str | None) -> m.HelloReply:
        if req.protocol != m.PROTOCOL_VERSION:
            raise Refused(
                "version_mismatch",
                f"this server speaks protocol {m.PROTOCOL_VERSION}, the client {req.protocol}",
            )
        host = self.host
        reply = m.HelloReply(
            server=f"twin {twin.__version__}",
            line=host.cfg.name,
            mode=host.mode,
            timestep=host.line.dt,
            seed=host.line.seed,
            builtin_controller=host.has_builtin_controller,
            builtin_fleet=host.has_builtin_fleet,
            controlled=self.lock.holder is not None,
            you_control=self.lock.holds(client, req.lease, user),
            lease_timeout=self.lock.lease_timeout,
        )
        return self._stamp(reply, req.id)

    def _describe(
        self, client: bytes, req: m.Describe, now: float, user: str | None
    ) -> m.DescribeReply:
        if self._schema is None:
            self._schema = m.json_schema()
        host = self.host
        desc = host.line.describe()
        reply = m.DescribeReply(
            line=desc["line"],
            mode=host.mode,
            timestep=desc["timestep"],
            seed=desc["seed"],
            devices=desc["devices"],
            requests=sorted(m.REQUEST_TAGS | {"image"}),
            open_requests=[m.request_tag(t) for t in m.OPEN_REQUESTS],
            max_message_bytes=MAX_MESSAGE_BYTES,
            max_steps_per_request=m.MAX_STEPS_PER_REQUEST,
            schema=self._schema,
            **{k: desc[k] for k in m.DESCRIBE_EXTRAS},
        )
        return self._stamp(reply, req.id)

    def _get_state(self, client: bytes, req: m.GetState, now: float, user: str | None) -> m.State:
        return self.host.state(req.id)

    def _get_kpis(self, client: bytes, req: m.GetKpis, now: float, user: str | None) -> m.Kpis:
        self.host.flush_events()  # count what happened up to now
        return self.host.kpis(req.id)

    def _get_genealogy(
        self, client: bytes, req: m.GetGenealogy, now: float, user: str | None
    ) -> m.Genealogy:
        self.host.flush_events()
        genealogy = self.host.monitor.genealogy
        if req.part is not None and req.order is not None:
            raise Refused("bad_request", "get_genealogy: give `part` or `order`, not both")
        if req.part is not None:
            record = genealogy.get(req.part)
            if record is None:
                raise Refused("unknown_part", f"no record of part {req.part}")
            parts = [msgspec.to_builtins(record)]
            order = genealogy.orders.get(record.order) if record.order is not None else None
            orders = [msgspec.to_builtins(order)] if order is not None else []
        elif req.order is not None:
            order = genealogy.orders.get(req.order)
            if order is None:
                known = sorted(genealogy.orders)[:12]
                raise Refused(
                    "unknown_order", f"no record of order '{req.order}' (orders: {known})"
                )
            orders = [msgspec.to_builtins(order)]
            records = (genealogy.get(p) for p in order.parts)
            parts = [msgspec.to_builtins(r) for r in records if r is not None]
        else:
            parts, orders = genealogy.as_list(), genealogy.orders_list()
        return self._stamp(m.Genealogy(parts=parts, orders=orders), req.id)

    def _get_image(
        self, client: bytes, req: m.GetImage, now: float, user: str | None
    ) -> m.CameraFrame:
        line = self.host.line
        camera = line.devices.get(req.camera)
        if not isinstance(camera, Camera):
            cameras = [d for d, dev in line.devices.items() if isinstance(dev, Camera)]
            raise Refused("unknown_camera", f"no camera '{req.camera}' (cameras: {cameras})")
        camera.check_modality(req.modality)
        (frame,) = frame_messages(camera, line.step_index, line.sim_time, (req.modality,), req.id)
        return frame

    def _take_control(
        self, client: bytes, req: m.TakeControl, now: float, user: str | None
    ) -> m.ControlReply:
        lease = self.lock.take(client, req.lease, req.watchdog, now, user)
        if lease is None:
            raise Refused(
                "control_held",
                "another client holds control; it must release it first, or it loses it "
                f"after {self.lock.timeout:g} s of silence",
            )
        self.host.controlled = True
        # the event names the connection for logs; only the reply carries the lease
        self.host.server_event(
            "control_taken",
            client=client.hex(),
            watchdog=req.watchdog,
            lease_timeout=self.lock.timeout,
        )
        return self._control(req, "you hold control")

    def _control(self, req: Any, detail: str) -> m.ControlReply:
        lock = self.lock
        assert lock.lease is not None
        reply = m.ControlReply(
            lease=lock.lease, lease_timeout=lock.timeout, watchdog=lock.watchdog, detail=detail
        )
        return self._stamp(reply, req.id)

    def _heartbeat(self, client: bytes, req: m.Heartbeat, now: float, user: str | None) -> m.Ok:
        return self._ok(req)

    def _estop(self, client: bytes, req: m.Estop, now: float, user: str | None) -> m.Ok:
        # open to every client, like the red button on a real line
        self.host.estop(req.reason or f"requested by client {client.hex()}")
        return self._ok(req, "emergency stop: estop_reset to clear")

    # requests that need control --------------------------------------------------------
    def _release_control(
        self, client: bytes, req: m.ReleaseControl, now: float, user: str | None
    ) -> m.Ok:
        self.lock.release("released by its holder")
        self.host.controlled = False
        self.host.server_event("control_released", client=client.hex())
        return self._ok(req)

    def _command(self, client: bytes, req: m.Command, now: float, user: str | None) -> m.Ok:
        # the one place rules are applied is the line: the e-stop, arguments before state
        self.host.line.apply(req.device, req.command, req.args)
        self.host.flush_events()
        return self._ok(req)

    def _step(self, client: bytes, req: m.Step, now: float, user: str | None) -> m.State:
        if self.host.mode != "lockstep":
            raise Refused(
                "wrong_mode", f"step is for lockstep mode; this server runs {self.host.mode}"
            )
        refused = apply_commands(
            self.host.line, [(c.device, c.command, c.args) for c in req.commands]
        )
        self.host.advance(req.n, defer=self._defer())
        state = self.host.state(req.id)
        state.refused = refused
        return state

    def _pause(self, client: bytes, req: m.Pause, now: float, user: str | None) -> m.Ok:
        self._require_free_running("pause")
        if not self.host.paused:
            self.host.paused = True
            self.host.server_event("paused")
        return self._ok(req)

    def _resume(self, client: bytes, req: m.Resume, now: float, user: str | None) -> m.Ok:
        self._require_free_running("resume")
        if self.host.paused:
            self.host.paused = False
            self.host.server_event("resumed")
        return self._ok(req)

    def _require_free_running(self, what: str) -> None:
        if self.host.mode == "lockstep":
            raise Refused(
                "wrong_mode", f"{what} is for fast and realtime modes; lockstep only moves on step"
            )

    def _reset(self, client: bytes, req: m.Reset, now: float, user: str | None) -> m.ControlReply:
        if self.host.estopped:
            raise Refused("estopped", "the line is emergency-stopped: estop_reset first")
        self.host.reset(req.seed)
        # requests still in flight for the old line must not reach the new one
        self.lock.renew("replaced by a reset: use the lease in the reset's reply")
        self.image = None
        return self._control(req, f"line rebuilt with seed {self.host.line.seed}")

    def _estop_reset(self, client: bytes, req: m.EstopReset, now: float, user: str | None) -> m.Ok:
        self.host.estop_reset()
        return self._ok(req, "estop cleared: devices stay in their safe state until commanded")

    # the process image -------------------------------------------------------------------
    def _declare_image(
        self, client: bytes, req: m.DeclareImage, now: float, user: str | None
    ) -> m.ImageLayout:
        assert self.lock.lease is not None
        self._images += 1
        image = ProcessImage(self.host.line, self._images, self.lock.lease, req.inputs, req.outputs)
        self.image = image  # only now: a bad declaration leaves the previous image in place
        reply = m.ImageLayout(
            layout=image.number, inputs=image.input_layout, outputs=image.output_layout
        )
        return self._stamp(reply, req.id)

    def _image_cycle(
        self, client: bytes, req: m.ImageCycle, now: float, user: str | None
    ) -> m.ImageReply:
        image = self.image
        if image is None or image.lease != self.lock.lease:
            raise ImageError("bad_image", "no process image declared: send declare_image first")
        if req.layout != image.number:
            raise ImageError(
                "stale_layout",
                f"this cycle is for layout {req.layout}; the image declared now is layout "
                f"{image.number}",
            )
        if req.n and self.host.mode != "lockstep":
            raise Refused(
                "wrong_mode",
                f"an image cycle steps (n = {req.n}) only in lockstep; this server runs "
                f"{self.host.mode}: send n = 0 to exchange the latest image",
            )
        batch, where = image.commands(req.outputs)
        refused = apply_commands(self.host.line, batch, where, label="outputs") if batch else []
        host = self.host
        if req.n:
            host.advance(req.n, defer=self._defer())
        elif batch:
            host.flush_events()
        line = host.line
        reply = m.ImageReply(
            id=req.id,
            step=line.step_index,
            time=line.sim_time,
            inputs=image.read(),
            refused=[[r["index"], r["code"], r["message"]] for r in refused] if refused else [],
        )
        self._last_cycle = (batch, where)  # what the recorder is told (see _accepted)
        return reply
