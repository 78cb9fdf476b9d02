"""`twin serve`: run a line behind ZeroMQ sockets (see docs/protocol.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from twin.config import ConfigError, load
from twin.gateways.process import gateway_address_problem
from twin.server.control_lock import DEFAULT_LEASE_S
from twin.server.curve import CurveSetupError
from twin.server.endpoints import DEFAULT_CONTROL, DEFAULT_TELEMETRY, RemoteBindRefused
from twin.server.limits import DEFAULT_BURST, DEFAULT_MAX_QUEUED, DEFAULT_RATE
from twin.server.loop import ServeOptions
from twin.server.spin import DEFAULT_SPIN_US, MAX_SPIN_US

DEFAULT_CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "default_line.toml")


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _spin_us(text: str) -> float:
    value = float(text)
    if not 0 <= value <= MAX_SPIN_US:
        raise argparse.ArgumentTypeError(f"must be 0 to {MAX_SPIN_US:g} µs, got {text}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed must be >= 0, got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run a line headless behind ZeroMQ control and telemetry sockets",
        description="Run a line headless; drive it over ZeroMQ (protocol: docs/protocol.md).",
    )
    p.add_argument("config", nargs="?", default=DEFAULT_CONFIG)
    p.add_argument(
        "--mode",
        choices=("fast", "realtime", "lockstep"),
        default="realtime",
        help="fast: as fast as possible; realtime: paced to the wall clock x --rtf; "
        "lockstep: only advances on step requests (default: realtime)",
    )
    p.add_argument("--rtf", type=_positive, default=1.0, help="real-time factor (realtime mode)")
    p.add_argument("--control", default=DEFAULT_CONTROL, help=f"ROUTER address ({DEFAULT_CONTROL})")
    p.add_argument(
        "--telemetry", default=DEFAULT_TELEMETRY, help=f"PUB address ({DEFAULT_TELEMETRY})"
    )
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow binding to non-loopback interfaces without --curve "
        "(anyone who reaches them drives the line)",
    )
    p.add_argument(
        "--curve",
        metavar="DIR",
        default=None,
        help="encrypt both sockets with CurveZMQ and let in only the client keys in "
        "DIR/controllers and DIR/observers (twin keys generate DIR); any interface may be bound",
    )
    p.add_argument(
        "--rate-limit",
        type=_non_negative,
        default=DEFAULT_RATE,
        metavar="N",
        help=f"requests/s per client before rate_limited errors (0 = off; default {DEFAULT_RATE:g})",
    )
    p.add_argument(
        "--rate-burst",
        type=_count,
        default=DEFAULT_BURST,
        metavar="N",
        help=f"requests a client may send at once (default {DEFAULT_BURST})",
    )
    p.add_argument(
        "--max-queued",
        type=_count,
        default=DEFAULT_MAX_QUEUED,
        metavar="N",
        help="requests queued per client before the server stops reading from it "
        f"(default {DEFAULT_MAX_QUEUED})",
    )
    p.add_argument(
        "--lease-timeout",
        type=_positive,
        default=DEFAULT_LEASE_S,
        metavar="S",
        help="wall-clock s of silence after which the controlling client loses control, "
        f"unless its watchdog says otherwise (default {DEFAULT_LEASE_S:g})",
    )
    p.add_argument(
        "--spin-us",
        type=_spin_us,
        default=DEFAULT_SPIN_US,
        metavar="US",
        help="lockstep: µs to keep looking for the next request after each reply before "
        "sleeping, while the controller answers within them (0 = always sleep; at most "
        f"{MAX_SPIN_US:g}; default {DEFAULT_SPIN_US:g})",
    )
    p.add_argument(
        "--no-builtin-controller",
        dest="builtin_controller",
        action="store_false",
        help="do not run the config's sequencer: nothing moves unless commanded",
    )
    p.add_argument(
        "--no-builtin-fleet",
        dest="builtin_fleet",
        action="store_false",
        help="a factory: cells and orders keep running, the AMRs are left to an external "
        "fleet manager (examples/fleet_manager.py)",
    )
    p.add_argument("--seed", type=_seed, default=None, help="override the config's seed")
    p.add_argument(
        "--state-rate",
        type=_non_negative,
        default=10.0,
        help="state telemetry rate in simulated Hz (0 = off; default 10)",
    )
    p.add_argument(
        "--record",
        metavar="FILE.mcap",
        default=None,
        help="record config, telemetry and accepted requests to an MCAP file (twin replay)",
    )
    p.add_argument(
        "--opcua",
        metavar="ENDPOINT",
        default=None,
        help="also serve the line over OPC UA at ENDPOINT, e.g. opc.tcp://127.0.0.1:4840/twin "
        "(twin opcua in its own process; docs/opcua.md)",
    )
    p.add_argument(
        "--modbus",
        metavar="HOST:PORT",
        default=None,
        help="also serve the line over Modbus TCP, e.g. 127.0.0.1:5020 "
        "(twin modbus in its own process; docs/modbus.md)",
    )
    p.add_argument(
        "--hmi",
        metavar="HOST:PORT",
        nargs="?",
        const="127.0.0.1:8080",
        default=None,
        help="also serve the browser HMI (default 127.0.0.1:8080; twin hmi in its own "
        "process; docs/hmi.md)",
    )
    p.add_argument(
        "--foxglove",
        metavar="HOST:PORT",
        nargs="?",
        const="127.0.0.1:8765",
        default=None,
        help="also publish the telemetry and 3D scene to Foxglove over WebSocket (default "
        "127.0.0.1:8765; twin foxglove in its own process; docs/foxglove.md)",
    )
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    opts = ServeOptions(
        mode=args.mode,
        rtf=args.rtf,
        control=args.control,
        telemetry=args.telemetry,
        allow_remote=args.allow_remote,
        builtin_controller=args.builtin_controller,
        builtin_fleet=args.builtin_fleet,
        seed=args.seed,
        state_rate=args.state_rate,
        record=args.record,
        curve=args.curve,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        max_queued=args.max_queued,
        lease_timeout=args.lease_timeout,
        spin_us=args.spin_us,
        opcua=args.opcua,
        modbus=args.modbus,
        hmi=args.hmi,
        foxglove=args.foxglove,
    )
    if args.curve and (args.opcua or args.modbus or args.hmi or args.foxglove):
        print(
            "error: --opcua/--modbus/--hmi/--foxglove with --curve: start the gateway "
            "(`twin opcua`, `twin modbus`, `twin hmi`, `twin foxglove`) "
            "yourself with --curve KEY_SECRET SERVER_KEY (they connect like any client)",
            file=sys.stderr,
        )
        return 2
    problem = gateway_address_problem(args.opcua, args.modbus, args.allow_remote)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from twin.gateways.hmi.security import parse_address

    for flag, address in (("--hmi", args.hmi), ("--foxglove", args.foxglove)):
        try:
            if address:
                parse_address(address)
        except ValueError as e:
            print(f"error: {flag}: {e} (write {flag}=ADDR before a config)", file=sys.stderr)
            return 2
    from twin.serving import serve  # the server composed with its recorder

    try:
        return serve(cfg, opts)
    except (RemoteBindRefused, CurveSetupError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="twin")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # python -m twin.server.command [CONFIG] [options]
    sys.exit(main())
