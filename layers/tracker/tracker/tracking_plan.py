"""The tracking plan at ingest: events checked against their tenant's catalog of event types.

A tenant's ``validation`` mode (the authorizer passes it with the key) says what a violation does:
``off`` nothing (the catalog is not even read), ``flag`` the event is stored with its violations,
``block`` the event is rejected (422, ``validation_error``, one ``details`` entry per violation;
in a batch, that event alone).

The catalog is read per tenant through a ``CatalogCache`` that lives as long as the execution
environment: an event type (or its absence) read once is used for ``ttl_seconds``, so a batch reads
the catalog at most once per action in that time (one BatchGetItem per 100 new actions), and an
edit of the catalog reaches the plan within ``ttl_seconds`` (``CATALOG_CACHE_SECONDS``).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from tracker.errors import ApiError, ValidationFailed, field_error
from tracker.interfaces import EventTypeStore
from tracker.records import EventRecord, EventTypeRecord, PropertyType, ValidationMode, Violation

Screen = Callable[[Sequence[EventRecord]], list[EventRecord | ApiError]]
"""Checks prepared events against the plan: each comes back as the record to store, or its error."""

_TYPE_NAMES: dict[type, str] = {str: "a string", bool: "a boolean", int: "a number", float: "a number"}


def _has_type(value: Any, expected: PropertyType) -> bool:
    """JSON types, strictly: ``"50"`` is not a number, ``true`` is not a number, a non-finite float is none."""
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _described(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "a number out of range"
    return _TYPE_NAMES.get(type(value), "an object or a list")


def violations_of(record: EventRecord, event_type: EventTypeRecord | None) -> list[tuple[Violation, str]]:
    """What the event breaks of its type, each with a message; a null value counts as absent."""
    if event_type is None:
        return [(Violation(kind="unplanned_action", field="action"), f"{record.action!r} is not in the catalog")]
    metadata = record.metadata or {}
    found = []
    for key, rule in event_type.properties.items():
        field = f"metadata.{key}"
        value = metadata.get(key)
        if value is None:
            if rule.required:
                message = f"is required by event type {event_type.name!r}"
                found.append((Violation(kind="required_missing", field=field), message))
        elif not _has_type(value, rule.type):
            message = f"must be a {rule.type} (event type {event_type.name!r}), not {_described(value)}"
            found.append((Violation(kind="type_mismatch", field=field), message))
    return found


def screen_records(
    records: Sequence[EventRecord], mode: ValidationMode, event_types: Mapping[str, EventTypeRecord | None]
) -> list[EventRecord | ApiError]:
    """Each record as it is to be stored (with its violations in ``flag`` mode), or its 422 in ``block``."""
    screened: list[EventRecord | ApiError] = []
    for record in records:
        found = violations_of(record, event_types.get(record.action))
        if not found or mode == "off":
            screened.append(record)
        elif mode == "flag":
            screened.append(record.model_copy(update={"violations": [violation for violation, _ in found]}))
        else:
            details = [field_error(violation.field, message, violation.kind) for violation, message in found]
            screened.append(ValidationFailed("The event breaks the tenant's tracking plan.", details))
    return screened


class CatalogCache:
    """Event types by tenant and name, each kept ``ttl_seconds`` after it was read, absences included.

    At most ``max_entries`` are kept (the oldest go first), so that a tenant sending endless new
    action names cannot grow the environment's memory without bound.
    """

    def __init__(
        self, ttl_seconds: float, max_entries: int = 50_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], tuple[float, EventTypeRecord | None]] = OrderedDict()

    def event_types(
        self, store: EventTypeStore, tenant_id: str, names: Collection[str]
    ) -> dict[str, EventTypeRecord | None]:
        now = self._clock()
        known: dict[str, EventTypeRecord | None] = {}
        missing = []
        for name in set(names):
            entry = self._entries.get((tenant_id, name))
            if entry is not None and now - entry[0] < self.ttl_seconds:
                known[name] = entry[1]
            else:
                missing.append(name)
        if missing:
            found = store.get_event_types(tenant_id, missing)
            for name in missing:
                known[name] = found.get(name)
                self._entries.pop((tenant_id, name), None)
                self._entries[(tenant_id, name)] = (now, known[name])
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return known

    def clear(self) -> None:
        self._entries.clear()


def plan_screen(mode: ValidationMode, store: EventTypeStore, cache: CatalogCache, tenant_id: str) -> Screen | None:
    """The check ingest applies to a tenant's events; None in ``off`` mode (nothing to read or check)."""
    if mode == "off":
        return None

    def screen(records: Sequence[EventRecord]) -> list[EventRecord | ApiError]:
        event_types = cache.event_types(store, tenant_id, {record.action for record in records})
        return screen_records(records, mode, event_types)

    return screen


def screen_one(screen: Screen | None, record: EventRecord) -> EventRecord:
    """One event through the plan: the record to store, or its error raised."""
    if screen is None:
        return record
    (outcome,) = screen([record])
    if isinstance(outcome, ApiError):
        raise outcome
    return outcome
