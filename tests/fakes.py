"""In-memory stores that keep the promises of ``tracker.interfaces`` (the unit tests' stand-ins for DynamoDB).

They mirror what ``tracker.adapters.dynamodb`` does with DynamoDB, without a network:

- events: one record per ``(tenant, event_id)``; a user's events ordered by ``occurred_key``
  (``{occurred_at}#{event_id}``), filtered to ``[start, end)``, an optional action, ``limit`` items
  and whether more follow, resuming strictly after the ``after`` position in the query's order;
- tenants: one name per tenant (case-insensitive, as the name reservation item does), keys by owner
  and by hash, tenants listed by ``{created_at}#{tenant_id}``, ``None`` as the position of the last page;
- usage plans: each tenant's usage key in the default plan, or in a plan of its own while its rate
  limit is overridden (what ``tracker.adapters.usage_plans`` does with API Gateway).

Records are copied in and out, as a round trip through a real store would.

``brute_force_user_events`` is the answer a user's events query must give, with no store and no key.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from typing import Any

from tracker.interfaces import (
    DuplicateEventType,
    DuplicateName,
    EventTypeChanges,
    EventTypeSearch,
    TemporarilyUnavailable,
    UserEventsQuery,
)
from tracker.records import ApiKeyRecord, EventRecord, EventTypeRecord, RateLimitRecord, TenantRecord
from tracker.timefmt import format_utc


class StoreConflict(Exception):
    """A write the real store would refuse with a failed condition (an id or a key hash taken)."""


class InMemoryEventStore:
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], EventRecord] = {}
        self.put_calls = 0
        self.query_calls = 0
        self.down = False
        """When True every call raises TemporarilyUnavailable, as the DynamoDB store does after its retries."""
        self.fail_put: Callable[[EventRecord], bool] = lambda _record: False
        """Which puts fail with TemporarilyUnavailable (to reject some events of a batch)."""

    def put_new(self, record: EventRecord) -> EventRecord | None:
        self.put_calls += 1
        if self.down or self.fail_put(record):
            raise TemporarilyUnavailable("the in-memory store is down")
        key = (record.tenant_id, record.event_id)
        existing = self.records.get(key)
        if existing is not None:
            return existing.model_copy(deep=True)
        self.records[key] = record.model_copy(deep=True)
        return None

    def query_user_events(self, query: UserEventsQuery) -> tuple[list[EventRecord], bool]:
        self.query_calls += 1
        if self.down:
            raise TemporarilyUnavailable("the in-memory store is down")
        matching = [
            record
            for record in self.records.values()
            if record.tenant_id == query.tenant_id
            and record.user_id == query.user_id
            and (query.start is None or record.occurred_at >= query.start)
            and (query.end is None or record.occurred_at < query.end)
        ]
        matching.sort(key=lambda record: record.occurred_key, reverse=query.descending)
        if query.after is not None:
            after = query.after
            if query.descending:
                matching = [record for record in matching if record.occurred_key < after]
            else:
                matching = [record for record in matching if record.occurred_key > after]
        if query.action is not None:
            matching = [record for record in matching if record.action == query.action]
        page = matching[: query.limit]
        return [record.model_copy(deep=True) for record in page], len(matching) > query.limit

    def ping(self) -> None:
        if self.down:
            raise TemporarilyUnavailable("the in-memory store is down")


def _list_position(tenant: TenantRecord) -> str:
    return f"{format_utc(tenant.created_at)}#{tenant.tenant_id}"


class InMemoryTenantStore:
    def __init__(self) -> None:
        self.tenants: dict[str, TenantRecord] = {}
        self.names: dict[str, str] = {}
        """casefolded name -> tenant id"""
        self.keys_by_owner: dict[tuple[str | None, str], ApiKeyRecord] = {}
        self.keys_by_hash: dict[str, ApiKeyRecord] = {}

    def create_tenant(self, tenant: TenantRecord, key: ApiKeyRecord) -> None:
        if tenant.name.casefold() in self.names:
            raise DuplicateName(tenant.name)
        if tenant.tenant_id in self.tenants:
            raise StoreConflict(f"tenant {tenant.tenant_id} exists")
        self._check_key_is_new(key)
        self.names[tenant.name.casefold()] = tenant.tenant_id
        self.tenants[tenant.tenant_id] = tenant.model_copy(deep=True)
        self._put_key(key)

    def get_tenant(self, tenant_id: str) -> TenantRecord | None:
        tenant = self.tenants.get(tenant_id)
        return tenant.model_copy(deep=True) if tenant else None

    def list_tenants(self, limit: int, after: str | None) -> tuple[list[TenantRecord], str | None]:
        ordered = sorted(self.tenants.values(), key=_list_position)
        if after is not None:
            ordered = [tenant for tenant in ordered if _list_position(tenant) > after]
        page = ordered[:limit]
        position = _list_position(page[-1]) if page and len(ordered) > limit else None
        return [tenant.model_copy(deep=True) for tenant in page], position

    def save_tenant(self, tenant: TenantRecord) -> None:
        if tenant.tenant_id not in self.tenants:
            raise StoreConflict(f"no tenant {tenant.tenant_id} to save")
        self.tenants[tenant.tenant_id] = tenant.model_copy(deep=True)

    def add_key(self, key: ApiKeyRecord) -> None:
        self._check_key_is_new(key)
        self._put_key(key)

    def get_key_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        key = self.keys_by_hash.get(key_hash)
        return key.model_copy(deep=True) if key else None

    def delete_key(self, owner_tenant_id: str | None, key_id: str) -> bool:
        key = self.keys_by_owner.pop((owner_tenant_id, key_id), None)
        if key is None:
            return False
        del self.keys_by_hash[key.key_hash]
        return True

    def _check_key_is_new(self, key: ApiKeyRecord) -> None:
        if key.key_hash in self.keys_by_hash or (key.tenant_id, key.key_id) in self.keys_by_owner:
            raise StoreConflict(f"key {key.key_id} exists")

    def _put_key(self, key: ApiKeyRecord) -> None:
        self.keys_by_owner[(key.tenant_id, key.key_id)] = key.model_copy(deep=True)
        self.keys_by_hash[key.key_hash] = key.model_copy(deep=True)


DEFAULT_PLAN = "default"


class InMemoryUsagePlans:
    def __init__(self) -> None:
        self.key_tenant: dict[str, str] = {}
        """usage key id -> tenant id"""
        self.key_values: dict[str, str] = {}
        self.plan_of_key: dict[str, str] = {}
        """usage key id -> the plan it is in: DEFAULT_PLAN or the tenant's own plan"""
        self.own_plans: dict[str, RateLimitRecord] = {}
        """plan name -> its throttle"""
        self.down = False
        self._ids = itertools.count(1)

    def create_tenant_key(self, tenant_id: str) -> tuple[str, str]:
        if self.down:
            raise TemporarilyUnavailable("API Gateway is down")
        key_id = f"uk{next(self._ids):04d}"
        value = secrets.token_urlsafe(30)
        self.key_tenant[key_id] = tenant_id
        self.key_values[key_id] = value
        self.plan_of_key[key_id] = DEFAULT_PLAN
        return key_id, value

    def delete_tenant_key(self, key_id: str) -> None:
        if self.down:
            raise TemporarilyUnavailable("API Gateway is down")
        self.key_tenant.pop(key_id, None)
        self.key_values.pop(key_id, None)
        self.plan_of_key.pop(key_id, None)

    def apply_rate_limit(self, tenant_id: str, key_id: str, limit: RateLimitRecord | None) -> None:
        if self.down or key_id not in self.key_tenant:
            raise TemporarilyUnavailable("API Gateway did not take the rate limit")
        own = f"{DEFAULT_PLAN}-{tenant_id}"
        if limit is None:
            self.own_plans.pop(own, None)
            self.plan_of_key[key_id] = DEFAULT_PLAN
        else:
            self.own_plans[own] = limit.model_copy()
            self.plan_of_key[key_id] = own

    def limit_of(self, key_id: str) -> RateLimitRecord | None:
        """The throttle of the key's plan; None for the default plan."""
        return self.own_plans.get(self.plan_of_key[key_id])

    def keys_of(self, tenant_id: str) -> list[str]:
        return [key_id for key_id, owner in self.key_tenant.items() if owner == tenant_id]


