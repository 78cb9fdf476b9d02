"""Expand a sweep into scenarios and runs, and validate every one before anything runs."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import random
from dataclasses import dataclass
from typing import Any

import msgspec

from twin.config import ArmConfig, ConfigError, StationConfig, loads, read_config_file
from twin.sweep.kpis import check_kpi
from twin.sweep.paths import PathError, set_value
from twin.sweep.spec import Sweep, SweepError
from twin.sweep.toml_text import dumps

_MAX_ERRORS = 10


class RunTask(msgspec.Struct, kw_only=True):
    """Everything a worker needs for one run; plain data, so any backend can ship it."""

    scenario: str
    seed: int
    config: str  # the scenario's line config as TOML text, already validated
    source: str  # names the config in errors
    base_dir: str = ""  # where a factory's cell templates are found (the line file's folder)
    duration: float
    kpis: list[str]

    @property
    def key(self) -> tuple[str, int]:
        return (self.scenario, self.seed)


@dataclass(frozen=True)
class Scenario:
    id: str
    params: dict[str, Any]


@dataclass
class Plan:
    sweep: Sweep
    scenarios: list[Scenario]
    tasks: list[RunTask]  # scenario order, then seed order
    kpi_kinds: dict[str, str]  # KPI path -> number or text


def scenario_id(params: dict[str, Any]) -> str:
    """A stable id from the parameter values alone (order of keys does not matter)."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return "s" + hashlib.sha256(text.encode()).hexdigest()[:10]


def expand(sweep: Sweep) -> list[dict[str, Any]]:
    """Parameter sets: the grid's cartesian product, each combined with every random sample."""
    grid_points = [
        dict(zip(sweep.grid, values)) for values in itertools.product(*sweep.grid.values())
    ]
    if not sweep.random:
        return grid_points
    rng = random.Random(sweep.random_seed)
    samples = [
        {p: dist.draw(rng) for p, dist in sweep.random.items()} for _ in range(sweep.samples)
    ]
    return [{**g, **s} for g in grid_points for s in samples]


def _seeds(sweep: Sweep, config_seed: int) -> list[int]:
    if sweep.seeds is not None:
        return list(sweep.seeds)
    return [config_seed + r for r in range(sweep.replications)]


def _check_paths(sweep: Sweep, base: dict[str, Any]) -> None:
    """Every path must lead somewhere in the base config; reported once, not per scenario."""
    errors = []
    tables = (("set", sweep.set), ("grid", sweep.grid), ("random.params", sweep.random))
    for table, paths in tables:
        for p in paths:
            try:
                set_value(copy.deepcopy(base), p, 0)
            except PathError as e:
                errors.append(f"{sweep.source}: {table}.{p}: {e}")
    if errors:
        raise SweepError("\n".join(errors))


def plan(sweep: Sweep) -> Plan:
    """Validate every scenario's config and every KPI; raise SweepError listing the problems."""
    try:
        base_text = read_config_file(sweep.line_path)
        loads(base_text, str(sweep.line_path))
    except ConfigError as e:
        raise SweepError(f"{sweep.source}: line: {e}") from None
    base = msgspec.toml.decode(base_text)
    _check_paths(sweep, base)

    errors: list[str] = []
    scenarios: list[Scenario] = []
    tasks: list[RunTask] = []
    stations: set[str] | None = None  # the stations every scenario has
    robots: set[str] | None = None  # and the robots
    seen: set[str] = set()
    for params in expand(sweep):
        sid = scenario_id(params)
        if sid in seen:
            continue
        seen.add(sid)
        raw = copy.deepcopy(base)
        label = ", ".join(f"{p}={v!r}" for p, v in params.items()) or "base"
        try:
            for p, v in {**sweep.set, **params}.items():
                set_value(raw, p, v)
            text = dumps(raw)
            cfg = loads(text, str(sweep.line_path), base_dir=sweep.line_path.parent)
        except (PathError, ConfigError, TypeError) as e:
            where = "set" if not params else "scenario " + label
            errors.append(f"{sweep.source}: {where}: {e}")
            if len(errors) >= _MAX_ERRORS:
                break
            continue
        ids = {d.id for d in cfg.devices if isinstance(d, StationConfig)}
        stations = ids if stations is None else stations & ids
        arms = {d.id for d in cfg.devices if isinstance(d, ArmConfig)}
        robots = arms if robots is None else robots & arms
        scenarios.append(Scenario(sid, params))
        for seed in _seeds(sweep, cfg.physics.seed):
            tasks.append(
                RunTask(
                    scenario=sid,
                    seed=seed,
                    config=text,
                    source=f"{sweep.line_path} [{label}]",
                    base_dir=str(sweep.line_path.parent.resolve()),
                    duration=sweep.duration,
                    kpis=sweep.kpis,
                )
            )
    if stations is None:  # no valid scenario: check the KPIs against the base line
        devices = loads(base_text, str(sweep.line_path)).devices
        stations = {d.id for d in devices if isinstance(d, StationConfig)}
        robots = {d.id for d in devices if isinstance(d, ArmConfig)}
    kinds: dict[str, str] = {}
    for k in sweep.kpis:
        try:
            kinds[k] = check_kpi(k, sorted(stations), sorted(robots or ()))
        except PathError as e:
            errors.append(f"{sweep.source}: kpis: {e}")
    if errors:
        raise SweepError("\n".join(dict.fromkeys(errors)))
    if sweep.plot_kpi in kinds and kinds[sweep.plot_kpi] != "number":
        raise SweepError(f"{sweep.source}: plot: '{sweep.plot_kpi}' is not a number")
    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        raise SweepError(f"{sweep.source}: seeds: a seed is listed twice")
    return Plan(sweep, scenarios, tasks, kinds)
