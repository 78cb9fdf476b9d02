"""The server loop: poll requests, keep the watchdog, step the line in the chosen mode.

- fast: step as fast as possible, polling the control socket with zero timeout every few steps;
- realtime: step when the wall clock says so (sim time = wall time x rtf), polling meanwhile;
- lockstep: never step on its own; wait on the control socket with a short timeout.

Wall-clock time is only used for pacing and for the watchdog, never inside a step.
"""

from __future__ import annotations

import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import zmq

from twin.config import LineConfig
from twin.gateways.process import spawn_gateway, stop_gateway
from twin.server.control_lock import DEFAULT_LEASE_S, ControlLock
from twin.server.curve import CONTROLLER, OBSERVER, CurveConfig, load_server_keys
from twin.server.dispatch import Dispatcher
from twin.server.endpoints import Endpoints, open_endpoints, remote_warning
from twin.server.host import LineHost
from twin.server.limits import DEFAULT_BURST, DEFAULT_MAX_QUEUED, DEFAULT_RATE, RateLimiter
from twin.server.spin import DEFAULT_SPIN_US, SpinWait

FAST_STEPS_PER_POLL = 8  # fast mode: steps between two zero-timeout polls (~5 ms of work)
IDLE_POLL_MS = 10  # when not stepping (lockstep, paused): how long to wait for a request
MAX_REQUESTS_PER_POLL = 64  # so a chatty client cannot stop the line from stepping
REALTIME_MAX_LAG_S = 0.25  # further behind than this, realtime gives up catching up
# plain ints: pyzmq's flag enums cost microseconds of enum arithmetic on every frame
_NOBLOCK = int(zmq.NOBLOCK)
_MORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_RCVMORE = int(zmq.RCVMORE)
_RCVTIMEO = int(zmq.RCVTIMEO)
# the socket's own send, without the Python wrapper pyzmq puts around it (for options this
# server never uses: DRAFT routing ids and groups)
_send = zmq.backend.Socket.send


@dataclass
class ServeOptions:
    mode: str = "fast"
    rtf: float = 1.0
    control: str = "tcp://127.0.0.1:5555"
    telemetry: str = "tcp://127.0.0.1:5556"
    allow_remote: bool = False
    builtin_controller: bool = True
    builtin_fleet: bool = True  # a factory: the built-in fleet manager drives the AMRs
    seed: int | None = None
    state_rate: float = 10.0  # simulated Hz
    record: str | None = None  # MCAP file to record config, telemetry and requests to
    curve: str | None = None  # key directory (twin keys generate): CurveZMQ and roles
    rate_limit: float = DEFAULT_RATE  # requests/s per client (0 = no limit)
    rate_burst: int = DEFAULT_BURST  # requests a client may send at once
    max_queued: int = DEFAULT_MAX_QUEUED  # requests queued per client (ROUTER RCVHWM)
    lease_timeout: float = DEFAULT_LEASE_S  # s of silence after which a holder loses control
    spin_us: float = DEFAULT_SPIN_US  # lockstep: µs to look for the next request after a reply
    opcua: str | None = None  # OPC UA endpoint: run the gateway next to the twin (own process)
    modbus: str | None = None  # Modbus TCP address (host:port): the same for Modbus
    hmi: str | None = None  # host:port: serve the browser HMI (own process)
    foxglove: str | None = None  # host:port: Foxglove live (own process)