class InMemoryEventTypeStore:
    """The catalog as ``tracker.adapters.catalog_table`` keeps it: per tenant, by name (byte order),
    search over the case-folded name and description; ``page_budget`` items read per search call
    stand in for the adapter's budget of Query pages."""

    def __init__(self, page_budget: int | None = None) -> None:
        self.types: dict[tuple[str, str], EventTypeRecord] = {}
        self.page_budget = page_budget
        self.batch_get_calls = 0
        self.keys_asked = 0
        self.down = False

    def _check_up(self) -> None:
        if self.down:
            raise TemporarilyUnavailable("the in-memory catalog is down")

    def create_event_type(self, record: EventTypeRecord) -> None:
        self._check_up()
        key = (record.tenant_id, record.name)
        if key in self.types:
            raise DuplicateEventType(record.name)
        self.types[key] = record.model_copy(deep=True)

    def get_event_type(self, tenant_id: str, name: str) -> EventTypeRecord | None:
        self._check_up()
        record = self.types.get((tenant_id, name))
        return record.model_copy(deep=True) if record else None

    def get_event_types(self, tenant_id: str, names: Collection[str]) -> dict[str, EventTypeRecord]:
        self._check_up()
        self.batch_get_calls += 1
        self.keys_asked += len(set(names))
        return {
            name: self.types[(tenant_id, name)].model_copy(deep=True)
            for name in set(names)
            if (tenant_id, name) in self.types
        }

    def update_event_type(self, tenant_id: str, name: str, changes: EventTypeChanges) -> EventTypeRecord | None:
        self._check_up()
        record = self.types.get((tenant_id, name))
        if record is None or changes.expected_version not in {None, record.version}:
            return None
        updates: dict[str, Any] = {"updated_at": changes.updated_at, "version": record.version + 1}
        if changes.description is not None:
            updates["description"] = changes.description
        if changes.points is not None:
            updates["points"] = changes.points
        if changes.properties is not None:
            updates["properties"] = changes.properties
        self.types[(tenant_id, name)] = record.model_copy(update=updates, deep=True)
        return self.types[(tenant_id, name)].model_copy(deep=True)

    def delete_event_type(self, tenant_id: str, name: str) -> bool:
        self._check_up()
        return self.types.pop((tenant_id, name), None) is not None

    def search_event_types(self, search: EventTypeSearch) -> tuple[list[EventTypeRecord], str | None]:
        self._check_up()
        in_range = sorted(
            (record for (tenant, _), record in self.types.items() if tenant == search.tenant_id),
            key=lambda record: record.name.encode(),
        )
        if search.after is not None:
            in_range = [record for record in in_range if record.name.encode() > search.after.encode()]
        matches: list[EventTypeRecord] = []
        for read, record in enumerate(in_range, start=1):
            text = f"{record.name.casefold()}\x00{record.description.casefold()}"
            if search.needle is None or search.needle in text:
                matches.append(record.model_copy(deep=True))
            if len(matches) > search.limit:
                return matches[: search.limit], matches[search.limit - 1].name
            if self.page_budget is not None and read >= self.page_budget and read < len(in_range):
                return matches, record.name
        return matches, None


def brute_force_user_events(
    records: Iterable[EventRecord],
    tenant_id: str,
    user_id: str,
    start: datetime | None,
    end: datetime | None,
    action: str | None,
    descending: bool,
) -> list[str]:
    """The ids of the user's events in ``[start, end)`` (of ``action``), by time then id, each once."""
    wanted = sorted(
        (
            record
            for record in records
            if record.tenant_id == tenant_id
            and record.user_id == user_id
            and (start is None or record.occurred_at >= start)
            and (end is None or record.occurred_at < end)
            and (action is None or record.action == action)
        ),
        key=lambda record: (record.occurred_at, record.event_id),
        reverse=descending,
    )
    return [record.event_id for record in wanted]
