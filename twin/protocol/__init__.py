"""The wire protocol: message structs, version, and the MessagePack codec (see docs/protocol.md).

Imports nothing from the rest of the twin: clients in any language are written from it.
"""

from twin.protocol.codec import (
    MAX_MESSAGE_BYTES,
    ProtocolError,
    decode_reply,
    decode_request,
    decode_telemetry,
    encode,
)
from twin.protocol.messages import PROTOCOL_VERSION, TOPIC_EVENT, TOPIC_STATE, json_schema

__all__ = [
    "MAX_MESSAGE_BYTES",
    "PROTOCOL_VERSION",
    "TOPIC_EVENT",
    "TOPIC_STATE",
    "ProtocolError",
    "decode_reply",
    "decode_request",
    "decode_telemetry",
    "encode",
    "json_schema",
]
