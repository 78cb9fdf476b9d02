"""Recording `twin serve`: hook a Recorder into the server's host and dispatcher.

The host hands it every telemetry message it publishes (the same structs, encoded once more
as JSON), the dispatcher every request it accepted, with the step it was applied at.
"""

from __future__ import annotations

from pathlib import Path

from twin.config import LineConfig
from twin.record.writer import Recorder, recording_info
from twin.server.dispatch import Dispatcher
from twin.server.host import LineHost


def record_server(
    path: str | Path, cfg: LineConfig, host: LineHost, dispatcher: Dispatcher
) -> Recorder:
    """Start recording a freshly built server to `path`; the caller closes the Recorder."""
    info = recording_info(
        cfg,
        source="serve",
        seed=host.line.seed,
        builtin_controller=host.builtin_controller,
        mode=host.mode,
        timestep=host.line.dt,
        state_rate=host.state_rate,
        state_every=host.state_every,
    )
    recorder = Recorder(path, info)
    host.tap = recorder.telemetry
    dispatcher.on_accepted = recorder.request
    return recorder
