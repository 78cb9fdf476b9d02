"""slow_subscriber: the default line served in this process with a subscriber (another
process) that connects and never reads, against none. Both are the same server and line:
the subscriber toggles its subscription between blocks, and a PUB with no matching
subscription sends nothing, exactly as with no subscriber at all.

State is published every step (20x the default rate). Before timing, the stuck subscriber's
queues (PUB send HWM, kernel socket buffers, SUB receive HWM) are filled with state-sized
messages, so what is timed is the steady state of a subscriber that never reads: the PUB
dropping at its high-water mark. This process's memory must stay flat meanwhile.
"""

from __future__ import annotations

from twin.bench.hosted import open_server, run_fast, served_rate, step_until
from twin.bench.processes import peer, rss_kib
from twin.bench.result import BenchResult, interleave, median
from twin.config import load
from twin.protocol.codec import encode
from twin.protocol.messages import TOPIC_STATE
from twin.server.endpoints import TELEMETRY_HWM
from twin.server.loop import Server

TARGET = 0.95
SETTLE_STEPS = 20
FILL_BYTES = 32 << 20  # more than the queues between a PUB and a SUB can hold on loopback


def fill_queues(server: Server) -> int:
    """Publish state-sized messages until the queues to a reader that never reads are full."""
    payload = encode(server.host.state())
    count = FILL_BYTES // len(payload)
    for _ in range(count):
        server._publish(TOPIC_STATE, payload)
    return count


def slow_subscriber(config: str, *, quick: bool) -> BenchResult:
    block, reps = (100, 8) if quick else (80, 100)  # short blocks: both see the same phase
    cfg = load(config)
    server = open_server(cfg, state_rate=1.0 / cfg.physics.timestep)  # state every step
    try:
        with peer("stuck-subscriber", server.endpoints.telemetry_addr) as sub:

            def timed(subscribed: bool) -> float:
                sub.tell("subscribe" if subscribed else "unsubscribe")
                run_fast(server, SETTLE_STEPS)  # the (un)subscription reaches the PUB
                return served_rate(server, block)

            step_until(server, lambda: sub.has_line("ready"))
            rss_before_fill = rss_kib()
            fill_messages = fill_queues(server)
            rss_start = rss_kib()
            half = reps // 2
            ours, baseline = interleave([lambda: timed(True), lambda: timed(False)], half)
            rss_half = rss_kib()
            ours2, baseline2 = interleave([lambda: timed(True), lambda: timed(False)], reps - half)
            rss_end = rss_kib()
            published = server.host.line.step_index
            subscriber_rss = sub.rss_kib()
    finally:
        server.close()
    return BenchResult(
        name="slow_subscriber",
        ours=median(ours + ours2),
        baseline=median(baseline + baseline2),
        unit="steps/s",
        target=TARGET,
        details={
            "state_messages_published": published,
            "fill_messages": fill_messages,
            "pub_sndhwm": TELEMETRY_HWM,
            "rss_kib_before_fill": rss_before_fill,
            "rss_kib_start": rss_start,
            "rss_kib_half": rss_half,
            "rss_kib_end": rss_end,
            "rss_growth_second_half_kib": rss_end - rss_half,
            "subscriber_rss_kib": subscriber_rss,
            "steps_per_block": block,
            "repetitions": reps,
        },
    )
