"""A line with what runs it from inside: the built-in controller and the config's scripted
e-stops, composed around the plant (`twin.line.Line`), which knows neither.

Per step: scripted e-stops fire or release, the line's state advances, the controller scans
(every `period` steps while the line is in Execute, restarted whenever the line enters
Execute again), then devices act, physics advances and devices sense. `twin run`, the
server and the gym's in-process back end build their lines here.
"""

from __future__ import annotations

from typing import Any

from twin.config import LineConfig
from twin.control.port import Controller
from twin.line import Line, SignalView
from twin.production.packml import State


class LinePort:
    """The in-process port: commands go to `Line.apply` (validated, may raise CommandError)."""

    def __init__(self, line: Line) -> None:
        self._apply = line.apply

    def send(self, device: str, command: str, args: dict[str, Any] | None = None) -> None:
        self._apply(device, command, args)


class AutomatedLine:
    """Steps a `Line` with its built-in controller (if any) and scripted e-stops.

    Everything else (signals, commands, describe, events, e-stop) is the line's: read it from
    `.line`; attribute reads not defined here are passed on to it.
    """

    def __init__(self, line: Line, controller: Controller | None = None) -> None:
        self.line = line
        self.controller = controller
        self._executing = False  # the line was in Execute at the last step
        self._estop_script = sorted((w.at, w.at + w.duration) for w in line.cfg.estops)
        self._scripted_estop_until: float | None = None
        self._view = SignalView(line)  # one view, refreshed at every scan

    @property
    def has_builtin_controller(self) -> bool:
        return self.controller is not None

    @property
    def has_builtin_fleet(self) -> bool:
        """A factory whose AMRs the built-in fleet manager drives."""
        return getattr(self.controller, "fleet", None) is not None

    def step(self, n: int = 1) -> None:
        line, controller = self.line, self.controller
        if controller is None and not self._estop_script and self._scripted_estop_until is None:
            line.step(n)  # nothing runs between the halves of a step
            return
        world, packml = line.world, line.packml
        for _ in range(n):
            if self._estop_script or self._scripted_estop_until is not None:
                self._run_estop_script()
            line.begin_step()
            if controller is not None:
                if packml.state == State.EXECUTE:
                    if not self._executing:
                        self._executing = True
                        controller.restart()  # outputs are written again from a clean image
                    if world.step_index % controller.period == 0:
                        controller.tick(self._view.refresh())
                else:
                    self._executing = False
            line.finish_step()

    def _run_estop_script(self) -> None:
        line = self.line
        now = line.sim_time
        if self._scripted_estop_until is not None and now >= self._scripted_estop_until - 1e-9:
            self._scripted_estop_until = None
            line.estop_reset()
        if self._estop_script and now >= self._estop_script[0][0] - 1e-9:
            _, until = self._estop_script.pop(0)
            self._scripted_estop_until = until
            line.estop("scripted in config")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.line, name)  # only for names not defined here

    def close(self) -> None:
        self.line.close()

    def __enter__(self) -> AutomatedLine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_line(
    cfg: LineConfig,
    *,
    seed: int | None = None,
    gui: bool = False,
    builtin_controller: bool = True,
    visuals: bool = False,
    builtin_fleet: bool = True,
) -> AutomatedLine:
    """Build the line of `cfg`, with the config's sequencer unless told otherwise;
    `visuals` to render pictures of it. A factory (`cfg.factory`) gets its composite
    controller: the cells' sequencer, the order book and (unless `builtin_fleet` is False,
    leaving the AMRs to an external fleet manager) the fleet manager."""
    from twin.control.sequencer import Sequencer

    line = Line(cfg, seed=seed, gui=gui, visuals=visuals)
    controller: Controller | None = None
    if builtin_controller and cfg.factory is not None:
        from twin.factory.controller import FactoryController

        factory = FactoryController(
            cfg,
            LinePort(line),
            line.dt,
            clock=lambda: line.sim_time,
            emit=line.emit,
            seed=line.seed,
            builtin_fleet=builtin_fleet,
            on_alarm=lambda device, **data: line.emit("alarm", device, **data),
        )
        line.events.listeners.append(factory.on_event)
        controller = factory
    elif builtin_controller and cfg.controller is not None:
        controller = Sequencer(
            cfg,
            LinePort(line),
            line.dt,
            on_alarm=lambda device, **data: line.emit("alarm", device, **data),
        )
    return AutomatedLine(line, controller)
