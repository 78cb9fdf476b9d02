"""`twin modbus`: serve a running twin over Modbus TCP, or write its register map (docs/modbus.md)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from twin.gateways.command_common import (
    add_twin_link_options,
    run_subcommand,
    stop_current_task_on_signals,
)

DEFAULT_ADDRESS = "127.0.0.1:5020"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "modbus",
        help="serve a running twin over Modbus TCP, or write its register map",
        description="A Modbus TCP server in front of a running `twin serve` (docs/modbus.md).",
    )
    p.add_argument(
        "--address", default=DEFAULT_ADDRESS, help=f"HOST:PORT to listen on ({DEFAULT_ADDRESS})"
    )
    add_twin_link_options(p)
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="listen on a non-loopback address (Modbus has no authentication: anyone who "
        "reaches it drives the line)",
    )
    p.add_argument(
        "--map",
        metavar="FILE",
        help="write the register map (FILE.csv or FILE.md; - for markdown on stdout) and exit",
    )
    p.add_argument(
        "--config",
        metavar="CONFIG",
        help="with --map: build the line from CONFIG here instead of asking a running twin",
    )
    p.set_defaults(func=run_modbus)


def map_from_config(path: str) -> object:
    """The register map of a config's line, from the line's own describe (no twin needed)."""
    from twin.config import load
    from twin.gateways.modbus.register_map import RegisterMap
    from twin.gateways.model import line_model
    from twin.line import Line

    line = Line(load(path))
    try:
        line.step(1)
        lengths = {
            f"{d}.{s}": len(v)
            for d, sigs in line.signals().items()
            for s, v in sigs.items()
            if isinstance(v, list)
        }
        return RegisterMap(line_model(line.describe()), lengths)
    finally:
        line.close()


def run_modbus(args: argparse.Namespace) -> int:
    from twin.gateways.modbus.gateway import ModbusGateway, ModbusOptions

    if args.map and args.config:
        write_map(map_from_config(args.config), args.map)
        return 0

    opts = ModbusOptions(
        address=args.address,
        control=args.control,
        telemetry=args.telemetry,
        allow_remote=args.allow_remote,
        curve=tuple(args.curve) if args.curve else None,
    )
    try:
        gateway = ModbusGateway(opts)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_main(gateway, args.map))
    except TimeoutError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


async def _main(gateway: object, map_file: str | None) -> int:
    stop_current_task_on_signals()
    try:
        if map_file is not None:
            await gateway.link_only()  # type: ignore[attr-defined]
            write_map(gateway.map, map_file)  # type: ignore[attr-defined]
            return 0
        await gateway.start()  # type: ignore[attr-defined]
        print(f"modbus    {gateway.host}:{gateway.port} (line {gateway.model.line})", flush=True)  # type: ignore[attr-defined]
        while True:
            await asyncio.sleep(3600)
    except asyncio.CancelledError:
        return 0
    finally:
        await gateway.stop()  # type: ignore[attr-defined]


def write_map(register_map: object, target: str) -> None:
    if target == "-":
        sys.stdout.write(register_map.markdown())  # type: ignore[attr-defined]
        return
    path = Path(target)
    text = register_map.csv() if path.suffix == ".csv" else register_map.markdown()  # type: ignore[attr-defined]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path} ({len(register_map.entries)} entries)")  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    return run_subcommand("modbus", add_parser, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":  # python -m twin.gateways.modbus.command [options]
    sys.exit(main())
