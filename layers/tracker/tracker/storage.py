"""The interfaces the domain logic needs from a store; ``tracker.dynamodb`` implements them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tracker.records import ApiKeyRecord, EventRecord, RateLimitRecord, TenantRecord


class StoreUnavailable(Exception):
    """The store throttled or failed after its retries; the caller may retry later."""


class DuplicateName(Exception):
    """A tenant with that name exists."""


@dataclass(frozen=True)
class UserEventsQuery:
    tenant_id: str
    user_id: str
    start: datetime | None
    end: datetime | None
    action: str | None
    descending: bool
    limit: int
    after: str | None
    """The ``occurred_key`` of the last event of the previous page."""


class EventStore(Protocol):
    def put_new(self, record: EventRecord) -> EventRecord | None:
        """Stores the event unless its id is taken; returns the stored one when it is."""

    def query_user_events(self, query: UserEventsQuery) -> tuple[list[EventRecord], bool]:
        """Up to ``query.limit`` events in order, and whether more follow."""

    def ping(self) -> None:
        """Raises StoreUnavailable when the store does not answer."""


class UsagePlans(Protocol):
    """Where rate limits are enforced: API Gateway usage plans in the cloud."""

    def create_tenant_key(self, tenant_id: str) -> tuple[str, str]:
        """A usage key for a new tenant, in the default plan: its id and value."""

    def apply_rate_limit(self, tenant_id: str, key_id: str, limit: RateLimitRecord | None) -> None:
        """The tenant's own rate limit, or the default one (None)."""

    def delete_tenant_key(self, key_id: str) -> None:
        """Removes a usage key (of a tenant that was not created after all)."""


class TenantStore(Protocol):
    def create_tenant(self, tenant: TenantRecord, key: ApiKeyRecord) -> None:
        """Creates the tenant with its first key; DuplicateName when the name is taken."""

    def get_tenant(self, tenant_id: str) -> TenantRecord | None: ...

    def list_tenants(self, limit: int, after: str | None) -> tuple[list[TenantRecord], str | None]:
        """A page of tenants by creation, and the position after it (None on the last page)."""

    def save_tenant(self, tenant: TenantRecord) -> None: ...

    def add_key(self, key: ApiKeyRecord) -> None: ...

    def get_key_by_hash(self, key_hash: str) -> ApiKeyRecord | None: ...

    def delete_key(self, owner_tenant_id: str | None, key_id: str) -> bool:
        """Revokes a key of the owner (None: an admin key); False when there is no such key."""
