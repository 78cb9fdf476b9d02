"""lockstep_image: the lockstep benchmark's controller driving the line through the process
image: per control cycle one image array in (the belt command as an output, n = 1) and one
out (the signals a PLC program for the default line reads), against the same baseline as
`lockstep` (bare stepping of a warmed-up copy of the line behind a raw REQ/REP of the same
sizes). It runs inside `twin.bench.lockstep`, interleaved with the other two variants.

Besides the rates it reports what one cycle costs, split into transport (sockets, the other
process, the server loop), encoding (both messages, both sides), dispatch (lease, outputs
applied, image read), line (its step over bare physics) and physics (bare stepSimulation),
from the served rate and an in-process copy of the served line that alternates the same
cycle through the server's own dispatcher, the line's stepping alone, bare stepSimulation
and the encoding, block by block, so all four see the same phase of the line. As in the
server, the telemetry a step leaves due (events, the state message at its rate) is sent after
the reply, outside the cycle.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twin.bench.pingpong import SPEEDS, TARGET
from twin.bench.result import BenchResult, interleave, median
from twin.client import ProcessImage
from twin.config import load
from twin.protocol import messages as m
from twin.protocol.codec import decode_reply, decode_request, encode

# what a PLC program for the default line reads each scan, and the belt speed it writes
INPUTS = [
    "line.state",
    "infeed_pick_eye.blocked",
    "outfeed_entry_eye.blocked",
    "mill.state",
    "mill.part_present",
    "robot.busy",
    "robot.jobs_done",
    "robot.result",
    "robot.holding",
    "sink.count",
]
OUTPUTS = ["infeed.set_speed"]


class ImageLoop:
    """The external controller: per step, one image cycle carrying the belt speed."""

    def __init__(self, image: ProcessImage) -> None:
        self.image = image
        self.k = 0

    def round_trip(self) -> m.ImageReply:
        self.k += 1
        return self.image.exchange([[SPEEDS[self.k % 2]]], n=1)

    def rate(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            self.round_trip()
        return steps / (time.perf_counter() - t0)

    @staticmethod
    def exchanges(sizes: dict[str, int]) -> list[tuple[bytes, int, int]]:
        """The baseline's round trips for a cycle of these sizes: one, and it steps."""
        return [(b"s", sizes["image_request"], sizes["image_reply"])]


def image_sizes(loop: ImageLoop) -> dict[str, int]:
    """Bytes on the wire of one cycle."""
    reply = loop.round_trip()
    cycle = m.ImageCycle(
        id=loop.k,
        lease=loop.image.client.lease or "",
        layout=loop.image.layout.layout,
        n=1,
        outputs=[[0.25]],
    )
    return {"image_request": len(encode(cycle)), "image_reply": len(encode(reply))}


