"""What an external controller imports: a small synchronous client for `twin serve`.

    with Client("tcp://127.0.0.1:5555", "tcp://127.0.0.1:5556") as c:
        c.hello(); c.take_control(watchdog=2.0)  # keeps the lease, sends it from then on
        c.command("infeed", "run")
        state = c.step(50)               # lockstep servers only
        c.subscribe(["event"]); topic, msg = c.recv_telemetry(timeout=1.0)

        image = c.declare_image(["infeed_pick_eye.blocked"], ["infeed.set_speed"])
        reply = image.exchange([[0.3]], n=1)   # one small message per control cycle
        blocked = reply.inputs[0]

Requests go over a DEALER socket, each with its own id; a reply whose id does not match (the
late answer to a request that timed out) is skipped, so the client stays usable after a
timeout; an error that could not name its request (`id` null) answers the oldest request
still waiting, because a connection's replies come in the order of its requests. Every
receive has a timeout. Server errors raise TwinError(code, message).

For a twin served with `--curve DIR`, pass this client's key pair and the server's public key
(both written by `twin keys generate`):

    Client(control, telemetry, curve=("DIR/secrets/plc.key_secret", "DIR/server.key"))

A client whose key the twin does not list gets no replies and no telemetry (TwinTimeout).
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import zmq

from twin.protocol import messages as m
from twin.protocol.codec import decode_reply, decode_telemetry, encode

_NOBLOCK = int(zmq.NOBLOCK)  # a plain int: pyzmq's flag enums cost microseconds per call
_RCVTIMEO = int(zmq.RCVTIMEO)
# the socket's own send, without pyzmq's Python wrapper (for DRAFT options not used here)
_send = zmq.backend.Socket.send


class TwinError(Exception):
    """The server refused a request; `code` is machine-readable (see docs/protocol.md)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class TwinTimeout(TimeoutError):
    """No reply (or no telemetry) within the timeout."""


