"""CurveZMQ for the twin: who may connect (ZAP allowlist) and with which role.

The server reads a key directory written by `twin keys generate` (layout in twin.server.keys):
its own key pair, and the public keys of the clients allowed in, one directory per role. A
ZAP handler (pyzmq's ThreadAuthenticator) admits exactly those keys on both sockets; ZeroMQ
then stamps every message with the peer's User-Id, which is the z85 text of its public key,
and `CurveConfig.roles` maps that to the client's role. All the cryptography is ZeroMQ's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from twin.curve_keys import CurveSetupError, load_key_pair
from twin.server.keys import CONTROLLERS, OBSERVERS, SERVER

__all__ = ["CurveSetupError"]  # the client's half (key files, client sockets): twin.curve_keys

CONTROLLER = "controller"  # every request (control ownership still applies)
OBSERVER = "observer"  # telemetry and read-only requests
ZAP_DOMAIN = "twin"


@dataclass
class CurveConfig:
    public_key: bytes  # z85, the server's
    secret_key: bytes
    roles: dict[str, str]  # z85 client public key (the ZAP User-Id) -> role
    directory: Path


def load_server_keys(directory: str | Path) -> CurveConfig:
    """The server key pair and the client allowlist of a `twin keys generate` directory."""
    root = Path(directory)
    public, secret = load_key_pair(root / f"{SERVER}.key_secret")
    if not secret:
        raise CurveSetupError(f"{root / (SERVER + '.key_secret')} holds no secret key")
    roles: dict[str, str] = {}
    # observers first, so a key listed in both directories gets the controller role
    for role, sub in ((OBSERVER, OBSERVERS), (CONTROLLER, CONTROLLERS)):
        for key_file in sorted((root / sub).glob("*.key")):
            client_public, _ = load_key_pair(key_file)
            roles[client_public.decode("ascii")] = role
    if not roles:
        raise CurveSetupError(
            f"no client keys in {root / CONTROLLERS} or {root / OBSERVERS}: nobody could connect "
            "(create some with: twin keys generate DIR --controllers NAME)"
        )
    return CurveConfig(public, secret, roles, root)


class _Allowlist:
    """ZAP credentials provider: admit exactly the listed public keys."""

    def __init__(self, roles: dict[str, str]) -> None:
        self._keys = frozenset(k.encode("ascii") for k in roles)

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self._keys


def start_authenticator(ctx: zmq.Context, cfg: CurveConfig) -> ThreadAuthenticator:
    """A ZAP handler for every Curve server socket of `ctx` in ZAP_DOMAIN (stop() it)."""
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve_callback(ZAP_DOMAIN, credentials_provider=_Allowlist(cfg.roles))
    return auth


def make_server_socket(sock: zmq.Socket, cfg: CurveConfig) -> None:
    """Encrypt `sock` and authenticate its peers (call before bind)."""
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, cfg.secret_key)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, cfg.public_key)
    sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
