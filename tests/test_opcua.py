"""The OPC UA gateway: a PLC program runs the line through it alone, its address space is
generated from describe, faults are alarms, and roles and loopback rules hold.

The OPC UA clients here use asyncua only; `twin` is imported by the harness alone (to start
and step twins and to know what describe says)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asyncua import Client, ua
from processes import ROOT, ServeProcess

from twin.client import Client as TwinClient
from twin.config import load

NS = "urn:twin:{line}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_line(server: ServeProcess, prefix: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = server._lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except Exception:
            break
        if line is None:
            break
        if line.startswith(prefix):
            return line
    raise TimeoutError(f"no '{prefix}' line from twin serve: {server.stderr_text()}")


def serve_with_opcua(*args: str) -> tuple[ServeProcess, str]:
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/twin"
    server = ServeProcess(*args, "--opcua", endpoint)
    try:
        wait_for_line(server, "opcua")
    except Exception:
        server.stop()
        server.__exit__()
        raise
    return server, endpoint


def test_plc_program_runs_the_default_line_through_opcua_only() -> None:
    example = ROOT / "examples" / "opcua_plc.py"
    source = example.read_text()
    assert "from twin" not in source and "import twin" not in source
    server, endpoint = serve_with_opcua(
        "--mode", "realtime", "--rtf", "4", "--no-builtin-controller"
    )
    with server:
        try:
            run = subprocess.run(
                [
                    sys.executable,
                    str(example),
                    "--endpoint",
                    endpoint,
                    "--parts",
                    "1",
                    "--timeout",
                    "90",
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            assert server.stop() == 0
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert run.returncode == 0, run.stderr
    assert result["parts_completed"] >= 1


async def _browse(client: Client, node) -> dict[str, object]:  # noqa: ANN001
    return {(await c.read_browse_name()).Name: c for c in await node.get_children()}


def test_address_space_of_the_two_robot_line_has_every_device() -> None:
    cfg_path = ROOT / "configs" / "two_robot_line.toml"
    cfg = load(cfg_path)
    server, endpoint = serve_with_opcua(
        str(cfg_path), "--mode", "lockstep", "--no-builtin-controller"
    )
    with server, TwinClient(server.control) as twin:
        devices = twin.describe().devices
        try:
            asyncio.run(_check_space(endpoint, cfg.name, devices))
        finally:
            assert server.stop() == 0
    assert {d.id for d in cfg.devices} <= {d["id"] for d in devices}


async def _check_space(endpoint: str, line: str, devices: list[dict]) -> None:
    async with Client(endpoint, timeout=10) as c:
        ns = await c.get_namespace_index(NS.format(line=line))
        root = await c.nodes.objects.get_child(f"{ns}:{line}")
        children = await _browse(c, root)
        for dev in devices:
            assert dev["id"] in children, dev["id"]
            inside = await _browse(c, children[dev["id"]])
            for s in dev["signals"]:
                assert s["name"] in inside, (dev["id"], s["name"])
                if s["unit"]:
                    props = await _browse(c, inside[s["name"]])
                    eu = await props["EngineeringUnits"].read_value()
                    assert eu.DisplayName.Text == s["unit"]
            for cmd in dev["commands"]:
                method = "".join(p.capitalize() for p in cmd["name"].split("_"))
                assert method in inside, (dev["id"], cmd["name"])
                args = await _browse(c, inside[method])
                if cmd["args"]:
                    declared = await args["InputArguments"].read_value()
                    assert [a.Name for a in declared] == [a["name"] for a in cmd["args"]]
            kinds = {c["name"] for c in dev["commands"]}
            if {"reset", "start", "stop", "hold", "abort", "clear"} <= kinds:
                for part in ("Status", "Admin", "BaseStateMachine", "TagID"):
                    assert part in inside, (dev["id"], part)
            if any(s["name"] == "joint_positions" for s in dev["signals"]):
                axes = await _browse(c, inside["Axes"])
                assert len(axes) == 7  # a Franka Panda
        # a set point's range comes from the command that writes it
        infeed = next(d for d in devices if d["id"] == "infeed")
        set_speed = next(c for c in infeed["commands"] if c["name"] == "set_speed")
        speed = c.get_node(ua.NodeId("infeed.speed", ns))
        rng = await (await _browse(c, speed))["EURange"].read_value()
        assert rng.High == pytest.approx(set_speed["args"][0]["max"])


def test_station_fault_raises_and_clears_an_alarm(tmp_path: Path) -> None:
    text = (ROOT / "configs" / "default_line.toml").read_text()
    text = text.replace(
        "cycle_time = 8.0              # s per part",
        "cycle_time = 8.0\nbreakdowns = [{ at = 1.0, duration = 2.0 }]",
    )
    assert "breakdowns" in text
    config = tmp_path / "broken.toml"
    config.write_text(text)
    server, endpoint = serve_with_opcua(
        str(config), "--mode", "lockstep", "--no-builtin-controller"
    )
    with server, TwinClient(server.control, timeout=10) as twin:
        twin.take_control(watchdog=None)
        try:
            events = asyncio.run(_watch_alarms(endpoint, twin))
        finally:
            assert server.stop() == 0
    active = [e for e in events if e.get("condition") == "breakdown" and e["source"] == "mill"]
    assert [(e["active"], e["acked"]) for e in active] == [
        (True, False),  # raised
        (True, True),  # acknowledged while the fault lasts
        (False, True),  # cleared: no longer retained
    ]
    # state changes are events too
    assert any(e.get("message", "").startswith("mill: Stopped -> Resetting") for e in events)


def with_gateway(server: ServeProcess, opts, body):  # noqa: ANN001, ANN201
    """`body(gateway)` run with an in-process OPC UA gateway started on `opts` for it; the
    served twin is stopped after, and must stop cleanly."""
    from twin.gateways.opcua.gateway import OpcUaGateway

    async def scenario():  # noqa: ANN202
        gateway = OpcUaGateway(opts)
        await gateway.start()
        try:
            return await body(gateway)
        finally:
            await gateway.stop()

    try:
        return asyncio.run(scenario())
    finally:
        assert server.stop() == 0


def test_a_state_older_than_the_events_does_not_bring_back_a_cleared_alarm(serve) -> None:
    """The gateway handles events as they come, and states at most a few times a second
    (the newest waiting): a state taken before a breakdown was repaired may be handled after
    the repair's event. It must not raise the alarm again."""
    import msgspec

    from twin.gateways.opcua.options import OpcUaOptions
    from twin.protocol import messages as m

    def fault(step: int, active: bool) -> m.EventMsg:
        data = {"fault": "breakdown", "active": active}
        return m.EventMsg(step=step, time=step / 100, kind="fault", device="mill", data=data)

    with serve("--mode", "lockstep", "--no-builtin-controller") as server:
        opts = OpcUaOptions(
            endpoint=f"opc.tcp://127.0.0.1:{free_port()}/twin",
            control=server.control,
            telemetry=server.telemetry,
        )

        async def feed(gateway) -> list[bool]:  # noqa: ANN001
            alarms = gateway.alarms
            first = await gateway.link.request(m.GetState())

            def state(step: int, broken: bool) -> m.State:
                mill = {**first.signals["mill"], "fault": "breakdown" if broken else None}
                signals = {**first.signals, "mill": mill}
                return msgspec.structs.replace(first, step=step, signals=signals)

            seen = []
            for message in (
                alarms.on_event(fault(100, True)),
                alarms.on_event(fault(300, False)),
                alarms.on_state(state(290, True)),  # from before the repair: stale
                alarms.on_state(state(310, False)),
                alarms.on_state(state(320, True)),  # newer than every event: believed
            ):
                await message
                seen.append(alarms.conditions[("mill", "breakdown")].active)
            return seen

        seen = with_gateway(server, opts, feed)
    assert seen == [True, False, False, False, True]


