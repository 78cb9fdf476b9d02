"""Turn one request (bytes from one client) into one reply (bytes), whatever the bytes are.

Nothing a client sends may crash the server: every failure becomes an error reply naming the
problem, and the line is only changed by requests that passed every check.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import Any

import msgspec

import twin
from twin.devices.base import CommandError
from twin.protocol import messages as m
from twin.protocol.codec import (
    MAX_MESSAGE_BYTES,
    ProtocolError,
    decode_request,
    encode,
    peek_request_id,
)
from twin.server.control_lock import ControlLock
from twin.server.curve import CONTROLLER
from twin.server.host import LineHost


class Refused(Exception):
    """A well-formed request the server will not carry out now."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Dispatcher:
    def __init__(self, host: LineHost, lock: ControlLock) -> None:
        self.host = host
        self.lock = lock
        self._schema: dict[str, Any] | None = None
        # called with (client, request, step, time) for every accepted request, the step and
        # time being those before it took effect (the recorder keeps the ones that change things)
        self.on_accepted: Callable[[bytes, Any, int, float], None] | None = None
        self._handlers = {
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
        }

    # entry point -----------------------------------------------------------------------
    def handle(self, client: bytes, payload: bytes, now: float, role: str = CONTROLLER) -> bytes:
        """The encoded reply to `payload` from `client`; `now` is wall-clock for the watchdog;
        `role` is the client's (Curve key) role: an observer may only send read-only requests."""
        request_id = None
        self.lock.touch(client, now)  # any message from the holder is a sign of life
        try:
            request = decode_request(payload)
            request_id = request.id
            if role != CONTROLLER and not isinstance(request, m.READ_ONLY_REQUESTS):
                raise Refused(
                    "forbidden",
                    f"'{m.request_tag(type(request))}' needs the controller role; "
                    f"this client's key has the {role} role (read-only requests only)",
                )
            if not isinstance(request, m.OPEN_REQUESTS) and not self.lock.holds(client):
                raise Refused(
                    "not_controller",
                    f"'{m.request_tag(type(request))}' changes the line: take_control first"
                    + (" (another client holds control)" if self.lock.holder else ""),
                )
            step, sim_time = self.host.line.step_index, self.host.line.sim_time
            reply = self._handlers[type(request)](client, request, now)
            if isinstance(reply, m.HelloReply):
                reply.role = role
            if self.on_accepted is not None:
                self.on_accepted(client, request, step, sim_time)
        except (ProtocolError, Refused, CommandError) as e:
            if isinstance(e, ProtocolError):
                request_id = e.request_id
            reply = self._error(e.code, e.message, request_id)
        except Exception as e:  # a server bug must not take the line down with it
            traceback.print_exc(file=sys.stderr)
            reply = self._error("internal", f"{type(e).__name__}: {e}", request_id)
        self.host.controlled = self.lock.holder is not None
        return encode(reply)

    def refuse(self, client: bytes, payload: bytes, now: float, code: str, message: str) -> bytes:
        """An error reply to `payload` without carrying it out (e.g. rate_limited): the request
        is not decoded beyond its id, but still counts as a sign of life for the watchdog."""
        self.lock.touch(client, now)
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
    def _hello(self, client: bytes, req: m.Hello, now: float) -> m.HelloReply:
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
            controlled=self.lock.holder is not None,
            you_control=self.lock.holds(client),
        )
        return self._stamp(reply, req.id)

    def _describe(self, client: bytes, req: m.Describe, now: float) -> m.DescribeReply:
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
            requests=sorted(m.REQUEST_TAGS),
            open_requests=[m.request_tag(t) for t in m.OPEN_REQUESTS],
            max_message_bytes=MAX_MESSAGE_BYTES,
            max_steps_per_request=m.MAX_STEPS_PER_REQUEST,
            schema=self._schema,
            **{k: desc[k] for k in m.DESCRIBE_EXTRAS},
        )
        return self._stamp(reply, req.id)

    def _get_state(self, client: bytes, req: m.GetState, now: float) -> m.State:
        return self.host.state(req.id)

    def _get_kpis(self, client: bytes, req: m.GetKpis, now: float) -> m.Kpis:
        self.host.flush_events()  # count what happened up to now
        return self.host.kpis(req.id)

    def _get_genealogy(self, client: bytes, req: m.GetGenealogy, now: float) -> m.Genealogy:
        self.host.flush_events()
        genealogy = self.host.monitor.genealogy
        if req.part is None:
            parts = genealogy.as_list()
        else:
            record = genealogy.get(req.part)
            if record is None:
                raise Refused("unknown_part", f"no record of part {req.part}")
            parts = [msgspec.to_builtins(record)]
        return self._stamp(m.Genealogy(parts=parts), req.id)

    def _take_control(self, client: bytes, req: m.TakeControl, now: float) -> m.Ok:
        if not self.lock.take(client, req.watchdog, now):
            raise Refused("control_held", "another client holds control; it must release it first")
        self.host.controlled = True
        self.host.server_event("control_taken", client=client.hex(), watchdog=req.watchdog)
        return self._ok(req, f"you hold control (watchdog {req.watchdog} s)")

    def _heartbeat(self, client: bytes, req: m.Heartbeat, now: float) -> m.Ok:
        return self._ok(req)

    def _estop(self, client: bytes, req: m.Estop, now: float) -> m.Ok:
        # open to every client, like the red button on a real line
        self.host.estop(req.reason or f"requested by client {client.hex()}")
        return self._ok(req, "emergency stop: estop_reset to clear")

    # requests that need control --------------------------------------------------------
    def _release_control(self, client: bytes, req: m.ReleaseControl, now: float) -> m.Ok:
        self.lock.release()
        self.host.controlled = False
        self.host.server_event("control_released", client=client.hex())
        return self._ok(req)

    def _command(self, client: bytes, req: m.Command, now: float) -> m.Ok:
        self._apply(req.device, req.command, req.args)
        self.host.flush_events()
        return self._ok(req)

    def _apply(self, device: str, command: str, args: dict[str, Any]) -> None:
        if self.host.estopped:
            raise Refused("estopped", "the line is emergency-stopped: estop_reset first")
        self.host.line.apply(device, command, args)

    def _step(self, client: bytes, req: m.Step, now: float) -> m.State:
        if self.host.mode != "lockstep":
            raise Refused(
                "wrong_mode", f"step is for lockstep mode; this server runs {self.host.mode}"
            )
        line = self.host.line
        for i, c in enumerate(req.commands):  # nothing changes unless every command exists
            try:
                line.check_command(c.device, c.command, c.args)
            except CommandError as e:
                raise CommandError(e.code, f"commands[{i}]: {e.message}") from None
        refused = []
        for i, c in enumerate(req.commands):
            try:
                self._apply(c.device, c.command, c.args)
            except (CommandError, Refused) as e:
                refused.append(
                    {
                        "index": i,
                        "device": c.device,
                        "command": c.command,
                        "code": e.code,
                        "message": e.message,
                    }
                )
        self.host.advance(req.n)
        state = self.host.state(req.id)
        state.refused = refused
        return state

    def _pause(self, client: bytes, req: m.Pause, now: float) -> m.Ok:
        self._require_free_running("pause")
        if not self.host.paused:
            self.host.paused = True
            self.host.server_event("paused")
        return self._ok(req)

    def _resume(self, client: bytes, req: m.Resume, now: float) -> m.Ok:
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

    def _reset(self, client: bytes, req: m.Reset, now: float) -> m.Ok:
        if self.host.estopped:
            raise Refused("estopped", "the line is emergency-stopped: estop_reset first")
        self.host.reset(req.seed)
        return self._ok(req, f"line rebuilt with seed {self.host.line.seed}")

    def _estop_reset(self, client: bytes, req: m.EstopReset, now: float) -> m.Ok:
        self.host.estop_reset()
        return self._ok(req, "estop cleared: devices stay in their safe state until commanded")
