"""`twin opcua`: serve a running twin over OPC UA (docs/opcua.md)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from twin.gateways.command_common import (
    add_twin_link_options,
    run_subcommand,
    stop_current_task_on_signals,
)
from twin.gateways.opcua.options import DEFAULT_ENDPOINT, ROLES, OpcUaOptions


def _positive(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    d = OpcUaOptions()
    p = subparsers.add_parser(
        "opcua",
        help="serve a running twin over OPC UA (PackML-shaped address space)",
        description="An OPC UA server in front of a running `twin serve` (docs/opcua.md).",
    )
    p.add_argument(
        "--endpoint", default=DEFAULT_ENDPOINT, help=f"OPC UA endpoint ({DEFAULT_ENDPOINT})"
    )
    add_twin_link_options(p, d.control, d.telemetry)
    p.add_argument(
        "--users",
        metavar="FILE",
        help="users file (twin opcua user): Basic256Sha256 Sign/SignAndEncrypt with user name or "
        "certificate logins mapped to controller/observer; required off loopback",
    )
    p.add_argument("--pki", metavar="DIR", help="server certificate directory (made if missing)")
    p.add_argument(
        "--watchdog",
        type=_positive,
        default=d.watchdog,
        help=f"the twin's watchdog while a client controls it (s, {d.watchdog:g})",
    )
    p.add_argument(
        "--idle-timeout",
        type=_positive,
        default=d.idle_timeout,
        help=f"a controlling client silent this long loses control (s, {d.idle_timeout:g})",
    )
    p.add_argument("--max-sessions", type=_count, default=d.max_sessions)
    p.add_argument("--max-subscriptions", type=_count, default=d.max_subscriptions)
    p.add_argument("--max-monitored-items", type=_count, default=d.max_monitored_items)
    p.set_defaults(func=run_opcua)

    sub = p.add_subparsers(dest="opcua_command")
    u = sub.add_parser("user", help="add a user to a users file")
    u.add_argument("file")
    u.add_argument("name")
    u.add_argument("--role", choices=ROLES, required=True)
    u.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    u.add_argument("--certificate", help="the user's certificate (DER or PEM), relative to FILE")
    u.set_defaults(func=run_add_user)


def run_add_user(args: argparse.Namespace) -> int:
    from twin.gateways.opcua.security import SecurityError, add_user

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
    if password is None and args.certificate is None:
        print("error: give --password-stdin or --certificate", file=sys.stderr)
        return 2
    try:
        add_user(args.file, args.name, args.role, password, args.certificate)
    except SecurityError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.file}: added {args.name} ({args.role})")
    return 0


def run_opcua(args: argparse.Namespace) -> int:
    from twin.gateways.opcua.security import SecurityError

    opts = OpcUaOptions(
        endpoint=args.endpoint,
        control=args.control,
        telemetry=args.telemetry,
        users=args.users,
        pki=args.pki,
        curve=tuple(args.curve) if args.curve else None,
        watchdog=args.watchdog,
        idle_timeout=args.idle_timeout,
        max_sessions=args.max_sessions,
        max_subscriptions=args.max_subscriptions,
        max_monitored_items=args.max_monitored_items,
    )
    try:
        asyncio.run(_main(opts))
    except SecurityError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TimeoutError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


async def _main(opts: object) -> None:
    from twin.gateways.opcua.gateway import run_gateway

    stop_current_task_on_signals()

    def ready(gateway: object) -> None:
        print(f"opcua     {gateway.endpoint_url} (line {gateway.model.line})", flush=True)  # type: ignore[attr-defined]

    try:
        await run_gateway(opts, ready)  # type: ignore[arg-type]
    except asyncio.CancelledError:
        pass


def main(argv: list[str] | None = None) -> int:
    return run_subcommand("opcua", add_parser, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":  # python -m twin.gateways.opcua.command [options]
    sys.exit(main())