class Server:
    def __init__(self, cfg: LineConfig, opts: ServeOptions) -> None:
        self.opts = opts
        # lockstep looks for the next request a while before sleeping (see twin.server.spin);
        # first, so that a window out of range opens nothing
        self.spin = SpinWait(opts.spin_us * 1e-6 if opts.mode == "lockstep" else 0.0)
        self.curve: CurveConfig | None = load_server_keys(opts.curve) if opts.curve else None
        # z85 client key -> role with Curve; without it every client may be a controller
        self.roles: dict[str, str] | None = self.curve.roles if self.curve else None
        self.limiter = RateLimiter(opts.rate_limit, opts.rate_burst)
        self.endpoints: Endpoints = open_endpoints(
            opts.control,
            opts.telemetry,
            allow_remote=opts.allow_remote,
            curve=self.curve,
            max_queued=opts.max_queued,
        )
        try:
            self.host = LineHost(
                cfg,
                mode=opts.mode,
                seed=opts.seed,
                builtin_controller=opts.builtin_controller,
                builtin_fleet=opts.builtin_fleet,
                state_rate=opts.state_rate,
                publish=self._publish,
            )
        except Exception:
            self.endpoints.close()
            raise
        self.lock = ControlLock(opts.lease_timeout)
        self._rcvtimeo = -1  # the control socket's receive timeout (ms) as last set
        router = self.endpoints.control
        self._request_waiting = lambda: cast(int, router.get(_EVENTS)) & _POLLIN
        self.dispatcher = Dispatcher(self.host, self.lock)
        self.dispatcher.defer_telemetry = True  # settled below, as soon as a reply is sent
        # what the composing code attaches (a recorder): told of watchdog trips
        # (holder, timeout, silent_for, step, time), closed first on close
        self.watchdog_listeners: list[Callable[[bytes, float, float, int, float], None]] = []
        self.closers: list[Callable[[], None]] = []
        self.stopping = False

    # sockets ---------------------------------------------------------------------------
    def _publish(self, topic: bytes, payload: bytes) -> None:
        pub = self.endpoints.telemetry
        try:
            pub.send(topic, _MORE_NOBLOCK)
            pub.send(payload, _NOBLOCK)
        except zmq.Again:  # PUB drops rather than blocks, but never risk a stall
            pass

    def read_subscriptions(self) -> None:
        """Note the telemetry topics subscribed to and left (XPUB: b"\\x01topic", b"\\x00topic")."""
        pub, demand = self.endpoints.telemetry, self.host.camera_demand
        while int(pub.get(_EVENTS)) & _POLLIN:
            try:
                msg = pub.recv(_NOBLOCK)
            except zmq.Again:
                return
            if msg[:1] == b"\x01":
                demand.subscribe(msg[1:])
            elif msg[:1] == b"\x00":
                demand.unsubscribe(msg[1:])

    def serve_requests(self, timeout_ms: int, limit: int = MAX_REQUESTS_PER_POLL) -> None:
        """Answer the requests waiting now, at most `limit` (waiting up to timeout_ms for
        the first one)."""
        self.read_subscriptions()
        router = self.endpoints.control
        for i in range(limit):
            try:
                if i == 0 and timeout_ms > 0:
                    if self.spin.wait(self._request_waiting):
                        frames, user = self._receive(router, _NOBLOCK)
                    else:
                        # a blocking receive with a timeout: the kernel wakes this thread as
                        # the request lands, with no poll call and its list of sockets between
                        if self._rcvtimeo != timeout_ms:
                            router.setsockopt(_RCVTIMEO, timeout_ms)
                            self._rcvtimeo = timeout_ms
                        frames, user = self._receive(router, 0)
                        self.spin.woke()
                elif not cast(int, router.get(_EVENTS)) & _POLLIN:
                    return  # look before taking one without waiting (no exception raised)
                else:
                    frames, user = self._receive(router, _NOBLOCK)
            except zmq.Again:
                return
            if len(frames) < 2:
                continue  # ROUTER always prepends the identity; anything else is noise
            # [identity, (empty delimiter from REQ clients,) payload]: echo the envelope back
            envelope, payload = frames[:-1], frames[-1]
            client, now = envelope[0], time.monotonic()
            # with Curve the budget follows the key, so reconnecting does not refill it
            if not self.limiter.admit(user if user is not None else client, now):
                reply = self.dispatcher.refuse(
                    client,
                    payload,
                    now,
                    "rate_limited",
                    f"more than {self.opts.rate_limit:g} requests/s (burst "
                    f"{self.opts.rate_burst}) from this client: slow down",
                )
            else:
                role = CONTROLLER if self.roles is None else self.roles.get(user or "", OBSERVER)
                reply = self.dispatcher.handle(client, payload, now, role, user)
            try:
                for frame in envelope:
                    _send(router, frame, _MORE_NOBLOCK)
                _send(router, reply, _NOBLOCK)
            except zmq.ZMQError:
                pass  # the client is gone or not reading: its loss, not the line's
            self.spin.sent()
            self._settle()  # the telemetry the request's steps left due, now it is answered
            self.check_watchdog()

    def _settle(self) -> None:
        try:
            self.host.settle()
        except Exception:  # a server bug must not take the line down with it
            traceback.print_exc(file=sys.stderr)

    def _receive(self, router: zmq.Socket, flags: int) -> tuple[list[bytes], str | None]:
        """One request's frames and, with Curve, the sender's User-Id (its z85 public key)."""
        if self.roles is None:
            # recv_multipart without its option lookups: a ROUTER's first frame (the
            # identity) is always followed by the message, which arrives whole
            frames = [router.recv(flags), router.recv(_NOBLOCK)]
            while router.get(_RCVMORE):
                frames.append(router.recv(_NOBLOCK))
            return frames, None
        parts = router.recv_multipart(flags, copy=False)
        return [p.bytes for p in parts], cast(str, parts[-1].get("User-Id"))

    def check_watchdog(self) -> None:
        """Take control from a holder silent for longer than its lease (or its watchdog,
        which also safe-stops the line)."""
        expiry = self.lock.expired(time.monotonic())
        if expiry is None:
            return
        self.dispatcher.image = None
        if not expiry.watchdog:
            self.host.controlled = False
            self.host.server_event(
                "lease_expired",
                client=expiry.holder.hex(),
                timeout=expiry.timeout,
                silent_for=expiry.silent_for,
            )
            return
        line = self.host.line
        step, sim_time = line.step_index, line.sim_time
        self.host.watchdog_trip(expiry.holder.hex(), expiry.timeout, expiry.silent_for)
        for listener in self.watchdog_listeners:
            listener(expiry.holder, expiry.timeout, expiry.silent_for, step, sim_time)

    # modes -----------------------------------------------------------------------------
    def run(self) -> None:
        {"fast": self._run_fast, "realtime": self._run_realtime, "lockstep": self._run_lockstep}[
            self.opts.mode
        ]()

    def _run_fast(self) -> None:
        host = self.host
        while not self.stopping:
            self.serve_requests(IDLE_POLL_MS if host.paused else 0)
            self.check_watchdog()
            if not host.paused:
                host.advance(FAST_STEPS_PER_POLL)

    def _run_realtime(self) -> None:
        host = self.host
        period = host.line.dt / self.opts.rtf
        due = time.monotonic()
        while not self.stopping:
            now = time.monotonic()
            wait_ms = IDLE_POLL_MS if host.paused else max(0, int((due - now) * 1000))
            self.serve_requests(min(wait_ms, IDLE_POLL_MS))
            self.check_watchdog()
            now = time.monotonic()
            if host.paused:
                due = now  # re-anchor so resuming does not burst to catch up
            elif now >= due:
                host.advance(1)
                due += period
                if now - due > REALTIME_MAX_LAG_S:
                    due = now
            else:
                time.sleep(0)

    def _run_lockstep(self) -> None:
        while not self.stopping:
            # one request per wait: the next one is taken by the next wait, at once if it is
            # there (so nothing looks for a further request in between)
            self.serve_requests(IDLE_POLL_MS, 1)
            self.check_watchdog()

    def close(self) -> None:
        for close in self.closers:
            close()
        self.closers.clear()
        self.host.close()
        self.endpoints.close()


