"""Reading a recording front to back with the mcap streaming reader.

The streaming reader needs no footer or index, so a file whose writer was killed reads up to
its last complete chunk; `truncated` says whether that happened.
"""

from __future__ import annotations

import struct
from collections.abc import Generator
from pathlib import Path
from typing import NamedTuple

import msgspec
from mcap.exceptions import McapError
from mcap.records import Channel, Footer, Message, Schema
from mcap.stream_reader import StreamReader

from twin.protocol import messages as m
from twin.record.format import TOPIC_RECORDING, RecordedRequest, RecordingInfo

decode_info = msgspec.json.Decoder(RecordingInfo).decode
decode_state = msgspec.json.Decoder(m.State).decode
decode_event = msgspec.json.Decoder(m.EventMsg).decode
decode_request = msgspec.json.Decoder(RecordedRequest).decode


class RecordingError(Exception):
    """Not a twin recording, or unreadable from the start."""


class Recorded(NamedTuple):
    topic: str
    log_time: int  # ns of recording time (simulated, increasing across resets)
    data: bytes  # JSON


class RecordingReader:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.schemas: dict[str, Schema | None] = {}  # topic -> schema
        self.truncated = False  # the file ended before its footer (writer killed)
        self.error = ""  # what stopped the reading early, if anything

    def messages(self) -> Generator[Recorded, None, None]:
        """Every message in file order, as far as the file can be read."""
        schemas: dict[int, Schema] = {}
        channels: dict[int, Channel] = {}
        complete = False
        with open(self.path, "rb") as f:
            try:
                for record in StreamReader(f, skip_magic=False).records:
                    if isinstance(record, Message):
                        ch = channels[record.channel_id]
                        yield Recorded(ch.topic, record.log_time, record.data)
                    elif isinstance(record, Schema):
                        schemas[record.id] = record
                    elif isinstance(record, Channel):
                        channels[record.id] = record
                        self.schemas[record.topic] = schemas.get(record.schema_id)
                    elif isinstance(record, Footer):
                        complete = True
            except (McapError, EOFError, ValueError, KeyError, struct.error) as e:
                self.error = f"{type(e).__name__}: {e}"
        self.truncated = not complete

    def info(self) -> RecordingInfo:
        """The recording's first message: how the line was built and run."""
        messages = self.messages()
        try:
            first = next(messages, None)
        except OSError as e:
            raise RecordingError(f"{self.path}: cannot read: {e.strerror}") from None
        finally:
            messages.close()
        if first is None or first.topic != TOPIC_RECORDING:
            why = self.error or f"no '{TOPIC_RECORDING}' message first"
            raise RecordingError(f"{self.path}: not a twin recording ({why})")
        return decode_info(first.data)
