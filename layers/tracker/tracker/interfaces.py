"""Every interface the domain logic needs from AWS, and the exceptions they raise.

The domain modules import these; ``tracker.adapters`` implements them (the only package that
imports boto3 or botocore); the functions wire one to the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from tracker.aggregates import AggregateKey, ReceivedEvent, StoredAggregate
from tracker.records import ApiKeyRecord, ErasureRecord, EventRecord, RateLimitRecord, TenantRecord


class TemporarilyUnavailable(Exception):
    """An AWS service throttled, timed out or could not be reached after retries: a 503, retry later."""


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
        """Raises TemporarilyUnavailable when the store does not answer."""


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


# ---------------------------------------------------------------- rollup and statistics


@dataclass(frozen=True)
class Lag:
    """A tenant whose last run part could not be written: its statistics stay at an older snapshot."""

    token: int
    as_of: datetime | None
    dirty: tuple[int, ...]
    """Run parts whose journaled keys of this tenant must be rewritten before it moves on."""


@dataclass(frozen=True)
class Progress:
    """The rollup's one record: the committed snapshot, the lease, the fence.

    A run part gets a token from ``fence`` (one more than the last handed out) with a lease until
    ``lease_until``; its commit is one write conditional on ``fence`` still being its token, so a
    second run, a run past its lease or a run an erasure fenced out cannot commit.
    """

    as_of: datetime | None
    """Every event received before this instant is counted, and none after it (None: no run yet)."""
    token: int
    """The last committed run part: readers take the values written up to it."""
    fence: int
    """The last token handed out, to a run part or to an erasure."""
    lease_until: datetime | None
    """The holder of ``fence`` runs until then; None when no run holds the lease."""
    dirty: tuple[int, ...] = ()
    """Abandoned run parts: the keys in their journals must be rewritten by the next commit."""
    lagging: Mapping[str, Lag] = field(default_factory=dict)

    def snapshot(self, tenant_id: str) -> tuple[int, datetime | None]:
        """The committed token and ``as_of`` of one tenant's statistics."""
        lag = self.lagging.get(tenant_id)
        return (lag.token, lag.as_of) if lag else (self.token, self.as_of)


NO_PROGRESS = Progress(as_of=None, token=0, fence=0, lease_until=None)


class RollupConflict(Exception):
    """Another run or an erasure took the fence: this run stops without committing anything."""


class RollupStore(Protocol):
    def load_progress(self) -> Progress: ...

    def replace_progress(self, progress: Progress, expected_fence: int) -> bool:
        """Writes the record if its fence is still ``expected_fence``; False if it moved."""

    def received_events(self, start: datetime, end: datetime) -> Iterator[ReceivedEvent]:
        """Events received in ``[start, end)``, in ``received_key`` order."""

    def write_journal(self, token: int, keys: Sequence[AggregateKey]) -> None: ...

    def read_journal(self, token: int) -> list[AggregateKey]: ...

    def delete_journals(self, tokens: Iterable[int]) -> None: ...

    def load_aggregates(self, keys: Iterable[AggregateKey]) -> dict[AggregateKey, StoredAggregate]:
        """The items of these keys that exist."""

    def write_aggregates(self, items: Sequence[StoredAggregate]) -> dict[AggregateKey, Exception]:
        """Writes each item unless a higher token wrote it (``RollupConflict``); the failures by key."""


class StatsStore(Protocol):
    def load_progress(self) -> Progress: ...

    def read_partition(self, partition: str, low: str | None = None, high: str | None = None) -> list[StoredAggregate]:
        """Items of one partition with ``low <= sort key <= high``, in sort key order."""

    def read_partitions(self, partitions: Iterable[str]) -> list[StoredAggregate]:
        """Every item of each partition."""


# ---------------------------------------------------------------- erasure


class ErasureStore(Protocol):
    def create_erasure(self, record: ErasureRecord) -> None: ...

    def get_erasure(self, tenant_id: str, erasure_id: str) -> ErasureRecord | None: ...

    def set_erasure_status(
        self, tenant_id: str, erasure_id: str, status: Literal["running", "completed", "failed"], now: datetime
    ) -> None: ...

    def add_deleted_events(self, tenant_id: str, erasure_id: str, count: int) -> None: ...


class UserEventEraser(Protocol):
    def user_event_pages(self, tenant_id: str, user_id: str) -> Iterator[list[str]]:
        """The keys of the user's events, a page at a time."""

    def delete_events(self, keys: list[str]) -> None: ...


class UserAggregateEraser(Protocol):
    def load_progress(self) -> Progress: ...

    def replace_progress(self, progress: Progress, expected_fence: int) -> bool:
        """Writes the record if its fence is still ``expected_fence``; False if it moved."""

    def user_items(self, tenant_id: str, user_id: str) -> list[AggregateKey]:
        """The keys of the user's own partition."""

    def tombstone(self, keys: Sequence[AggregateKey], token: int) -> None:
        """Empties these items for good, unless a higher token wrote them."""
