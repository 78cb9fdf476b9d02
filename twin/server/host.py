"""The line as the server runs it: the Line plus the line-level flags (paused, e-stopped),
stepping with telemetry published along the way.

Telemetry is published at simulated-time boundaries (every `state_every` steps) so that the
same command sequence gives the same telemetry, whatever the wall clock did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twin.analytics.monitor import ProductionMonitor
from twin.automation import AutomatedLine, build_line
from twin.config import LineConfig
from twin.line import Line
from twin.protocol.codec import encode
from twin.protocol.messages import TOPIC_EVENT, TOPIC_KPI, TOPIC_STATE, EventMsg, Kpis, State

Publish = Callable[[bytes, bytes], None]  # (topic, payload)
Tap = Callable[[bytes, Any], None]  # (topic, State | EventMsg)


def steps_per_state(rate_hz: float, dt: float) -> int:
    """Steps between two state messages at `rate_hz` simulated Hz (0 = never)."""
    if rate_hz <= 0:
        return 0
    return max(1, round(1.0 / (rate_hz * dt)))


class LineHost:
    def __init__(
        self,
        cfg: LineConfig,
        *,
        mode: str,
        seed: int | None,
        builtin_controller: bool,
        state_rate: float,
        publish: Publish,
    ) -> None:
        self.cfg = cfg
        self.mode = mode
        self.seed = seed
        self.builtin_controller = builtin_controller
        self.state_rate = state_rate
        self._publish = publish
        self.paused = False
        self.controlled = False  # kept up to date by the dispatcher, reported in the state
        self.tap: Tap | None = None  # sees every telemetry message as published (recorder)
        self.line = self._build(seed)
        self.monitor = ProductionMonitor(self.line)

    def _build(self, seed: int | None) -> Line:
        built = build_line(self.cfg, seed=seed, builtin_controller=self.builtin_controller)
        self.automation: AutomatedLine = built  # the line with its built-in controller
        line = built.line
        self.state_every = steps_per_state(self.state_rate, line.dt)
        # KPIs go out once per simulated second, with every n-th state message
        self.kpi_every_states = max(1, round(self.state_rate)) if self.state_every else 0
        return line

    @property
    def has_builtin_controller(self) -> bool:
        return self.automation.has_builtin_controller

    # stepping --------------------------------------------------------------------------
    def advance(self, n: int) -> None:
        """Step n times, publishing events as they happen and the state at its rate."""
        line = self.line
        while n > 0:
            k = n
            if self.state_every:
                k = min(n, self.state_every - line.step_index % self.state_every)
            self.automation.step(k)
            n -= k
            self.flush_events()
            if self.state_every and line.step_index % self.state_every == 0:
                state = self.state()
                self._publish(TOPIC_STATE, encode(state))
                if self.tap is not None:
                    self.tap(TOPIC_STATE, state)
                if (line.step_index // self.state_every) % self.kpi_every_states == 0:
                    self._publish(TOPIC_KPI, encode(self.kpis()))

    def kpis(self, request_id: Any = None) -> Kpis:
        line = self.line
        return Kpis(
            id=request_id,
            step=line.step_index,
            time=line.sim_time,
            kpis=self.monitor.kpis.snapshot(line.sim_time),
        )

    def flush_events(self) -> None:
        events = self.line.drain_events()
        if not events:
            return
        self.monitor.consume(events)
        for ev in events:
            msg = EventMsg(step=ev.step, time=ev.time, kind=ev.kind, device=ev.device, data=ev.data)
            self._publish(TOPIC_EVENT, encode(msg))
            if self.tap is not None:
                self.tap(TOPIC_EVENT, msg)

    def server_event(self, kind: str, **data: Any) -> None:
        """An event from the server itself (watchdog, estop, control...), published at once."""
        self.line.emit(kind, "server", **data)
        self.flush_events()

    # observation -----------------------------------------------------------------------
    def state(self, request_id: Any = None) -> State:
        line = self.line
        return State(
            id=request_id,
            step=line.step_index,
            time=line.sim_time,
            mode=self.mode,
            paused=self.paused,
            estopped=self.estopped,
            controlled=self.controlled,
            signals=line.signals(),
            parts=line.part_poses(),
            counts=line.counts(),
        )

    # line-level actions ----------------------------------------------------------------
    def safe_stop(self, reason: str) -> None:
        self.line.safe_state(reason)
        self.flush_events()

    def watchdog_trip(self, client: str, timeout: float, silent_for: float) -> None:
        """The controller `client` (hex id) went silent: control is gone, the line safe-stops."""
        reason = (
            f"watchdog: controller {client} silent for {silent_for:.2f} s (timeout {timeout} s)"
        )
        self.controlled = False
        self.safe_stop(reason)
        self.server_event(
            "watchdog", reason=reason, client=client, timeout=timeout, silent_for=silent_for
        )

    @property
    def estopped(self) -> bool:
        return self.line.estopped

    def estop(self, reason: str) -> None:
        """Safe state, the built-in controller suspended, device commands refused."""
        self.line.estop(reason)
        self.flush_events()

    def estop_reset(self) -> None:
        self.line.estop_reset()
        self.flush_events()

    def reset(self, seed: int | None) -> None:
        """Rebuild the line from its config (with a new seed if given); pause is kept."""
        seed = seed if seed is not None else self.seed
        fresh = self._build(seed)  # build first: if that fails, the old line keeps running
        self.line.close()
        self.line, self.seed = fresh, seed
        self.monitor = ProductionMonitor(fresh)
        self.server_event("reset", seed=self.line.seed)

    def close(self) -> None:
        self.line.close()
