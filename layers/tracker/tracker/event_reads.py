"""Events read back: the one shape an event is shown in (``event_out``: the query route, exports,
the live feed), and a user's events in pages under the Lambda response limit."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime

from tracker.cursor import decode_cursor, encode_cursor
from tracker.errors import Unavailable, ValidationFailed, field_error
from tracker.event_models import EventOut, EventPage
from tracker.interfaces import EventStore, TemporarilyUnavailable, UserEventsQuery
from tracker.records import EventRecord
from tracker.timefmt import ceil_to_millis, format_utc

# A position in a user's events: the occurred_key of the last event of a page.
OCCURRED_KEY = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z#[A-Za-z0-9._:-]{1,128}")
# A page of events stays under Lambda's 6 MB response limit (and API Gateway's 10 MB), with room
# for the response's envelope and headers. The first read from the store asks for this many events.
PAGE_BUDGET_BYTES = 5 * 1024 * 1024
PAGE_FETCH_CHUNK = 100


@dataclass(frozen=True)
class EventFilter:
    start: datetime | None
    end: datetime | None
    action: str | None
    descending: bool
    limit: int

    def binding(self, tenant_id: str, user_id: str) -> tuple[str | None, ...]:
        return (
            "user-events",
            tenant_id,
            user_id,
            format_utc(self.start) if self.start else None,
            format_utc(self.end) if self.end else None,
            self.action,
            "desc" if self.descending else "asc",
        )


def payload_bytes(item: EventOut) -> int:
    """What an item adds to a Lambda response: the resolver writes it as ASCII JSON (DEL and every
    character past it as ``\\uXXXX``, two of them past U+FFFF), and the runtime writes that body
    again as a JSON string, escaping each ``"`` and ``\\``. Counted on pydantic's UTF-8 JSON of the
    item (several times faster than writing it twice), which differs from it only in those escapes
    and, by a byte at most, in how some floats are written (``1e-7`` for Python's ``1e-07``)."""
    text = item.model_dump_json()
    ascii_count = len(text.encode("ascii", "ignore"))
    escaped = text.count("\x7f") + len(text.encode("utf-16-le")) // 2 - ascii_count
    body = ascii_count - text.count("\x7f") + 6 * escaped
    return body + text.count('"') + text.count("\\") + escaped + 1  # and the comma between items


def event_out(record: EventRecord) -> EventOut:
    """An event as the API shows it (the query routes, exports and the live feed)."""
    return EventOut(
        event_id=record.event_id,
        user_id=record.user_id,
        action=record.action,
        occurred_at=record.occurred_at,
        received_at=record.received_at,
        metadata=record.metadata,
    )


def query_user_events(
    store: EventStore,
    tenant_id: str,
    user_id: str,
    event_filter: EventFilter,
    cursor: str | None,
    *,
    budget: int = PAGE_BUDGET_BYTES,
) -> EventPage:
    """One page of a user's events: ``limit`` of them, or fewer when their bytes would pass
    ``budget`` (at least one event always fits); ``next_cursor`` leads to the rest either way.

    The store is read in chunks: 100 events first, then as many as the budget left holds at the
    size of the largest event so far, so that small events take one or two reads and large ones
    are never read far past the budget.
    """
    if event_filter.start and event_filter.end and event_filter.start >= event_filter.end:
        raise ValidationFailed("The time range is empty.", [field_error("from", "must be before `to`", "range")])
    binding = event_filter.binding(tenant_id, user_id)
    query = UserEventsQuery(
        tenant_id=tenant_id,
        user_id=user_id,
        start=ceil_to_millis(event_filter.start) if event_filter.start else None,
        end=ceil_to_millis(event_filter.end) if event_filter.end else None,
        action=event_filter.action,
        descending=event_filter.descending,
        limit=event_filter.limit,
        after=decode_cursor(cursor, binding, OCCURRED_KEY) if cursor else None,
    )
    records: list[EventRecord] = []
    items: list[EventOut] = []
    spent, largest, more = 0, 0, True
    while more and len(items) < event_filter.limit:
        room = (budget - spent) // largest if largest else PAGE_FETCH_CHUNK
        wanted = max(1, min(event_filter.limit - len(items), room))
        try:
            fetched, more = store.query_user_events(replace(query, limit=wanted))
        except TemporarilyUnavailable:
            raise Unavailable("The event store is busy; retry the query.") from None
        for record in fetched:
            item = event_out(record)
            cost = payload_bytes(item)
            spent, largest = spent + cost, max(largest, cost)
            if items and spent > budget:
                return EventPage(items=items, next_cursor=encode_cursor(records[-1].occurred_key, binding))
            records.append(record)
            items.append(item)
        if records:
            query = replace(query, after=records[-1].occurred_key)
    next_cursor = encode_cursor(records[-1].occurred_key, binding) if more and records else None
    return EventPage(items=items, next_cursor=next_cursor)
