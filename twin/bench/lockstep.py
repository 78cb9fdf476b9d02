"""lockstep: an external controller (this process) driving `twin serve --mode lockstep` in
another process, against a bare stepSimulation loop behind a raw REQ/REP ping-pong carrying
blobs of the same sizes. Two ways to send one belt command and one step per control cycle:

- `lockstep`: a `command` request, then a `step n=1` request (two round trips);
- `lockstep_batched`: one `step n=1` request carrying the command (one round trip).
"""

from __future__ import annotations

import time

import zmq

from twin.bench.hosted import bare_rate, line_rate
from twin.bench.peers import WARMUP_S
from twin.bench.processes import peer, twin_serve
from twin.bench.result import BenchResult, interleave, median
from twin.client import Client
from twin.config import load
from twin.line import Line
from twin.protocol import messages as m
from twin.protocol.codec import encode

TARGET = 0.85
RECV_TIMEOUT_MS = 10_000
SPEEDS = (0.2, 0.25)


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


class PingPong:
    """The baseline: REQ/REP with blobs of our request/reply sizes; the peer steps on `s`.
    `exchanges` are (kind, request size, reply size), one per round trip of a step."""

    def __init__(self, addr: str, exchanges: list[tuple[bytes, int, int]]) -> None:
        self.ctx = zmq.Context()
        self.req = self.ctx.socket(zmq.REQ)
        self.req.setsockopt(zmq.LINGER, 0)
        self.req.setsockopt(zmq.RCVTIMEO, RECV_TIMEOUT_MS)
        self.req.connect(addr)
        self.blobs = [self._blob(kind, size, reply) for kind, size, reply in exchanges]

    @staticmethod
    def _blob(kind: bytes, size: int, reply_size: int) -> bytes:
        head = kind + b"%09d" % reply_size
        return head + bytes(max(0, size - len(head)))

    def round_trip(self) -> None:
        for blob in self.blobs:
            self.req.send(blob)
            self.req.recv()  # raises zmq.Again after RECV_TIMEOUT_MS

    def rate(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            self.round_trip()
        return steps / (time.perf_counter() - t0)

    def close(self) -> None:
        self.req.close(linger=0)
        self.ctx.term()


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


def lockstep(config: str, *, quick: bool) -> list[BenchResult]:
    block, reps = (100, 4) if quick else (150, 30)  # short blocks: the VM's drift cancels
    with (
        twin_serve(config, "--mode", "lockstep", "--no-builtin-controller") as server,
        peer("stepping-echo", config) as echo,
    ):
        control = server.wait_for("control").split()[1]
        echo_addr = echo.wait_for("control").split()[1]
        with Client(control, timeout=RECV_TIMEOUT_MS / 1000) as client:
            client.hello("twin.bench")
            client.take_control()
            loops = [ControllerLoop(client), ControllerLoop(client, batched=True)]
            sizes = [message_sizes(loop) for loop in loops]
            pings = [PingPong(echo_addr, _exchanges(s)) for s in sizes]
            try:
                for loop, ping in zip(loops, pings):
                    loop.rate(20)
                    ping.rate(20)
                values = interleave(
                    [
                        lambda: loops[0].rate(block),
                        lambda: pings[0].rate(block),
                        lambda: loops[1].rate(block),
                        lambda: pings[1].rate(block),
                    ],
                    reps,
                )
            finally:
                for ping in pings:
                    ping.close()
    line_us = line_overhead_us(config, block=40, reps=10 if quick else 100)
    return [
        BenchResult(
            name=name,
            ours=median(values[2 * i]),
            baseline=median(values[2 * i + 1]),
            unit="steps/s",
            target=TARGET,
            details={
                "round_trips_per_step": len(_exchanges(sizes[i])),
                # the most ours may add for the target, and what the line alone adds
                "target_budget_us": (1 / TARGET - 1) * 1e6 / median(values[2 * i + 1]),
                "line_without_controller_us_over_bare": line_us,
                "bytes": sizes[i],
                "steps_per_block": block,
                "repetitions": reps,
            },
        )
        for i, name in enumerate(("lockstep", "lockstep_batched"))
    ]
