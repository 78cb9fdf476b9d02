"""The sweep file: a base line config, what varies, how often, for how long, what to measure.

```toml
name = "belt_x_cycle"
line = "default_line.toml"          # base line config, relative to this file
duration = 60.0                     # s simulated per run
replications = 3                    # seeds per scenario: the scenario's physics.seed + 0, 1, 2
# seeds = [1, 2, 3]                 # ... or exactly these seeds
timeout = 120.0                     # s of wall time per run; a slower run is killed and failed
kpis = ["throughput_per_hour", "kpis.oee.oee", "kpis.stations.mill.utilisation.execute"]
plot = "throughput_per_hour"        # the KPI plotted (default: the first)

[set]                               # applied to every scenario
"devices.source.interval" = 10.0

[grid]                              # every combination of these values
"devices.infeed.speed" = [0.15, 0.3]
"devices.mill.cycle_time" = [6.0, 9.0]

[random]                            # samples drawn with a seeded generator
samples = 4
seed = 1
params."part_types.housing.mass" = { uniform = [0.2, 0.5] }   # or integers = [lo, hi], choice = [...]
```

With both a grid and random samples, every grid point is combined with every sample. Paths
are written in quotes (a bare dotted key is a nested table in TOML, which is also accepted).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import msgspec

from twin.config import ConfigError, read_config_file
from twin.sweep.paths import PathError, parse

Positive = Annotated[float, msgspec.Meta(gt=0)]
DEFAULT_KPIS = ["throughput_per_hour", "kpis.oee.oee", "kpis.wip_mean", "kpis.lead_time_s.mean"]


class SweepError(ValueError):
    """A sweep that cannot run; the message names the file, the field and the problem."""


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class Distribution(_Strict, kw_only=True):
    uniform: Annotated[list[float], msgspec.Meta(min_length=2, max_length=2)] | None = None
    integers: Annotated[list[int], msgspec.Meta(min_length=2, max_length=2)] | None = None
    choice: Annotated[list[Any], msgspec.Meta(min_length=1)] | None = None

    def draw(self, rng: random.Random) -> Any:
        if self.uniform is not None:
            return rng.uniform(*self.uniform)
        if self.integers is not None:
            return rng.randint(*self.integers)
        assert self.choice is not None
        return self.choice[rng.randrange(len(self.choice))]


class RandomSpec(_Strict, kw_only=True):
    samples: Annotated[int, msgspec.Meta(ge=1)]
    seed: int = 0
    params: dict[str, Any]


class SweepFile(_Strict, kw_only=True):
    line: str
    duration: Positive
    name: str = ""
    replications: Annotated[int, msgspec.Meta(ge=1)] = 1
    seeds: Annotated[list[int], msgspec.Meta(min_length=1)] | None = None
    timeout: Positive | None = None
    kpis: Annotated[list[str], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: list(DEFAULT_KPIS)
    )
    plot: str | None = None
    set: dict[str, Any] = msgspec.field(default_factory=dict)
    grid: dict[str, Any] = msgspec.field(default_factory=dict)
    random: RandomSpec | None = None


@dataclass
class Sweep:
    """A decoded sweep file with its tables flattened to {path: ...}."""

    source: str
    name: str
    line_path: Path
    duration: float
    replications: int
    seeds: list[int] | None
    timeout: float | None
    kpis: list[str]
    plot_kpi: str
    set: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    random: dict[str, Distribution] = field(default_factory=dict)
    samples: int = 0
    random_seed: int = 0

    @property
    def varied(self) -> list[str]:
        """The paths that vary between scenarios, grid first."""
        return list(self.grid) + [p for p in self.random if p not in self.grid]


def _flatten(table: dict[str, Any], is_leaf, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and not is_leaf(value):
            out.update(_flatten(value, is_leaf, path))
        else:
            out[path] = value
    return out


def _is_distribution(value: dict[str, Any]) -> bool:
    """A table of plain values ({uniform = [a, b]}) is a distribution; others nest paths."""
    return not any(isinstance(v, dict) for v in value.values())


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file (structure and paths; scenarios are checked by planning)."""
    path = Path(path)
    try:
        data = read_config_file(path, "sweep file")
    except ConfigError as e:
        raise SweepError(str(e)) from None
    return loads_sweep(data, str(path), base_dir=path.parent)


def loads_sweep(data: bytes | str, source: str = "<string>", base_dir: Path | None = None) -> Sweep:
    def fail(where: str, problem: str) -> SweepError:
        return SweepError(f"{source}: {where}: {problem}")

    try:
        spec = msgspec.toml.decode(data, type=SweepFile)
    except msgspec.ValidationError as e:
        text = str(e)
        where = text.rsplit(" - at `$", 1)[1].rstrip("`").lstrip(".") if " - at `$" in text else ""
        raise fail(where or "(top level)", text.split(" - at `$")[0]) from None
    except msgspec.DecodeError as e:
        raise SweepError(f"{source}: not valid TOML: {e}") from None
    except RecursionError:  # the TOML parser recurses once per nested array or table
        raise SweepError(f"{source}: not valid TOML: nested too deeply") from None

    set_ = _flatten(spec.set, lambda v: False)
    grid = _flatten(spec.grid, lambda v: False)
    for p, values in grid.items():
        if not isinstance(values, list) or not values:
            raise fail(f"grid.{p}", f"expected a non-empty list of values, got {values!r}")
    dists: dict[str, Distribution] = {}
    if spec.random is not None:
        for p, value in _flatten(spec.random.params, _is_distribution).items():
            try:
                dist = msgspec.convert(value, Distribution)
            except msgspec.ValidationError as e:
                raise fail(f"random.params.{p}", str(e)) from None
            if sum(x is not None for x in (dist.uniform, dist.integers, dist.choice)) != 1:
                raise fail(f"random.params.{p}", "give exactly one of uniform, integers or choice")
            dists[p] = dist
        if not dists:
            raise fail("random.params", "no parameters to sample")
    for table, paths in (("set", set_), ("grid", grid), ("random.params", dists)):
        for p in paths:
            try:
                parse(p)
            except PathError as e:
                raise fail(f"{table}.{p}", str(e)) from None
    both = (set(set_) & set(grid)) | (set(set_) & set(dists)) | (set(grid) & set(dists))
    if both:
        raise fail("grid", f"{sorted(both)} given in more than one of set, grid, random")
    if spec.plot is not None and spec.plot not in spec.kpis:
        raise fail("plot", f"'{spec.plot}' is not one of the kpis {spec.kpis}")
    if len(set(spec.kpis)) != len(spec.kpis):
        raise fail("kpis", "a KPI is listed twice")

    line_path = Path(spec.line)
    if not line_path.is_absolute() and base_dir is not None:
        line_path = base_dir / line_path
    return Sweep(
        source=source,
        name=spec.name or Path(source).stem,
        line_path=line_path,
        duration=spec.duration,
        replications=spec.replications,
        seeds=spec.seeds,
        timeout=spec.timeout,
        kpis=list(spec.kpis),
        plot_kpi=spec.plot or spec.kpis[0],
        set=set_,
        grid=grid,
        random=dists,
        samples=spec.random.samples if spec.random else 0,
        random_seed=spec.random.seed if spec.random else 0,
    )
