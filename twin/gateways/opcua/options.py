"""Options of the OPC UA gateway (kept free of asyncua so the CLI starts fast)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_ENDPOINT = "opc.tcp://127.0.0.1:4840/twin"
ROLES = ("controller", "observer")


@dataclass
class OpcUaOptions:
    endpoint: str = DEFAULT_ENDPOINT
    control: str = "tcp://127.0.0.1:5555"
    telemetry: str = "tcp://127.0.0.1:5556"
    users: str | None = None  # users file: enables Basic256Sha256 with user/certificate logins
    pki: str | None = None  # directory of the server certificate (made there if missing)
    watchdog: float = 2.0  # the twin's watchdog while the gateway holds control (s)
    idle_timeout: float = 5.0  # a controlling client silent this long loses control (s)
    max_sessions: int = 32
    max_subscriptions: int = 64
    max_monitored_items: int = 5000
    curve: tuple[str, str] | None = None  # (gateway key_secret, twin server.key) with --curve
    connect_timeout: float = 30.0  # how long to wait for the twin to answer at start
