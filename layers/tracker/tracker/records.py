"""What is stored, and the DynamoDB keys of each record: the access patterns live here.

Events table
    ``pk = {tenant}#{event_id}``: one item per event, so a conditional put makes ingest idempotent.
    GSI ``by_user_time``: ``user_key = {tenant}#{user_id}``, ``occurred_key = {occurred_at}#{event_id}``:
    a user's events are one key range ordered by time.
    GSI ``by_received_v2``: ``received_part = {received hour}#{shard}``,
    ``received_key = {received_at}#{tenant}#{event_id}``:
    what arrived in a period, sharded so that one hot hour spreads over ``RECEIVED_SHARDS`` partitions.
Tenants table (``pk``, ``sk``)
    ``TENANT#{id} / TENANT``: a tenant (sparse GSI ``tenant_list`` lists them by creation).
    ``TENANT_NAME#{name} / TENANT_NAME``: reserves a name.
    ``{owner} / KEY#{key_id}``: a key of its owner (``TENANT#{id}`` or ``ADMIN``), with its hash.
    ``APIKEY#{sha256} / APIKEY``: the authorizer's lookup of a key by its hash.
Catalog table (``tenant_id``, ``name``)
    One item per event type of a tenant: a tenant's catalog is one key range ordered by name.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from tracker.timefmt import format_utc

RECEIVED_SHARDS = 8

Role = Literal["tenant", "ingest", "admin"]
"""``ingest`` keys (publishable: safe in a web page or an app) may only add events."""
ValidationMode = Literal["off", "flag", "block"]
"""A tenant's tracking plan: ignore the catalog, store and flag events that break it, or reject them."""
ViolationKind = Literal["unplanned_action", "required_missing", "type_mismatch"]


class Violation(BaseModel):
    """How an event breaks its tenant's tracking plan; ``field`` is ``action`` or ``metadata.{key}``."""

    kind: ViolationKind
    field: str


class EventRecord(BaseModel):
    tenant_id: str
    event_id: str
    user_id: str
    action: str
    occurred_at: datetime
    received_at: datetime
    metadata: dict[str, Any] | None
    fingerprint: str
    violations: list[Violation] = []
    """Stored in ``flag`` mode: what the event broke of the plan when it was received (not content)."""

    @property
    def pk(self) -> str:
        return event_pk(self.tenant_id, self.event_id)

    @property
    def user_key(self) -> str:
        return user_key(self.tenant_id, self.user_id)

    @property
    def occurred_key(self) -> str:
        return f"{format_utc(self.occurred_at)}#{self.event_id}"

    @property
    def received_part(self) -> str:
        shard = int(hashlib.sha256(self.pk.encode()).hexdigest()[:8], 16) % RECEIVED_SHARDS
        return f"{format_utc(self.received_at)[:13]}#{shard}"

    @property
    def received_key(self) -> str:
        return f"{format_utc(self.received_at)}#{self.tenant_id}#{self.event_id}"


def event_pk(tenant_id: str, event_id: str) -> str:
    return f"{tenant_id}#{event_id}"


def user_key(tenant_id: str, user_id: str) -> str:
    return f"{tenant_id}#{user_id}"


def hash_api_key(api_key: str) -> str:
    """What a key is stored and looked up by (``APIKEY#{sha256}``): never the key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest()


class RateLimitRecord(BaseModel):
    rate: float
    burst: int


class TenantRecord(BaseModel):
    tenant_id: str
    name: str
    timezone: str
    active: bool
    created_at: datetime
    rate_limit: RateLimitRecord | None = None
    usage_key_id: str | None = None
    """The tenant's API Gateway API key, by which its usage plan (rate limit) applies."""
    usage_key: str | None = None
    allowed_origins: list[str] = []
    """Web origins whose pages may call the ingest routes with an ``ingest`` key (CORS)."""
    validation: ValidationMode = "off"


class ApiKeyRecord(BaseModel):
    """A key as stored: never the key itself, only its SHA-256 (keys are 256 random bits)."""

    key_id: str
    key_hash: str
    role: Role
    tenant_id: str | None
    created_at: datetime


class ErasureRecord(BaseModel):
    tenant_id: str
    erasure_id: str
    user_id: str
    status: Literal["pending", "running", "completed", "failed"]
    deleted_events: int
    created_at: datetime
    updated_at: datetime
    deleted_profiles: int = 0


PropertyType = Literal["number", "string", "boolean"]


class PropertyRule(BaseModel):
    type: PropertyType
    required: bool = False
    declared_at: datetime | None = None
    """Since when the property has had this type: numeric statistics count events received from then on."""


class EventTypeRecord(BaseModel):
    """One entry of a tenant's catalog: an action's meaning, points and declared metadata properties."""

    tenant_id: str
    name: str
    description: str
    points: int
    properties: dict[str, PropertyRule]
    created_at: datetime
    updated_at: datetime
    version: int = 0
    """Incremented by every change: a change computed from one version is applied only to that version."""
