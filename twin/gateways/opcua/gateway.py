"""The OPC UA gateway: an asyncua server whose address space mirrors a running twin.

It is a client of the twin's ZeroMQ protocol: `describe` builds the address space, `state`,
`event` and `kpi` telemetry update it, and writes or method calls become `command` requests
under the twin's control lease (twin.gateways.lease). The twin never waits for it: telemetry
is published whether or not the gateway keeps up.
"""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.server.address_space import AttributeService

from twin.gateways.lease import Lease, LeaseRefused
from twin.gateways.link import LinkError, TwinLink
from twin.gateways.model import (
    LINE_KPIS,
    PACKML_STATES,
    STATION_KPIS,
    Command,
    LineModel,
    line_model,
)
from twin.gateways.opcua.address_space import Builder, Space
from twin.gateways.opcua.alarms import Alarms
from twin.gateways.opcua.options import OpcUaOptions
from twin.gateways.opcua.security import (
    CONTROLLER,
    CURRENT_USER,
    RoleRuleset,
    SecurityError,
    TwinUser,
    TwinUserManager,
    is_loopback_endpoint,
    load_users,
    role_of,
)
from twin.gateways.opcua.types import ArgumentError, from_ua, status_of, to_ua
from twin.protocol import messages as m


class OpcUaGateway:
    def __init__(self, opts: OpcUaOptions) -> None:
        self.opts = opts
        self.loopback = is_loopback_endpoint(opts.endpoint)
        self.users = load_users(opts.users) if opts.users else []
        if not self.loopback and not self.users:
            raise SecurityError(
                f"{opts.endpoint} is not a loopback endpoint: anonymous access is only allowed on "
                "loopback; give --users FILE (twin opcua user ...) for Basic256Sha256 logins"
            )
        self.link = TwinLink(opts.control, opts.telemetry, curve=opts.curve)
        self.lease = Lease(self.link, opts.watchdog, opts.idle_timeout)
        self.server: Server | None = None
        self.space: Space | None = None
        self.model: LineModel | None = None
        self.alarms: Alarms | None = None
        self._last: dict[str, Any] = {}
        self._defective: dict[str, int] = {}
        self._stop_reason = ""
        self.endpoint_url = opts.endpoint

    # start-up ------------------------------------------------------------------------------
    async def start(self) -> None:
        self.link.start()
        describe, state = await self._first_contact()
        self.model = line_model(describe)
        server = Server(user_manager=TwinUserManager(self.users, allow_anonymous=self.loopback))
        server.iserver.bind_condition_methods = True  # ConditionRefresh for alarm clients
        await server.init()
        server.set_endpoint(self.opts.endpoint)
        server.set_server_name(f"twin {self.model.line}")
        await server.set_application_uri(f"urn:twin:{self.model.line}:opcua")
        await self._security(server)
        self._caps(server)
        ns = await server.register_namespace(f"urn:twin:{self.model.line}")
        lengths = {
            f"{d}.{s}": len(v)
            for d, sigs in state.signals.items()
            for s, v in sigs.items()
            if isinstance(v, list)
        }
        self.space = await Builder(server, ns, self.model).build(
            lengths, self._method_handler, self._twin_methods()
        )
        server.iserver.attribute_service = _SetpointWrites(server.iserver.aspace, self)
        self.alarms = Alarms(server, self.space, self.model)
        await self.alarms.setup()
        self.server = server
        await server.start()
        self.endpoint_url = self._bound_endpoint(server)
        self.link.on_state = self._on_state
        self.link.on_event = self._on_event
        self.link.on_kpis = self._on_kpis
        self.link.on_connection = lambda up: self._write({"Twin.Connected": up})
        await self._on_state(state)

    async def _first_contact(self) -> tuple[m.DescribeReply, m.State]:
        deadline = time.monotonic() + self.opts.connect_timeout
        while True:
            try:
                describe = await self.link.request(m.Describe(), timeout=2.0)
                state = await self.link.request(m.GetState(), timeout=2.0)
                return describe, state
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"no answer from the twin at {self.opts.control} within "
                        f"{self.opts.connect_timeout} s"
                    ) from None

    async def _security(self, server: Server) -> None:
        policies = []
        tokens: list[type] = []
        if self.loopback:
            policies.append(ua.SecurityPolicyType.NoSecurity)
            tokens.append(ua.AnonymousIdentityToken)
        if self.users:
            assert self.model is not None
            pki = Path(self.opts.pki or "opcua_pki")
            pki.mkdir(parents=True, exist_ok=True)
            cert, key = pki / "server_cert.der", pki / "server_key.pem"
            await _ensure_certificate(cert, key, f"urn:twin:{self.model.line}:opcua")
            await server.load_certificate(str(cert))
            await server.load_private_key(str(key))
            policies += [
                ua.SecurityPolicyType.Basic256Sha256_Sign,
                ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
            ]
            tokens += [ua.UserNameIdentityToken, ua.X509IdentityToken]
        server.set_security_policy(policies, permission_ruleset=RoleRuleset(self.lease.touch))
        server.set_identity_tokens(tokens)

    def _caps(self, server: Server) -> None:
        iserver = server.iserver
        iserver.max_connections = self.opts.max_sessions
        iserver.max_subscriptions = self.opts.max_subscriptions
        subs = iserver.subscription_service
        create = subs.create_monitored_items
        cap = self.opts.max_monitored_items

        async def capped(params: ua.CreateMonitoredItemsParameters) -> list[Any]:
            """asyncua has no cap on monitored items: beyond ours, BadTooManyMonitoredItems."""
            total = sum(
                len(s.monitored_item_srv._monitored_items) for s in subs.subscriptions.values()
            )
            wanted = len(params.ItemsToCreate)
            params.ItemsToCreate = params.ItemsToCreate[: max(0, cap - total)]
            results = list(await create(params)) if params.ItemsToCreate else []
            refused = ua.MonitoredItemCreateResult()
            refused.StatusCode = ua.StatusCode(ua.StatusCodes.BadTooManyMonitoredItems)
            return results + [refused] * (wanted - len(results))

        subs.create_monitored_items = capped  # type: ignore[method-assign]

    def _bound_endpoint(self, server: Server) -> str:
        url = self.opts.endpoint
        port = server.endpoint.port
        if port == 0 and server.bserver is not None and server.bserver.port:
            return url.replace(":0", f":{server.bserver.port}", 1)
        return url

    # telemetry -> address space ------------------------------------------------------------
    async def _write(self, values: dict[str, Any]) -> None:
        assert self.server is not None and self.space is not None
        now = datetime.now(UTC)  # when the gateway learnt the value
        for key, value in values.items():
            last = self._last.get(key, _UNSET)
            if last == value or _within_deadband(last, value):
                continue
            spec = self.space.variables.get(key)
            if spec is None:
                continue
            self._last[key] = value
            dv = ua.DataValue(ua.Variant(value, spec.vtype), SourceTimestamp=now)
            await self.server.write_attribute_value(spec.node_id, dv)

    async def _on_state(self, state: m.State) -> None:
        assert self.model is not None
        values: dict[str, Any] = {}
        for dev in self.model.devices:
            sigs = state.signals.get(dev.id, {})
            for s in dev.signals:
                if s.name in sigs:
                    values[f"{dev.id}.{s.name}"] = to_ua(s.type, sigs[s.name])
            if dev.is_packml_unit:
                values.update(self._packml_values(dev.id, sigs, state))
            if dev.is_arm:
                for i, q in enumerate(sigs.get("joint_positions") or []):
                    values[f"{dev.id}.Axes.Axis{i + 1}.ParameterSet.ActualPosition"] = float(q)
                for i, v in enumerate(sigs.get("joint_velocities") or []):
                    values[f"{dev.id}.Axes.Axis{i + 1}.ParameterSet.ActualSpeed"] = float(v)
        values["Twin.Mode"] = state.mode
        values["Twin.SimTime"] = float(state.time)
        values["Twin.Step"] = int(state.step)
        values["Twin.Estopped"] = bool(state.estopped)
        values["Twin.Controlled"] = bool(state.controlled)
        values["Twin.ControlHolder"] = self.lease.owner_label if self.lease.held else ""
        values["Twin.Connected"] = self.link.connected
        await self._write(values)
        if self.alarms is not None:
            await self.alarms.on_state(state)

    def _packml_values(self, dev_id: str, sigs: dict[str, Any], state: m.State) -> dict[str, Any]:
        name = str(sigs.get("state") or "Undefined")
        k = dev_id
        cycle = sigs.get("cycle_time")
        design = 60.0 / cycle if isinstance(cycle, (int, float)) and cycle > 0 else 0.0
        working = name == "Execute" and not sigs.get("starved") and not sigs.get("blocked")
        if dev_id == "line":
            processed = int(state.counts.get("parts_completed", 0))
            reason = "e-stop" + (f": {self._stop_reason}" if self._stop_reason else "")
            stop_reason = reason if state.estopped else ""
        else:
            processed = int(sigs.get("processed") or 0)
            stop_reason = str(sigs.get("fault") or "")
        return {
            f"{k}.Status.StateCurrent": PACKML_STATES.get(name, 0),
            f"{k}.BaseStateMachine.CurrentState": ua.LocalizedText(name),
            f"{k}.Status.EquipmentStarved": bool(sigs.get("starved", False)),
            f"{k}.Status.EquipmentBlocked": bool(sigs.get("blocked", False)),
            f"{k}.Status.MachSpeed": design,
            f"{k}.Status.CurMachSpeed": design if working else 0.0,
            f"{k}.Admin.MachDesignSpeed": design,
            f"{k}.Admin.ProdProcessedCount": processed,
            f"{k}.Admin.ProdDefectiveCount": self._defective.get(dev_id, 0),
            f"{k}.Admin.StopReason": stop_reason,
        }

    async def _on_kpis(self, msg: m.Kpis) -> None:
        assert self.model is not None
        kpis = msg.kpis
        values: dict[str, Any] = {}
        for name, path, _unit, _doc in LINE_KPIS:
            v: Any = kpis
            for p in path:
                v = v.get(p) if isinstance(v, dict) else None
            values[f"KPIs.{name}"] = float(v) if isinstance(v, (int, float)) else 0.0
        stations = kpis.get("stations") or {}
        for st in self.model.stations:
            sk = stations.get(st.id) or {}
            for name, key, _doc in STATION_KPIS:
                v = sk.get(key)
                values[f"KPIs.{st.id}.{name}"] = float(v) if isinstance(v, (int, float)) else 0.0
            if isinstance(sk.get("processed"), int) and isinstance(sk.get("good"), int):
                self._defective[st.id] = sk["processed"] - sk["good"]
        if isinstance(kpis.get("parts_completed"), int) and isinstance(kpis.get("parts_good"), int):
            self._defective["line"] = kpis["parts_completed"] - kpis["parts_good"]
        await self._write(values)

    async def _on_event(self, ev: m.EventMsg) -> None:
        if ev.kind == "estop":
            self._stop_reason = str(ev.data.get("reason", ""))
        if self.alarms is not None:
            await self.alarms.on_event(ev)

    # methods and writes -> commands --------------------------------------------------------
    def _method_handler(self, dev_id: str, cmd: Command) -> Any:
        async def call(parent: ua.NodeId, *inputs: ua.Variant) -> Any:
            user = CURRENT_USER.get()
            try:
                self._require_controller(user)
                args = _arguments(cmd, [v.Value for v in inputs])
                await self.lease.command(user, _label(user), dev_id, cmd.name, args)
            except Exception as e:
                return await self._refusal(dev_id, e, len(inputs))
            await self._show_holder()
            return []

        return call

    def _require_controller(self, user: Any) -> None:
        if role_of(user) != CONTROLLER:
            name = getattr(user, "name", None) or "this session"
            raise ArgumentError(
                ua.StatusCodes.BadUserAccessDenied,
                f"{name} has the observer role: it may read and subscribe, not write or call",
            )

    async def _refusal(
        self, dev_id: str | None, e: Exception, n_inputs: int
    ) -> ua.CallMethodResult:
        status, message = _status_and_message(e)
        await self._write({f"{dev_id or 'Twin'}.LastRefusal": message})
        result = ua.CallMethodResult()
        result.StatusCode = ua.StatusCode(status)
        # the twin's message travels as diagnostic info with each argument's result
        result.InputArgumentResults = [ua.StatusCode(status)] * n_inputs
        result.InputArgumentDiagnosticInfos = [ua.DiagnosticInfo(AdditionalInfo=message)] * n_inputs
        return result

    async def write_setpoint(
        self, user: Any, node_id: ua.NodeId, value: ua.DataValue
    ) -> ua.StatusCode:
        """A client wrote a set point variable: the command that sets it, under the lease."""
        assert self.space is not None
        dev_id, cmd = self.space.setpoints[node_id]
        arg = cmd.args[0]
        try:
            self._require_controller(user)
            raw = value.Value.Value if value.Value is not None else None
            converted = from_ua(arg.type, arg.name, raw, arg.length)
            await self.lease.command(user, _label(user), dev_id, cmd.name, {arg.name: converted})
        except Exception as e:
            status, message = _status_and_message(e)
            await self._write({f"{dev_id}.LastRefusal": message})
            return ua.StatusCode(status)
        await self._write({f"{dev_id}.{arg.name}": converted})
        await self._show_holder()
        return ua.StatusCode()

    async def _show_holder(self) -> None:
        """Who holds control through the gateway, at once (not only with the next state)."""
        held = self.lease.held
        await self._write(
            {"Twin.ControlHolder": self.lease.owner_label if held else "", "Twin.Controlled": held}
        )

    def _twin_methods(self) -> dict[str, tuple[Any, list[ua.Argument]]]:
        async def take_control(parent: ua.NodeId) -> Any:
            user = CURRENT_USER.get()
            try:
                self._require_controller(user)
                await self.lease.acquire(user, _label(user))
            except Exception as e:
                return await self._refusal(None, e, 0)
            await self._show_holder()
            return []

        async def release_control(parent: ua.NodeId) -> Any:
            user = CURRENT_USER.get()
            if self.lease.owner is user:
                await self.lease.release()
                await self._show_holder()
            return []

        async def estop(parent: ua.NodeId, reason: ua.Variant) -> Any:
            user = CURRENT_USER.get()
            try:
                self._require_controller(user)
                self.lease.touch(user)
                text = str(reason.Value or "") or f"OPC UA {_label(user)}"
                await self.link.request(m.Estop(reason=text))
            except Exception as e:
                return await self._refusal(None, e, 1)
            return []

        async def estop_reset(parent: ua.NodeId) -> Any:
            user = CURRENT_USER.get()
            try:
                self._require_controller(user)
                await self.lease.acquire(user, _label(user))
                await self.link.request(m.EstopReset())
            except Exception as e:
                return await self._refusal(None, e, 0)
            return []

        reason = ua.Argument()
        reason.Name = "reason"
        reason.DataType = ua.NodeId(ua.ObjectIds.String)
        reason.ValueRank = ua.ValueRank.Scalar
        return {
            "TakeControl": (take_control, []),
            "ReleaseControl": (release_control, []),
            "Estop": (estop, [reason]),
            "EstopReset": (estop_reset, []),
        }

    # shutdown -------------------------------------------------------------------------------
    async def stop(self) -> None:
        await self.lease.release()
        if self.server is not None:
            await self.server.stop()
        await self.link.close()


