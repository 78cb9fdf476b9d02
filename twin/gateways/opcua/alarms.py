"""Faults as OPC UA alarms (AlarmConditionType), line and station state changes as events.

One condition per device and fault kind (a station breakdown, a photo-eye stuck on, the
line's e-stop): it is Active while the fault lasts, Retained until it is inactive and
acknowledged, and clients get it again on ConditionRefresh. Its ConditionId is an object
node `<device>.Alarms.<fault>`; Acknowledge is called on it as on any condition.
"""

from __future__ import annotations

from typing import Any

from asyncua import Server, ua

from twin.gateways.model import LineModel
from twin.gateways.opcua.address_space import Space
from twin.protocol import messages as m

SEVERITY = {"breakdown": 700, "estop": 900}  # else 500 (sensor faults)


class _Condition:
    def __init__(self, gen: Any, node_id: ua.NodeId, device: str, fault: str) -> None:
        self.gen = gen
        self.node_id = node_id
        self.device = device
        self.fault = fault
        self.active = False
        self.acked = True


class Alarms:
    def __init__(self, server: Server, space: Space, model: LineModel) -> None:
        self.server = server
        self.space = space
        self.model = model
        self.conditions: dict[tuple[str, str], _Condition] = {}
        self.by_node: dict[ua.NodeId, _Condition] = {}
        self._state_gens: dict[str, Any] = {}
        self._from_state: set[tuple[str, str]] = set()  # station faults seen in signals
        # the step of the last event handled: events are handled as they come, states at
        # most a few times a second, the newest waiting; a state from before that step shows
        # faults as they were before the events since (a breakdown the event just cleared)
        self._event_step = -1

    async def setup(self) -> None:
        self.server.iserver.isession.add_method_callback(
            ua.NodeId(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge), self._acknowledge
        )
        for node in self.space.devices.values():
            await node.set_event_notifier([ua.EventNotifier.SubscribeToEvents])
        await self.space.root.set_event_notifier([ua.EventNotifier.SubscribeToEvents])

    async def _condition(self, device: str, fault: str) -> _Condition:
        cond = self.conditions.get((device, fault))
        if cond is not None:
            return cond
        parent = self.space.devices.get(device, self.space.root)
        folder_id = ua.NodeId(f"{device}.Alarms", self.space.ns)
        try:
            folder = self.server.get_node(folder_id)
            await folder.read_browse_name()
        except Exception:
            folder = await parent.add_object(folder_id, ua.QualifiedName("Alarms", self.space.ns))
        node = await folder.add_object(
            ua.NodeId(f"{device}.Alarms.{fault}", self.space.ns),
            ua.QualifiedName(fault, self.space.ns),
        )
        gen = await self.server.get_event_generator(ua.ObjectIds.AlarmConditionType, parent)
        ev = gen.event
        ev.SourceNode = parent.nodeid
        ev.SourceName = device
        ev.ConditionName = fault
        ev.NodeId = node.nodeid  # the ConditionId
        ev.Severity = SEVERITY.get(fault, 500)
        ev.EnabledState = ua.LocalizedText("Enabled")
        setattr(ev, "EnabledState/Id", True)
        cond = _Condition(gen, node.nodeid, device, fault)
        self.conditions[(device, fault)] = cond
        self.by_node[node.nodeid] = cond
        return cond

    async def _report(self, cond: _Condition, message: str) -> None:
        ev = cond.gen.event
        ev.ActiveState = ua.LocalizedText("Active" if cond.active else "Inactive")
        setattr(ev, "ActiveState/Id", cond.active)
        ev.AckedState = ua.LocalizedText("Acknowledged" if cond.acked else "Unacknowledged")
        setattr(ev, "AckedState/Id", cond.acked)
        ev.Retain = cond.active or not cond.acked
        await self._trigger(cond.gen, message)

    async def set(self, device: str, fault: str, active: bool, detail: str = "") -> None:
        """The fault is (still) active or cleared; an alarm event when that changes."""
        cond = self.conditions.get((device, fault))
        if cond is None:
            if not active:
                return
            cond = await self._condition(device, fault)
        if cond.active == active:
            return
        cond.active = active
        if active:
            cond.acked = False
        what = f"{device}: {fault}" + (f" ({detail})" if detail else "")
        await self._report(cond, f"{what} {'active' if active else 'cleared'}")

    def active(self) -> list[tuple[str, str]]:
        return [k for k, c in self.conditions.items() if c.active]

    async def _acknowledge(
        self, parent: ua.NodeId, event_id: ua.Variant, comment: ua.Variant
    ) -> Any:
        cond = self.by_node.get(parent)
        if cond is None:
            return ua.StatusCode(ua.StatusCodes.BadConditionBranchAlreadyAcked)
        if cond.acked:
            return ua.StatusCode(ua.StatusCodes.BadConditionBranchAlreadyAcked)
        cond.acked = True
        text = comment.Value.Text if isinstance(comment.Value, ua.LocalizedText) else ""
        await self._report(cond, f"{cond.device}: {cond.fault} acknowledged {text}".strip())
        return []

    async def _trigger(self, gen: Any, message: str) -> None:
        """Send the event from its device's object, then the same event from the line's
        object and the Server object, so a client may subscribe at any of the three."""
        await gen.trigger(message=message)
        ev = gen.event
        device_node = ev.emitting_node
        subscriptions = self.server.iserver.subscription_service
        try:
            for node in (self.space.root.nodeid, ua.NodeId(ua.ObjectIds.Server)):
                if node != device_node:
                    ev.emitting_node = node
                    await subscriptions.trigger_event(ev)
        finally:
            ev.emitting_node = device_node

    async def _state_generator(self, device: str) -> Any:
        """One BaseEventType generator per device: events come from the device's object, so
        a client subscribed to that object (or to the line's) gets them."""
        gen = self._state_gens.get(device)
        if gen is None:
            node = self.space.devices.get(device, self.space.root)
            gen = await self.server.get_event_generator(ua.ObjectIds.BaseEventType, node)
            gen.event.SourceName = device
            gen.event.Severity = 100
            self._state_gens[device] = gen
        return gen

    # from telemetry --------------------------------------------------------------------------
    async def on_state(self, state: m.State) -> None:
        """Station faults and the e-stop from the state (also right after the gateway starts),
        unless events newer than the state have been handled."""
        if state.step < self._event_step:
            return
        for st in self.model.stations:
            fault = (state.signals.get(st.id) or {}).get("fault")
            if fault:
                self._from_state.add((st.id, str(fault)))
                await self.set(st.id, str(fault), True)
            for device, kind in list(self._from_state):
                if device == st.id and kind != fault:
                    await self.set(device, kind, False)
        await self.set("line", "estop", bool(state.estopped))

    async def on_event(self, ev: m.EventMsg) -> None:
        self._event_step = ev.step  # in order; after a reset the new line's steps start at 0
        if ev.kind == "fault":
            fault = str(ev.data.get("fault", "fault"))
            await self.set(ev.device, fault, bool(ev.data.get("active", True)))
        elif ev.kind == "alarm":  # the built-in sequencer's: pick_failed, place_failed, ...
            detail = str(ev.data.get("message") or "")
            await self.set(
                ev.device, str(ev.data.get("alarm", "alarm")), bool(ev.data.get("active")), detail
            )
        elif ev.kind == "watchdog":  # the twin safe-stopped: its controller went silent
            await self._trigger(await self._state_generator("line"), str(ev.data.get("reason", "")))
        elif ev.kind == "estop":
            await self.set("line", "estop", True, str(ev.data.get("reason", "")))
        elif ev.kind == "estop_reset":
            await self.set("line", "estop", False)
        elif ev.kind in ("station_state", "line_state"):
            gen = await self._state_generator(ev.device)
            old, new = ev.data.get("old"), ev.data.get("new")
            cause = ev.data.get("cause")
            await self._trigger(
                gen, f"{ev.device}: {old} -> {new}" + (f" ({cause})" if cause else "")
            )
