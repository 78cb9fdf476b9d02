"""Recording `twin serve`: a Recorder attached to a built server by the code that composes it.

The server hands it every telemetry message it publishes (the same structs, encoded once more
as JSON), every request it accepted (with the step it was applied at) and every watchdog
trip. Only what a server offers to whoever composes it is used (`Served` below): nothing
here imports the server.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from twin.config import LineConfig
from twin.record.writer import Recorder, recording_info


class _Host(Protocol):
    mode: str
    seed: int | None
    builtin_controller: bool
    builtin_fleet: bool
    state_rate: float
    state_every: int
    sinks: list[Callable[[bytes, Any], None]]
    camera_demand: Any

    @property
    def line(self) -> Any: ...


class _Dispatcher(Protocol):
    on_accepted: Any


class Served(Protocol):
    host: Any
    dispatcher: Any
    watchdog_listeners: list[Callable[[bytes, float, float, int, float], None]]
    closers: list[Callable[[], None]]


def record_server(path: str | Path, cfg: LineConfig, server: Served) -> Recorder:
    """Start recording a freshly built server to `path`; the server closes the Recorder."""
    host: _Host = server.host
    dispatcher: _Dispatcher = server.dispatcher
    info = recording_info(
        cfg,
        source="serve",
        seed=host.line.seed,
        builtin_controller=host.builtin_controller,
        builtin_fleet=host.builtin_fleet,
        mode=host.mode,
        timestep=host.line.dt,
        state_rate=host.state_rate,
        state_every=host.state_every,
    )
    recorder = Recorder(path, info)
    host.sinks.append(recorder.telemetry)
    host.camera_demand.record()  # every camera's every frame goes into the recording
    dispatcher.on_accepted = recorder.request
    server.watchdog_listeners.append(recorder.watchdog)
    server.closers.append(recorder.close)
    return recorder
