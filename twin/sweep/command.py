"""`twin sweep`: run a what-if sweep headless in parallel (local processes or Ray)."""

from __future__ import annotations

import argparse
import signal
import sys

from twin.config import ConfigError
from twin.sweep.spec import SweepError


def _workers(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def cmd_sweep(args: argparse.Namespace) -> int:
    from twin.sweep.runner import run_sweep

    # stop like Ctrl-C on SIGTERM; and take Ctrl-C back even if started with SIGINT ignored
    # (a background job of a non-interactive shell inherits SIG_IGN)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        outcome = run_sweep(
            args.sweep,
            backend=args.backend,
            workers=args.workers,
            ray_address=args.ray_address,
            out=args.out,
            progress=not args.quiet,
            retry_failed=args.retry_failed,
        )
    except (SweepError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for text in outcome.lines():
        print(text)
    if outcome.interrupted:
        return 130
    return 1 if outcome.failed else 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="run scenario sweeps (what-if experiments) headless in parallel",
        description="Run every scenario of a sweep file (grid and/or random samples over "
        "line config values, with replications) and write results.csv, summary.csv "
        "(mean, 95% CI) and plot.png. Exit code 0: all runs ok; 1: some runs failed; "
        "2: invalid sweep file (nothing ran); 130: interrupted (run again to resume).",
    )
    p.add_argument("sweep", help="the sweep file (TOML)")
    p.add_argument("--backend", choices=("local", "ray"), default="local")
    p.add_argument(
        "--workers", type=_workers, default=None, help="parallel runs (default: all cores)"
    )
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="Ray cluster to join ('auto', 'ray://host:10001'); default: a local Ray instance",
    )
    p.add_argument("--out", default=None, help="output directory (default: out/sweeps/NAME)")
    p.add_argument(
        "--retry-failed", action="store_true", help="run failed runs again when resuming"
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_sweep)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="twin")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sweep", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
