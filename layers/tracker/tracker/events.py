"""Ingest of activity events: validation, clock-skew correction, idempotency (``event_reads`` reads them back)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from tracker.errors import (
    ApiError,
    Conflict,
    PayloadTooLarge,
    Unavailable,
    ValidationFailed,
    field_error,
    pydantic_details,
)
from tracker.ingest_models import (
    MAX_EVENT_BYTES,
    BatchItemResult,
    BatchResult,
    EventIn,
    EventStatus,
)
from tracker.interfaces import EventStore, TemporarilyUnavailable
from tracker.json_shape import compact_json
from tracker.models import EARLIEST_TIME, ErrorInfo
from tracker.records import EventRecord
from tracker.timefmt import format_utc, truncate_to_millis

EARLIEST_OCCURRED_AT = EARLIEST_TIME
MAX_FUTURE_SKEW = timedelta(hours=1)


def prepare_event(raw: Any, tenant_id: str, received_at: datetime) -> EventRecord:
    """Checks the size of one event as sent, validates it, and makes the record to store."""
    try:
        size = len(compact_json(raw).encode())
    except UnicodeEncodeError:
        raise ValidationFailed("The event holds an unpaired surrogate; it is not valid Unicode.") from None
    except ValueError:
        raise ValidationFailed("The event holds a number JSON cannot represent (NaN or Infinity).") from None
    if size > MAX_EVENT_BYTES:
        raise PayloadTooLarge(f"An event is at most {MAX_EVENT_BYTES} bytes; this one is {size}.")
    try:
        event = EventIn.model_validate(raw)
    except ValidationError as error:
        raise ValidationFailed("The event is not valid.", pydantic_details(error.errors())) from None
    return to_record(event, tenant_id, received_at)


def to_record(event: EventIn, tenant_id: str, received_at: datetime) -> EventRecord:
    """Applies the server's rules to a valid event: clock-skew correction, time bounds, id."""
    occurred_at = event.occurred_at or received_at
    try:
        if event.occurred_at is not None and event.sent_at is not None:
            # The client's clock is off by (sent_at - received_at); correct occurred_at by as much.
            occurred_at = occurred_at + (received_at - event.sent_at)
        occurred_at = truncate_to_millis(occurred_at.astimezone(UTC))
    except OverflowError:  # a time at the very edge of the calendar (year 1 or 9999)
        raise ValidationFailed(
            "The event is not valid.", [field_error("occurred_at", "is outside the years 2000-9999", "out_of_range")]
        ) from None
    if occurred_at < EARLIEST_OCCURRED_AT:
        raise ValidationFailed(
            "The event is not valid.",
            [field_error("occurred_at", "must not be before 2000-01-01T00:00:00Z", "too_early")],
        )
    if occurred_at > received_at + MAX_FUTURE_SKEW:
        raise ValidationFailed(
            "The event is not valid.",
            [field_error("occurred_at", "must not be more than 1 hour after the time received", "too_late")],
        )
    return EventRecord(
        tenant_id=tenant_id,
        event_id=event.event_id or str(uuid.uuid4()),
        user_id=event.user_id,
        action=event.action,
        occurred_at=occurred_at,
        received_at=received_at,
        metadata=event.metadata,
        fingerprint=_fingerprint(event),
    )


def _fingerprint(event: EventIn) -> str:
    """What makes two sends "the same event": the content as sent, not the server's corrections.

    A retry carries a new ``sent_at`` and arrives at another time, so neither is part of it.
    """
    content = {
        "user_id": event.user_id,
        "action": event.action,
        "occurred_at": format_utc(event.occurred_at) if event.occurred_at else None,
        "metadata": event.metadata,
    }
    return hashlib.sha256(compact_json(content).encode()).hexdigest()


@dataclass(frozen=True)
class Stored:
    status: Literal["accepted", "duplicate"]
    record: EventRecord

    def to_status(self) -> EventStatus:
        return EventStatus(event_id=self.record.event_id, received_at=self.record.received_at, status=self.status)


