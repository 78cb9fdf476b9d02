"""The line as the server runs it: the Line plus the line-level flags (paused, controlled),
stepped by the one telemetry stepper (`twin.telemetry`) with every message published.

Anything else that wants the telemetry as published (the recorder) is added to `sinks` by
the code that composes the server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twin.analytics.monitor import ProductionMonitor
from twin.automation import AutomatedLine, build_line
from twin.config import LineConfig
from twin.line import Line
from twin.protocol.codec import encode
from twin.protocol.messages import Kpis, State
from twin.telemetry import Sink, TelemetryStepper, kpi_message, state_message, steps_per_state
from twin.vision.feed import CameraDemand, CameraFeed

Publish = Callable[[bytes, bytes], None]  # (topic, payload)

__all__ = ["LineHost", "Publish", "steps_per_state"]


class LineHost:
    def __init__(
        self,
        cfg: LineConfig,
        *,
        mode: str,
        seed: int | None,
        builtin_controller: bool,
        state_rate: float,
        builtin_fleet: bool = True,
        publish: Publish,
    ) -> None:
        self.cfg = cfg
        self.mode = mode
        self.seed = seed
        self.builtin_controller = builtin_controller
        self.builtin_fleet = builtin_fleet
        self.state_rate = state_rate
        self.paused = False
        self.controlled = False  # kept up to date by the dispatcher, reported in the state
        self._publish = publish
        # every telemetry message as published: the PUB socket first, then e.g. a recorder
        self.sinks: list[Sink] = [self._publish_message]
        # the camera topics subscribed to (the server keeps it up to date) and recorded
        self.camera_demand = CameraDemand()
        self.line = self._build(seed)

    def _build(self, seed: int | None) -> Line:
        built = build_line(
            self.cfg,
            seed=seed,
            builtin_controller=self.builtin_controller,
            builtin_fleet=self.builtin_fleet,
        )
        line = built.line
        monitor = ProductionMonitor(line)
        stepper = TelemetryStepper(
            built,
            state_rate=self.state_rate,
            state=lambda: self.state(),  # looked up at each call (the benchmark times it)
            monitor=monitor,
            sinks=self.sinks,
            kpis=True,
            cameras=CameraFeed(line, self.camera_demand),
        )
        # only once the build succeeded: a failed reset leaves the old line running
        self.automation: AutomatedLine = built  # the line with its built-in controller
        self.monitor, self.stepper = monitor, stepper
        self.state_every = stepper.state_every
        return line

    @property
    def has_builtin_controller(self) -> bool:
        return self.automation.has_builtin_controller

    @property
    def has_builtin_fleet(self) -> bool:
        return self.automation.has_builtin_fleet

    def _publish_message(self, topic: bytes, msg: Any) -> None:
        self._publish(topic, encode(msg))

    # stepping --------------------------------------------------------------------------
    def advance(self, n: int, *, defer: bool = False) -> None:
        """Step n times, publishing events as they happen and the state at its rate (with
        `defer`, those due after the last step only at `settle()`)."""
        self.stepper.advance(n, defer=defer)

    def settle(self) -> None:
        """Publish what a deferred advance left due; before anything else touches the line."""
        self.stepper.settle()

    def kpis(self, request_id: Any = None) -> Kpis:
        return kpi_message(self.line, self.monitor, request_id)

    def flush_events(self) -> None:
        self.stepper.settle()
        self.stepper.flush_events()

    def server_event(self, kind: str, **data: Any) -> None:
        """An event from the server itself (watchdog, estop, control...), published at once."""
        self.line.emit(kind, "server", **data)
        self.flush_events()

    # observation -----------------------------------------------------------------------
    def state(self, request_id: Any = None) -> State:
        return state_message(
            self.line,
            self.mode,
            request_id=request_id,
            paused=self.paused,
            controlled=self.controlled,
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
        self.server_event("reset", seed=self.line.seed)

    def close(self) -> None:
        self.line.close()
