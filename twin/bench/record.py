"""record: the default line served in fast mode with recording on against off.

Two identical lines in this process, alternating blocks: one server records its run to an
MCAP file (twin/record), the other does not. Until the server offers recording (a `record`
field in ServeOptions and an importable twin.record), the benchmark reports itself skipped
rather than a made-up number.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import tempfile
from pathlib import Path

from twin.bench.hosted import WILDCARD, open_server, served_rate
from twin.bench.result import BenchResult, interleave, median
from twin.config import load
from twin.server.loop import ServeOptions, Server
from twin.serving import build_server

TARGET = 0.85
RECORD_OPTION = "record"  # the ServeOptions field that names the recording file


def recording_unavailable() -> str | None:
    """Why recording cannot be benchmarked here, or None if it can."""
    if importlib.util.find_spec("twin.record") is None:
        return "recording not available (no twin.record)"
    if RECORD_OPTION not in {f.name for f in dataclasses.fields(ServeOptions)}:
        return f"recording not available (the server has no '{RECORD_OPTION}' option yet)"
    return None


def _recording_server(config: str, path: Path) -> Server:
    opts = ServeOptions(mode="fast", control=WILDCARD, telemetry=WILDCARD)
    setattr(opts, RECORD_OPTION, str(path))
    return build_server(load(config), opts)


def record(config: str, *, quick: bool) -> BenchResult:
    reason = recording_unavailable()
    if reason is not None:
        return BenchResult(
            name="record", ours=None, baseline=None, unit="steps/s", target=TARGET, skipped=reason
        )
    block, reps = (100, 6) if quick else (200, 30)
    with tempfile.TemporaryDirectory(prefix="twin-bench-") as tmp:
        path = Path(tmp) / "bench.mcap"
        # of two identical servers in one process the first built steps a few % faster here;
        # build the plain one first so any such bias counts against recording
        plain = open_server(load(config))
        recording = _recording_server(config, path)
        try:
            ours, baseline = interleave(
                [lambda: served_rate(recording, block), lambda: served_rate(plain, block)], reps
            )
        finally:
            plain.close()
            recording.close()
        size = path.stat().st_size if path.exists() else 0
    return BenchResult(
        name="record",
        ours=median(ours),
        baseline=median(baseline),
        unit="steps/s",
        target=TARGET,
        details={"recording_bytes": size, "steps_per_block": block, "repetitions": reps},
    )
