"""free_run: the default line served in fast mode (built-in controller, telemetry published to
one subscriber in another process) against bare stepSimulation of the same bodies."""

from __future__ import annotations

from twin.bench.hosted import bare_rate, line_rate, open_server, served_rate, step_until
from twin.bench.processes import peer
from twin.bench.result import BenchResult, interleave, median
from twin.config import load

TARGET = 0.8
WARMUP_STEPS = 200


def free_run(config: str, *, quick: bool) -> BenchResult:
    block, reps = (100, 6) if quick else (40, 200)  # short blocks: ours and bare see the same phase
    server = open_server(load(config))
    try:
        with peer("subscriber", server.endpoints.telemetry_addr) as sub:
            step_until(server, lambda: sub.has_line("ready"))
            served_rate(server, WARMUP_STEPS)
            ours, line_only, baseline = interleave(
                [
                    lambda: served_rate(server, block),
                    lambda: line_rate(server.host.automation, block),
                    lambda: bare_rate(server.host.line, block),
                ],
                reps,
            )
            sub.stop_input()
            received = int(sub.wait_for("received").split()[1])
        dt = server.host.line.dt
        sim_time = server.host.line.sim_time
        counts = server.host.line.counts()
    finally:
        server.close()
    ours_rate, bare_steps_per_s = median(ours), median(baseline)
    return BenchResult(
        name="free_run",
        ours=ours_rate,
        baseline=bare_steps_per_s,
        unit="steps/s",
        target=TARGET,
        details={
            "real_time_factor": ours_rate * dt,
            # Line.step alone (devices + controller, no server): splits the gap in two
            "line_only_steps_per_s": median(line_only),
            # the most ours may add to a bare step for the target, and what the line adds
            "target_budget_us": (1 / TARGET - 1) * 1e6 / bare_steps_per_s,
            "line_only_us_over_bare": 1e6 / median(line_only) - 1e6 / bare_steps_per_s,
            "steps_per_block": block,
            "repetitions": reps,
            "telemetry_received": received,
            "sim_time_s": sim_time,
            "parts_completed": counts["parts_completed"],
        },
    )
