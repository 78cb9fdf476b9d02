"""lockstep: an external controller (this process) driving `twin serve --mode lockstep` in
another process, against a bare stepSimulation loop behind a raw REQ/REP ping-pong carrying
blobs of the same sizes. Three ways to send one belt command and one step per control cycle,
measured in one run, block by block in turn, against the same server and baseline peer:

- `lockstep`: a `command` request, then a `step n=1` request (two round trips);
- `lockstep_batched`: one `step n=1` request carrying the command (one round trip);
- `lockstep_image`: one process-image cycle (see twin.bench.lockstep_image);
- `lockstep_image_no_spin`: the same against a second server run with `--spin-us 0`, which
  sleeps on its socket as soon as it has replied (no target: it shows what the default
  server's short look for the next request gains, see twin.server.spin).

Each line's details give the CPU per step of the server (all its threads) and of the baseline
peer over the timed blocks: looking for the next request costs CPU while the controller keeps
the pace.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from twin.bench.hosted import bare_rate, line_rate
from twin.bench.lockstep_image import INPUTS, OUTPUTS, ImageLoop, image_result, image_sizes
from twin.bench.peers import WARMUP_S
from twin.bench.pingpong import RECV_TIMEOUT_MS, SPEEDS, TARGET, PingPong
from twin.bench.processes import CpuPerStep, peer, twin_serve
from twin.bench.result import BenchResult, interleave, median
from twin.client import Client
from twin.config import load
from twin.line import Line
from twin.protocol import messages as m
from twin.protocol.codec import encode


class ControllerLoop:
    """The external controller: per step, a belt command and a step request, in two round
    trips or (batched) in one."""

    def __init__(self, client: Client, batched: bool = False) -> None:
        self.client = client
        self.batched = batched
        self.k = 0

    def round_trip(self) -> tuple[m.Ok | None, m.State]:
        self.k += 1
        speed = SPEEDS[self.k % 2]
        if self.batched:
            return None, self.client.step(1, commands=[("infeed", "set_speed", {"speed": speed})])
        ok = self.client.command("infeed", "set_speed", speed=speed)
        return ok, self.client.step(1)

    def rate(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            self.round_trip()
        return steps / (time.perf_counter() - t0)


def message_sizes(loop: ControllerLoop) -> dict[str, int]:
    """Bytes on the wire of one round trip (msgspec re-encodes a decoded struct identically)."""
    ok, state = loop.round_trip()
    step_reply = len(encode(state))
    command = m.StepCommand(device="infeed", command="set_speed", args={"speed": 0.25})
    if loop.batched:
        return {
            "step_request": len(encode(m.Step(n=1, commands=[command], id=loop.k))),
            "step_reply": step_reply,
        }
    return {
        "command_request": len(
            encode(m.Command(device="infeed", command="set_speed", args={"speed": 0.25}, id=loop.k))
        ),
        "command_reply": len(encode(ok)),
        "step_request": len(encode(m.Step(n=1, id=loop.k))),
        "step_reply": step_reply,
    }


def _exchanges(sizes: dict[str, int]) -> list[tuple[bytes, int, int]]:
    out = []
    if "command_request" in sizes:
        out.append((b"c", sizes["command_request"], sizes["command_reply"]))
    out.append((b"s", sizes["step_request"], sizes["step_reply"]))
    return out


def line_overhead_us(config: str, *, block: int, reps: int) -> float:
    """µs a step that the line served in lockstep (no controller) costs over bare
    stepSimulation of its bodies, in this process with no sockets: the part of the gap
    that no protocol work can win back."""
    line = Line(
        load(config),
    )
    try:
        line.step(round(WARMUP_S / line.dt))  # as the stepping echo: belts moving, parts on
        ours, bare = interleave(
            [lambda: line_rate(line, block), lambda: bare_rate(line, block)], reps
        )
    finally:
        line.close()
    return 1e6 / median(ours) - 1e6 / median(bare)


def cpu_details(served: CpuPerStep, echoed: CpuPerStep) -> dict[str, float | None]:
    """CPU µs per step of the server (all its threads: the step, the sockets, the wait for
    the next request) and of the baseline peer, over the timed blocks."""
    return {
        "server_cpu_us_per_step": served.us_per_step,
        "baseline_peer_cpu_us_per_step": echoed.us_per_step,
    }


def lockstep(config: str, *, quick: bool) -> list[BenchResult]:
    block, reps = (100, 4) if quick else (150, 30)  # short blocks: the VM's drift cancels
    serve = (config, "--mode", "lockstep", "--no-builtin-controller")
    with (
        twin_serve(*serve) as server,
        twin_serve(*serve, "--spin-us", "0") as sleeper,
        peer("stepping-echo", config) as echo,
        Client(server.wait_for("control").split()[1], timeout=RECV_TIMEOUT_MS / 1000) as client,
        Client(sleeper.wait_for("control").split()[1], timeout=RECV_TIMEOUT_MS / 1000) as other,
    ):
        echo_addr = echo.wait_for("control").split()[1]
        for c in (client, other):
            c.hello("twin.bench")
            c.take_control()
        plain, batched = ControllerLoop(client), ControllerLoop(client, batched=True)
        image = ImageLoop(client.declare_image(INPUTS, OUTPUTS))
        image_asleep = ImageLoop(other.declare_image(INPUTS, OUTPUTS))
        sizes = [message_sizes(plain), message_sizes(batched), image_sizes(image)]
        exchanges = [*(_exchanges(s) for s in sizes[:2]), image.exchanges(sizes[2])]
        exchanges.append(exchanges[-1])  # the image against the server that never spins
        pings = [PingPong(echo_addr, e) for e in exchanges]
        loops: list[ControllerLoop | ImageLoop] = [plain, batched, image, image_asleep]
        servers = [server, server, server, sleeper]
        cpu: list[tuple[CpuPerStep, CpuPerStep]] = []  # (server, baseline peer) per line
        try:
            for loop, ping in zip(loops, pings):
                loop.rate(20)
                ping.rate(20)
            measures: list[Callable[[], float]] = []
            for loop, ping, served in zip(loops, pings, servers):
                ours, peers = CpuPerStep(served.proc.pid), CpuPerStep(echo.proc.pid)
                cpu.append((ours, peers))
                measures += [ours.of(loop.rate, block), peers.of(ping.rate, block)]
            values = interleave(measures, reps)
        finally:
            for ping in pings:
                ping.close()
    line_us = line_overhead_us(config, block=40, reps=10 if quick else 100)
    results = [
        BenchResult(
            name=name,
            ours=median(values[2 * i]),
            baseline=median(values[2 * i + 1]),
            unit="steps/s",
            target=TARGET,
            details={
                "round_trips_per_step": len(exchanges[i]),
                # the most ours may add for the target, and what the line alone adds
                "target_budget_us": (1 / TARGET - 1) * 1e6 / median(values[2 * i + 1]),
                "line_without_controller_us_over_bare": line_us,
                **cpu_details(*cpu[i]),
                "bytes": sizes[i],
                "steps_per_block": block,
                "repetitions": reps,
            },
        )
        for i, name in enumerate(("lockstep", "lockstep_batched"))
    ]
    results.append(
        image_result(
            config,
            median(values[4]),
            median(values[5]),
            sizes[2],
            block,
            reps,
            cpu_details(*cpu[2]),
        )
    )
    results.append(
        BenchResult(
            name="lockstep_image_no_spin",
            ours=median(values[6]),
            baseline=median(values[7]),
            unit="steps/s",
            details={
                "server": "twin serve --spin-us 0: sleeps on its socket as soon as it has replied",
                "cycle_us": 1e6 / median(values[6]),
                **cpu_details(*cpu[3]),
                "steps_per_block": block,
                "repetitions": reps,
            },
        )
    )
    return results
