"""The OPC UA and Modbus gateways: latency, sustained change rate, and what they cost the twin.

- `opcua_latency` / `modbus_latency`: the default line served in realtime (rtf 1, state at
  100 Hz) with both gateways; a controller sets the infeed's speed over ZeroMQ, and the time
  from the twin's reply to the new value at an OPC UA client (subscribed, 10 ms sampling and
  publishing interval) and at a Modbus client (polling every 10 ms) is measured. The baseline
  is the same change seen on the twin's own `state` telemetry (ZeroMQ SUB).
- `opcua_change_rate`: how many value changes a second the OPC UA gateway turns into
  notifications for a client subscribed to every variable, fed states as fast as it takes
  them; the baseline is how many changes a second the default line makes at 100 Hz state.
- `gateway_step_rate`: the twin's fast-mode step rate (state every step) with the OPC UA
  gateway and a client subscribed to every variable running, against the same with both
  stopped (SIGSTOP), in interleaved blocks. Target 0.95.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import sys
import time
from typing import Any

from twin.bench.hosted import open_server, served_rate, step_until
from twin.bench.processes import Child, twin_serve
from twin.bench.result import BenchResult, interleave, median
from twin.config import load
from twin.gateways.process import spawn_gateway, stop_gateway

TARGET_STEP_RATIO = 0.95
SAMPLING_MS = 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# latency -------------------------------------------------------------------------------------
def gateway_latency(config: str, *, quick: bool) -> list[BenchResult]:
    rounds = 8 if quick else 100
    opcua = f"opc.tcp://127.0.0.1:{_free_port()}/twin"
    modbus = f"127.0.0.1:{_free_port()}"
    with twin_serve(
        config,
        "--mode",
        "realtime",
        "--state-rate",
        "100",
        "--no-builtin-controller",
        "--opcua",
        opcua,
        "--modbus",
        modbus,
    ) as server:
        control = server.wait_for("control").split()[1]
        telemetry = server.wait_for("telemetry").split()[1]
        first = server.wait_for(("opcua", "modbus"))  # the two start in parallel
        server.wait_for("modbus" if first.startswith("opcua") else "opcua")
        zmq_ms, opc_ms, mb_ms, rtf = asyncio.run(
            _latency(control, telemetry, opcua, modbus, rounds)
        )
    results = [
        _latency_result("opcua_latency", opc_ms, zmq_ms, rounds),
        _latency_result("modbus_latency", mb_ms, zmq_ms, rounds),
    ]
    for r in results:  # the twin kept its pace with both gateways and their clients busy
        r.details["achieved_real_time_factor"] = rtf
    return results


def _latency_result(name: str, ours: list[float], zmq: list[float], rounds: int) -> BenchResult:
    return BenchResult(
        name=name,
        ours=statistics.median(ours),
        baseline=statistics.median(zmq),
        unit="ms",
        better="lower",
        details={
            "p99_ms": _percentile(ours, 0.99),
            "baseline_p99_ms": _percentile(zmq, 0.99),
            "sampling_ms": SAMPLING_MS,
            "state_rate_hz": 100,
            "changes": rounds,
        },
    )


async def _latency(
    control: str, telemetry: str, opcua: str, modbus: str, rounds: int
) -> tuple[list[float], list[float], list[float], float]:
    from asyncua import Client, ua
    from pymodbus.client import AsyncModbusTcpClient

    from twin.gateways.link import TwinLink
    from twin.protocol import messages as m

    seen: dict[str, tuple[float, float]] = {}  # path -> (value, monotonic time it arrived)
    link = TwinLink(control, telemetry)
    link.on_state = lambda s: seen.__setitem__(
        "zmq", (s.signals["infeed"]["speed"], time.monotonic())
    )
    link.start()

    class Handler:
        def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
            seen["opcua"] = (val, time.monotonic())

    async with Client(opcua, timeout=10) as client:
        ns = await client.get_namespace_index("urn:twin:" + (await link.request(m.Describe())).line)
        sub = await client.create_subscription(SAMPLING_MS, Handler())
        await sub.subscribe_data_change(
            client.get_node(ua.NodeId("infeed.speed", ns)), sampling_interval=SAMPLING_MS
        )
        host, port = modbus.rsplit(":", 1)
        mb = AsyncModbusTcpClient(host, port=int(port), timeout=5)
        await mb.connect()
        address = 100  # infeed.speed: the first device's first holding register
        stop = asyncio.Event()

        async def poll() -> None:
            while not stop.is_set():
                r = await mb.read_holding_registers(address, count=2)
                if not r.isError():
                    raw = (r.registers[0] << 16) | r.registers[1]
                    seen["modbus"] = (raw / 1000, time.monotonic())
                await asyncio.sleep(SAMPLING_MS / 1000)

        poller = asyncio.create_task(poll())
        first = await link.request(m.GetState())
        started = time.monotonic()
        await link.request(m.TakeControl(watchdog=None))
        results: dict[str, list[float]] = {"zmq": [], "opcua": [], "modbus": []}
        for i in range(rounds):
            value = 0.2 if i % 2 else 0.3
            await link.request(
                m.Command(device="infeed", command="set_speed", args={"speed": value})
            )
            t0 = time.monotonic()
            deadline = t0 + 2.0
            pending = set(results)
            while pending and time.monotonic() < deadline:
                for path in list(pending):
                    got = seen.get(path)
                    if got is not None and abs(got[0] - value) < 1e-6 and got[1] >= t0 - 0.001:
                        results[path].append(max(0.0, got[1] - t0) * 1000)
                        pending.discard(path)
                await asyncio.sleep(0.0005)
            await asyncio.sleep(0.05)
        stop.set()
        await poller
        mb.close()
        last = await link.request(m.GetState())
        rtf = (last.time - first.time) / (time.monotonic() - started)
        await link.request(m.ReleaseControl())
    await link.close()
    return results["zmq"], results["opcua"], results["modbus"], rtf


# change rate ---------------------------------------------------------------------------------
def opcua_change_rate(config: str, *, quick: bool) -> BenchResult:
    seconds = 2.0 if quick else 10.0
    with twin_serve(config, "--mode", "lockstep", "--no-builtin-controller") as server:
        control = server.wait_for("control").split()[1]
        telemetry = server.wait_for("telemetry").split()[1]
        return asyncio.run(_change_rate(control, telemetry, seconds))


async def _change_rate(control: str, telemetry: str, seconds: float) -> BenchResult:
    import msgspec
    from asyncua import Client

    from twin.gateways.opcua.gateway import OpcUaGateway
    from twin.gateways.opcua.options import OpcUaOptions
    from twin.protocol import messages as m

    endpoint = f"opc.tcp://127.0.0.1:{_free_port()}/twin"
    gateway = OpcUaGateway(OpcUaOptions(endpoint=endpoint, control=control, telemetry=telemetry))
    await gateway.start()
    notified = 0

    class Handler:
        def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
            nonlocal notified
            notified += 1

    try:
        async with Client(endpoint, timeout=10) as client:
            from twin.bench.gateway_peers import _variables

            nodes: list = []
            await _variables(client, gateway.space.root, nodes)  # type: ignore[union-attr]
            nodes = [client.get_node(n.nodeid) for n in nodes]
            sub = await client.create_subscription(SAMPLING_MS, Handler())
            await sub.subscribe_data_change(nodes, sampling_interval=SAMPLING_MS)
            base = await gateway.link.request(m.GetState())
            # the default line's own rate of change at 100 Hz: from 100 real steps
            real = await _real_change_rate(gateway, base)
            # then states as fast as the gateway takes them, every number changed
            writes = 0
            original = gateway._write

            async def counting(values: dict[str, Any]) -> None:
                nonlocal writes
                before = len(gateway._last)
                changed = sum(1 for k, v in values.items() if gateway._last.get(k) != v)
                writes += changed
                await original(values)
                del before

            gateway._write = counting  # type: ignore[method-assign]
            t0 = time.perf_counter()
            k = 0
            while time.perf_counter() - t0 < seconds:
                k += 1
                await gateway._on_state(_perturbed(base, k, msgspec))
                await asyncio.sleep(0)
            elapsed = time.perf_counter() - t0
            await asyncio.sleep(0.2)
            gateway._write = original  # type: ignore[method-assign]
    finally:
        await gateway.stop()
    return BenchResult(
        name="opcua_change_rate",
        ours=writes / elapsed,
        baseline=real,
        unit="changes/s",
        details={
            "states_per_s": k / elapsed,
            "notifications_per_s": notified / elapsed,
            "monitored_items": len(nodes),
        },
    )


def _perturbed(state: Any, k: int, msgspec: Any) -> Any:
    signals = {}
    for dev, sigs in state.signals.items():
        out: dict[str, Any] = {}
        for name, v in sigs.items():
            if isinstance(v, bool) or v is None or isinstance(v, str):
                out[name] = v
            elif isinstance(v, (int, float)):
                out[name] = v + k if isinstance(v, int) else v + k * 1e-3
            elif isinstance(v, list):
                out[name] = [x + k * 1e-3 for x in v]
            else:
                out[name] = v
        signals[dev] = out
    return msgspec.structs.replace(state, signals=signals, step=state.step + k)


async def _real_change_rate(gateway: Any, base: Any) -> float:
    """Changed signal values per second of the default line at 100 Hz, running its own
    controller's pace: from the difference between consecutive states over 1 s of steps."""
    from twin.protocol import messages as m

    await gateway.link.request(m.TakeControl(watchdog=None))
    changes, previous = 0, base.signals
    for _ in range(100):
        state = await gateway.link.request(m.Step(n=1))
        for dev, sigs in state.signals.items():
            for name, v in sigs.items():
                if previous.get(dev, {}).get(name) != v:
                    changes += len(v) if isinstance(v, list) else 1
        previous = state.signals
    await gateway.link.request(m.ReleaseControl())
    return changes / (100 * 0.01)