class InProcessCycle:
    """The same cycle through the server's own dispatcher, with no sockets: a LineHost in
    this process, its Dispatcher, the real codec on both sides."""

    def __init__(self, config: str) -> None:
        from twin.server.control_lock import ControlLock
        from twin.server.dispatch import Dispatcher
        from twin.server.host import LineHost

        self.host = LineHost(
            load(config),
            mode="lockstep",
            seed=None,
            builtin_controller=False,
            state_rate=10.0,
            publish=lambda topic, payload: None,
        )
        self.dispatcher = Dispatcher(self.host, ControlLock())
        # as the server runs it: the telemetry a step leaves due goes out after the reply
        self.dispatcher.defer_telemetry = True
        lease = self._ask(m.TakeControl()).lease
        layout = self._ask(m.DeclareImage(inputs=INPUTS, outputs=OUTPUTS, lease=lease)).layout
        self.cycles = [
            m.ImageCycle(id=i, lease=lease, layout=layout, n=1, outputs=[[speed]])
            for i, speed in enumerate(SPEEDS)
        ]
        self.reply = self.dispatcher.handle(b"bench", encode(self.cycles[0]), 0.0)

    def _ask(self, req: Any) -> Any:
        reply = decode_reply(self.dispatcher.handle(b"bench", encode(req), 0.0))
        assert not isinstance(reply, m.Error), reply
        return reply

    def cycle_rate(self, steps: int) -> float:
        """Cycles per second: encode, dispatch (outputs, step, inputs), decode."""
        handle, cycles = self.dispatcher.handle, self.cycles
        return _paced(
            lambda k: decode_reply(handle(b"bench", encode(cycles[k % 2]), 0.0)),
            steps,
            after=self.host.settle,
        )

    def encoding_rate(self, steps: int) -> float:
        """Both messages encoded and decoded once, as client and server do per cycle."""
        cycle, reply = self.cycles[0], decode_reply(self.reply)

        def both(k: int) -> None:
            decode_request(encode(cycle))
            decode_reply(encode(reply))

        return _paced(both, steps)

    def line_rate(self, steps: int) -> float:
        """The served line's stepping alone (host.advance: devices, sensors; the telemetry
        due after the step goes out untimed, as the server sends it after the reply)."""
        advance = self.host.advance
        return _paced(lambda k: advance(1, defer=True), steps, after=self.host.settle)

    def bare_rate(self, steps: int) -> float:
        step = self.host.line.world.client.stepSimulation
        return _paced(lambda k: step(), steps)

    def close(self) -> None:
        self.host.close()


PAUSE_S = 100e-6  # between two paced calls: as long as a round trip leaves the server idle


def _paced(call: Callable[[int], Any], n: int, after: Callable[[], Any] | None = None) -> float:
    """Calls per second of `call(k)`, k = 0..n-1, each timed alone with a short sleep after
    it, as the served line runs: one step, then waiting for the next request. (A loop that
    never sleeps is a different workload to the scheduler: on a busy machine it is cut into
    time slices mid-step and runs up to twice as slow.) `after` runs untimed after each call
    (what the server does once the reply is sent)."""
    clock, sleep, total = time.perf_counter, time.sleep, 0.0
    for k in range(n):
        t0 = clock()
        call(k)
        total += clock() - t0
        if after is not None:
            after()
        sleep(PAUSE_S)
    return n / total


def cycle_split(config: str, served_us: float, *, block: int, reps: int) -> dict[str, float]:
    """µs of one served cycle by where it goes (they add up to `served_us`). The copy in this
    process starts fresh and runs as many cycles as the served one, so both go through the
    same phase of the line (what the physics costs changes as parts arrive)."""
    cycle = InProcessCycle(config)
    try:
        measures: list[Callable[[], float]] = [
            lambda: cycle.cycle_rate(block),
            lambda: cycle.line_rate(block),
            lambda: cycle.bare_rate(block),
            lambda: cycle.encoding_rate(block),
        ]
        rates = [median(v) for v in interleave(measures, reps)]
    finally:
        cycle.close()
    in_process_us, line_us, physics_us, encoding_us = (1e6 / r for r in rates)
    return {
        "transport_us": served_us - in_process_us,
        "encoding_us": encoding_us,
        "dispatch_us": in_process_us - encoding_us - line_us,
        "line_us": line_us - physics_us,
        "physics_us": physics_us,
    }


def image_result(
    config: str,
    ours: float,
    baseline: float,
    sizes: dict[str, int],
    block: int,
    reps: int,
    cpu: dict[str, float | None],
) -> BenchResult:
    """The lockstep_image line, with the cost of one cycle split by where it goes."""
    split = cycle_split(config, 1e6 / ours, block=block, reps=reps)
    return BenchResult(
        name="lockstep_image",
        ours=ours,
        baseline=baseline,
        unit="steps/s",
        target=TARGET,
        details={
            "round_trips_per_step": 1,
            "target_budget_us": (1 / TARGET - 1) * 1e6 / baseline,
            "cycle_us": 1e6 / ours,
            "cycle_split_us": split,
            **cpu,
            "inputs": len(INPUTS),
            "outputs": len(OUTPUTS),
            "bytes": sizes,
            "steps_per_block": block,
            "repetitions": reps,
        },
    )
