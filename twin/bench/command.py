"""`twin bench [--json] [--quick] [--only NAME ...]`: run the benchmarks, one line each.
`twin bench --breakdown`: where the free run's time goes, per step.

Each benchmark alternates ours and its baseline in this run and reports medians. With
--json every line is one JSON object with name, ours, baseline, unit, ratio (+ target, met,
details). --quick is a reduced run for tests (seconds, not minutes).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from twin.bench.breakdown import breakdown, print_breakdown
from twin.bench.camera import camera
from twin.bench.extras import gym_envs, sweep_throughput
from twin.bench.factory import factory_scaling
from twin.bench.free_run import free_run
from twin.bench.gateways import gateway_latency, gateway_step_rate, opcua_change_rate
from twin.bench.hmi import hmi
from twin.bench.lockstep import lockstep
from twin.bench.parts_scaling import parts_scaling
from twin.bench.processes import DEFAULT_CONFIG
from twin.bench.record import record
from twin.bench.result import BenchResult
from twin.bench.slow_subscriber import slow_subscriber
from twin.bench.startup import startup

Benchmark = Callable[..., BenchResult | list[BenchResult]]
BENCHMARKS: dict[str, Benchmark] = {
    "free_run": free_run,
    "lockstep": lockstep,  # three lines: lockstep, lockstep_batched, lockstep_image
    "parts_scaling": parts_scaling,
    "slow_subscriber": slow_subscriber,
    "startup": startup,
    "record": record,
    "gym": gym_envs,  # several lines: gym_inprocess, gym_remote, gym_async_vec2
    "sweep": sweep_throughput,
    "hmi": hmi,  # two lines: hmi_free_run (two browsers against none), hmi_latency
    "gateway_latency": gateway_latency,  # two lines: opcua_latency, modbus_latency
    "opcua_change_rate": opcua_change_rate,
    "gateway_step_rate": gateway_step_rate,
    "camera": camera,  # three lines: camera, camera_free_run, dataset
    "factory_scaling": factory_scaling,  # two lines: factory_scaling, factory_6cell
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="measure the twin against bare pybullet / pyzmq baselines",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--json", action="store_true", help="one JSON object per benchmark")
    p.add_argument("--quick", action="store_true", help="a reduced run (for tests)")
    p.add_argument(
        "--only", nargs="+", choices=sorted(BENCHMARKS), metavar="NAME", help="run only these"
    )
    p.add_argument("--config", default=DEFAULT_CONFIG, help="the line (default_line.toml)")
    p.add_argument(
        "--breakdown",
        action="store_true",
        help="time each piece of the free run's step (physics, sensors, devices, server)",
    )
    p.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    if args.breakdown:
        table = breakdown(args.config, **({"reps": 10} if args.quick else {}))
        print_breakdown(table, args.json)
        return 0
    names = [name for name in BENCHMARKS if not args.only or name in args.only]
    failed = 0
    for name in names:
        t0 = time.perf_counter()
        try:
            results: BenchResult | list[BenchResult] = BENCHMARKS[name](
                args.config, quick=args.quick
            )
        except Exception as e:  # one broken benchmark must not hide the others
            failed += 1
            results = BenchResult(
                name=name, ours=None, baseline=None, unit="", skipped=f"failed: {e!r}"
            )
        for result in results if isinstance(results, list) else [results]:
            result.details["wall_s"] = time.perf_counter() - t0
            print(result.to_json() if args.json else result.to_text(), flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="twin")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":  # python -m twin.bench.command [--json] [--quick] [--only ...]
    sys.exit(main())
