"""A factory file expanded into one line config.

A factory file is a TOML file with top-level `[[cells]]`; each cell is a line config used as
a template (relative to the factory file), placed on the floor with a pose and an id prefix
("<cell id>_" unless `prefix` is given). The factory adds its own route network (aisles,
parking and charging spots; the templates bring the approach nodes of their docks), the
fleet (AMRs amr1..amrN, or listed) and the orders, whose routings fill the cycle times of
the stations of each cell kind. The result is an ordinary `LineConfig` whose `factory`
field says which devices make which cell, so every command takes factory files.

Errors name the factory file and its field; a template that is itself invalid names both
files. The checks of the floor (overlapping cells, lanes through cells) are in
`twin.factory.floor_checks`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec.structs import replace

from twin.config import (
    AmrConfig,
    CellConfig,
    ConfigError,
    Coordinate,
    DeviceConfig,
    DeviceId,
    DockConfig,
    FactorySpec,
    FleetConfig,
    LaneConfig,
    LineConfig,
    NetworkConfig,
    NodeConfig,
    OrdersConfig,
    PartPoolConfig,
    PartType,
    Physics,
    ScriptedWindow,
    SequencerConfig,
    StationConfig,
    ViewConfig,
    Yaw,
    _field_path,
    _listing,
    decode_toml,
    loads,
    read_config_file,
)
from twin.factory.floor import Pose, Rect
from twin.factory.floor_checks import FloorItem, check_floor
from twin.factory.placement import PlacedCell, dock_sinks, dock_sources, footprint, place_cell

_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")
MAX_ID = 64  # as DeviceId


def is_factory(raw: Any) -> bool:
    """A factory file is told from a line file by its top-level `cells`."""
    return isinstance(raw, dict) and "cells" in raw


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class CellEntry(_Strict, kw_only=True):
    id: DeviceId
    template: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]  # a line config file
    kind: DeviceId | None = None  # what routings name (default: the template's name)
    prefix: Annotated[str, msgspec.Meta(max_length=MAX_ID)] | None = None  # default "<id>_"
    position: Annotated[list[Coordinate], msgspec.Meta(min_length=2, max_length=2)]  # m
    yaw: Yaw = 0.0  # rad
    # inferred from the template unless given: a dock-source makes a receiving cell, a
    # dock-sink a shipping cell; the in/out docks are where its transfers pick and place
    role: Literal["process", "receiving", "shipping"] | None = None
    in_dock: str | None = None  # template dock ids
    out_dock: str | None = None


class AmrStart(_Strict, kw_only=True):
    id: DeviceId
    start: str  # a node or a dock


class FleetLayout(_Strict, kw_only=True):
    """The fleet keys a factory file adds to `FleetConfig`: which AMRs and where they start."""

    count: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0  # AMRs amr1..amrN
    amrs: list[AmrStart] = msgspec.field(default_factory=list)  # ... or these
    start: list[str] = msgspec.field(default_factory=list)  # start spots (default: park)
    amr: dict[str, Any] = msgspec.field(default_factory=dict)  # AmrConfig fields for all


_FLEET_LAYOUT_KEYS = ("count", "amrs", "start", "amr")


class FactoryFile(_Strict, kw_only=True):
    name: str
    physics: Physics = msgspec.field(default_factory=Physics)
    part_pool: PartPoolConfig = msgspec.field(default_factory=PartPoolConfig)
    part_types: Annotated[list[PartType], msgspec.Meta(min_length=1)]
    cells: Annotated[list[CellEntry], msgspec.Meta(min_length=1)]
    devices: list[DeviceConfig] = msgspec.field(default_factory=list)  # not in any cell
    controller: SequencerConfig | None = None  # its rules run after the cells' rules
    estops: list[ScriptedWindow] = msgspec.field(default_factory=list)
    view: ViewConfig | None = None  # default: the whole floor
    network: NetworkConfig | None = None
    fleet: dict[str, Any] = msgspec.field(default_factory=dict)  # FleetConfig + FleetLayout
    orders: OrdersConfig | None = None


@dataclass
class _Cell:
    index: int
    entry: CellEntry
    template_path: Path
    template: LineConfig
    prefix: str
    placed: PlacedCell

    @property
    def label(self) -> str:
        return f"cells[{self.index}] (cell '{self.entry.id}')"


class _Expander:
    def __init__(self, raw: dict[str, Any], source: str, base_dir: Path) -> None:
        self.raw = raw
        self.source = source
        self.base_dir = base_dir
        self.templates: dict[Path, LineConfig] = {}

    def fail(self, field: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {field}: {problem}")

    # reading ----------------------------------------------------------------------------
    def convert(self, value: Any, kind: type, where: str) -> Any:
        try:
            return msgspec.convert(value, kind)
        except msgspec.ValidationError as e:
            path, problem = _field_path(str(e))
            label = _entry_label(self.raw, path) if not where else f"{where}.{path}".rstrip(".")
            raise self.fail(label or "(top level)", problem) from None

    def template(self, index: int, entry: CellEntry) -> tuple[Path, LineConfig]:
        here = f"cells[{index}] (cell '{entry.id}').template"
        path = Path(entry.template)
        if not path.is_absolute():
            path = self.base_dir / path
        if path in self.templates:
            return path, self.templates[path]
        try:
            data = read_config_file(path, "cell template")
            if is_factory(decode_toml(data, str(path))):
                raise ConfigError(
                    f"{path}: is a factory file (it has [[cells]]); a template is a line config"
                )
            cfg = loads(data, str(path))
        except ConfigError as e:
            raise self.fail(here, str(e)) from None
        if any(isinstance(d, AmrConfig) for d in cfg.devices):
            raise self.fail(here, f"{path}: a cell holds no AMRs (they are the factory's [fleet])")
        if cfg.factory is not None:
            raise self.fail(here, f"{path}: a cell template has no [factory] of its own")
        self.templates[path] = cfg
        return path, cfg

    # expanding --------------------------------------------------------------------------
    def expand(self) -> LineConfig:
        spec: FactoryFile = self.convert(self.raw, FactoryFile, "")
        fleet_raw = dict(spec.fleet)
        layout_raw = {k: fleet_raw.pop(k) for k in _FLEET_LAYOUT_KEYS if k in fleet_raw}
        layout: FleetLayout = self.convert(layout_raw, FleetLayout, "fleet")
        fleet: FleetConfig = self.convert(fleet_raw, FleetConfig, "fleet")
        amr_proto = self.amr_prototype(layout)

        cells = self.place_cells(spec)
        owners = self.check_ids(spec, cells)
        part_types = self.part_types(spec, cells)
        cell_configs = [self.cell_config(c, amr_proto) for c in cells]

        nodes = list(spec.network.nodes) if spec.network else []
        lanes = list(spec.network.lanes) if spec.network else []
        chargers = list(spec.network.chargers) if spec.network else []
        for c in cells:
            nodes += c.placed.nodes
            lanes += c.placed.lanes
            chargers += c.placed.chargers
        network = NetworkConfig(nodes=nodes, lanes=lanes, chargers=chargers) if nodes else None

        devices: list[DeviceConfig] = [d for c in cells for d in c.placed.devices]
        devices += spec.devices
        devices = self.fill_cycle_times(spec, devices, cell_configs)
        devices += self.fleet_amrs(layout, fleet, amr_proto, nodes, devices, owners)

        check_floor(
            self._floor_items(spec, cells, cell_configs),
            amr_width=amr_proto.size[1],
            amr_length=amr_proto.size[0],
            fail=self.fail,
        )
        cfg = LineConfig(
            name=spec.name,
            physics=spec.physics,
            part_pool=spec.part_pool,
            part_types=part_types,
            devices=devices,
            controller=self.controller(spec, cells),
            estops=spec.estops,
            view=spec.view or floor_view(cell_configs, nodes),
            network=network,
            factory=FactorySpec(cells=cell_configs, fleet=fleet, orders=spec.orders),
        )
        return self.revalidated(cfg)

    def place_cells(self, spec: FactoryFile) -> list[_Cell]:
        cells = []
        for i, entry in enumerate(spec.cells):
            path, template = self.template(i, entry)
            prefix = f"{entry.id}_" if entry.prefix is None else entry.prefix
            if not _ID_RE.match(prefix + "x"):
                raise self.fail(
                    f"cells[{i}] (cell '{entry.id}').prefix",
                    f"'{prefix}' cannot start a device id (a letter, then letters, digits, _ or -)",
                )
            pose = Pose(entry.position[0], entry.position[1], entry.yaw)
            cells.append(
                _Cell(i, entry, path, template, prefix, place_cell(template, prefix, pose))
            )
        return cells

    def check_ids(self, spec: FactoryFile, cells: list[_Cell]) -> dict[str, str]:
        """Cell ids unique; prefixed device, node and charger ids unique and valid.
        Returns the owner of every device id."""
        seen_cells: dict[str, int] = {}
        for i, entry in enumerate(spec.cells):
            if entry.id in seen_cells:
                raise self.fail(
                    f"cells[{i}] (cell '{entry.id}').id",
                    f"duplicate cell '{entry.id}' (also cells[{seen_cells[entry.id]}])",
                )
            seen_cells[entry.id] = i
        owners: dict[str, str] = {}
        node_owners: dict[str, str] = {}
        for i, n in enumerate(spec.network.nodes if spec.network else []):
            if n.id in node_owners:
                raise self.fail(f"network.nodes[{i}].id", f"duplicate node '{n.id}'")
            node_owners[n.id] = f"network.nodes[{i}]"
        charger_owners = {
            c.id: f"network.chargers[{i}]"
            for i, c in enumerate(spec.network.chargers if spec.network else [])
        }
        for c in cells:
            where = f"{c.label}.prefix"
            for kind, ids, table in (
                ("device", [d.id for d in c.placed.devices], owners),
                ("node", [n.id for n in c.placed.nodes], node_owners),
                ("charger", [ch.id for ch in c.placed.chargers], charger_owners),
            ):
                for new_id in ids:
                    if len(new_id) > MAX_ID:
                        raise self.fail(
                            where, f"{kind} id '{new_id}' is longer than {MAX_ID} characters"
                        )
                    if new_id in table:
                        raise self.fail(
                            where,
                            f"{kind} '{new_id}' of cell '{c.entry.id}' collides with the "
                            f"{kind} of {table[new_id]} (give the cells prefixes that keep "
                            "their ids apart)",
                        )
                    table[new_id] = f"cell '{c.entry.id}'"
        for i, d in enumerate(spec.devices):
            if d.id in owners:
                raise self.fail(
                    f"devices[{i}] (device '{d.id}').id",
                    f"collides with the device of {owners[d.id]}",
                )
            owners[d.id] = f"devices[{i}]"
        return owners

    def part_types(self, spec: FactoryFile, cells: list[_Cell]) -> list[PartType]:
        """The factory's part types, then those only a template defines (a template's own
        definition of a name the factory defines is replaced by the factory's)."""
        types = list(spec.part_types)
        names = {t.name for t in types}
        for c in cells:
            for t in c.template.part_types:
                if t.name not in names:
                    types.append(t)
                    names.add(t.name)
        return types

    def cell_config(self, c: _Cell, amr: AmrConfig) -> CellConfig:
        entry, devices, here = c.entry, c.placed.devices, c.label
        sources, sinks = dock_sources(devices), dock_sinks(devices)
        role = entry.role
        if role is None:
            if sources and sinks:
                raise self.fail(
                    f"{here}.role",
                    f"template {c.template_path} has a source and a sink at docks: "
                    "say whether it is 'receiving' or 'shipping'",
                )
            role = "receiving" if sources else "shipping" if sinks else "process"

        def dock(given: str | None, field: str, found: str | None) -> str | None:
            if given is None:
                return found
            ids = {d.id for d in c.template.devices if isinstance(d, DockConfig)}
            if given not in ids:
                raise self.fail(
                    f"{here}.{field}",
                    f"template {c.template_path} has no dock '{given}' (docks: {_listing(ids)})",
                )
            return c.prefix + given

        picks = [t.pick.dock for t in c.placed.transfers if t.pick.dock]
        places = [t.place.dock for t in c.placed.transfers if t.place.dock]
        in_found = sinks[0].dock if role == "shipping" and sinks else (picks[0] if picks else None)
        out_found = (
            sources[0].dock if role == "receiving" and sources else (places[0] if places else None)
        )
        in_dock = dock(entry.in_dock, "in_dock", in_found if role != "receiving" else None)
        out_dock = dock(entry.out_dock, "out_dock", out_found if role != "shipping" else None)
        for needed, field, what in (
            (role != "receiving", "in_dock", "picks from a dock (pick = { dock = ... })"),
            (role != "shipping", "out_dock", "places on a dock (place = { dock = ... })"),
        ):
            if needed and (in_dock if field == "in_dock" else out_dock) is None:
                raise self.fail(
                    f"{here}.template",
                    f"{c.template_path}: a {role} cell needs an {field.replace('_', ' ')}: "
                    f"no transfer {what}, and no {field} given",
                )
        if role == "receiving" and not sources:
            raise self.fail(
                f"{here}.role",
                f"template {c.template_path} has no source at a dock to release parts from",
            )
        area = footprint(devices, (amr.size[0], amr.size[1]))
        if area is None:
            area = Rect(entry.position[0], entry.position[1], entry.position[0], entry.position[1])
        return CellConfig(
            id=entry.id,
            kind=entry.kind or c.template.name,
            role=role,
            devices=[d.id for d in devices],
            in_dock=in_dock,
            out_dock=out_dock,
            stations=[d.id for d in devices if isinstance(d, StationConfig)],
            source=sources[0].id if role == "receiving" else None,
            position=list(entry.position),
            yaw=entry.yaw,
            footprint=[_r(area.x_min), _r(area.y_min), _r(area.x_max), _r(area.y_max)],
        )

    def fill_cycle_times(
        self, spec: FactoryFile, devices: list[DeviceConfig], cells: list[CellConfig]
    ) -> list[DeviceConfig]:
        """Each routing step's cycle time becomes the cycle time of that product's part type
        at every station of the cells it names (a kind or a cell id)."""
        if spec.orders is None:
            return devices
        times: dict[str, dict[str, float]] = {}  # station -> part type -> s
        origin: dict[tuple[str, str], str] = {}
        for i, product in enumerate(spec.orders.products):
            for j, step in enumerate(product.routing):
                here = f"orders.products[{i}].routing[{j}]"
                for cell in cells:
                    if step.cell not in (cell.kind, cell.id):
                        continue
                    for st in cell.stations:
                        key = (st, product.type)
                        known = times.setdefault(st, {}).get(product.type)
                        if known is not None and known != step.cycle_time:
                            raise self.fail(
                                f"{here}.cycle_time",
                                f"{step.cycle_time} s for '{product.type}' at station '{st}' "
                                f"differs from the {known} s of {origin[key]} (a station has "
                                "one cycle time per part type)",
                            )
                        times[st][product.type] = step.cycle_time
                        origin[key] = here
        out: list[DeviceConfig] = []
        for d in devices:
            if isinstance(d, StationConfig) and d.id in times:
                d = replace(d, cycle_times={**d.cycle_times, **times[d.id]})
            out.append(d)
        return out

    def amr_prototype(self, layout: FleetLayout) -> AmrConfig:
        for key in ("id", "start", "kind"):
            if key in layout.amr:
                raise self.fail(
                    f"fleet.amr.{key}", "is set per AMR (fleet.amrs = [{ id, start }] or count)"
                )
        return self.convert({**layout.amr, "id": "amr", "start": ""}, AmrConfig, "fleet.amr")

    def fleet_amrs(
        self,
        layout: FleetLayout,
        fleet: FleetConfig,
        proto: AmrConfig,
        nodes: list[NodeConfig],
        devices: list[DeviceConfig],
        owners: dict[str, str],
    ) -> list[AmrConfig]:
        if layout.count and layout.amrs:
            raise self.fail("fleet.amrs", "give either count or amrs, not both")
        spots = {n.id for n in nodes} | {d.id for d in devices if isinstance(d, DockConfig)}
        if layout.amrs:
            starts = [(f"fleet.amrs[{i}].start", a.id, a.start) for i, a in enumerate(layout.amrs)]
        else:
            table, given = ("start", layout.start) if layout.start else ("park", fleet.park)
            if layout.count > len(given):
                raise self.fail(
                    "fleet.count",
                    f"{layout.count} AMRs but only {len(given)} start spots in fleet.{table}"
                    + ("" if layout.start else " (the start spots unless fleet.start is given)"),
                )
            starts = [(f"fleet.{table}[{i}]", f"amr{i + 1}", given[i]) for i in range(layout.count)]
        amrs: list[AmrConfig] = []
        taken: dict[str, str] = {}
        for where, amr_id, start in starts:
            if start not in spots:
                raise self.fail(
                    where,
                    f"unknown node or dock '{start}' (nodes: {_listing(n.id for n in nodes)})",
                )
            if start in taken:
                raise self.fail(where, f"'{start}' is already the start of AMR '{taken[start]}'")
            taken[start] = amr_id
            if amr_id in owners:
                raise self.fail(
                    where.rsplit(".", 1)[0] if layout.amrs else "fleet.count",
                    f"AMR id '{amr_id}' is already the device of {owners[amr_id]}",
                )
            owners[amr_id] = "the fleet"
            amrs.append(replace(proto, id=amr_id, start=start))
        return amrs

    def controller(self, spec: FactoryFile, cells: list[_Cell]) -> SequencerConfig | None:
        belts = [b for c in cells for b in c.placed.belts]
        transfers = [t for c in cells for t in c.placed.transfers]
        base = spec.controller
        if base is None and not belts and not transfers:
            return None
        base = base or SequencerConfig()
        return replace(base, belts=belts + base.belts, transfers=transfers + base.transfers)

    def _floor_items(
        self, spec: FactoryFile, cells: list[_Cell], configs: list[CellConfig]
    ) -> list[FloorItem]:
        """Cells, nodes, lanes and docking paths, each with the field an error names."""
        items: list[FloorItem] = []
        for c, cc in zip(cells, configs, strict=True):
            items.append(
                FloorItem("cell", f"{c.label}.position", cc.id, cell=cc.id, rect=_rect(cc))
            )
        positions: dict[str, tuple[float, float]] = {}
        for i, n in enumerate(spec.network.nodes if spec.network else []):
            positions[n.id] = (n.position[0], n.position[1])
            items.append(
                FloorItem("node", f"network.nodes[{i}].position", n.id, points=[positions[n.id]])
            )
        for c in cells:
            for n in c.placed.nodes:
                positions[n.id] = (n.position[0], n.position[1])
                items.append(
                    FloorItem(
                        "node",
                        f"{c.label}.position",
                        n.id,
                        cell=c.entry.id,
                        points=[positions[n.id]],
                    )
                )
        lane_sets: list[tuple[str | None, str, list[LaneConfig]]] = [
            (None, "network.lanes[{}]", list(spec.network.lanes) if spec.network else [])
        ]
        lane_sets += [(c.entry.id, f"{c.label}.position", c.placed.lanes) for c in cells]
        for owner, where, lanes in lane_sets:
            for i, lane in enumerate(lanes):
                if lane.from_ not in positions or lane.to not in positions:
                    continue  # an unknown node: named by the network check
                items.append(
                    FloorItem(
                        "lane",
                        where.format(i),
                        f"lane '{lane.from_}' -> '{lane.to}'",
                        cell=owner,
                        points=[positions[lane.from_], positions[lane.to]],
                    )
                )
        for c in cells:
            for d in c.placed.devices:
                if isinstance(d, DockConfig) and d.node in positions:
                    items.append(
                        FloorItem(
                            "docking",
                            f"{c.label}.position",
                            f"the docking path '{d.node}' -> dock '{d.id}'",
                            cell=c.entry.id,
                            points=[positions[d.node], (d.position[0], d.position[1])],
                        )
                    )
        return items

    def revalidated(self, cfg: LineConfig) -> LineConfig:
        """Ranges checked again on the expanded config (placing moves points, prefixes
        lengthen ids)."""
        try:
            return msgspec.convert(msgspec.to_builtins(cfg), LineConfig)
        except msgspec.ValidationError as e:
            path, problem = _field_path(str(e))
            label = _entry_label(msgspec.to_builtins(cfg), path) or "(top level)"
            raise self.fail(f"{label} (after placing the cells)", problem) from None


