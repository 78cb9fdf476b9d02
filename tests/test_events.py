"""Events are declared once: typed structs, documented from the same declarations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from twin.events import (
    EVENT_TYPES,
    EventLog,
    EventsDropped,
    Fault,
    event_table_markdown,
    make_event,
)

ROOT = Path(__file__).resolve().parents[1]


def test_protocol_doc_lists_every_event_as_declared() -> None:
    doc = (ROOT / "docs" / "protocol.md").read_text()
    table = re.search(r"<!-- events:begin -->\n(.*?)\n<!-- events:end -->", doc, re.S)
    assert table is not None, "docs/protocol.md lost its event table markers"
    assert table.group(1) == event_table_markdown(), (
        "docs/protocol.md's event table is out of date: paste twin.events.event_table_markdown()"
    )


def test_every_emitted_kind_is_declared() -> None:
    """A literal kind passed to emit()/server_event() anywhere in twin/ has a struct."""
    pattern = re.compile(r"""(?:emit|server_event)\(\s*["']([a-z_]+)["']""")
    emitted = {
        kind for path in (ROOT / "twin").rglob("*.py") for kind in pattern.findall(path.read_text())
    }
    assert emitted, "the scan found no emit calls: the pattern is stale"
    assert sorted(emitted - set(EVENT_TYPES)) == []


def test_event_data_is_the_wire_map() -> None:
    e = make_event("fault", "mill", 7, 0.07, fault="breakdown", active=True, until=12.5)
    assert isinstance(e, Fault)
    assert (e.kind, e.device, e.step, e.time) == ("fault", "mill", 7, 0.07)
    assert e.data == {"fault": "breakdown", "active": True, "until": 12.5}
    # an optional field that does not apply stays out of the data, as before typed events
    cleared = make_event("fault", "mill", 8, 0.08, fault="breakdown", active=False)
    assert cleared.data == {"fault": "breakdown", "active": False}


def test_bad_emits_name_the_problem() -> None:
    with pytest.raises(ValueError, match="unknown event kind 'part_exploded'"):
        make_event("part_exploded", "x", 0, 0.0)
    with pytest.raises(TypeError, match="event 'part_spawned' from 'src'"):
        make_event("part_spawned", "src", 0, 0.0, part=1)


def test_dropped_events_are_reported_on_the_next_drain() -> None:
    log = EventLog(lambda: (3, 0.03), max_pending=10)
    for i in range(25):
        log.emit("eye_blocked", "eye", part=i)
    drained = log.drain()
    note = drained[0]
    assert isinstance(note, EventsDropped)
    assert note.count == log.dropped > 0
    assert note.total == log.dropped
    kept = [e.data["part"] for e in drained[1:]]
    assert kept == list(range(25 - len(kept), 25)), "the newest events are the ones kept"
    assert note.count + len(kept) == 25
    log.emit("eye_cleared", "eye", part=None)
    assert [e.kind for e in log.drain()] == ["eye_cleared"], "reported once"