async def _watch_alarms(endpoint: str, twin: TwinClient) -> list[dict]:
    events: list[dict] = []

    class Handler:
        def event_notification(self, event) -> None:  # noqa: ANN001
            fields = event.get_event_props_as_fields_dict()
            if "ActiveState/Id" not in fields:
                events.append(
                    {"source": fields["SourceName"].Value, "message": fields["Message"].Value.Text}
                )
                return
            events.append(
                {
                    "source": fields["SourceName"].Value,
                    "condition": fields["ConditionName"].Value,
                    "active": fields["ActiveState/Id"].Value,
                    "acked": fields["AckedState/Id"].Value,
                }
            )

    async with Client(endpoint, timeout=10) as c:
        ns = await c.get_namespace_index(NS.format(line="default_line"))
        root = await c.nodes.objects.get_child(f"{ns}:default_line")
        sub = await c.create_subscription(10, Handler())
        mill = c.get_node(ua.NodeId("mill", ns))
        await sub.subscribe_events(mill, ua.ObjectIds.AlarmConditionType)
        await sub.subscribe_events(root, ua.ObjectIds.BaseEventType)  # the line's object
        fault = c.get_node(ua.NodeId("mill.Admin.StopReason", ns))
        for target, want in ((150, "breakdown"), (400, "")):  # fault at 1 s, repaired at 3 s
            twin.step(target - twin.get_state().step)
            deadline = time.monotonic() + 10
            while await fault.read_value() != want and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert await fault.read_value() == want
            await asyncio.sleep(0.3)  # the notification follows the value
            if want:  # an operator acknowledges the active alarm
                condition = c.get_node(ua.NodeId("mill.Alarms.breakdown", ns))
                await condition.call_method(
                    ua.NodeId(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge),
                    ua.Variant(b"", ua.VariantType.ByteString),
                    ua.Variant(ua.LocalizedText("seen"), ua.VariantType.LocalizedText),
                )
                await asyncio.sleep(0.3)
        twin.command("mill", "reset")
        twin.step(50)

        def complete() -> bool:
            alarms = [e for e in events if e.get("condition") == "breakdown"]
            moved = any(e.get("message", "").startswith("mill: Stopped ->") for e in events)
            return len(alarms) >= 3 and moved

        deadline = time.monotonic() + 10  # notifications follow at the publishing interval
        while not complete() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await sub.delete()
    return events


