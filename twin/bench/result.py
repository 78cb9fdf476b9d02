"""What a benchmark returns, and the small statistics every benchmark shares."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class BenchResult:
    name: str
    ours: float | None
    baseline: float | None
    unit: str
    # ours / baseline; for rates higher is better, for durations lower is better
    ratio: float | None = None
    better: str = "higher"
    target: float | None = None  # the ratio we aim for (None: no target)
    met: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    def __post_init__(self) -> None:
        if self.ratio is None and self.ours is not None and self.baseline:
            self.ratio = self.ours / self.baseline
        if self.target is not None and self.ratio is not None and self.met is None:
            self.met = (
                self.ratio >= self.target if self.better == "higher" else self.ratio <= self.target
            )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    def to_text(self) -> str:
        if self.skipped:
            return f"{self.name:16s} skipped: {self.skipped}"
        text = (
            f"{self.name:16s} ours {_fmt(self.ours)} {self.unit}  "
            f"baseline {_fmt(self.baseline)} {self.unit}  ratio {_fmt(self.ratio)}"
        )
        if self.target is not None:
            sign = ">=" if self.better == "higher" else "<="
            text += f"  (target {sign} {self.target}: {'met' if self.met else 'NOT met'})"
        extras = {k: v for k, v in self.details.items() if not isinstance(v, (dict, list))}
        if extras:
            text += "  " + " ".join(f"{k}={_fmt(v)}" for k, v in extras.items())
        return text


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def interleave(measurements: list[Callable[[], float]], repetitions: int) -> list[list[float]]:
    """Run each measurement in turn, `repetitions` rounds; one list of values per measurement."""
    values: list[list[float]] = [[] for _ in measurements]
    for _ in range(repetitions):
        for measure, out in zip(measurements, values):
            out.append(measure())
    return values
