"""An event as the API shows it: the query route's pages, exports and the live feed."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tracker.models import UtcTimestamp


class EventOut(BaseModel):
    event_id: str
    user_id: str
    action: str
    occurred_at: UtcTimestamp
    received_at: UtcTimestamp
    metadata: dict[str, Any] | None


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None