def test_opcua_security_roles_and_no_anonymous_off_loopback(tmp_path: Path, serve) -> None:
    from twin.gateways.opcua.options import OpcUaOptions
    from twin.gateways.opcua.security import add_user

    users = tmp_path / "users.toml"
    add_user(users, "plc", "controller", "plc-secret", None)
    add_user(users, "hmi", "observer", "hmi-secret", None)
    port = free_port()
    with serve("--mode", "lockstep", "--no-builtin-controller") as server:
        opts = OpcUaOptions(
            endpoint=f"opc.tcp://0.0.0.0:{port}/twin",
            control=server.control,
            telemetry=server.telemetry,
            users=str(users),
            pki=str(tmp_path / "pki"),
        )

        async def clients(gateway) -> dict[str, str]:  # noqa: ANN001
            return await _secure_clients(f"opc.tcp://127.0.0.1:{port}/twin", tmp_path)

        outcome = with_gateway(server, opts, clients)
    assert outcome["anonymous_plain"] != "ok"
    assert outcome["anonymous_secure"] != "ok"
    assert outcome["wrong_password"] != "ok"
    assert outcome["observer_read"] == "ok"
    assert outcome["observer_write"] == "BadUserAccessDenied"
    assert outcome["observer_call"] == "BadUserAccessDenied"
    assert outcome["controller_call"] == "ok"
    assert outcome["controller_write_sign_only"] == "ok"


