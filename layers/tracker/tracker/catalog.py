"""A tenant's catalog of event types: create, read, search, change and delete them.

The name is the key (an event's ``action``), so it never changes: a PATCH naming another name is
a 422. Pages are by name, with the same signed cursors as a user's events, bound to the tenant and
the search.
"""

from __future__ import annotations

import re
from datetime import datetime

from tracker.catalog_models import EventTypeIn, EventTypeOut, EventTypePage, EventTypePatch, PropertySpec
from tracker.cursor import decode_cursor, encode_cursor
from tracker.errors import Conflict, NotFound, ValidationFailed, field_error
from tracker.interfaces import DuplicateEventType, EventTypeChanges, EventTypeSearch, EventTypeStore
from tracker.records import EventTypeRecord, PropertyRule
from tracker.timefmt import utc_now

NAME_RULE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
"""The rule of an event's ``action``, which names its type."""


MAX_EDIT_ATTEMPTS = 3


def _rules(
    properties: dict[str, PropertySpec], now: datetime, before: dict[str, PropertyRule] | None = None
) -> dict[str, PropertyRule]:
    """The declared properties; one that keeps its type keeps its ``declared_at``, the others are declared now."""
    rules = {}
    for key, spec in properties.items():
        kept = (before or {}).get(key)
        declared_at = kept.declared_at if kept is not None and kept.type == spec.type and kept.declared_at else now
        rules[key] = PropertyRule(type=spec.type, required=spec.required, declared_at=declared_at)
    return rules


def event_type_out(record: EventTypeRecord) -> EventTypeOut:
    return EventTypeOut(
        name=record.name,
        description=record.description,
        points=record.points,
        properties={
            key: PropertySpec(type=rule.type, required=rule.required) for key, rule in record.properties.items()
        },
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def _known_name(name: str) -> str:
    """A name that could be in a catalog; any other is unknown (404) before the store is asked."""
    if not NAME_RULE.fullmatch(name):
        raise NotFound(f"No event type named {name[:80]!r}.")
    return name


def create_event_type(
    store: EventTypeStore, tenant_id: str, request: EventTypeIn, now: datetime | None = None
) -> EventTypeOut:
    now = now or utc_now()
    record = EventTypeRecord(
        tenant_id=tenant_id,
        name=request.name,
        description=request.description,
        points=request.points,
        properties=_rules(request.properties, now),
        created_at=now,
        updated_at=now,
    )
    try:
        store.create_event_type(record)
    except DuplicateEventType:
        raise Conflict(f"An event type named {request.name!r} exists.") from None
    return event_type_out(record)


def get_event_type(store: EventTypeStore, tenant_id: str, name: str) -> EventTypeOut:
    record = store.get_event_type(tenant_id, _known_name(name))
    if record is None:
        raise NotFound(f"No event type named {name!r}.")
    return event_type_out(record)


def update_event_type(
    store: EventTypeStore, tenant_id: str, name: str, patch: EventTypePatch, now: datetime | None = None
) -> EventTypeOut:
    """Sets the fields the patch holds; ``properties`` replaces the map (a property left out is undeclared).

    New properties, and those whose type changes, are declared now: their numeric statistics start
    with the events received from now on. That needs the stored map, so such a patch is applied only
    to the version it was computed from, and computed again (a few times) if another change came first.
    """
    _known_name(name)
    if patch.name is not None and patch.name != name:
        raise ValidationFailed(
            "The name is the key of an event type and cannot change; create a type of the new name instead.",
            [field_error("name", f"must be {name!r}, the name in the path", "immutable")],
        )
    sent = patch.model_fields_set
    now = now or utc_now()
    for _attempt in range(MAX_EDIT_ATTEMPTS):
        properties = expected_version = None
        if "properties" in sent:
            current = store.get_event_type(tenant_id, name)
            if current is None:
                break
            properties = _rules(patch.properties, now, current.properties)
            expected_version = current.version
        changes = EventTypeChanges(
            description=patch.description if "description" in sent else None,
            points=patch.points if "points" in sent else None,
            properties=properties,
            updated_at=now,
            expected_version=expected_version,
        )
        record = store.update_event_type(tenant_id, name, changes)
        if record is not None:
            return event_type_out(record)
        if expected_version is None:
            break
    else:
        raise Conflict(f"Event type {name!r} kept changing while this change was applied; send it again.")
    raise NotFound(f"No event type named {name!r}.")


def delete_event_type(store: EventTypeStore, tenant_id: str, name: str) -> None:
    if not store.delete_event_type(tenant_id, _known_name(name)):
        raise NotFound(f"No event type named {name!r}.")


def search_needle(search: str | None) -> str | None:
    """What a stored ``search_text`` must contain: the search case-folded, literally (``%``, ``.*``
    and the like match themselves); None for no search."""
    return search.casefold() if search else None


def search_event_types(
    store: EventTypeStore, tenant_id: str, search: str | None, limit: int, cursor: str | None
) -> EventTypePage:
    needle = search_needle(search)
    binding = ("event-types", tenant_id, needle)
    after = decode_cursor(cursor, binding, NAME_RULE) if cursor else None
    records, position = store.search_event_types(EventTypeSearch(tenant_id, needle, limit, after))
    next_cursor = encode_cursor(position, binding) if position else None
    return EventTypePage(items=[event_type_out(record) for record in records], next_cursor=next_cursor)
