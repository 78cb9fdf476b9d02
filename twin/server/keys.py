"""`twin keys generate`: CurveZMQ key pairs for `twin serve --curve DIR` (see docs/protocol.md).

The key directory, as written here and read by `twin.server.curve`:

    DIR/server.key                  the twin's public key: give it to every client
    DIR/server.key_secret           the twin's secret key: stays with the twin (mode 0600)
    DIR/controllers/NAME.key        public keys of clients with the controller role
    DIR/observers/NAME.key          public keys of clients with the observer role
    DIR/secrets/NAME.key_secret     each client's key pair: hand it to that client only,
                                    then delete it from the twin's machine

Running it again on the same DIR keeps the server key and adds the new clients, so clients
can be added later; a name that exists already is refused. Revoking a client is deleting its
public key file (and restarting the twin). The files are ZeroMQ's own certificate format
(zmq.auth.create_certificates): no crypto is done here.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import zmq.auth

SERVER = "server"
CONTROLLERS = "controllers"
OBSERVERS = "observers"
SECRETS = "secrets"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class KeySetupError(ValueError):
    """A bad client name or a key file that exists already."""


@dataclass
class Generated:
    directory: Path
    server_public: Path
    server_created: bool
    clients: dict[str, Path] = field(default_factory=dict)  # name -> secret file


def _check_names(controllers: list[str], observers: list[str]) -> None:
    names = [*controllers, *observers]
    for name in names:
        if not _NAME.match(name) or name == SERVER:
            raise KeySetupError(
                f"bad client name {name!r}: use letters, digits, '_', '.', '-' "
                f"(at most 64, not {SERVER!r})"
            )
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise KeySetupError(f"client names must be unique, repeated: {', '.join(dupes)}")


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def generate(directory: str | Path, controllers: list[str], observers: list[str]) -> Generated:
    """Create the server key pair (unless present) and one key pair per client name."""
    _check_names(controllers, observers)
    root = Path(directory)
    secrets = root / SECRETS
    for name in [*controllers, *observers]:
        for existing in (
            secrets / f"{name}.key_secret",
            root / CONTROLLERS / f"{name}.key",
            root / OBSERVERS / f"{name}.key",
        ):
            if existing.exists():
                raise KeySetupError(f"{existing} exists already: pick another name")
    old_umask = os.umask(0o077)  # secret files are never readable by others, not even briefly
    try:
        return _write(root, controllers, observers)
    finally:
        os.umask(old_umask)


def _write(root: Path, controllers: list[str], observers: list[str]) -> Generated:
    secrets = root / SECRETS
    _private_dir(root)
    _private_dir(secrets)
    for public_dir in (CONTROLLERS, OBSERVERS):
        (root / public_dir).mkdir(exist_ok=True)
        os.chmod(root / public_dir, 0o755)

    server_public, server_secret = root / f"{SERVER}.key", root / f"{SERVER}.key_secret"
    created = not server_secret.exists()
    if created:
        zmq.auth.create_certificates(root, SERVER)
        os.chmod(server_public, 0o644)
    out = Generated(root, server_public, created)
    for role_dir, names in ((CONTROLLERS, controllers), (OBSERVERS, observers)):
        for name in names:
            public, secret = zmq.auth.create_certificates(secrets, name)
            os.chmod(public, 0o644)
            shutil.move(public, root / role_dir / f"{name}.key")
            out.clients[name] = Path(secret)
    return out


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "keys",
        help="CurveZMQ keys for `twin serve --curve DIR`",
        description="Create CurveZMQ key pairs for an authenticated, encrypted twin.",
    )
    sub = p.add_subparsers(dest="keys_command", required=True)
    gen = sub.add_parser(
        "generate",
        help="create the server key pair and client key pairs in DIR",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gen.add_argument("directory", metavar="DIR")
    gen.add_argument(
        "--controllers",
        "--clients",
        nargs="+",
        default=[],
        metavar="NAME",
        help="clients that may change the line (controller role)",
    )
    gen.add_argument(
        "--observers",
        nargs="+",
        default=[],
        metavar="NAME",
        help="clients that may only read: telemetry and read-only requests",
    )
    gen.set_defaults(func=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    try:
        out = generate(args.directory, args.controllers, args.observers)
    except (KeySetupError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    state = "created" if out.server_created else "kept"
    print(f"server     {out.server_public} ({state}; give the .key to clients)")
    for name, secret in out.clients.items():
        role = "controller" if name in args.controllers else "observer"
        print(f"{role:<10} {name}: {secret} (give to this client only)")
    print(f"serve with: twin serve --curve {out.directory}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="twin")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["keys", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":  # python -m twin.server.keys generate DIR [...] until wired in cli
    sys.exit(main())