async def _secure_clients(url: str, tmp: Path) -> dict[str, str]:
    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from cryptography.x509.oid import ExtendedKeyUsageOID

    cert, key = tmp / "client_cert.der", tmp / "client_key.pem"
    app_uri = "urn:test:opcua-client"
    await setup_self_signed_certificate(
        key,
        cert,
        app_uri,
        socket.gethostname(),
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        {"commonName": "test client"},
    )
    out: dict[str, str] = {}

    async def attempt(
        name: str, user: str | None, password: str | None, mode: str | None, action
    ) -> None:  # noqa: ANN001
        client = Client(url, timeout=10)
        client.application_uri = app_uri
        if user is not None:
            client.set_user(user)
            client.set_password(password or "")
        if mode is not None:
            await client.set_security_string(f"Basic256Sha256,{mode},{cert},{key}")
        try:
            async with client:
                ns = await client.get_namespace_index(NS.format(line="default_line"))
                await action(client, ns)
            out[name] = "ok"
        except ua.UaStatusCodeError as e:
            out[name] = type(e).__name__
        except Exception as e:  # refused during the handshake
            out[name] = f"{type(e).__name__}: {e}"

    async def read(c: Client, ns: int) -> None:
        await c.get_node(ua.NodeId("mill.state", ns)).read_value()

    async def write(c: Client, ns: int) -> None:
        node = c.get_node(ua.NodeId("infeed.speed", ns))
        await node.write_value(ua.DataValue(ua.Variant(0.3, ua.VariantType.Double)))

    async def call(c: Client, ns: int) -> None:
        await c.get_node(ua.NodeId("mill", ns)).call_method(ua.NodeId("mill.Reset", ns))

    await attempt("anonymous_plain", None, None, None, read)
    await attempt("anonymous_secure", None, None, "SignAndEncrypt", read)
    await attempt("wrong_password", "plc", "guess", "SignAndEncrypt", read)
    await attempt("observer_read", "hmi", "hmi-secret", "SignAndEncrypt", read)
    await attempt("observer_write", "hmi", "hmi-secret", "SignAndEncrypt", write)
    await attempt("observer_call", "hmi", "hmi-secret", "SignAndEncrypt", call)
    await attempt("controller_call", "plc", "plc-secret", "SignAndEncrypt", call)
    await attempt("controller_write_sign_only", "plc", "plc-secret", "Sign", write)
    return out


