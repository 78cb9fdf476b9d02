"""The two sockets of a server: a ROUTER for requests and a PUB for telemetry.

Loopback by default: binding anywhere else must be asked for explicitly (allow_remote),
because anyone who can reach the control socket can move the robots.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import zmq

from twin.protocol.codec import MAX_MESSAGE_BYTES

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
            "drive the line; pass --allow-remote if that is what you want"
        )


@dataclass
class Endpoints:
    context: zmq.Context
    control: zmq.Socket  # ROUTER
    telemetry: zmq.Socket  # PUB
    control_addr: str  # as bound, with the real port when a wildcard was asked for
    telemetry_addr: str

    def close(self) -> None:
        self.control.close(linger=0)
        self.telemetry.close(linger=0)
        self.context.term()


def open_endpoints(control_addr: str, telemetry_addr: str, *, allow_remote: bool) -> Endpoints:
    check_bind(control_addr, allow_remote)
    check_bind(telemetry_addr, allow_remote)
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    pub = ctx.socket(zmq.PUB)
    try:
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.MAXMSGSIZE, HARD_MAX_MESSAGE_BYTES)
        router.setsockopt(zmq.SNDHWM, 1000)  # ROUTER drops replies to a client that never reads
        router.bind(control_addr)
        pub.setsockopt(zmq.LINGER, 0)
        pub.setsockopt(zmq.SNDHWM, TELEMETRY_HWM)
        pub.bind(telemetry_addr)
    except Exception:
        router.close(linger=0)
        pub.close(linger=0)
        ctx.term()
        raise
    return Endpoints(
        ctx,
        router,
        pub,
        router.getsockopt(zmq.LAST_ENDPOINT).decode(),
        pub.getsockopt(zmq.LAST_ENDPOINT).decode(),
    )
