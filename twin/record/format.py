"""What a recording holds: its channels, the structs stored on them and their JSON Schemas.

An MCAP recording has four channels, all with message encoding "json" and a JSON Schema
(schema encoding "jsonschema") generated from the structs, never written by hand:

- `recording`: one `RecordingInfo` first: the config text and path, seed, mode, rates;
- `state`, `event`: the telemetry exactly as the twin published it (`State`, `EventMsg`);
- `request`: every accepted request that changed the line (`RecordedRequest`), with the step
  it was applied at, plus server actions that did (a watchdog trip).
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from twin.protocol import messages as m

FORMAT_VERSION = 1
TOPIC_RECORDING = "recording"
TOPIC_STATE = "state"
TOPIC_EVENT = "event"
TOPIC_REQUEST = "request"
MESSAGE_ENCODING = "json"
SCHEMA_ENCODING = "jsonschema"

# requests that change the line; read-only ones (hello, describe, get_state, heartbeat) are
# not recorded
RECORDED_REQUESTS: tuple[type, ...] = (
    m.Command,
    m.Step,
    m.Reset,
    m.Estop,
    m.EstopReset,
    m.Pause,
    m.Resume,
    m.TakeControl,
    m.ReleaseControl,
)


class RecordingInfo(msgspec.Struct, kw_only=True):
    """How the line was built and run: enough to rebuild it bit for bit."""

    format: int = FORMAT_VERSION
    source: str  # "run" or "serve"
    twin_version: str
    config_path: str
    config_toml: str  # the config file's text as loaded
    seed: int
    builtin_controller: bool
    builtin_fleet: bool = True  # a factory's AMRs driven by the built-in fleet manager
    mode: str
    timestep: float  # s per step
    state_rate: float  # simulated Hz of the state channel
    state_every: int  # steps between two states (0 = none)


class WatchdogTrip(msgspec.Struct, tag="watchdog", tag_field="type", kw_only=True):
    """The server took control back from a silent client and safe-stopped the line."""

    client: str  # hex identity of the client that went silent
    timeout: float
    silent_for: float


class RecordedRequest(msgspec.Struct, kw_only=True):
    """One accepted request (or server action), applied at `step` (before it took effect)."""

    step: int
    time: float
    client: str  # hex ZeroMQ identity of the sender ("" for the server itself)
    request: m.Request | WatchdogTrip


CHANNEL_TYPES: dict[str, type] = {
    TOPIC_RECORDING: RecordingInfo,
    TOPIC_STATE: m.State,
    TOPIC_EVENT: m.EventMsg,
    TOPIC_REQUEST: RecordedRequest,
}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Replace every {"$ref": "#/$defs/X"} by X itself (the structs have no cycles)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def channel_schemas() -> dict[str, tuple[str, bytes]]:
    """topic -> (schema name, self-contained JSON Schema bytes) for every channel."""
    types = list(CHANNEL_TYPES.values())
    roots, defs = msgspec.json.schema_components(types, ref_template="#/$defs/{name}")
    out = {}
    for (topic, cls), root in zip(CHANNEL_TYPES.items(), roots):
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **_inline(root, defs)}
        out[topic] = (f"twin.{cls.__name__}", json.dumps(schema).encode())
    return out


def struct_schema(cls: type) -> tuple[str, bytes]:
    """(schema name, self-contained JSON Schema bytes) for a message struct outside the
    recording's channels (e.g. `Kpis` on Foxglove live), made the same way."""
    (root,), defs = msgspec.json.schema_components([cls], ref_template="#/$defs/{name}")
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **_inline(root, defs)}
    return f"twin.{cls.__name__}", json.dumps(schema).encode()
