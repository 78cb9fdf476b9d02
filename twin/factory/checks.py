"""Config checks for what makes a line a factory: cells, fleet and orders name things that
exist (run from `twin.config` while a config loads, so imports only the config)."""

from __future__ import annotations

from collections.abc import Callable

from twin.config import DockConfig, LineConfig, SourceConfig, StationConfig

Fail = Callable[[str, str], None]


def check_factory(cfg: LineConfig, fail: Fail) -> None:
    spec = cfg.factory
    if spec is None:
        return
    devices = {d.id: d for d in cfg.devices}
    kinds: set[str] = set()
    cell_ids: set[str] = set()
    for i, cell in enumerate(spec.cells):
        here = f"factory.cells[{i}] (cell '{cell.id}')"
        if cell.id in cell_ids:
            fail(f"{here}.id", f"duplicate cell '{cell.id}'")
        cell_ids.add(cell.id)
        kinds.add(cell.kind)
        for ref, kind, name in (
            (cell.in_dock, DockConfig, "in_dock"),
            (cell.out_dock, DockConfig, "out_dock"),
            (cell.source, SourceConfig, "source"),
        ):
            if ref is not None and not isinstance(devices.get(ref), kind):
                fail(f"{here}.{name}", f"'{ref}' is not a {kind.__struct_config__.tag}")
        for j, st in enumerate(cell.stations):
            if not isinstance(devices.get(st), StationConfig):
                fail(f"{here}.stations[{j}]", f"'{st}' is not a station")
        if cell.role != "receiving" and cell.in_dock is None:
            fail(f"{here}.in_dock", f"a {cell.role} cell needs an in_dock")
        if cell.role != "shipping" and cell.out_dock is None:
            fail(f"{here}.out_dock", f"a {cell.role} cell needs an out_dock")
        if cell.role == "receiving" and cell.source is None:
            fail(f"{here}.source", "a receiving cell needs the source that releases parts")
    nodes = {n.id for n in cfg.network.nodes} if cfg.network else set()
    for i, n in enumerate(spec.fleet.park):
        if n not in nodes:
            fail(f"factory.fleet.park[{i}]", f"unknown node '{n}'")
    orders = spec.orders
    if orders is None:
        return
    types = {t.name for t in cfg.part_types}
    products: set[str] = set()
    for i, p in enumerate(orders.products):
        if p.type not in types:
            fail(f"factory.orders.products[{i}].type", f"unknown part type '{p.type}'")
        products.add(p.type)
        for j, step in enumerate(p.routing):
            if step.cell not in kinds and step.cell not in cell_ids:
                fail(
                    f"factory.orders.products[{i}].routing[{j}].cell",
                    f"no cell and no cell kind '{step.cell}' (kinds: {sorted(kinds)})",
                )
    for i, o in enumerate(orders.book):
        if o.product not in products:
            fail(f"factory.orders.book[{i}].product", f"unknown product '{o.product}'")
    if orders.arrivals is not None:
        lo, hi = orders.arrivals.quantity
        if hi < lo:
            fail("factory.orders.arrivals.quantity", f"[{lo}, {hi}]: max is below min")
        for j, mix in enumerate(orders.arrivals.products):
            if mix.type not in products:
                fail(f"factory.orders.arrivals.products[{j}].type", f"unknown product '{mix.type}'")
