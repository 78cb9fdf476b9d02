"""`twin replay` and `twin inspect`: check, replay and summarise MCAP recordings."""

from __future__ import annotations

import argparse
import sys

from twin.record.reader import RecordingError

DEFAULT_REPLAY_TELEMETRY = "tcp://127.0.0.1:5556"


def _positive(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `replay` and `inspect` on the `twin` command line."""
    p = subparsers.add_parser(
        "replay",
        help="verify a recording by re-running it, or publish its telemetry again",
        description="Rebuild the recorded line and check it reproduces the recording bit for "
        "bit (--verify), or play the recorded telemetry on a PUB socket (--publish).",
    )
    p.add_argument("file", metavar="FILE.mcap")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--verify", action="store_true", help="re-run and compare every state")
    what.add_argument("--publish", action="store_true", help="publish the recorded telemetry")
    p.add_argument("--speed", type=_positive, default=1.0, help="--publish: x recorded time")
    p.add_argument(
        "--telemetry",
        default=DEFAULT_REPLAY_TELEMETRY,
        help=f"--publish: PUB address ({DEFAULT_REPLAY_TELEMETRY})",
    )
    p.add_argument("--allow-remote", action="store_true", help="--publish: allow non-loopback")
    p.add_argument(
        "--wait",
        type=float,
        default=0.5,
        help="--publish: seconds to let subscribers connect before playing (default 0.5)",
    )
    p.set_defaults(func=run_replay)

    i = subparsers.add_parser("inspect", help="summarise a recording")
    i.add_argument("file", metavar="FILE.mcap")
    i.set_defaults(func=run_inspect)


def run_replay(args: argparse.Namespace) -> int:
    from twin.record.replay import publish, verify
    from twin.server import RemoteBindRefused

    try:
        if args.verify:
            result = verify(args.file)
            print(result.line(), flush=True)
            return 0 if result.ok else 1
        sent = publish(
            args.file,
            telemetry=args.telemetry,
            speed=args.speed,
            allow_remote=args.allow_remote,
            wait_s=max(0.0, args.wait),
        )
        print(f"published {sent} messages", flush=True)
        return 0
    except (RecordingError, RemoteBindRefused) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run_inspect(args: argparse.Namespace) -> int:
    from twin.record.inspect import summarise

    try:
        lines = summarise(args.file)
    except RecordingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join(lines), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="twin")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return args.func(args)


if __name__ == "__main__":  # python -m twin.record.command replay|inspect FILE.mcap ...
    sys.exit(main())
