"""Synthetic tenants and events, written the way ingest stores them (``events_table.event_to_item``)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from bench.dynamo import DirectClient
    from tracker.records import EventRecord

ACTIONS = (
    "login",
    "logout",
    "open_app",
    "view_item",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "checkout",
    "pay",
    "refund",
    "share",
    "like",
    "comment",
    "upload",
    "download",
    "edit_profile",
    "invite",
    "notification_open",
    "settings_change",
    "delete_document",
)
METADATA = {"device": "iPhone15,2", "os": "iOS 18.1", "app_version": "4.12.0", "city": "Kyiv"}


@dataclass(frozen=True)
class TenantSpec:
    key: str
    name: str
    timezone: str
    users: int
    share: float
    """Fraction of the events that are this tenant's."""


def millis(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def user_id(index: int) -> str:
    return f"user-{index:04d}"


def record(
    tenant_id: str, serial: str, *, user: int, action: str, occurred_at: datetime, received_at: datetime
) -> EventRecord:
    from tracker.records import EventRecord

    return EventRecord(
        tenant_id=tenant_id,
        event_id=f"ev-{serial}",
        user_id=user_id(user),
        action=action,
        occurred_at=millis(occurred_at),
        received_at=millis(received_at),
        metadata=METADATA,
        fingerprint=hashlib.sha256(f"{tenant_id}/{serial}".encode()).hexdigest(),
    )


def spread(
    rng: random.Random,
    tenants: dict[str, TenantSpec],
    tenant_ids: dict[str, str],
    count: int,
    *,
    prefix: str,
    received: tuple[datetime, datetime],
    occurred_after: datetime | None,
    lag: timedelta = timedelta(seconds=5),
) -> list[EventRecord]:
    """``count`` events received uniformly in ``received`` (half-open), in random order of users and actions.

    ``occurred_at`` is uniform between ``occurred_after`` and the time received, or, without
    ``occurred_after``, at most ``lag`` before it (an app that sends events right away).
    """
    start, end = received
    span = (end - start).total_seconds()
    keys = list(tenants)
    weights = [tenants[key].share for key in keys]
    events = []
    for index in range(count):
        tenant = tenants[rng.choices(keys, weights)[0]]
        received_at = start + timedelta(seconds=rng.uniform(0, span))
        if occurred_after is None:
            occurred_at = received_at - timedelta(seconds=rng.uniform(0, lag.total_seconds()))
        else:
            occurred_at = occurred_after + (received_at - occurred_after) * rng.random()
        events.append(
            record(
                tenant_ids[tenant.key],
                f"{prefix}-{index:07d}",
                user=rng.randrange(tenant.users),
                action=rng.choice(ACTIONS),
                occurred_at=occurred_at,
                received_at=received_at,
            )
        )
    return events


def grid(
    rng: random.Random, tenant_id: str, count: int, *, users: int, hours: int, last_hour: datetime, prefix: str
) -> list[EventRecord]:
    """``count`` events over ``users`` x ``hours`` (the hours before ``last_hour``), every pair covered.

    Event ``i`` goes to user ``i % users`` in hour ``(i // users) % hours``, so with ``count >= users * hours``
    the set of (user, hour) pairs, and therefore of aggregate items, does not depend on ``count``.
    """
    if count < users * hours:
        raise ValueError(f"{count} events cannot cover {users} users x {hours} hours")
    events = []
    for index in range(count):
        hour = last_hour - timedelta(hours=(index // users) % hours + 1)
        occurred_at = hour + timedelta(seconds=rng.uniform(0, 3599.999))
        received_at = occurred_at + timedelta(seconds=rng.uniform(0, 2))
        events.append(
            record(
                tenant_id,
                f"{prefix}-{index:07d}",
                user=index % users,
                action=rng.choice(ACTIONS),
                occurred_at=occurred_at,
                received_at=received_at,
            )
        )
    return events


def write_events(direct: DirectClient, table: str, events: Iterable[EventRecord]) -> int:
    """Straight into moto's table: the items ingest would have put."""
    from tracker.adapters.events_table import event_to_item

    return direct.put_items(table, (event_to_item(event) for event in events))


def write_events_with_client(client: Any, table: str, events: list[EventRecord]) -> int:
    """The same through a boto3 client (BatchWriteItem, 25 at a time): slower, for cross-checks."""
    from tracker.adapters.events_table import event_to_item

    for offset in range(0, len(events), 25):
        requests = [{"PutRequest": {"Item": event_to_item(event)}} for event in events[offset : offset + 25]]
        client.batch_write_item(RequestItems={table: requests})
    return len(events)


def create_tenants(store: Any, tenants: Iterable[TenantSpec], now: datetime) -> dict[str, str]:
    """Tenants with one key each, through the tenant store (no usage plan: the rollup only reads the zone)."""
    from tracker.records import ApiKeyRecord, TenantRecord

    ids = {}
    for number, tenant in enumerate(tenants):
        tenant_id = f"ten_bench{number:02d}{tenant.key}"
        store.create_tenant(
            TenantRecord(tenant_id=tenant_id, name=tenant.name, timezone=tenant.timezone, active=True, created_at=now),
            ApiKeyRecord(
                key_id=f"key_bench{number:02d}",
                key_hash=hashlib.sha256(tenant_id.encode()).hexdigest(),
                role="tenant",
                tenant_id=tenant_id,
                created_at=now,
            ),
        )
        ids[tenant.key] = tenant_id
    return ids


def zone_reader(store: Any) -> Any:
    """The rollup function's tenant -> zone lookup: one GetItem per tenant per run."""

    @cache
    def zone_of(tenant_id: str) -> ZoneInfo:
        tenant = store.get_tenant(tenant_id)
        return ZoneInfo(tenant.timezone if tenant else "UTC")

    return zone_of


def per_tenant(events: Iterable[EventRecord]) -> Iterator[tuple[str, int]]:
    counts: dict[str, int] = {}
    for event in events:
        counts[event.tenant_id] = counts.get(event.tenant_id, 0) + 1
    yield from sorted(counts.items())
