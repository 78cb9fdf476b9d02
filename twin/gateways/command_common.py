"""What every gateway command shares: a clean stop on SIGINT/SIGTERM and `python -m` entry."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable
from typing import Any


def stop_current_task_on_signals() -> None:
    """The first SIGINT/SIGTERM cancels the running task so the gateway stops cleanly in its
    `finally`; repeats are ignored so they cannot cut that short."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def stop_once() -> None:
        for s in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(s)
            loop.add_signal_handler(s, lambda: None)
        if task is not None:
            task.cancel()

    for s in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(s, stop_once)


def add_twin_link_options(
    p: argparse.ArgumentParser,
    control: str = "tcp://127.0.0.1:5555",
    telemetry: str = "tcp://127.0.0.1:5556",
) -> None:
    """--control, --telemetry and --curve: where the gateway finds the twin and how it proves
    itself to a twin served with Curve."""
    p.add_argument("--control", default=control, help=f"the twin's control socket ({control})")
    p.add_argument(
        "--telemetry", default=telemetry, help=f"the twin's telemetry socket ({telemetry})"
    )
    p.add_argument(
        "--curve",
        nargs=2,
        metavar=("KEY_SECRET", "SERVER_KEY"),
        help="for a twin served with --curve: this gateway's key pair and the twin's public key",
    )


def run_subcommand(name: str, add_parser: Callable[[Any], Any], argv: list[str]) -> int:
    """Parse `argv` as `twin NAME ...` and run it (for `python -m twin.gateways.X.command`)."""
    parser = argparse.ArgumentParser(prog="twin")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([name, *argv])
    return args.func(args)