# step rate -------------------------------------------------------------------------------------
def gateway_step_rate(config: str, *, quick: bool, state_rate: float | None = None) -> BenchResult:
    block, reps = (200, 4) if quick else (200, 40)
    cfg = load(config)
    rate = state_rate if state_rate is not None else 1.0 / cfg.physics.timestep  # every step
    server = open_server(cfg, state_rate=rate)
    endpoint = f"opc.tcp://127.0.0.1:{_free_port()}/twin"
    gateway = spawn_gateway(
        "opcua",
        server.endpoints.control_addr,
        server.endpoints.telemetry_addr,
        "--endpoint",
        endpoint,
        quiet=True,
    )
    try:
        # the gateway needs the twin to answer describe while it starts
        deadline = time.monotonic() + 60
        with _wait_listening(endpoint, server, deadline):
            pass
        with Child(
            [sys.executable, "-m", "twin.bench.gateway_peers", "opcua-subscriber", endpoint]
        ) as sub:
            step_until(server, lambda: sub.has_line("ready"), timeout=60)
            procs = [gateway.pid, sub.proc.pid]

            cpu: dict[bool, list[float]] = {True: [], False: []}

            def attached(on: bool) -> float:
                for pid in procs:
                    os.kill(pid, signal.SIGCONT if on else signal.SIGSTOP)
                c0 = time.process_time()
                rate = served_rate(server, block)
                cpu[on].append(block / max(1e-9, time.process_time() - c0))
                return rate

            ours, baseline = interleave([lambda: attached(True), lambda: attached(False)], reps)
            for pid in procs:
                os.kill(pid, signal.SIGCONT)
            sub.stop_input()
            received = int(sub.wait_for("received").split()[1])
    finally:
        for pid in (gateway.pid,):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        stop_gateway(gateway)
        server.close()
    return BenchResult(
        name="gateway_step_rate",
        ours=median(ours),
        baseline=median(baseline),
        unit="steps/s",
        target=TARGET_STEP_RATIO,
        details={
            # steps per CPU second of the twin's own process: what the gateway costs the
            # twin itself, apart from the CPU the gateway takes on a shared machine
            "twin_cpu_ratio": median(cpu[True]) / median(cpu[False]),
            "cpus": os.cpu_count(),
            "state_rate_hz": rate,
            "steps_per_block": block,
            "repetitions": reps,
            "notifications_received": received,
        },
    )


class _wait_listening:
    """Serve the twin's requests until the gateway's OPC UA port accepts connections."""

    def __init__(self, endpoint: str, server: Any, deadline: float) -> None:
        self.host, port = endpoint.split("//")[1].split("/")[0].rsplit(":", 1)
        self.port = int(port)
        self.server = server
        self.deadline = deadline

    def __enter__(self) -> None:
        while time.monotonic() < self.deadline:
            self.server.serve_requests(10)
            try:
                with socket.create_connection((self.host, self.port), timeout=0.05):
                    return
            except OSError:
                continue
        raise TimeoutError("the OPC UA gateway did not start")

    def __exit__(self, *exc: object) -> None:
        pass
