"""A short summary of a recording: what line, how long, what is in it, how it ended."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from twin.record.format import TOPIC_EVENT, TOPIC_REQUEST, TOPIC_STATE
from twin.record.reader import RecordingReader, decode_event, decode_request, decode_state

FAULT_KINDS = ("fault", "estop", "watchdog", "safe_state")  # event kinds worth listing


def summarise(path: str | Path) -> list[str]:
    """Lines of text describing the recording at `path` (reads it once, front to back)."""
    reader = RecordingReader(path)
    info = reader.info()
    per_topic: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    requests: Counter[str] = Counter()
    faults: list[str] = []
    first_ns = last_ns = None
    last_state = None
    kpi = None  # last KPI-like event (kind "kpi"), if a producer records one
    for rec in reader.messages():
        per_topic[rec.topic] += 1
        if rec.topic in (TOPIC_STATE, TOPIC_EVENT):
            first_ns = rec.log_time if first_ns is None else first_ns
            last_ns = rec.log_time
        if rec.topic == TOPIC_STATE:
            last_state = rec.data  # decoded once, at the end
        elif rec.topic == TOPIC_EVENT:
            ev = decode_event(rec.data)
            kinds[ev.kind] += 1
            if ev.kind.startswith(FAULT_KINDS):
                faults.append(
                    f"  t={ev.time:9.3f} s  step {ev.step:>8}  {ev.device}: {ev.kind} {ev.data}"
                )
            elif ev.kind == "kpi":
                kpi = ev.data
        elif rec.topic == TOPIC_REQUEST:
            requests[type(decode_request(rec.data).request).__name__] += 1

    duration = (last_ns - first_ns) / 1e9 if first_ns is not None and last_ns is not None else 0.0
    out = [
        f"recording   {path}"
        + (
            "  (TRUNCATED: no footer, read up to the last complete chunk)"
            if reader.truncated
            else ""
        ),
        f"line        {info.config_path}  seed {info.seed}  mode {info.mode}  "
        f"({'built-in controller' if info.builtin_controller else 'external controller'}, "
        f"from twin {info.source})",
        f"duration    {duration:.2f} s simulated",
        "messages    " + ", ".join(f"{t}: {n}" for t, n in sorted(per_topic.items())),
        f"parts       spawned {kinds['part_spawned']}, completed {kinds['part_completed']} (events)",
    ]
    if requests:
        out.append("requests    " + ", ".join(f"{k}: {n}" for k, n in sorted(requests.items())))
    if last_state is not None:
        state = decode_state(last_state)
        counts = ", ".join(f"{k} {v}" for k, v in state.counts.items())
        out.append(f"last state  step {state.step}, t = {state.time:.3f} s: {counts}")
    if kpi is not None:
        out.append("last KPIs   " + ", ".join(f"{k} {v}" for k, v in kpi.items()))
    out.append(f"faults      {len(faults)}" + (":" if faults else ""))
    out += faults[:20] + ([f"  ... and {len(faults) - 20} more"] if len(faults) > 20 else [])
    return out