class Client:
    def __init__(
        self,
        control_addr: str,
        telemetry_addr: str | None = None,
        timeout: float = 5.0,
        curve: tuple[str | Path, str | Path] | None = None,
    ) -> None:
        """`curve` = (this client's NAME.key_secret file, the server's server.key file)."""
        self.control_addr = control_addr
        self.telemetry_addr = telemetry_addr
        self.timeout = timeout
        self.curve = curve
        self._ctx = zmq.Context()
        self._ids = itertools.count(1)
        try:
            self._dealer = self._socket(zmq.DEALER)
        except Exception:
            self._ctx.term()
            raise
        self._dealer.connect(control_addr)
        self._rcvtimeo = -1  # the control socket's receive timeout (ms) as last set
        self._sub: zmq.Socket | None = None
        self._waiting: deque[Any] = deque()  # ids sent and not answered yet, oldest first
        self.lease: str | None = None  # from take_control (or reset): sent with every request

    # plumbing --------------------------------------------------------------------------
    def _socket(self, kind: int) -> zmq.Socket:
        sock = self._ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        if self.curve is not None:
            from twin.curve_keys import make_client_socket

            try:
                make_client_socket(sock, *self.curve)
            except Exception:
                sock.close(linger=0)
                raise
        return sock

    def request(self, req: Any, timeout: float | None = None) -> Any:
        """Send one request struct and return the reply struct; raise TwinError on errors.
        The lease this client holds goes with it (it also counts as a sign of life)."""
        req.id = next(self._ids)
        if req.lease is None and self.lease is not None:
            req.lease = self.lease
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        payload = encode(req)
        dealer = self._dealer
        while True:
            try:
                _send(dealer, payload, _NOBLOCK)
                break
            except zmq.Again:
                # nowhere to send yet (not connected, or the server refused this client's
                # key, or a connection being torn down): wait for one, not forever
                left = deadline - time.monotonic()
                if left <= 0 or not self._dealer.poll(int(left * 1000) + 1, zmq.POLLOUT):
                    raise TwinTimeout(
                        f"cannot send '{m.request_tag(type(req))}' to {self.control_addr} "
                        f"within {wait} s (not connected, or the server refused this "
                        "client's key)"
                    ) from None
        waiting = self._waiting
        waiting.append(req.id)
        while True:
            left = deadline - time.monotonic()
            # a blocking receive with the time left as its timeout: the thread wakes as the
            # reply lands, with no poll call in between (the option is set only on change)
            wait_ms = int(left * 1000) + 1
            if left <= 0:
                wait_ms = 0
            elif wait_ms != self._rcvtimeo:
                dealer.setsockopt(_RCVTIMEO, wait_ms)
                self._rcvtimeo = wait_ms
            try:
                data = dealer.recv(0 if wait_ms else _NOBLOCK)
            except zmq.Again:
                raise TwinTimeout(
                    f"no reply to '{m.request_tag(type(req))}' from {self.control_addr} "
                    f"within {self.timeout if timeout is None else timeout} s"
                ) from None
            reply = decode_reply(data)
            rid = reply.id
            error = isinstance(reply, m.Error)
            if rid is None and error:
                rid = waiting[0]  # replies come in order: it answers the oldest one waiting
            if waiting[0] == rid:  # the usual case: the reply to the oldest one waiting
                waiting.popleft()
            elif rid in waiting:  # drop it and the earlier ones (they will not be answered)
                while waiting.popleft() != rid:
                    pass
            if rid != req.id:
                continue  # a late reply to an earlier request that timed out
            if error:
                assert isinstance(reply, m.Error)
                raise TwinError(reply.code, reply.message)
            return reply

    # requests --------------------------------------------------------------------------
    def hello(self, name: str = "twin.client") -> m.HelloReply:
        return self.request(m.Hello(client=name))

    def describe(self) -> m.DescribeReply:
        return self.request(m.Describe())

    def get_state(self) -> m.State:
        return self.request(m.GetState())

    def get_kpis(self) -> dict[str, Any]:
        return self.request(m.GetKpis()).kpis

    def genealogy(self, part: int | None = None) -> list[dict[str, Any]]:
        """Records of every remembered part, or of one part (TwinError unknown_part if none)."""
        return self.request(m.GetGenealogy(part=part)).parts

    def orders(self, order: str | None = None) -> list[dict[str, Any]]:
        """Records of every remembered order of a factory, or of one order (TwinError
        unknown_order if none)."""
        return self.request(m.GetGenealogy(order=order)).orders

    def command(self, device: str, command: str, **args: Any) -> m.Ok:
        return self.request(m.Command(device=device, command=command, args=args))

    def step(
        self,
        n: int = 1,
        timeout: float | None = None,
        commands: Iterable[tuple[str, str, dict[str, Any]]] = (),
    ) -> m.State:
        """Advance a lockstep server n steps; the state after them. `commands` (device,
        command, args) are carried out first, in the same round trip; those the line refuses
        in its current state are listed in the reply's `refused`."""
        batch = [m.StepCommand(device=d, command=c, args=a) for d, c, a in commands]
        return self.request(m.Step(n=n, commands=batch), timeout)

    def take_control(self, watchdog: float | None = None) -> m.ControlReply:
        """Take control; the reply's lease is kept and sent with every later request."""
        reply = self.request(m.TakeControl(watchdog=watchdog))
        self.lease = reply.lease
        return reply

    def release_control(self) -> m.Ok:
        reply = self.request(m.ReleaseControl())
        self.lease = None
        return reply

    def heartbeat(self) -> m.Ok:
        return self.request(m.Heartbeat())

    def pause(self) -> m.Ok:
        return self.request(m.Pause())

    def resume(self) -> m.Ok:
        return self.request(m.Resume())

    def reset(self, seed: int | None = None, timeout: float | None = None) -> m.ControlReply:
        """Rebuild the line; keeps the new lease the reply carries (a declared process image
        must be declared again)."""
        reply = self.request(m.Reset(seed=seed), timeout)
        self.lease = reply.lease
        return reply

    def declare_image(self, inputs: Sequence[str], outputs: Sequence[str] = ()) -> ProcessImage:
        """Declare the process image (needs control): the signals read ("device.signal") and
        the commands written ("device.command") each cycle, in this order."""
        layout = self.request(m.DeclareImage(inputs=list(inputs), outputs=list(outputs)))
        return ProcessImage(self, layout)

    def estop(self, reason: str = "") -> m.Ok:
        return self.request(m.Estop(reason=reason))

    def estop_reset(self) -> m.Ok:
        return self.request(m.EstopReset())

    # telemetry -------------------------------------------------------------------------
    def subscribe(self, topics: Iterable[str] = ("state", "event")) -> None:
        if self.telemetry_addr is None:
            raise ValueError("no telemetry address given to Client")
        if self._sub is None:
            self._sub = self._socket(zmq.SUB)
            self._sub.connect(self.telemetry_addr)
        for topic in topics:
            self._sub.setsockopt(zmq.SUBSCRIBE, topic.encode())

    def recv_telemetry(
        self, timeout: float | None = None
    ) -> tuple[str, m.State | m.EventMsg | m.Kpis | m.CameraFrame]:
        """The next (topic, message) from the subscribed topics."""
        if self._sub is None:
            raise ValueError("subscribe() first")
        wait = self.timeout if timeout is None else timeout
        if not self._sub.poll(int(wait * 1000) + 1, zmq.POLLIN):
            raise TwinTimeout(f"no telemetry from {self.telemetry_addr} within {wait} s")
        topic, payload = self._sub.recv_multipart()
        return topic.decode(), decode_telemetry(payload)

    def wait_for_event(self, kind: str, timeout: float | None = None) -> m.EventMsg:
        """Read telemetry until an event of `kind` arrives (subscribe to "event" first)."""
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TwinTimeout(f"no '{kind}' event within {wait} s")
            topic, msg = self.recv_telemetry(timeout=left)
            if isinstance(msg, m.EventMsg) and msg.kind == kind:
                return msg

    def close(self) -> None:
        self._dealer.close(linger=0)
        if self._sub is not None:
            self._sub.close(linger=0)
        self._ctx.term()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ProcessImage:
    """A declared process image: `exchange` is one control cycle in one small message."""

    def __init__(self, client: Client, layout: m.ImageLayout) -> None:
        self.client = client
        self.layout = layout
        self.inputs = [entry["name"] for entry in layout.inputs]
        self.outputs = [entry["name"] for entry in layout.outputs]
        self._slot = {name: i for i, name in enumerate(self.outputs)}

    def exchange(
        self,
        outputs: Sequence[Sequence[Any] | None] | Mapping[str, Sequence[Any]] = (),
        n: int = 0,
        timeout: float | None = None,
    ) -> m.ImageReply:
        """Write `outputs` (one entry per declared output: None for nothing this cycle, else
        the list of the command's arguments; or a map name -> arguments), step `n` times
        (lockstep only; 0 exchanges the latest image), and return the inputs read after."""
        if type(outputs) is list or type(outputs) is tuple:  # the usual case: no ABC check
            values: list[Any] = [None if v is None else list(v) for v in outputs]
            if not values:
                values = [None] * len(self.outputs)
        elif isinstance(outputs, Mapping):
            values = [None] * len(self.outputs)
            for name, args in outputs.items():
                values[self._slot[name]] = list(args)
        elif outputs:
            values = [None if v is None else list(v) for v in outputs]
        else:
            values = [None] * len(self.outputs)
        cycle = m.ImageCycle(
            id=None, lease=self.client.lease or "", layout=self.layout.layout, n=n, outputs=values
        )
        return self.client.request(cycle, timeout)

    def declare_again(self) -> None:
        """Declare the same image again: after a `reset` or a new `take_control`, whose new
        lease ends the old image."""
        self.layout = self.client.request(
            m.DeclareImage(inputs=list(self.inputs), outputs=list(self.outputs))
        )

    def values(self, reply: m.ImageReply) -> dict[str, Any]:
        """The inputs of a cycle's reply by name."""
        return dict(zip(self.inputs, reply.inputs))