def test_opcua_refuses_a_non_loopback_endpoint_without_users() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "twin.cli",
            "opcua",
            "--endpoint",
            "opc.tcp://0.0.0.0:4840/twin",
            "--control",
            "tcp://127.0.0.1:1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2
    assert "loopback" in run.stderr
    serve = subprocess.run(
        [sys.executable, "-m", "twin.cli", "serve", "--opcua", "opc.tcp://0.0.0.0:4840/twin"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert serve.returncode == 2
    assert "only allowed on loopback" in serve.stderr


def test_bad_opcua_input_is_refused_and_changes_nothing(serve) -> None:
    from twin.gateways.opcua.gateway import OpcUaGateway
    from twin.gateways.opcua.options import OpcUaOptions

    port = free_port()
    with serve("--mode", "lockstep", "--no-builtin-controller") as server:
        opts = OpcUaOptions(
            endpoint=f"opc.tcp://127.0.0.1:{port}/twin",
            control=server.control,
            telemetry=server.telemetry,
            max_monitored_items=20,
            idle_timeout=2.0,
            watchdog=1.0,
        )

        async def scenario(twin: TwinClient) -> dict[str, object]:
            gateway = OpcUaGateway(opts)
            await gateway.start()
            try:
                out = await _bad_input(f"opc.tcp://127.0.0.1:{port}/twin")
                out["controlled_while_clients_talk"] = twin.get_state().controlled
                silent_since = time.monotonic()
                # the clients are gone: the gateway stops vouching, the twin's watchdog trips
                deadline = time.monotonic() + opts.idle_timeout + opts.watchdog + 8
                while twin.get_state().controlled and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                out["controlled_after_silence"] = twin.get_state().controlled
                out["silent_for_at_least"] = time.monotonic() - silent_since
                return out
            finally:
                await gateway.stop()

        try:
            with TwinClient(server.control) as twin:
                outcome = asyncio.run(scenario(twin))
                state = twin.get_state()
        finally:
            assert server.stop() == 0
    assert outcome["string_to_speed"] == "BadTypeMismatch"
    assert outcome["speed_too_high"] == "BadOutOfRange"
    assert "above the maximum" in str(outcome["speed_refusal"])
    assert outcome["pick_two_numbers"] == "BadTypeMismatch"
    assert outcome["pick_no_args"] == "BadArgumentsMissing"
    assert outcome["unhold_when_stopped"] == "BadInvalidState"
    assert "not allowed in state" in str(outcome["mill_refusal"])
    assert outcome["second_session_call"] == "BadUserAccessDenied"
    assert "holds control" in str(outcome["second_refusal"])
    assert outcome["monitored_items_granted"] == 20
    assert outcome["monitored_items_refused"] == "BadTooManyMonitoredItems"
    assert outcome["controlled_while_clients_talk"] is True
    assert outcome["controlled_after_silence"] is False
    assert outcome["silent_for_at_least"] >= 2.0  # not before the gateway's idle timeout
    assert state.signals["infeed"]["speed"] == 0.25  # the config's: no write went through
    assert state.signals["mill"]["state"] == "Stopped"


async def _bad_input(url: str) -> dict[str, object]:
    out: dict[str, object] = {}

    async def attempt(name: str, coro) -> None:  # noqa: ANN001
        try:
            await coro
            out[name] = "ok"
        except ua.UaStatusCodeError as e:
            out[name] = type(e).__name__

    async with Client(url, timeout=10) as a, Client(url, timeout=10) as b:
        ns = await a.get_namespace_index(NS.format(line="default_line"))
        speed = a.get_node(ua.NodeId("infeed.speed", ns))
        robot, mill = a.get_node(ua.NodeId("robot", ns)), a.get_node(ua.NodeId("mill", ns))
        await attempt(
            "string_to_speed",
            speed.write_value(ua.DataValue(ua.Variant("fast", ua.VariantType.String))),
        )
        await attempt(
            "speed_too_high",
            speed.write_value(ua.DataValue(ua.Variant(9.0, ua.VariantType.Double))),
        )
        out["speed_refusal"] = await a.get_node(ua.NodeId("infeed.LastRefusal", ns)).read_value()
        pick = ua.NodeId("robot.Pick", ns)
        await attempt(
            "pick_two_numbers",
            robot.call_method(pick, ua.Variant([0.1, 0.2], ua.VariantType.Double)),
        )
        await attempt("pick_no_args", robot.call_method(pick))
        await attempt("unhold_when_stopped", mill.call_method(ua.NodeId("mill.Unhold", ns)))
        out["mill_refusal"] = await a.get_node(ua.NodeId("mill.LastRefusal", ns)).read_value()
        # session a holds the lease now (it acted); session b is another client
        ns_b = await b.get_namespace_index(NS.format(line="default_line"))
        await attempt(
            "second_session_call",
            b.get_node(ua.NodeId("infeed", ns_b)).call_method(ua.NodeId("infeed.Run", ns_b)),
        )
        out["second_refusal"] = await b.get_node(ua.NodeId("infeed.LastRefusal", ns_b)).read_value()

        class Handler:
            def datachange_notification(self, *args: object) -> None:
                pass

        sub = await b.create_subscription(100, Handler())
        nodes = [
            b.get_node(ua.NodeId(f"robot.Axes.Axis{i}.ParameterSet.ActualPosition", ns_b))
            for i in range(1, 8)
        ]
        nodes += [
            b.get_node(ua.NodeId(k, ns_b))
            for k in (
                "infeed.running",
                "infeed.speed",
                "infeed.reverse",
                "infeed.surface_speed",
                "mill.state",
                "mill.part_present",
                "mill.progress",
                "mill.processed",
                "sink.count",
                "Twin.SimTime",
                "Twin.Step",
                "Twin.Mode",
                "Twin.Estopped",
                "Twin.Controlled",
                "infeed_pick_eye.blocked",
                "outfeed_entry_eye.blocked",
            )
        ]
        handles = await sub.subscribe_data_change(nodes)
        granted = [h for h in handles if isinstance(h, int)]
        refused = [h for h in handles if not isinstance(h, int)]
        out["monitored_items_granted"] = len(granted)
        out["monitored_items_refused"] = refused[0].name if refused else "none"
    return out
