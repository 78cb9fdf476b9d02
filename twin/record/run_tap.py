"""Recording `twin run`: step a bare Line and record what a server would publish.

`RunRecording.step` advances the line in pieces that end on state-rate boundaries, records
the events of each piece and the state at each boundary (the same telemetry `twin serve`
publishes), and keeps the drained events for the caller (`drain`), so the run's own
consumers (KPIs) still see every event.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from twin.automation import AutomatedLine
from twin.config import LineConfig
from twin.events import Event
from twin.protocol.messages import TOPIC_EVENT, TOPIC_STATE, EventMsg, State
from twin.record.writer import Recorder, recording_info
from twin.server.host import steps_per_state

RUN_MODE = "fast"
RUN_STATE_RATE = 10.0  # simulated Hz, as `twin serve` by default

Sink = Callable[[bytes, Any], None]  # (wire topic, State | EventMsg)


def line_state(line: AutomatedLine, mode: str) -> State:
    """The state message of a line run without a server (no pause, e-stop or controller)."""
    return State(
        step=line.step_index,
        time=line.sim_time,
        mode=mode,
        signals=line.signals(),
        parts=line.part_poses(),
        counts=line.counts(),
    )


class LineTap:
    """Steps a line, handing its telemetry (events as they drain, state at its rate) to `sink`."""

    def __init__(
        self, line: AutomatedLine, sink: Sink, *, mode: str = RUN_MODE, state_every: int
    ) -> None:
        self.line = line
        self.sink = sink
        self.mode = mode
        self.state_every = state_every
        self.drained: list[Event] = []

    def step(self, n: int) -> None:
        line, every = self.line, self.state_every
        while n > 0:
            k = min(n, every - line.step_index % every) if every else n
            line.step(k)
            n -= k
            events = line.drain_events()
            self.drained += events
            for ev in events:
                msg = EventMsg(
                    step=ev.step, time=ev.time, kind=ev.kind, device=ev.device, data=ev.data
                )
                self.sink(TOPIC_EVENT, msg)
            if every and line.step_index % every == 0:
                self.sink(TOPIC_STATE, line_state(line, self.mode))

    def drain(self) -> list[Event]:
        out, self.drained = self.drained, []
        return out


class RunRecording(LineTap):
    """A LineTap writing to an MCAP file; `close` (idempotent) writes the footer."""

    def __init__(self, path: str | Path, cfg: LineConfig, line: AutomatedLine) -> None:
        every = steps_per_state(RUN_STATE_RATE, line.dt)
        info = recording_info(
            cfg,
            source="run",
            seed=line.seed,
            builtin_controller=line.has_builtin_controller,
            mode=RUN_MODE,
            timestep=line.dt,
            state_rate=RUN_STATE_RATE,
            state_every=every,
        )
        self.recorder = Recorder(path, info)
        super().__init__(line, self.recorder.telemetry, state_every=every)

    def close(self) -> None:
        self.recorder.close()
