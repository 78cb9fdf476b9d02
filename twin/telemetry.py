"""One path from steps to messages, for the server, the recorder, `twin run` and the gym.

`TelemetryStepper.advance(n)` steps a line in pieces that end on state-rate boundaries;
after each piece the drained events go to the production monitor and out as `event`
messages, at each boundary the `state` goes out, and with every `kpi_every`-th state the
`kpis`. Boundaries are multiples of `state_every` steps, so the same command sequence gives
the same telemetry whatever the wall clock did. `state_message` is the one snapshot builder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twin.analytics.monitor import ProductionMonitor
from twin.automation import AutomatedLine
from twin.events import Event
from twin.line import Line
from twin.protocol.messages import TOPIC_EVENT, TOPIC_KPI, TOPIC_STATE, EventMsg, Kpis, State
from twin.vision.feed import CameraFeed

Sink = Callable[[bytes, Any], None]  # (wire topic, State | EventMsg | Kpis)


def steps_per_state(rate_hz: float, dt: float) -> int:
    """Steps between two state messages at `rate_hz` simulated Hz (0 = never)."""
    if rate_hz <= 0:
        return 0
    return max(1, round(1.0 / (rate_hz * dt)))


def state_message(
    line: Line,
    mode: str,
    *,
    request_id: Any = None,
    paused: bool = False,
    controlled: bool = False,
) -> State:
    """The line's `state`: step, time, flags, every signal, every part's pose, the counts."""
    return State(
        id=request_id,
        step=line.step_index,
        time=line.sim_time,
        mode=mode,
        paused=paused,
        estopped=line.estopped,
        controlled=controlled,
        signals=line.signals(),
        parts=line.part_poses(),
        counts=line.counts(),
    )


def event_message(ev: Event) -> EventMsg:
    return EventMsg(step=ev.step, time=ev.time, kind=ev.kind, device=ev.device, data=ev.data)


def kpi_message(line: Line, monitor: ProductionMonitor, request_id: Any = None) -> Kpis:
    return Kpis(
        id=request_id,
        step=line.step_index,
        time=line.sim_time,
        kpis=monitor.kpis.snapshot(line.sim_time),
    )


class TelemetryStepper:
    """Steps `automated`, feeding `monitor` with every event and handing each message to
    every sink. `state` builds the state message (the server adds its flags); `kpi_every`
    states carry a `kpis` message (0: none)."""

    def __init__(
        self,
        automated: AutomatedLine,
        *,
        state_rate: float,
        state: Callable[[], State],
        monitor: ProductionMonitor | None = None,
        sinks: list[Sink] | None = None,
        kpis: bool = False,
        cameras: CameraFeed | None = None,
    ) -> None:
        self.automated = automated
        self.line = automated.line
        self.state_rate = state_rate
        self.state_every = steps_per_state(state_rate, self.line.dt)
        # KPIs go out once per simulated second, with every n-th state message
        self.kpi_every = max(1, round(state_rate)) if (kpis and self.state_every) else 0
        self.make_state = state
        self._drain = self.line.events.drain  # Line.drain_events, without the indirection
        self.monitor = monitor
        self.sinks: list[Sink] = sinks if sinks is not None else []
        # camera frames at their rates, rendered only when wanted (a line with no camera
        # has no frame ever due: its feed is left out of the step loop)
        self.cameras = cameras if cameras is not None and cameras.cameras else None
        self.pending = False  # a deferred advance left its last messages to settle()

    def advance(self, n: int, *, defer: bool = False) -> None:
        """Step n times: events as they drain, the state at its rate, KPIs with every n-th.
        With `defer`, what is due after the last step (its events, state, KPIs, frames) waits
        for `settle()`, so that a caller can answer first; it must settle before anything
        else touches the line (the messages are those an immediate send would give)."""
        self.settle()
        line, every, step = self.line, self.state_every, self.automated.step
        while n > 0:
            k = min(n, every - line.step_index % every) if every else n
            if self.cameras is not None:
                k = min(k, self.cameras.steps_to_due())
            step(k)
            n -= k
            if defer and n == 0:
                self.pending = True
                return
            self._publish_due()

    def settle(self) -> None:
        """Send what a deferred advance left due (nothing if it left nothing)."""
        if self.pending:
            self.pending = False
            self._publish_due()

    def _publish_due(self) -> None:
        """After a piece of steps: the events, and the state, KPIs and frames now due."""
        line, every = self.line, self.state_every
        self.flush_events()
        if every and line.step_index % every == 0:
            self._send(TOPIC_STATE, self.make_state())
            if self.kpi_every and (line.step_index // every) % self.kpi_every == 0:
                self._send(TOPIC_KPI, self.kpis())
        if self.cameras is not None:
            for topic, frame in self.cameras.due():
                self._send(topic, frame)

    def kpis(self) -> Kpis:
        assert self.monitor is not None, "a stepper sending KPIs needs a monitor"
        return kpi_message(self.line, self.monitor)

    def flush_events(self) -> list[Event]:
        """Drain the line's events now: to the monitor and out; returns them."""
        events = self._drain()
        if events:
            if self.monitor is not None:
                self.monitor.consume(events)
            if self.sinks:
                for ev in events:
                    self._send(TOPIC_EVENT, event_message(ev))
        return events

    def _send(self, topic: bytes, msg: Any) -> None:
        for sink in self.sinks:
            sink(topic, msg)
