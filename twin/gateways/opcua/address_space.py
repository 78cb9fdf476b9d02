"""The OPC UA address space of a line, generated from its `describe` (via LineModel).

    Objects/<line name>                       the line (namespace urn:twin:<line>)
      <device id>                             one object per device (NodeId s=<id>)
        <signal>                              variable per signal: type, EngineeringUnits, EURange
        <Command>(args)                       method per command (SetSpeed for set_speed), typed args
        LastRefusal                           the twin's message for the last refused call/write
        TagID, PackMLVersion, Status/, Admin/, BaseStateMachine/CurrentState
                                              PackML units (the line, the stations), after OPC 30050
        Axes/Axis<n>/ParameterSet/ActualPosition, ActualSpeed; ToolPosition
                                              arms, after OPC 40010
      KPIs/                                   line KPIs, KPIs/<station>/ per station
      Twin/                                   mode, time, control lease, e-stop

Every variable has a string key (its NodeId's identifier, e.g. "mill.Status.StateCurrent");
the gateway writes values by key. Nothing here is specific to one line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from asyncua import Node, Server, ua

from twin.gateways.model import LINE_KPIS, STATION_KPIS, Command, LineModel
from twin.gateways.opcua.types import eu_information, is_array, variant_type

PACKML_VERSION = "OPC 30050 (PackML) 1.01 shape; see docs/opcua.md for where it differs"
MethodHandler = Callable[..., Awaitable[Any]]


@dataclass
class VarSpec:
    node_id: ua.NodeId
    vtype: ua.VariantType
    array: bool = False


@dataclass
class Space:
    ns: int
    root: Node
    variables: dict[str, VarSpec] = field(default_factory=dict)
    devices: dict[str, Node] = field(default_factory=dict)
    setpoints: dict[ua.NodeId, tuple[str, Command]] = field(default_factory=dict)

    def node_id(self, key: str) -> ua.NodeId:
        return ua.NodeId(key, self.ns)


class Builder:
    def __init__(self, server: Server, ns: int, model: LineModel) -> None:
        self.server = server
        self.ns = ns
        self.model = model

    async def _var(
        self,
        space: Space,
        parent: Node,
        key: str,
        name: str,
        vtype: ua.VariantType,
        value: Any,
        *,
        array: bool = False,
        unit: str = "",
        lo: float | None = None,
        hi: float | None = None,
        doc: str = "",
        writable: bool = False,
        prop: bool = False,
    ) -> Node:
        nid = ua.NodeId(key, self.ns)
        qname = ua.QualifiedName(name, self.ns)
        val = ua.Variant(value, vtype)
        if prop:
            node = await parent.add_property(nid, qname, val, vtype)
        else:
            node = await parent.add_variable(nid, qname, val, vtype)
        if array:
            await node.write_value_rank(ua.ValueRank.OneDimension)
        if doc:
            await node.write_attribute(
                ua.AttributeIds.Description, ua.DataValue(ua.Variant(ua.LocalizedText(doc)))
            )
        if unit:
            await node.add_property(
                ua.NodeId(f"{key}.EngineeringUnits", self.ns),
                "EngineeringUnits",
                eu_information(unit),
                datatype=ua.NodeId(ua.ObjectIds.EUInformation),
            )
        if lo is not None and hi is not None:
            await node.add_property(
                ua.NodeId(f"{key}.EURange", self.ns),
                "EURange",
                ua.Range(Low=lo, High=hi),
                datatype=ua.NodeId(ua.ObjectIds.Range),
            )
        if writable:
            await node.set_writable()
        space.variables[key] = VarSpec(nid, vtype, array)
        return node

    async def _obj(self, parent: Node, key: str, name: str) -> Node:
        return await parent.add_object(ua.NodeId(key, self.ns), ua.QualifiedName(name, self.ns))

    async def build(
        self,
        lengths: dict[str, int],
        method_handler: Callable[[str, Command], MethodHandler],
        twin_methods: dict[str, tuple[MethodHandler, list[ua.Argument]]],
    ) -> Space:
        """Create every node; `lengths` gives array lengths ("robot.joint_positions": 7)
        when describe does not; `method_handler(device, command)` makes each method's callback."""
        objects = self.server.nodes.objects
        root = await self._obj(objects, "Line", self.model.line)
        space = Space(self.ns, root)
        for dev in self.model.devices:
            node = await self._obj(root, dev.id, dev.id)
            space.devices[dev.id] = node
            setpoints = dev.setpoints
            for s in dev.signals:
                key = f"{dev.id}.{s.name}"
                await self._var(
                    space,
                    node,
                    key,
                    s.name,
                    variant_type(s.type),
                    _zero(s.type),
                    array=is_array(s.type),
                    unit=s.unit,
                    lo=s.min,
                    hi=s.max,
                    doc=s.doc,
                    writable=s.name in setpoints,
                )
                if s.name in setpoints:
                    space.setpoints[ua.NodeId(key, self.ns)] = (dev.id, setpoints[s.name])
            for c in dev.commands:
                await self._method(node, dev.id, c, method_handler(dev.id, c))
            if dev.commands:
                await self._var(
                    space,
                    node,
                    f"{dev.id}.LastRefusal",
                    "LastRefusal",
                    ua.VariantType.String,
                    "",
                    doc="the twin's message for the last refused method call or write on this device",
                )
            if dev.is_packml_unit:
                await self._packml(space, node, dev.id)
            if dev.is_arm:
                await self._arm(space, node, dev.id, lengths.get(f"{dev.id}.joint_positions", 0))
            geometry = dev.extra.get("geometry")
            if isinstance(geometry, dict) and geometry:
                await self._geometry(space, node, dev.id, geometry)
        await self._teach_points(space, root)
        await self._kpis(space, root)
        await self._twin(space, root, twin_methods)
        return space

    async def _geometry(self, space: Space, node: Node, dev_id: str, geometry: dict) -> None:
        """The device's geometry from describe as properties (m, rad; world frame)."""
        obj = await self._obj(node, f"{dev_id}.Geometry", "Geometry")
        for name, value in _flatten(geometry):
            key = f"{dev_id}.Geometry.{name}"
            if isinstance(value, bool):
                await self._var(space, obj, key, name, ua.VariantType.Boolean, value, prop=True)
            elif isinstance(value, (int, float)):
                unit = "rad" if name.endswith("yaw") else "m"
                await self._var(
                    space, obj, key, name, ua.VariantType.Double, float(value), unit=unit, prop=True
                )
            elif (
                isinstance(value, list)
                and value
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            ):
                await self._var(
                    space,
                    obj,
                    key,
                    name,
                    ua.VariantType.Double,
                    [float(v) for v in value],
                    array=True,
                    unit="m",
                    prop=True,
                )
            elif isinstance(value, str):
                await self._var(space, obj, key, name, ua.VariantType.String, value, prop=True)

    async def _teach_points(self, space: Space, root: Node) -> None:
        if not self.model.teach_points:
            return
        obj = await self._obj(root, "TeachPoints", "TeachPoints")
        for tp in self.model.teach_points:
            await self._var(
                space,
                obj,
                f"TeachPoints.{tp.name}",
                tp.name,
                ua.VariantType.Double,
                tp.point,
                array=True,
                unit="m",
                doc=f"where {tp.arm} {tp.action}s at {tp.device} (world frame, z up)",
            )

    async def _method(self, parent: Node, dev_id: str, c: Command, handler: MethodHandler) -> None:
        args = []
        for a in c.args:
            arg = ua.Argument()
            arg.Name = a.name
            arg.DataType = ua.NodeId(variant_type(a.type).value)
            arg.ValueRank = ua.ValueRank.OneDimension if is_array(a.type) else ua.ValueRank.Scalar
            if a.type == "vec3" or (a.type == "floats" and a.length):
                arg.ArrayDimensions = [3 if a.type == "vec3" else a.length]
            bits = [a.doc] if a.doc else []
            if a.unit:
                bits.append(f"unit {a.unit}")
            if a.min is not None or a.max is not None:
                bits.append(f"range [{a.min}, {a.max}]")
            if a.choices:
                bits.append("one of " + ", ".join(a.choices))
            if a.optional:
                bits.append('optional: leave it out, or give "", [] or NaN')
            arg.Description = ua.LocalizedText("; ".join(bits))
            args.append(arg)
        await parent.add_method(
            ua.NodeId(f"{dev_id}.{method_name(c.name)}", self.ns),
            ua.QualifiedName(method_name(c.name), self.ns),
            handler,
            args,
            [],
        )

    async def _packml(self, space: Space, node: Node, dev_id: str) -> None:
        s = ua.VariantType
        await self._var(space, node, f"{dev_id}.TagID", "TagID", s.String, dev_id, prop=True)
        await self._var(
            space,
            node,
            f"{dev_id}.PackMLVersion",
            "PackMLVersion",
            s.String,
            PACKML_VERSION,
            prop=True,
        )
        status = await self._obj(node, f"{dev_id}.Status", "Status")
        k = f"{dev_id}.Status"
        await self._var(
            space,
            status,
            f"{k}.StateCurrent",
            "StateCurrent",
            s.Int32,
            0,
            doc="PackML state number (ISA-TR88.00.02): 2 Stopped, 4 Idle, 6 Execute, ...",
        )
        await self._var(
            space,
            status,
            f"{k}.UnitModeCurrent",
            "UnitModeCurrent",
            s.Int32,
            1,
            doc="ProductionMaintenanceModeEnum: 1 Produce",
        )
        await self._var(
            space,
            status,
            f"{k}.CurMachSpeed",
            "CurMachSpeed",
            s.Float,
            0.0,
            doc="parts per minute now (0 unless processing)",
        )
        await self._var(
            space,
            status,
            f"{k}.MachSpeed",
            "MachSpeed",
            s.Float,
            0.0,
            doc="parts per minute set (the design speed)",
        )
        await self._var(
            space, status, f"{k}.EquipmentStarved", "EquipmentStarved", s.Boolean, False
        )
        await self._var(
            space, status, f"{k}.EquipmentBlocked", "EquipmentBlocked", s.Boolean, False
        )
        admin = await self._obj(node, f"{dev_id}.Admin", "Admin")
        k = f"{dev_id}.Admin"
        await self._var(
            space,
            admin,
            f"{k}.ProdProcessedCount",
            "ProdProcessedCount",
            s.Int32,
            0,
            doc="parts processed (the line: parts completed)",
        )
        await self._var(
            space,
            admin,
            f"{k}.ProdDefectiveCount",
            "ProdDefectiveCount",
            s.Int32,
            0,
            doc="of which defective",
        )
        await self._var(
            space,
            admin,
            f"{k}.StopReason",
            "StopReason",
            s.String,
            "",
            doc="active fault or e-stop reason, empty when none",
        )
        await self._var(
            space,
            admin,
            f"{k}.MachDesignSpeed",
            "MachDesignSpeed",
            s.Float,
            0.0,
            doc="parts per minute at the ideal cycle time",
        )
        sm = await self._obj(node, f"{dev_id}.BaseStateMachine", "BaseStateMachine")
        await self._var(
            space,
            sm,
            f"{dev_id}.BaseStateMachine.CurrentState",
            "CurrentState",
            s.LocalizedText,
            ua.LocalizedText("Undefined"),
        )

    async def _arm(self, space: Space, node: Node, dev_id: str, n_joints: int) -> None:
        axes = await self._obj(node, f"{dev_id}.Axes", "Axes")
        for i in range(n_joints):
            k = f"{dev_id}.Axes.Axis{i + 1}"
            axis = await self._obj(axes, k, f"Axis{i + 1}")
            params = await self._obj(axis, f"{k}.ParameterSet", "ParameterSet")
            await self._var(
                space,
                params,
                f"{k}.ParameterSet.ActualPosition",
                "ActualPosition",
                ua.VariantType.Double,
                0.0,
                unit="rad",
            )
            await self._var(
                space,
                params,
                f"{k}.ParameterSet.ActualSpeed",
                "ActualSpeed",
                ua.VariantType.Double,
                0.0,
                unit="rad/s",
            )

    async def _kpis(self, space: Space, root: Node) -> None:
        kpis = await self._obj(root, "KPIs", "KPIs")
        for name, _path, unit, doc in LINE_KPIS:
            await self._var(
                space, kpis, f"KPIs.{name}", name, ua.VariantType.Double, 0.0, unit=unit, doc=doc
            )
        for st in self.model.stations:
            obj = await self._obj(kpis, f"KPIs.{st.id}", st.id)
            for name, _key, doc in STATION_KPIS:
                await self._var(
                    space, obj, f"KPIs.{st.id}.{name}", name, ua.VariantType.Double, 0.0, doc=doc
                )

    async def _twin(
        self, space: Space, root: Node, methods: dict[str, tuple[MethodHandler, list[ua.Argument]]]
    ) -> None:
        obj = await self._obj(root, "Twin", "Twin")
        s = ua.VariantType
        for name, vtype, value, doc in (
            ("Mode", s.String, "", "fast, realtime or lockstep"),
            ("SimTime", s.Double, 0.0, "simulated seconds"),
            ("Step", s.Int64, 0, "the twin's step index"),
            ("Estopped", s.Boolean, False, "emergency stop active"),
            ("Controlled", s.Boolean, False, "some client holds the twin's control"),
            ("ControlHolder", s.String, "", "the gateway client holding control through it"),
            ("Connected", s.Boolean, False, "the twin answers the gateway (asked every second)"),
            ("LastRefusal", s.String, "", "the message of the last refused call of these methods"),
        ):
            await self._var(
                space,
                obj,
                f"Twin.{name}",
                name,
                vtype,
                value,
                doc=doc,
                unit="s" if name == "SimTime" else "",
            )
        for name, (handler, args) in methods.items():
            await obj.add_method(
                ua.NodeId(f"Twin.{name}", self.ns),
                ua.QualifiedName(name, self.ns),
                handler,
                args,
                [],
            )


def method_name(command: str) -> str:
    """A command's method name in CamelCase, as OPC UA models name methods: the PackML
    commands get their OPC 30050 names (Reset, Start, ...), set_speed becomes SetSpeed."""
    return "".join(part.capitalize() for part in command.split("_"))


def _geometry_unit(name: str) -> str:
    """Geometry is in m and rad (describe's conventions); a few entries are neither."""
    if name.endswith("yaw"):
        return "rad"
    if name.endswith("payload"):
        return "kg"
    if name in ("direction",) or name.endswith("_count"):
        return ""
    return "m"


def _flatten(values: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested geometry maps as (name, value) pairs: zone.min -> "zone_min"."""
    out: list[tuple[str, Any]] = []
    for k, v in values.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _flatten(v, f"{name}_")
        elif isinstance(v, list) and v and isinstance(v[0], list):
            for i, row in enumerate(v):
                out.append((f"{name}_{i}", row))
        else:
            out.append((name, v))
    return out


def _zero(twin_type: str) -> Any:
    base = twin_type.split("|")[0]
    return {"bool": False, "int": 0, "float": 0.0, "floats": [], "vec3": []}.get(base, "")
