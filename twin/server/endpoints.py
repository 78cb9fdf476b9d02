"""The two sockets of a server: a ROUTER for requests and a PUB for telemetry.

Loopback by default: binding anywhere else must be asked for explicitly (allow_remote),
because anyone who can reach the control socket can move the robots, unless both sockets run
CurveZMQ (encrypted, and only listed client keys get in: see twin.server.curve).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import zmq
from zmq.auth.thread import ThreadAuthenticator

from twin.protocol.codec import MAX_MESSAGE_BYTES
from twin.server.curve import CurveConfig, make_server_socket, start_authenticator
from twin.server.limits import DEFAULT_MAX_QUEUED

DEFAULT_CONTROL = "tcp://127.0.0.1:5555"
DEFAULT_TELEMETRY = "tcp://127.0.0.1:5556"
TELEMETRY_HWM = 1000  # messages queued per subscriber before PUB drops (never waits)
# ZeroMQ drops the connection of a peer that sends more than this; below it the server
# answers an oversized request with a too_large error instead.
HARD_MAX_MESSAGE_BYTES = 16 * MAX_MESSAGE_BYTES


class RemoteBindRefused(ValueError):
    """A bind address that is not loopback, without allow_remote."""


def is_loopback(addr: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on 127.0.0.0/8, ::1 or localhost."""
    scheme, _, rest = addr.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp" or not rest:
        return False
    host = rest.rsplit(":", 1)[0] if ":" in rest else rest
    if ";" in host:  # tcp://source;destination form: only the interface part matters here
        return False
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name, a host name: not provably loopback


def check_bind(addr: str, allow_remote: bool) -> None:
    if not allow_remote and not is_loopback(addr):
        raise RemoteBindRefused(
            f"refusing to bind {addr}: it is not a loopback address, so other machines could "
            "drive the line; use --curve DIR (twin keys generate) to let only known clients in, "
            "or pass --allow-remote if that is what you want"
        )


def remote_warning(addr: str, socket_kind: str) -> str | None:
    """The warning to print for an unauthenticated `socket_kind` ("control" or "telemetry")
    socket bound beyond loopback, or None."""
    if is_loopback(addr):
        return None
    what = "drive the line" if socket_kind == "control" else "read all telemetry"
    return (
        f"warning: {socket_kind} socket {addr} is reachable from other machines without "
        f"authentication or encryption: anyone who reaches it can {what} "
        "(use --curve DIR to let only known clients in)"
    )


@dataclass
class Endpoints:
    context: zmq.Context
    control: zmq.Socket  # ROUTER
    telemetry: zmq.Socket  # XPUB: a PUB that also hears which topics are subscribed
    control_addr: str  # as bound, with the real port when a wildcard was asked for
    telemetry_addr: str
    auth: ThreadAuthenticator | None = None  # the ZAP handler when Curve is on

    def close(self) -> None:
        self.control.close(linger=0)
        self.telemetry.close(linger=0)
        if self.auth is not None:
            self.auth.stop()
        self.context.term()


def open_endpoints(
    control_addr: str,
    telemetry_addr: str,
    *,
    allow_remote: bool,
    curve: CurveConfig | None = None,
    max_queued: int = DEFAULT_MAX_QUEUED,
) -> Endpoints:
    """Bind both sockets; with `curve`, encrypted and open only to its listed client keys
    (which may then be reached from anywhere). `max_queued` bounds the requests ZeroMQ queues
    per client (ROUTER receive high-water mark: beyond it, it stops reading that client)."""
    if curve is None:
        check_bind(control_addr, allow_remote)
        check_bind(telemetry_addr, allow_remote)
    ctx = zmq.Context()
    auth = start_authenticator(ctx, curve) if curve is not None else None
    router = ctx.socket(zmq.ROUTER)
    # XPUB: the server learns which topics have subscribers (a camera renders only for one);
    # it reports the first subscription of a topic and the last one leaving
    pub = ctx.socket(zmq.XPUB)
    try:
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.MAXMSGSIZE, HARD_MAX_MESSAGE_BYTES)
        router.setsockopt(zmq.SNDHWM, 1000)  # ROUTER drops replies to a client that never reads
        router.setsockopt(zmq.RCVHWM, max_queued)
        pub.setsockopt(zmq.LINGER, 0)
        pub.setsockopt(zmq.SNDHWM, TELEMETRY_HWM)
        if curve is not None:
            make_server_socket(router, curve)
            make_server_socket(pub, curve)
        router.bind(control_addr)
        pub.bind(telemetry_addr)
    except Exception:
        router.close(linger=0)
        pub.close(linger=0)
        if auth is not None:
            auth.stop()
        ctx.term()
        raise
    return Endpoints(
        ctx,
        router,
        pub,
        router.getsockopt_string(zmq.LAST_ENDPOINT),
        pub.getsockopt_string(zmq.LAST_ENDPOINT),
        auth,
    )
