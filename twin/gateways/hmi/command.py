"""`twin hmi`: serve the browser HMI of a running twin (docs/hmi.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from twin.gateways.command_common import (
    add_twin_link_options,
    run_subcommand,
    stop_current_task_on_signals,
)

if TYPE_CHECKING:
    from twin.gateways.hmi.gateway import HmiGateway

DEFAULT_ADDRESS = "127.0.0.1:8080"
# The HMI yields the CPU to the twin it shows: on a busy machine the page updates a little
# later, the twin's pace does not suffer (docs/hmi.md#what-a-page-costs).
DEFAULT_NICE = 10


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "hmi",
        help="serve a live web page (3D view, stations, KPIs, alarms, commands) of a running twin",
        description="A browser HMI in front of a running `twin serve` (docs/hmi.md).",
    )
    p.add_argument(
        "--address",
        default=DEFAULT_ADDRESS,
        help=f"HOST:PORT to serve the page on ({DEFAULT_ADDRESS}; port 0 = any free port)",
    )
    add_twin_link_options(p)
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="serve on a non-loopback address (remote browsers are observers unless they "
        "hold the controller token and the page is served over --tls)",
    )
    p.add_argument(
        "--tls",
        nargs=2,
        metavar=("CERT", "KEY"),
        help="serve https/wss with this certificate and key (PEM files)",
    )
    p.add_argument(
        "--watchdog",
        type=float,
        default=2.0,
        help="s of silence from the controlling browser before the twin safe-stops (2)",
    )
    p.add_argument(
        "--nice",
        type=int,
        default=DEFAULT_NICE,
        help=f"run at this CPU scheduling niceness, 0 to 19 ({DEFAULT_NICE}: below the twin's "
        "priority, so the HMI never takes CPU the twin needs; 0 keeps the caller's)",
    )
    p.set_defaults(func=run_hmi)


def run_hmi(args: argparse.Namespace) -> int:
    from twin.gateways.hmi.gateway import HmiGateway, HmiOptions

    if not 0 < args.watchdog <= 3600:
        print(f"error: --watchdog must be in (0, 3600] s, got {args.watchdog}", file=sys.stderr)
        return 2
    if not 0 <= args.nice <= 19:
        print(f"error: --nice must be in [0, 19], got {args.nice}", file=sys.stderr)
        return 2
    lower_priority(args.nice)
    opts = HmiOptions(
        address=args.address,
        control=args.control,
        telemetry=args.telemetry,
        allow_remote=args.allow_remote,
        curve=tuple(args.curve) if args.curve else None,
        tls=tuple(args.tls) if args.tls else None,
        watchdog=args.watchdog,
    )
    try:
        gateway = HmiGateway(opts)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_main(gateway))
    except (TimeoutError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def lower_priority(nice: int) -> None:
    """Run at niceness `nice` at least (never raised: a caller that started the HMI lower
    keeps it so), as a batch task (Linux: SCHED_BATCH, which never preempts the twin when it
    wakes up, but waits for the running task's time slice to end). Both are per thread on
    Linux: the threads started at import (e.g. numpy's) are lowered one by one, those started
    later inherit it."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    tasks = Path("/proc/self/task")
    threads = [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [0]
    batch = getattr(os, "SCHED_BATCH", None)
    for thread in threads:
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            current = os.getpriority(os.PRIO_PROCESS, thread)
            if batch is not None and os.sched_getscheduler(thread) == os.SCHED_OTHER:
                os.sched_setscheduler(thread, batch, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, thread, max(current, nice))


async def _main(gateway: HmiGateway) -> int:
    stop_current_task_on_signals()
    try:
        await gateway.start()
        print(f"hmi       {gateway.url} (observers)", flush=True)
        print(
            f"hmi-control {gateway.controller_url} (operators: keep this URL private)", flush=True
        )
        while True:
            await asyncio.sleep(3600)
    except asyncio.CancelledError:
        return 0
    finally:
        await gateway.stop()


def main(argv: list[str] | None = None) -> int:
    return run_subcommand("hmi", add_parser, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":  # python -m twin.gateways.hmi.command [options]
    sys.exit(main())
