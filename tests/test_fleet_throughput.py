"""Throughput answers the questions a production engineer asks of a factory: another AMR
where the fleet is the bottleneck ships more, a cell fewer where the cells are ships less
(short runs, fixed seed, real physics)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.factory_mini import mini_factory
from tests.test_factory_run import run


def shipped_work(kind: str, seconds: float, **kw: Any) -> int:
    cfg = mini_factory(Path(str(kw.pop("tmp_path"))), name=f"{sorted(kw.items())}.toml", **kw)
    return run(cfg, seconds)["kinds"][kind]


def test_another_amr_raises_throughput_of_a_fleet_bound_factory(tmp_path: Path) -> None:
    """Two mills at a short cycle time fed by one AMR wait for transport: a second AMR
    moves more parts in the same time."""
    one = shipped_work("transport_done", 130.0, tmp_path=tmp_path, amrs=1, mills=2, cycle_time=8.0)
    two = shipped_work("transport_done", 130.0, tmp_path=tmp_path, amrs=2, mills=2, cycle_time=8.0)
    assert two > one, (one, two)


def test_a_cell_fewer_lowers_throughput_where_the_cells_are_the_bottleneck(
    tmp_path: Path,
) -> None:
    """At a long cycle time, with AMRs to spare, the mills are the bottleneck: with one of
    the two gone, fewer parts are processed in the same time."""
    kw: dict[str, Any] = {"tmp_path": tmp_path, "amrs": 3, "cycle_time": 40.0}
    one = shipped_work("process_finished", 170.0, mills=1, **kw)
    two = shipped_work("process_finished", 170.0, mills=2, **kw)
    assert one < two, (one, two)
