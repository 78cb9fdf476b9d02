"""`twin` command line: parse, call, print. The work happens in the modules it calls."""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
from pathlib import Path

from twin.bench.command import add_parser as add_bench_parser
from twin.config import ArmConfig, ConfigError, load
from twin.gateways.foxglove.command import add_parser as add_foxglove_parser
from twin.gateways.hmi.command import add_parser as add_hmi_parser
from twin.gateways.modbus.command import add_parser as add_modbus_parser
from twin.gateways.opcua.command import add_parser as add_opcua_parser
from twin.record.command import add_parser as add_record_parser
from twin.server.command import add_parser as add_serve_parser
from twin.server.keys import add_parser as add_keys_parser
from twin.sweep.command import add_parser as add_sweep_parser
from twin.vision.command import add_parser as add_dataset_parser

DEFAULT_CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "default_line.toml")


def _realtime_factor(text: str) -> float:
    value = float(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(
            f"real-time factor must be a finite number > 0, got {text}"
        )
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"seed must be an integer from 0 to 2**63 - 1, got {text}")
    return value


def _pixels(text: str) -> int:
    value = int(text)
    if not 16 <= value <= 4096:  # as [view] width and height
        raise argparse.ArgumentTypeError(f"must be 16 to 4096 pixels, got {text}")
    return value


def cmd_run(args: argparse.Namespace) -> int:
    from twin.run import run_line, summary_dict

    cfg = load(args.config)
    # SIGTERM ends the run like Ctrl-C: the summary is still printed and written
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # Ctrl-C stops the run cleanly even if we were started with SIGINT ignored (a background
    # job of a non-interactive shell inherits SIG_IGN)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    summary = run_line(
        cfg,
        args.duration,
        seed=args.seed,
        realtime_factor=args.realtime,
        gui=args.gui,
        progress=not args.quiet,
        plot=str(Path(args.report).with_suffix(".png")) if args.report else None,
        record=args.record,
        builtin_fleet=args.builtin_fleet,
    )
    for text in summary.lines():
        print(text)
    if args.report:
        path = Path(args.report)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary_dict(summary), indent=2) + "\n")
        print(f"report          {path} (plot: {path.with_suffix('.png')})")
    return 130 if summary.interrupted else 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    from twin.snapshot import snapshot

    cfg = load(args.config)
    out = snapshot(cfg, args.out, settle_s=args.settle, width=args.width, height=args.height)
    print(f"wrote {out}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    kinds: dict[str, int] = {}
    for d in cfg.devices:
        kind = str(type(d).__struct_config__.tag)
        kinds[kind] = kinds.get(kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in kinds.items())
    models = sorted({d.model for d in cfg.devices if isinstance(d, ArmConfig)})
    loaded = f"; robot models loaded: {', '.join(models)}" if models else ""
    print(f"{args.config}: ok ({cfg.name}: {summary}{loaded})")
    if cfg.factory is not None:
        from twin.factory.layout import factory_summary

        print(factory_summary(cfg))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="twin", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a line headless and print a summary")
    run.add_argument("config", nargs="?", default=DEFAULT_CONFIG)
    run.add_argument("--duration", type=_positive, default=600.0, help="simulated seconds")
    run.add_argument("--seed", type=_seed, default=None, help="override the config's seed")
    run.add_argument("--report", help="write the summary as JSON to this file")
    run.add_argument("--gui", action="store_true", help="open pybullet's window")
    run.add_argument(
        "--realtime",
        nargs="?",
        const=1.0,
        default=None,
        type=_realtime_factor,
        metavar="FACTOR",
        help="pace to the wall clock (times FACTOR); default is as fast as possible",
    )
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument(
        "--record", metavar="FILE.mcap", help="record config, states and events (twin replay)"
    )
    run.add_argument(
        "--no-builtin-fleet",
        dest="builtin_fleet",
        action="store_false",
        help="a factory: cells and orders run, nothing drives the AMRs (they wait for an "
        "external fleet manager, which `twin run` has none of)",
    )
    run.set_defaults(func=cmd_run)

    snap = sub.add_parser("snapshot", help="render the line to a PNG, headless")
    snap.add_argument("config", nargs="?", default=DEFAULT_CONFIG)
    snap.add_argument("--out", required=True)
    snap.add_argument("--settle", type=_non_negative, default=30.0, help="simulated seconds first")
    snap.add_argument("--width", type=_pixels, default=None)
    snap.add_argument("--height", type=_pixels, default=None)
    snap.set_defaults(func=cmd_snapshot)

    check = sub.add_parser(
        "check",
        help="validate a line config as every command does (its robot models loaded headless)",
    )
    check.add_argument("config")
    check.set_defaults(func=cmd_check)

    add_serve_parser(sub)
    add_keys_parser(sub)
    add_record_parser(sub)
    add_bench_parser(sub)
    add_sweep_parser(sub)
    add_dataset_parser(sub)
    add_opcua_parser(sub)
    add_modbus_parser(sub)
    add_hmi_parser(sub)
    add_foxglove_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