def _r(v: float) -> float:
    return round(v, 6) + 0.0


def _rect(cell: CellConfig) -> Rect:
    return Rect(*cell.footprint)


def _entry_label(raw: Any, path: str) -> str:
    """'cells[2].yaw' -> "cells[2] (cell 'mill2').yaw" (and the same for devices)."""
    m = re.match(r"(cells|devices)\[(\d+)\]", path)
    if not m:
        return path
    try:
        entry_id = raw[m.group(1)][int(m.group(2))].get("id")
    except (KeyError, IndexError, AttributeError, TypeError):
        return path
    if not entry_id:
        return path
    what = "cell" if m.group(1) == "cells" else "device"
    return f"{m.group(0)} ({what} '{entry_id}'){path[m.end() :]}"


def expanded_toml(cfg: LineConfig) -> str:
    """The expanded line config as TOML text that loads into the same config without the
    factory file or its templates (what a recording keeps, so it replays anywhere)."""
    from twin.sweep.toml_text import dumps

    def drop_none(value: Any) -> Any:  # TOML has no null: an absent field is its default
        if isinstance(value, dict):
            return {k: drop_none(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [drop_none(v) for v in value]
        return value

    doc = drop_none(msgspec.to_builtins(cfg))
    doc.pop("source_path", None)
    return f"# {cfg.source_path} expanded into one line config\n" + dumps(doc)


def factory_summary(cfg: LineConfig) -> str:
    """One line on what a factory is made of (for `twin check`)."""
    spec = cfg.factory
    assert spec is not None
    cells = ", ".join(f"{c.id} ({c.kind})" for c in spec.cells)
    net = cfg.network
    nodes, lanes = (len(net.nodes), len(net.lanes)) if net else (0, 0)
    amrs = sum(isinstance(d, AmrConfig) for d in cfg.devices)
    products = len(spec.orders.products) if spec.orders else 0
    return (
        f"  {len(spec.cells)} cells: {cells}; network: {nodes} nodes, {lanes} lanes; "
        f"{amrs} AMRs; {products} products"
    )


def floor_view(cells: list[CellConfig], nodes: list[NodeConfig]) -> ViewConfig:
    """A camera that shows the whole floor from above at an angle."""
    xs = [v for c in cells for v in (c.footprint[0], c.footprint[2])]
    ys = [v for c in cells for v in (c.footprint[1], c.footprint[3])]
    xs += [n.position[0] for n in nodes]
    ys += [n.position[1] for n in nodes]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 2.0)
    target = [(max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2, 0.0]
    return ViewConfig(
        target=[_r(v) for v in target],
        distance=_r(min(span * 1.1 + 1.0, 900.0)),
        yaw=0.0,
        pitch=-60.0,
    )


def expand(raw: dict[str, Any], source: str, base_dir: str | Path | None = None) -> LineConfig:
    """The line config of a decoded factory file; templates are found relative to
    `base_dir` (default: the directory of `source`)."""
    if base_dir is None:
        parent = Path(source).parent
        base_dir = parent if source and not source.startswith("<") else Path.cwd()
    return _Expander(raw, source, Path(base_dir)).expand()
