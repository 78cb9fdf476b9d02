"""`twin foxglove`: a running twin, live in Foxglove (docs/foxglove.md)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from twin.gateways.command_common import (
    add_twin_link_options,
    run_subcommand,
    stop_current_task_on_signals,
)

DEFAULT_ADDRESS = "127.0.0.1:8765"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "foxglove",
        help="publish a running twin's telemetry and 3D scene to Foxglove (WebSocket)",
        description="Foxglove live in front of a running `twin serve` (docs/foxglove.md).",
    )
    p.add_argument(
        "--address",
        default=DEFAULT_ADDRESS,
        help=f"HOST:PORT of the Foxglove WebSocket server ({DEFAULT_ADDRESS}; port 0 = any)",
    )
    add_twin_link_options(p)
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="listen on a non-loopback address (anyone who reaches it sees the line; "
        "nothing reaches the twin from Foxglove)",
    )
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve wss (PEM files)")
    p.set_defaults(func=run_foxglove)


def run_foxglove(args: argparse.Namespace) -> int:
    from twin.gateways.foxglove.bridge import FoxgloveBridge, FoxgloveOptions

    opts = FoxgloveOptions(
        address=args.address,
        control=args.control,
        telemetry=args.telemetry,
        allow_remote=args.allow_remote,
        curve=tuple(args.curve) if args.curve else None,
        tls=tuple(args.tls) if args.tls else None,
    )
    try:
        bridge = FoxgloveBridge(opts)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_main(bridge))
    except (TimeoutError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


async def _main(bridge) -> int:  # noqa: ANN001
    stop_current_task_on_signals()
    try:
        await bridge.start()
        print(f"foxglove  {bridge.url} (line {bridge.line}; open it in Foxglove)", flush=True)
        while True:
            await asyncio.sleep(3600)
    except asyncio.CancelledError:
        return 0
    finally:
        await bridge.stop()


def main(argv: list[str] | None = None) -> int:
    return run_subcommand("foxglove", add_parser, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":  # python -m twin.gateways.foxglove.command [options]
    sys.exit(main())
