"""lockstep: an external controller (this process) driving `twin serve --mode lockstep` in
another process, one `command` (belt set_speed) and one `step n=1` per step, against a bare
stepSimulation loop behind a raw REQ/REP ping-pong carrying blobs of the same sizes."""

from __future__ import annotations

import time

import zmq

from twin.bench.processes import peer, twin_serve
from twin.bench.result import BenchResult, interleave, median
from twin.client import Client
from twin.protocol import messages as m
from twin.protocol.codec import encode

TARGET = 0.85
RECV_TIMEOUT_MS = 10_000
SPEEDS = (0.2, 0.25)


class ControllerLoop:
    """The external controller: per step, a belt command then a step request."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.k = 0

    def round_trip(self) -> tuple[m.Ok, m.State]:
        self.k += 1
        ok = self.client.command("infeed", "set_speed", speed=SPEEDS[self.k % 2])
        return ok, self.client.step(1)

    def rate(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            self.round_trip()
        return steps / (time.perf_counter() - t0)


class PingPong:
    """The baseline: REQ/REP with blobs of our request/reply sizes; the peer steps on `s`."""

    def __init__(self, addr: str, sizes: dict[str, int]) -> None:
        self.ctx = zmq.Context()
        self.req = self.ctx.socket(zmq.REQ)
        self.req.setsockopt(zmq.LINGER, 0)
        self.req.setsockopt(zmq.RCVTIMEO, RECV_TIMEOUT_MS)
        self.req.connect(addr)
        self.command = self._blob(b"c", sizes["command_request"], sizes["command_reply"])
        self.step = self._blob(b"s", sizes["step_request"], sizes["step_reply"])

    @staticmethod
    def _blob(kind: bytes, size: int, reply_size: int) -> bytes:
        head = kind + b"%09d" % reply_size
        return head + bytes(max(0, size - len(head)))

    def round_trip(self) -> None:
        for blob in (self.command, self.step):
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
    command = m.Command(device="infeed", command="set_speed", args={"speed": 0.25}, id=loop.k)
    return {
        "command_request": len(encode(command)),
        "command_reply": len(encode(ok)),
        "step_request": len(encode(m.Step(n=1, id=loop.k))),
        "step_reply": len(encode(state)),
    }


def lockstep(config: str, *, quick: bool) -> BenchResult:
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
            loop = ControllerLoop(client)
            sizes = message_sizes(loop)
            ping = PingPong(echo_addr, sizes)
            try:
                loop.rate(20)
                ping.rate(20)
                ours, baseline = interleave(
                    [lambda: loop.rate(block), lambda: ping.rate(block)], reps
                )
            finally:
                ping.close()
    return BenchResult(
        name="lockstep",
        ours=median(ours),
        baseline=median(baseline),
        unit="steps/s",
        target=TARGET,
        details={
            "round_trips_per_step": 2,
            "bytes": sizes,
            "steps_per_block": block,
            "repetitions": reps,
        },
    )
