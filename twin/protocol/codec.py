"""MessagePack encoding of the wire messages: one encoder and one decoder per direction, reused.

Decoding a request never raises anything but `ProtocolError`, whose `code` says what was wrong
with the bytes (malformed, too_large, unknown_request, bad_request) and which carries the
request id whenever it could still be read, so the error reply can echo it.

A request is a MessagePack map, except a process-image cycle, which is an array (its first
byte tells them apart: no map is ever decoded just to find out).
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from twin.protocol.messages import (
    REQUEST_TAGS,
    ImageCycle,
    ImageReply,
    Reply,
    Request,
    RequestId,
    Telemetry,
)

MAX_MESSAGE_BYTES = 1 << 20  # a request longer than this is answered with too_large


class ProtocolError(Exception):
    """A request that could not be decoded; answered with an error reply, never obeyed."""

    def __init__(self, code: str, message: str, request_id: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


def plain_values(obj: Any) -> Any:
    """msgspec enc_hook: numpy scalars and arrays as plain values (shared by every encoder)."""
    # device signals may hold numpy scalars or arrays; the wire only knows plain values
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


_encoder = msgspec.msgpack.Encoder(enc_hook=plain_values)
_request_decoder = msgspec.msgpack.Decoder(Request)
_cycle_decoder = msgspec.msgpack.Decoder(ImageCycle)
_cycle_reply_decoder = msgspec.msgpack.Decoder(ImageReply)
_reply_decoder = msgspec.msgpack.Decoder(Reply)
_telemetry_decoder = msgspec.msgpack.Decoder(Telemetry)
_any_decoder = msgspec.msgpack.Decoder()  # only to explain a request that failed validation


class _IdOnly(msgspec.Struct):
    id: RequestId = None


class _CycleIdOnly(msgspec.Struct, array_like=True):
    tag: Any = None
    id: RequestId = None


_id_decoder = msgspec.msgpack.Decoder(_IdOnly)
_cycle_id_decoder = msgspec.msgpack.Decoder(_CycleIdOnly)


def encode(msg: Any) -> bytes:
    return _encoder.encode(msg)


def is_array(data: bytes) -> bool:
    """True if the message is a MessagePack array (fixarray, array 16, array 32)."""
    return bool(data) and (0x90 <= data[0] <= 0x9F or data[0] in (0xDC, 0xDD))


def _id_of(raw: Any) -> Any:
    rid = None
    if isinstance(raw, dict):
        rid = raw.get("id")
    elif isinstance(raw, list) and len(raw) > 1:
        rid = raw[1]
    return rid if isinstance(rid, (int, str)) and not isinstance(rid, bool) else None


def peek_request_id(data: bytes) -> Any:
    """The `id` of a request of any size, without checking anything else (None if it cannot
    be read: not MessagePack, or the id itself is not an int or a string)."""
    try:
        if is_array(data):
            return _cycle_id_decoder.decode(data).id
        return _id_decoder.decode(data).id
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return None


def decode_request(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Request | ImageCycle:
    if len(data) > max_bytes:
        raise ProtocolError(
            "too_large",
            f"message is {len(data)} bytes; the limit is {max_bytes}",
            peek_request_id(data),
        )
    try:
        # is_array, inline: a cycle is the request most often sent
        if data and (0x90 <= data[0] <= 0x9F or data[0] in (0xDC, 0xDD)):
            return _decode_cycle(data)
        return _decode_request(data)
    except RecursionError:
        raise ProtocolError("malformed", "the message is nested too deeply") from None


def _decode_cycle(data: bytes) -> ImageCycle:
    try:
        return _cycle_decoder.decode(data)
    except msgspec.ValidationError as e:
        try:
            raw = _any_decoder.decode(data)
        except msgspec.DecodeError as bad:
            raise ProtocolError("malformed", f"not valid MessagePack: {bad}") from None
        rid = _id_of(raw)
        if not raw or raw[0] != "image":
            head = raw[0] if raw else None
            raise ProtocolError(
                "unknown_request",
                f'an array request must start with "image" (a process-image cycle), got {head!r}',
                rid,
            ) from None
        raise ProtocolError(
            "bad_request", f'image cycle ["image", id, lease, layout, n, outputs]: {e}', rid
        ) from None
    except msgspec.DecodeError as e:
        raise ProtocolError("malformed", f"not valid MessagePack: {e}") from None


def _decode_request(data: bytes) -> Request:
    try:
        return _request_decoder.decode(data)
    except msgspec.ValidationError as e:
        try:  # the typed decoder stops at the first wrong value: the rest may be garbage
            raw = _any_decoder.decode(data)
        except msgspec.DecodeError as bad:
            raise ProtocolError("malformed", f"not valid MessagePack: {bad}") from None
        rid = _id_of(raw)
        if not isinstance(raw, dict):
            raise ProtocolError(
                "malformed", f"a request must be a map, got {type(raw).__name__}", rid
            ) from None
        kind = raw.get("type")
        if not isinstance(kind, str) or kind not in REQUEST_TAGS:
            raise ProtocolError(
                "unknown_request",
                f"unknown request type {kind!r} (known: {sorted(REQUEST_TAGS)})",
                rid,
            ) from None
        raise ProtocolError("bad_request", f"{kind}: {e}", rid) from None
    except msgspec.DecodeError as e:
        raise ProtocolError("malformed", f"not valid MessagePack: {e}") from None


def decode_reply(data: bytes) -> Reply | ImageReply:
    if data and (0x90 <= data[0] <= 0x9F or data[0] in (0xDC, 0xDD)):  # is_array, inline
        return _cycle_reply_decoder.decode(data)
    return _reply_decoder.decode(data)


def decode_telemetry(data: bytes) -> Telemetry:
    return _telemetry_decoder.decode(data)