class _SetpointWrites(AttributeService):
    """Writes to set point variables become twin commands; the rest as asyncua does them."""

    def __init__(self, aspace: Any, gateway: OpcUaGateway) -> None:
        super().__init__(aspace)
        self.gateway = gateway

    async def write(self, params: ua.WriteParameters, user: Any = None) -> list[ua.StatusCode]:
        space = self.gateway.space
        results = []
        for wv in params.NodesToWrite:
            if (
                space is not None
                and wv.NodeId in space.setpoints
                and wv.AttributeId == ua.AttributeIds.Value
                and isinstance(user, TwinUser)
            ):
                results.append(await self.gateway.write_setpoint(user, wv.NodeId, wv.Value))
            else:
                one = ua.WriteParameters()
                one.NodesToWrite = [wv]
                if user is None:
                    results.extend(await super().write(one))
                else:
                    results.extend(await super().write(one, user=user))
        return results


_UNSET = object()
DEADBAND = 1e-6  # floats closer than this (a µm, µs, µrad) are not rewritten: noise at rest


def _within_deadband(last: Any, value: Any) -> bool:
    if isinstance(value, float) and isinstance(last, float):
        return abs(value - last) < DEADBAND
    if isinstance(value, list) and isinstance(last, list) and len(value) == len(last):
        return all(
            isinstance(a, float) and isinstance(b, float) and abs(a - b) < DEADBAND
            for a, b in zip(last, value)
        )
    return False


