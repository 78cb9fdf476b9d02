"""Start a gateway next to `twin serve`, as its own process, so the step loop never waits for it."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from urllib.parse import urlparse


def local_address(bound: str) -> str:
    """Where a process on this machine reaches a socket bound at `bound` (a wildcard host
    such as tcp://0.0.0.0:5555 or tcp://*:5555 is reached on loopback)."""
    scheme, _, rest = bound.partition("://")
    host, sep, port = rest.rpartition(":")
    if scheme == "tcp" and host in ("*", "0.0.0.0", "[::]", "::"):
        return f"tcp://127.0.0.1{sep}{port}"
    return bound


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def gateway_address_problem(
    opcua: str | None, modbus: str | None, allow_remote: bool
) -> str | None:
    """Why `twin serve --opcua/--modbus` cannot start that gateway (None if it can), said
    before the twin starts rather than by a child process that exits."""
    if opcua:
        url = urlparse(opcua)
        if url.scheme != "opc.tcp" or not url.hostname:
            return f"--opcua {opcua}: expected opc.tcp://HOST:PORT/PATH"
        if not _loopback(url.hostname):
            return (
                f"--opcua {opcua}: anonymous OPC UA access is only allowed on loopback; for "
                "another interface run `twin opcua --endpoint ... --users FILE` next to the twin"
            )
    if modbus:
        host, sep, port = modbus.rpartition(":")
        if not sep or not port.isdigit():
            return f"--modbus {modbus}: expected HOST:PORT"
        if not allow_remote and not _loopback(host):
            return (
                f"--modbus {modbus}: Modbus has no authentication; use a loopback address or "
                "--allow-remote"
            )
    return None


def spawn_gateway(
    kind: str, control: str, telemetry: str, *extra: str, quiet: bool = False
) -> subprocess.Popen:
    """`twin <kind>` (a gateway package under twin.gateways) against the twin at these
    (bound) addresses; its stdout and stderr are the caller's (or nowhere, if quiet)."""
    module = f"twin.gateways.{kind}.command"  # opcua, modbus, hmi, foxglove
    cmd = [
        sys.executable,
        "-m",
        module,
        "--control",
        local_address(control),
        "--telemetry",
        local_address(telemetry),
        *extra,
    ]
    out = subprocess.DEVNULL if quiet else None
    return subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, preexec_fn=_die_with_parent
    )


def _die_with_parent() -> None:
    """Linux: the gateway gets SIGTERM when the twin's process dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_gateway(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
