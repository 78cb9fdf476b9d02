"""CurveZMQ key files as both ends use them: reading a key pair, and setting up a client
socket. Neutral ground, so a client never imports the server to connect to it."""

from __future__ import annotations

from pathlib import Path

import zmq
import zmq.auth


class CurveSetupError(ValueError):
    """A key directory or key file that cannot be used."""


def load_key_pair(path: Path) -> tuple[bytes, bytes | None]:
    """(public, secret or None) z85 keys from a `twin keys generate` key file."""
    try:
        return zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise CurveSetupError(f"cannot read key file {path}: {e}") from None


def make_client_socket(
    sock: zmq.Socket, client_secret_file: str | Path, server_public_file: str | Path
) -> None:
    """Give a client socket its key pair and the server's public key (call before connect)."""
    public, secret = load_key_pair(Path(client_secret_file))
    if not secret:
        raise CurveSetupError(f"{client_secret_file} holds no secret key (use NAME.key_secret)")
    server_public, _ = load_key_pair(Path(server_public_file))
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    sock.setsockopt(zmq.CURVE_SERVERKEY, server_public)
