"""Who may do what through the HMI.

The rules follow the twin's sockets: the page is served on loopback unless a wider address is
asked for (`allow_remote`); nobody controls the line anonymously. A browser is a controller
only if it presents the HMI's controller token (printed in the URL at start, like a notebook
server); a browser on another machine must in addition use TLS, so the token never crosses
the network in clear text. Everyone else sees the same page read-only. A WebSocket opened by
a page from another origin (a foreign site in the operator's browser) is refused outright.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from urllib.parse import urlsplit

TOKEN_ENV = "TWIN_HMI_TOKEN"  # a fixed controller token (for bookmarks); else a random one


class RemoteBindRefused(ValueError):
    """A non-loopback listen address without allow_remote."""


def parse_address(text: str) -> tuple[str, int]:
    """'HOST:PORT' (port 0 = any free port; '[::1]:8080' for IPv6) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"HMI address {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"HMI address {text!r}: port {port!r} is not a number") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"HMI address {text!r}: port {number} is outside 0..65535")
    return host.strip("[]"), number


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name or a wildcard: not provably loopback


def check_bind(host: str, allow_remote: bool, service: str = "the HMI", hint: str = "") -> None:
    if not allow_remote and not is_loopback_host(host):
        raise RemoteBindRefused(
            f"refusing to serve {service} on {host}: it is not a loopback address, so other "
            "machines could open it; pass --allow-remote "
            + (
                hint
                or "(remote browsers are observers unless they hold the controller token "
                "over TLS, see --tls)"
            )
        )


def controller_token() -> str:
    return os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(24)


def role_for(token: str, given: str | None, peer: str | None, tls: bool) -> tuple[str, str]:
    """(role, why) for a browser that presented `given` from address `peer`."""
    if not given:
        return "observer", "read-only: open the controller URL (with its token) to operate"
    if not hmac.compare_digest(given.encode(), token.encode()):
        return "observer", "read-only: the controller token is wrong"
    if peer is not None and not is_loopback_host(peer) and not tls:
        return "observer", "read-only: control from another machine needs the HMI over TLS"
    return "controller", "you may operate the line"


def same_origin(origin: str | None, host_header: str | None) -> bool:
    """A browser WebSocket must come from a page this server served (no Origin: not a browser)."""
    if origin is None:
        return True
    if not host_header:
        return False
    return urlsplit(origin).netloc.lower() == host_header.lower()
