"""Every interface the domain logic needs from AWS, and the exceptions they raise.

The domain modules import these; ``tracker.adapters`` implements them (the only package that
imports boto3 or botocore); the functions wire one to the other.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    # Named in signatures only: a function imports the records its own store and logic use, not
    # every area's pydantic models (profiles, exports) through the interfaces.
    from tracker.aggregates import AggregateKey, ReceivedEvent, StoredAggregate
    from tracker.profile_models import ExportPart, ExportRecord, ProfileRecord
    from tracker.records import (
        ApiKeyRecord,
        ErasureRecord,
        EventRecord,
        EventTypeRecord,
        PropertyRule,
        RateLimitRecord,
        TenantRecord,
    )


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

    def get_key(self, owner_tenant_id: str | None, key_id: str) -> ApiKeyRecord | None:
        """A key by its owner (None: an admin key) and id; None once revoked."""

    def save_tenant_origins(self, tenant: TenantRecord, previous: list[str]) -> None:
        """Saves the tenant and its origin lookup (``origin_allowed``) from ``previous`` to its allowed origins."""

    def origin_allowed(self, origin: str) -> bool:
        """Whether any tenant allows this web origin."""

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


class CatalogReader(Protocol):
    """The rollup's read-only view of the catalog."""

    def tenant_catalog(self, tenant_id: str) -> list[EventTypeRecord]:
        """Every event type of the tenant."""


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

    def add_deleted_profiles(self, tenant_id: str, erasure_id: str, count: int) -> None: ...


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


# ---------------------------------------------------------------- access tokens


class SigningKeys(Protocol):
    """The secret that signs access tokens: the current version signs, the previous one still verifies."""

    def current(self) -> tuple[str, bytes]:
        """The version id (a token's ``kid``) and the key that signs new tokens."""

    def verifying(self, version_id: str) -> bytes | None:
        """The key of the current or previous version with this id; None for any other."""


# ---------------------------------------------------------------- event types (the catalog)


class DuplicateEventType(Exception):
    """The tenant's catalog has an event type of that name."""


@dataclass(frozen=True)
class EventTypeChanges:
    """What a PATCH sets (None: left as it is)."""

    description: str | None
    points: int | None
    properties: dict[str, PropertyRule] | None
    updated_at: datetime
    expected_version: int | None = None
    """Apply only to this version of the type (None: to whatever is stored)."""


@dataclass(frozen=True)
class EventTypeSearch:
    tenant_id: str
    needle: str | None
    """Case-folded text that the name or the description must contain (None: every type)."""
    limit: int
    after: str | None
    """The name after which the page starts."""


class EventTypeStore(Protocol):
    def create_event_type(self, record: EventTypeRecord) -> None:
        """Stores a new type; DuplicateEventType when the tenant has one of that name."""

    def get_event_type(self, tenant_id: str, name: str) -> EventTypeRecord | None: ...

    def get_event_types(self, tenant_id: str, names: Collection[str]) -> dict[str, EventTypeRecord]:
        """The types of these names that exist (a name without a type is absent from the answer)."""

    def update_event_type(self, tenant_id: str, name: str, changes: EventTypeChanges) -> EventTypeRecord | None:
        """Applies the changes atomically; the type as it is now, or None when there is no such type
        (or, with ``expected_version``, no longer that version)."""

    def delete_event_type(self, tenant_id: str, name: str) -> bool:
        """False when there was no such type."""

    def search_event_types(self, search: EventTypeSearch) -> tuple[list[EventTypeRecord], str | None]:
        """Up to ``limit`` matching types by name, and the name to resume after (None: nothing follows).

        A page may hold fewer than ``limit`` types with a position when the store stopped reading
        at its budget (a search that matches little in a very large catalog).
        """


# ---------------------------------------------------------------- profiles and exports


class ProfileStore(Protocol):
    """Profiles, in a table of their own encrypted with a key of its own."""

    def get_profile(self, tenant_id: str, user_id: str) -> ProfileRecord | None: ...

    def save_profile(self, record: ProfileRecord, email_key: str | None, expected_version: int | None) -> bool:
        """Writes the profile (version ``expected_version + 1``, 0 when new) unless another write came first
        (False); ``email_key`` is the keyed hash its email is found by."""

    def delete_profile(self, tenant_id: str, user_id: str) -> bool:
        """False when there was no profile."""

    def find_by_email_key(self, tenant_id: str, email_key: str) -> list[ProfileRecord]:
        """The tenant's profiles whose email has this keyed hash, by user id."""


class LookupKeySource(Protocol):
    def lookup_key(self) -> bytes:
        """The secret key of the email lookup's HMAC."""


class ExportStore(Protocol):
    def create_export(self, record: ExportRecord) -> None: ...

    def get_export(self, tenant_id: str, export_id: str) -> ExportRecord | None: ...

    def save_export(self, record: ExportRecord, expected_version: int) -> bool:
        """Stores the record (its ``version`` is ``expected_version + 1``); False when another write came first."""

    def user_export_ids(self, tenant_id: str, user_id: str) -> list[str]: ...


class ExportFiles(Protocol):
    """Where export files go (an S3 bucket of the stack)."""

    def put_file(self, key: str, body: bytes) -> None: ...

    def start_upload(self, key: str) -> str:
        """A multipart upload's id."""

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> str:
        """The part's ETag."""

    def complete_upload(self, key: str, upload_id: str, parts: list[ExportPart]) -> None: ...

    def abort_upload(self, key: str, upload_id: str) -> None: ...

    def delete_file(self, key: str) -> None: ...

    def download_url(self, key: str, seconds: int) -> str:
        """A presigned GET URL, valid ``seconds``."""


class ProfileEraser(Protocol):
    def erase_profile(self, tenant_id: str, user_id: str) -> int:
        """Deletes the user's profile and export files (their exports then say so); returns 1 for a profile."""


# ---------------------------------------------------------------- live activity (WebSocket)


@dataclass(frozen=True)
class LiveConnection:
    """A WebSocket connection of a tenant and what it subscribed to (``None``: every user of the tenant)."""

    connection_id: str
    tenant_id: str
    subscriptions: frozenset[str | None]


class TooManySubscriptions(Exception):
    """The connection holds the most subscriptions allowed; it must unsubscribe first."""


class ConnectionStore(Protocol):
    def add_connection(self, connection_id: str, tenant_id: str, expires_at: datetime) -> None:
        """Registers a new connection of the tenant, with no subscription, forgotten after ``expires_at``."""

    def tenant_of(self, connection_id: str) -> str | None:
        """The tenant of a registered connection; None when there is no such connection."""

    def subscribe(self, connection_id: str, tenant_id: str, user_id: str | None, limit: int) -> None:
        """Adds the subscription (a no-op when it is there); TooManySubscriptions at ``limit``."""

    def unsubscribe(self, connection_id: str, tenant_id: str, user_id: str | None) -> None: ...

    def tenant_connections(self, tenant_id: str) -> list[LiveConnection]:
        """Every connection of the tenant, read after every subscription that was acknowledged."""

    def remove_connection(self, connection_id: str, tenant_id: str | None = None) -> None:
        """Forgets the connection and its subscriptions (looking its tenant up when not given)."""


class ConnectionGone(Exception):
    """The client is no longer connected (API Gateway's 410 Gone)."""


class LivePusher(Protocol):
    def push(self, connection_id: str, data: bytes) -> None:
        """Sends one message to a connected client; ConnectionGone when it left."""