def _label(user: Any) -> str:
    return user.label if isinstance(user, TwinUser) else "an OPC UA session"


def _arguments(cmd: Command, values: list[Any]) -> dict[str, Any]:
    """Method inputs as the command's arguments; trailing optional ones may be left out,
    and an optional one given as "", [] or NaN is left out too."""
    required = sum(1 for a in cmd.args if not a.optional)
    if len(values) < required:
        raise ArgumentError(
            ua.StatusCodes.BadArgumentsMissing,
            f"{cmd.name} takes {len(cmd.args)} arguments "
            f"({', '.join(a.name for a in cmd.args)}), got {len(values)}",
        )
    if len(values) > len(cmd.args):
        raise ArgumentError(
            ua.StatusCodes.BadTooManyArguments,
            f"{cmd.name} takes {len(cmd.args)} arguments, got {len(values)}",
        )
    args: dict[str, Any] = {}
    for a, v in zip(cmd.args, values):
        if a.optional and (v is None or v == "" or v == [] or (isinstance(v, float) and v != v)):
            continue
        args[a.name] = from_ua(a.type, a.name, v, a.length)
    return args


def _status_and_message(e: Exception) -> tuple[int, str]:
    if isinstance(e, ArgumentError):
        return e.status, e.message
    if isinstance(e, LeaseRefused):
        return ua.StatusCodes.BadUserAccessDenied, e.message
    if isinstance(e, LinkError):
        return status_of(e.code), e.message
    if isinstance(e, TimeoutError):
        return ua.StatusCodes.BadTimeout, str(e)
    return ua.StatusCodes.BadInternalError, f"{type(e).__name__}: {e}"


async def _ensure_certificate(cert: Path, key: Path, app_uri: str) -> None:
    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from cryptography.x509.oid import ExtendedKeyUsageOID

    await setup_self_signed_certificate(
        key,
        cert,
        app_uri,
        socket.gethostname(),
        [ExtendedKeyUsageOID.SERVER_AUTH],
        {"commonName": "twin OPC UA gateway", "organizationName": "twin"},
    )


async def run_gateway(opts: OpcUaOptions, ready: Any = None) -> None:
    """Run until cancelled; `ready(gateway)` is called once the server listens."""
    gateway = OpcUaGateway(opts)
    try:
        await gateway.start()
        if ready is not None:
            ready(gateway)
        while True:
            await asyncio.sleep(3600)
    finally:
        await gateway.stop()