def resolve_existing(record: EventRecord, existing: EventRecord | None) -> Stored:
    """The outcome of storing ``record`` when ``existing`` already held its id (None: it did not)."""
    if existing is None:
        return Stored("accepted", record)
    if existing.fingerprint != record.fingerprint:
        raise Conflict(f"Event {record.event_id} was already received with other content.")
    return Stored("duplicate", existing)


def store_event(store: EventStore, record: EventRecord) -> Stored:
    try:
        existing = store.put_new(record)
    except TemporarilyUnavailable:
        raise Unavailable("The event store is busy; retry the event.") from None
    return resolve_existing(record, existing)


def ingest_batch(
    store: EventStore,
    raw_events: Sequence[Any],
    tenant_id: str,
    received_at: datetime,
    concurrency: int,
    *,
    out_of_time: Callable[[], bool] = lambda: False,
    screen: Callable[[Sequence[EventRecord]], list[EventRecord | ApiError]] | None = None,
) -> BatchResult:
    """Stores each valid event once; each event gets its own result, in order.

    Once ``out_of_time()`` says so, no further write starts: those events are rejected as
    ``unavailable`` (nothing of them was stored), so the answer stays truthful.
    ``screen`` (the tenant's tracking plan) sees the valid events at once, and may reject some
    or change what is stored of them.
    """
    outcomes: list[Stored | ApiError | None] = [None] * len(raw_events)
    records: dict[int, EventRecord] = {}
    first_index_of: dict[str, int] = {}
    repeats: dict[int, int] = {}
    for index, raw in enumerate(raw_events):
        try:
            records[index] = prepare_event(raw, tenant_id, received_at)
        except ApiError as error:
            outcomes[index] = error
    if screen is not None:
        _apply_screen(screen, records, outcomes)
    for index, record in records.items():
        if outcomes[index] is not None:  # rejected by the screen
            continue
        # A second copy of an id in the same batch is judged against the first, not written.
        if record.event_id in first_index_of:
            repeats[index] = first_index_of[record.event_id]
        else:
            first_index_of[record.event_id] = index

    def store_one(index: int) -> Stored | ApiError:
        if out_of_time():
            return Unavailable("The request ran out of time before this event was stored; send it again.")
        try:
            return store_event(store, records[index])
        except ApiError as error:
            return error

    firsts = list(first_index_of.values())
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(firsts)))) as pool:
        for index, outcome in zip(firsts, pool.map(store_one, firsts), strict=True):
            outcomes[index] = outcome
    for index, first in repeats.items():
        first_outcome = outcomes[first]
        if isinstance(first_outcome, Stored):
            try:
                outcomes[index] = resolve_existing(records[index], first_outcome.record)
            except ApiError as error:
                outcomes[index] = error
        else:
            outcomes[index] = first_outcome
    return _batch_result(outcomes, records)


def _apply_screen(
    screen: Callable[[Sequence[EventRecord]], list[EventRecord | ApiError]],
    records: dict[int, EventRecord],
    outcomes: list[Stored | ApiError | None],
) -> None:
    indexes = list(records)
    for index, screened in zip(indexes, screen([records[index] for index in indexes]), strict=True):
        if isinstance(screened, ApiError):
            outcomes[index] = screened
        else:
            records[index] = screened


def _batch_result(outcomes: Sequence[Stored | ApiError | None], records: dict[int, EventRecord]) -> BatchResult:
    results = []
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, Stored):
            results.append(BatchItemResult(index=index, event_id=outcome.record.event_id, status=outcome.status))
        elif outcome is not None:
            record = records.get(index)
            results.append(
                BatchItemResult(
                    index=index,
                    event_id=record.event_id if record else None,
                    status="rejected",
                    error=ErrorInfo.model_validate(outcome.body()["error"]),
                )
            )
    return BatchResult(
        accepted=sum(result.status == "accepted" for result in results),
        duplicates=sum(result.status == "duplicate" for result in results),
        rejected=sum(result.status == "rejected" for result in results),
        results=results,
    )
