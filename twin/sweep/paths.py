"""Paths that address one value in a line config (or in a run summary).

Syntax: dot-separated segments, each a key optionally followed by list indices::

    physics.seed                      a field of a table
    devices.mill.cycle_time           in a list of tables, a segment selects the entry whose
    part_types.housing.mass           `id` (devices, cells), `name` (part types) or `type`
    physics.gravity[2]                (products) equals it; [i] selects a list element by
    controller.transfers[0].place.offset                 position (from 0)

In a factory file (twin.factory.layout) the same paths reach its fields, e.g. `fleet.count`,
`fleet.amr.max_speed`, `orders.release.policy`, `cells.mill2.position`,
`orders.products.housing.routing[0].cycle_time`.

Segments are TOML bare keys (letters, digits, `_`, `-`). Setting a field that the file leaves
at its default is allowed: the result is validated by `twin.config.loads` afterwards.
"""

from __future__ import annotations

import re
from typing import Any

_SEGMENT = re.compile(r"^([A-Za-z0-9_\-]+)((?:\[\d+\])*)$")
_SELECT_KEYS = ("id", "name", "type")


class PathError(ValueError):
    """A path that is malformed or does not lead to a value."""


def parse(path: str) -> list[str | int]:
    """'controller.transfers[0].arm' -> ['controller', 'transfers', 0, 'arm']."""
    if not path:
        raise PathError("empty path")
    out: list[str | int] = []
    for seg in path.split("."):
        m = _SEGMENT.match(seg)
        if not m:
            raise PathError(f"'{path}': bad segment '{seg}' (expected name or name[index])")
        out.append(m.group(1))
        out.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return out


def _step(node: Any, key: str | int, path: str, where: str) -> Any:
    """One level down from `node` (a dict or a list); `where` is the path so far."""
    if isinstance(key, int):
        if not isinstance(node, list):
            raise PathError(f"'{path}': {where or 'the top level'} is not a list")
        if not 0 <= key < len(node):
            raise PathError(f"'{path}': index {key} out of range ({len(node)} entries in {where})")
        return node[key]
    if isinstance(node, dict):
        if key not in node:
            raise KeyError(key)
        return node[key]
    if isinstance(node, list):
        for entry in node:
            if isinstance(entry, dict) and any(entry.get(k) == key for k in _SELECT_KEYS):
                return entry
        known = [
            next((e[k] for k in _SELECT_KEYS if k in e), None) for e in node if isinstance(e, dict)
        ]
        known = [k for k in known if k is not None]
        raise PathError(f"'{path}': no entry '{key}' in {where} (known: {known})")
    raise PathError(f"'{path}': {where} is a value, not a table or list")


def _label(where: str, key: str | int) -> str:
    return f"{where}[{key}]" if isinstance(key, int) else (f"{where}.{key}" if where else key)


def set_value(raw: dict[str, Any], path: str, value: Any) -> None:
    """Set the value at `path` in a parsed TOML document, creating missing tables."""
    keys = parse(path)
    node: Any = raw
    where = ""
    for key in keys[:-1]:
        try:
            child = _step(node, key, path, where)
        except KeyError:
            child = node[key] = {}  # a table the file leaves at its default
        where, node = _label(where, key), child
    last = keys[-1]
    if isinstance(last, int) or isinstance(node, list):
        if isinstance(last, str):
            raise PathError(f"'{path}': {where} is a list; select an entry by id or [index]")
        _step(node, last, path, where)  # range check
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise PathError(f"'{path}': {where} is a value, not a table")


def get_value(data: Any, path: str) -> Any:
    """The value at `path`; None if a table on the way is None (e.g. no lead times yet)."""
    node = data
    where = ""
    for key in parse(path):
        if node is None:
            return None
        try:
            node = _step(node, key, path, where)
        except KeyError:
            raise PathError(f"'{path}': no field '{key}' in {where or 'the top level'}") from None
        where = _label(where, key)
    return node
