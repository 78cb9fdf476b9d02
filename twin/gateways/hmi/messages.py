"""What a page may send over its WebSocket: small JSON objects tagged by `op`.

Decoded strictly (unknown ops and fields, wrong types are refused with a reply naming the
problem); device commands are then checked by the twin itself, like any client's.
"""

from __future__ import annotations

from typing import Any

import msgspec

MAX_MESSAGE_BYTES = 16 * 1024  # a page never needs more; the server closes bigger frames


class _Op(msgspec.Struct, tag_field="op", kw_only=True, forbid_unknown_fields=True):
    ref: int | None = None  # echoed in the reply, so the page can match it


class Ping(_Op, tag="ping"):
    """The page is alive (keeps a control lease held on its behalf)."""


class Command(_Op, tag="command"):
    device: str
    command: str
    args: dict[str, Any] = {}


class Estop(_Op, tag="estop"):
    reason: str = "e-stop pressed on the HMI"


class EstopReset(_Op, tag="estop_reset"):
    pass


class Pause(_Op, tag="pause"):
    pass


class Resume(_Op, tag="resume"):
    pass


class Release(_Op, tag="release"):
    """Give the twin's control back."""


class Ack(_Op, tag="ack"):
    id: int


PageOp = Ping | Command | Estop | EstopReset | Pause | Resume | Release | Ack
_decoder = msgspec.json.Decoder(PageOp)


def decode(text: str | bytes) -> PageOp:
    """The op, or ValueError naming what is wrong."""
    if len(text) > MAX_MESSAGE_BYTES:
        raise ValueError(f"message of {len(text)} bytes is over the limit of {MAX_MESSAGE_BYTES}")
    try:
        return _decoder.decode(text)
    except msgspec.DecodeError as e:
        raise ValueError(f"not an HMI request: {e}") from None
