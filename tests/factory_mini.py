"""A small, quick factory for tests: a receiving store, one or two milling cells and a
shipping store on a one-way loop aisle (the cells of configs/cells/), brisk AMRs and short
cycle times, so a run of a few simulated minutes ships parts."""

from __future__ import annotations

from pathlib import Path

from twin.config import LineConfig, load

CELLS = Path(__file__).resolve().parents[1] / "configs" / "cells"


def mini_factory_toml(
    *,
    amrs: int = 2,
    mills: int = 2,
    cycle_time: float = 8.0,
    quantity: int = 40,
    policy: str = "push",
    wip_cap: int = 4,
    seed: int = 5,
    estops: str = "",
) -> str:
    """`estops`: a TOML array of scripted e-stops, e.g. '[{ at = 20.0, duration = 4.0 }]'."""
    mill_cells = "".join(
        f"""
[[cells]]
id = "mill{i}"
template = "{CELLS / "mill_cell.toml"}"
position = [{3.0 * i}, 3.1]
yaw = 1.5707963267949
"""
        for i in range(1, mills + 1)
    )
    mill_nodes = "".join(
        f"""  {{ id = "j_mill{i}_in", position = [{3.0 * i - 0.55}, 0.6] }},
  {{ id = "j_mill{i}_out", position = [{3.0 * i + 0.55}, 0.6] }},
"""
        for i in range(1, mills + 1)
    )
    east = 3.0 * mills + 2.0
    aisle = ["nw", "j_receiving"]
    for i in range(1, mills + 1):
        aisle += [f"j_mill{i}_in", f"j_mill{i}_out"]
    aisle += ["ne", "se", "j_shipping", "sw", "nw"]
    lanes = "".join(
        f'  {{ from = "{a}", to = "{b}", two_way = false }},\n'
        for a, b in zip(aisle, aisle[1:], strict=False)
    )
    spurs = "".join(
        f'  {{ from = "j_mill{i}_{d}", to = "mill{i}_{d}_approach" }},\n'
        for i in range(1, mills + 1)
        for d in ("in", "out")
    )
    return f"""
name = "mini_factory"
{f"estops = {estops}" if estops else ""}

[physics]
seed = {seed}

[[part_types]]
name = "cover"
size = [0.07, 0.07, 0.03]
mass = 0.15

[[cells]]
id = "receiving"
template = "{CELLS / "receiving.toml"}"
position = [0.0, 3.1]
yaw = 1.5707963267949

[[cells]]
id = "shipping"
template = "{CELLS / "shipping.toml"}"
position = [0.0, -3.1]
yaw = -1.5707963267949
{mill_cells}
[network]
nodes = [
  {{ id = "nw", position = [-1.5, 0.6] }},
  {{ id = "j_receiving", position = [0.0, 0.6] }},
{mill_nodes}  {{ id = "ne", position = [{east}, 0.6] }},
  {{ id = "se", position = [{east}, -0.6] }},
  {{ id = "j_shipping", position = [0.0, -0.6] }},
  {{ id = "sw", position = [-1.5, -0.6] }},
  {{ id = "park1", position = [-3.0, 1.8] }},
  {{ id = "park2", position = [-3.0, 0.6] }},
  {{ id = "park3", position = [-3.0, -0.6] }},
]
lanes = [
{lanes}{spurs}  {{ from = "j_receiving", to = "receiving_approach" }},
  {{ from = "j_shipping", to = "shipping_approach" }},
  {{ from = "park1", to = "nw" }},
  {{ from = "park2", to = "nw" }},
  {{ from = "park3", to = "sw" }},
]

[fleet]
count = {amrs}
park = ["park1", "park2", "park3"]
amr = {{ max_speed = 1.8, max_acceleration = 1.0, max_deceleration = 1.2, turn_rate = 2.5, turn_acceleration = 5.0, dock_speed = 0.6 }}

[orders]
products = [{{ type = "cover", routing = [{{ cell = "mill", cycle_time = {cycle_time} }}] }}]
book = [{{ id = "o1", product = "cover", quantity = {quantity}, due = 3600.0 }}]
release = {{ policy = "{policy}", wip_cap = {wip_cap} }}
"""


def mini_factory(tmp_path: Path, name: str = "mini.toml", **kw: object) -> LineConfig:
    path = tmp_path / name
    path.write_text(mini_factory_toml(**kw))  # type: ignore[arg-type]
    return load(str(path))
