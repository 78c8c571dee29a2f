"""The shape of a JSON value, measured without recursion (no depth, however hostile, can reach
Python's recursion limit here), and its canonical serialization."""

from __future__ import annotations

import json
from typing import Any, TypeVar

JsonValue = TypeVar("JsonValue")


def json_depth(value: Any) -> int:
    """How many objects and arrays nest in ``value``: ``{}`` is 1, ``{"a": [1]}`` 2, a scalar 0."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children)
    return deepest


def compact_json(value: Any) -> str:
    """The canonical serialization used for sizes and fingerprints."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True, allow_nan=False)


def within_bounds(value: JsonValue, max_depth: int, max_bytes: int, depth_note: str = "") -> JsonValue:
    """``value``, when it nests at most ``max_depth`` levels and its canonical serialization is at
    most ``max_bytes``; otherwise a ValueError saying which (a pydantic validator's message)."""
    if json_depth(value) > max_depth:
        raise ValueError(f"must be at most {max_depth} levels deep{depth_note}")
    if len(compact_json(value).encode()) > max_bytes:
        raise ValueError(f"must be at most {max_bytes} bytes when serialized")
    return value
