"""The twin behind ZeroMQ sockets: `twin serve` (command), the loop and modes (loop), request
handling (dispatch), control ownership, leases and watchdog (control_lock), sockets
(endpoints), the line as served (host).

May import the line and what composes it (`twin.automation`, `twin.telemetry`), the protocol,
the config and the gateways it starts; never `twin.record` (a recorder is attached by the
composing code, `twin.serving`). Others use the names exported here, not the modules.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "ControlLock": "twin.server.control_lock",
    "Dispatcher": "twin.server.dispatch",
    "LineHost": "twin.server.host",
    "RemoteBindRefused": "twin.server.endpoints",
    "ServeOptions": "twin.server.loop",
    "Server": "twin.server.loop",
    "TELEMETRY_HWM": "twin.server.endpoints",
    "check_bind": "twin.server.endpoints",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # imported on use: `twin --help` should not load zmq and pybullet
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'twin.server' has no attribute '{name}'")
