"""Who may connect to the OPC UA gateway and what each may do.

- Anonymous sessions only when the endpoint is loopback; they get the controller role, like
  every client of a twin without CurveZMQ.
- Otherwise only Basic256Sha256 (Sign, SignAndEncrypt) with a user from a users file: a user
  name with a password (PBKDF2-SHA256 hash in the file) or a client certificate, each mapped
  to the twin's `controller` or `observer` role.
- An observer reads, browses and subscribes; its writes are refused (BadUserAccessDenied) and
  so are its calls of the gateway's methods.

Users file (TOML), made with `twin opcua user FILE NAME --role ROLE [--password-stdin |
--certificate CERT.der]`:

    [users.plc]
    role = "controller"
    password = "pbkdf2_sha256$200000$<salt hex>$<hash hex>"

    [users.scada]
    role = "observer"
    certificate = "scada.der"      # relative to the users file
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import ipaddress
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import msgspec
from asyncua import ua
from asyncua.crypto.permission_rules import USER_TYPES, PermissionRuleset, User, UserRole
from cryptography import x509
from cryptography.hazmat.primitives import serialization

CONTROLLER = "controller"
OBSERVER = "observer"
ROLES = (CONTROLLER, OBSERVER)
_PBKDF2_ROUNDS = 200_000

# the user of the request being processed: set by the ruleset, read by method and write
# handlers (asyncua runs each connection's requests one after another in one task)
CURRENT_USER: contextvars.ContextVar[User | None] = contextvars.ContextVar(
    "twin_opcua_user", default=None
)


class SecurityError(ValueError):
    """A users file or endpoint set-up that cannot be used; the message says why."""


@dataclass(eq=False)  # each session has its own user object: identity, not equality
class TwinUser(User):
    twin_role: str = OBSERVER
    anonymous_no: int = 0  # anonymous sessions have no identity but their number

    @property
    def label(self) -> str:
        if self.anonymous_no:
            return f"anonymous OPC UA session {self.anonymous_no}"
        return f"OPC UA user '{self.name}'"


def role_of(user: Any) -> str:
    return user.twin_role if isinstance(user, TwinUser) else OBSERVER


def is_loopback_endpoint(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# users file --------------------------------------------------------------------------------
def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _PBKDF2_ROUNDS)
    return f"pbkdf2_sha256${_PBKDF2_ROUNDS}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, rounds, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        got = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(rounds))
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


@dataclass
class UserEntry:
    name: str
    role: str
    password: str | None = None  # the stored hash
    certificate: bytes | None = None  # DER


def _der_certificate(data: bytes) -> bytes:
    """A certificate file's DER bytes, whether the file is DER or PEM."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    return x509.load_der_x509_certificate(data).public_bytes(serialization.Encoding.DER)


def load_users(path: str | Path) -> list[UserEntry]:
    path = Path(path)
    try:
        raw = msgspec.toml.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError) as e:
        raise SecurityError(f"{path}: cannot read the users file: {e}") from None
    users = []
    for name, entry in (raw.get("users") or {}).items():
        where = f"{path}: users.{name}"
        if not isinstance(entry, dict):
            raise SecurityError(f"{where}: expected a table")
        unknown = set(entry) - {"role", "password", "certificate"}
        if unknown:
            raise SecurityError(f"{where}: unknown keys {sorted(unknown)}")
        role = entry.get("role")
        if role not in ROLES:
            raise SecurityError(f"{where}.role: expected one of {ROLES}, got {role!r}")
        cert = None
        if "certificate" in entry:
            cert_path = path.parent / str(entry["certificate"])
            try:
                cert = _der_certificate(cert_path.read_bytes())
            except Exception as e:
                raise SecurityError(f"{where}.certificate: {cert_path}: {e}") from None
        if "password" not in entry and cert is None:
            raise SecurityError(f"{where}: needs a password or a certificate")
        users.append(UserEntry(name, role, entry.get("password"), cert))
    if not users:
        raise SecurityError(f"{path}: no [users.NAME] entries")
    return users


def add_user(
    path: str | Path, name: str, role: str, password: str | None, certificate: str | None
) -> None:
    """Append one user to a users file (created if missing); an existing name is refused."""
    path = Path(path)
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise SecurityError(f"user name {name!r}: use letters, digits, '_' and '-' only")
    if role not in ROLES:
        raise SecurityError(f"role {role!r}: expected one of {ROLES}")
    text = path.read_text() if path.exists() else ""
    if text and name in (msgspec.toml.decode(text.encode()).get("users") or {}):
        raise SecurityError(f"{path}: user {name!r} exists already")
    lines = [f"\n[users.{name}]", f'role = "{role}"']
    if password is not None:
        lines.append(f'password = "{hash_password(password)}"')
    if certificate is not None:
        lines.append(f'certificate = "{certificate}"')
    path.write_text(text + "\n".join(lines) + "\n")
    path.chmod(0o600)


# asyncua hooks -------------------------------------------------------------------------------
class TwinUserManager:
    """Maps a session's identity token to a TwinUser (None refuses the session)."""

    def __init__(self, users: list[UserEntry], allow_anonymous: bool) -> None:
        self.users = users
        self.allow_anonymous = allow_anonymous
        self._anonymous = 0

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is not None:
            for u in self.users:
                if u.name == username and u.password and check_password(password or "", u.password):
                    return TwinUser(role=UserRole.User, name=u.name, twin_role=u.role)
            return None
        if certificate:  # an X509 token's, or the secure channel's (b"" without security)
            for u in self.users:
                if u.certificate is not None and u.certificate == certificate:
                    return TwinUser(role=UserRole.User, name=u.name, twin_role=u.role)
        if self.allow_anonymous:
            self._anonymous += 1
            return TwinUser(
                role=UserRole.User,
                name="anonymous",
                twin_role=CONTROLLER,
                anonymous_no=self._anonymous,
            )
        return None


_ALLOWED = {ua.NodeId(t) for t in USER_TYPES}
_WRITE = ua.NodeId(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary)
_SUBSCRIPTION_TYPES = {
    ua.NodeId(ua.ObjectIds.CreateSubscriptionRequest_Encoding_DefaultBinary),
    ua.NodeId(ua.ObjectIds.CreateMonitoredItemsRequest_Encoding_DefaultBinary),
}


class RoleRuleset(PermissionRuleset):
    """Checked before every request of an activated session: observers may not write (method
    calls are checked per method, so an observer can still refresh and acknowledge alarms);
    no one may change the address space. Also notes the caller for the handlers."""

    def __init__(self, on_request: Any = None) -> None:
        self.on_request = on_request

    def check_validity(self, user: Any, action_type_id: Any, body: Any) -> bool:
        CURRENT_USER.set(user)
        if self.on_request is not None:
            self.on_request(user)
        if action_type_id not in _ALLOWED:
            return False
        return not (action_type_id == _WRITE and role_of(user) != CONTROLLER)


def warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr, flush=True)