def start_gateways(opts: ServeOptions, control: str, telemetry: str) -> list:
    """The OPC UA and Modbus gateways asked for, each a client in its own process."""
    procs = []
    if opts.opcua:
        procs.append(spawn_gateway("opcua", control, telemetry, "--endpoint", opts.opcua))
    if opts.modbus:
        remote = ["--allow-remote"] if opts.allow_remote else []
        procs.append(spawn_gateway("modbus", control, telemetry, "--address", opts.modbus, *remote))
    if opts.hmi:
        procs.append(spawn_gateway("hmi", control, telemetry, "--address", opts.hmi))
    if opts.foxglove:
        procs.append(spawn_gateway("foxglove", control, telemetry, "--address", opts.foxglove))
    return procs


def serve(
    cfg: LineConfig, opts: ServeOptions, *, attach: Callable[[Server], None] | None = None
) -> int:
    """Run a server until SIGINT or SIGTERM; print where it listens; return the exit code.
    `attach` is given the built server before it runs (the composer's recorder)."""
    server = Server(cfg, opts)
    if attach is not None:
        try:
            attach(server)
        except Exception:
            server.close()
            raise
    if server.curve is None:
        for kind, addr in (("control", opts.control), ("telemetry", opts.telemetry)):
            warning = remote_warning(addr, kind)
            if warning:
                print(warning, file=sys.stderr, flush=True)

    def stop(signum: int, frame: object) -> None:
        server.stopping = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    gateways = []
    try:
        ep = server.endpoints
        print(f"control   {ep.control_addr} (ROUTER, MessagePack requests)", flush=True)
        print(
            f"telemetry {ep.telemetry_addr} (PUB, topics: state, event, kpi, camera/<id>/<modality>)",
            flush=True,
        )
        print(
            f"mode      {opts.mode}" + (f" x{opts.rtf}" if opts.mode == "realtime" else ""),
            flush=True,
        )
        if opts.record:
            print(f"record    {opts.record} (MCAP)", flush=True)
        if server.curve is not None:
            roles = list(server.curve.roles.values())
            print(
                f"curve     {server.curve.directory} ({roles.count(CONTROLLER)} controller and "
                f"{roles.count(OBSERVER)} observer keys)",
                flush=True,
            )
        gateways = start_gateways(opts, ep.control_addr, ep.telemetry_addr)
        server.run()
    finally:
        for proc in gateways:
            stop_gateway(proc)
        server.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    print("stopped", file=sys.stderr, flush=True)
    return 0
