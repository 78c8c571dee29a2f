"""Shared values and builders of the unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

TENANT = "ten_unit000000000001"
OTHER_TENANT = "ten_unit000000000002"
RECEIVED = datetime(2025, 10, 10, 12, 0, 0, tzinfo=UTC)
"""The server's clock when the events of a test arrive."""


def raw_event(**fields: Any) -> dict[str, Any]:
    """A valid event as a client sends it; ``fields`` override or add (``None`` removes a field)."""
    event: dict[str, Any] = {
        "event_id": "evt-1",
        "user_id": "user-1",
        "action": "login",
        "occurred_at": "2025-10-10T11:00:00Z",
    }
    event.update(fields)
    return {name: value for name, value in event.items() if value is not None}
