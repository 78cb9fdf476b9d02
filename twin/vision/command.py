"""`twin dataset`: labelled synthetic images from a line's camera (see twin.vision.dataset)."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from twin.config import ConfigError


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def cmd_dataset(args: argparse.Namespace) -> int:
    from twin.vision.dataset import DatasetSpec, generate

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    spec = DatasetSpec(
        config=args.config,
        out=args.out,
        frames=args.frames,
        seed=args.seed,
        camera=args.camera,
        max_parts=args.max_parts,
    )
    try:
        counts = generate(spec, workers=args.workers, progress=not args.quiet)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130
    print(
        f"{args.out}: {counts['frames']} frames ({counts['made']} made now), "
        f"{counts['annotations']} annotations in annotations.json"
    )
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "dataset",
        help="labelled synthetic images (COCO + 6-DoF poses) from a line's camera",
        description="Render N domain-randomised frames from a camera of the line (parts, "
        "colours, textures, light, camera pose, distractors) and write images/, labels/ "
        "and annotations.json (COCO boxes and masks, categories per part type, each part's "
        "pose) to OUT. Seeded: the same seed gives the same files, with any number of "
        "workers. Run again to resume an interrupted dataset.",
    )
    p.add_argument("config", help="a line config with at least one camera")
    p.add_argument("--frames", type=_at_least_one, required=True)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--workers",
        type=_at_least_one,
        default=max(1, min(4, os.cpu_count() or 1)),
        help="parallel processes (default: cores, at most 4)",
    )
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--camera", default=None, help="camera id (default: the config's first)")
    p.add_argument("--max-parts", type=_at_least_one, default=6, help="parts per frame, at most")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_dataset)
