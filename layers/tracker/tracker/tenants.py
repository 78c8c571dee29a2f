"""Tenants and their API keys. Keys are 256 random bits, shown once, stored as SHA-256."""

from __future__ import annotations

import re
import secrets
from datetime import datetime

from tracker.cursor import decode_cursor, encode_cursor
from tracker.errors import Conflict, NotFound, Unavailable
from tracker.interfaces import DuplicateName, TemporarilyUnavailable, TenantStore, UsagePlans
from tracker.records import ApiKeyRecord, RateLimitRecord, Role, TenantRecord, hash_api_key
from tracker.tenant_models import (
    ApiKeyCreated,
    KeyRole,
    RateLimit,
    TenantCreate,
    TenantCreated,
    TenantOut,
    TenantPage,
    TenantPatch,
)
from tracker.timefmt import utc_now

API_KEY_PREFIX = "atk_"
_LIST_BINDING = ("tenants",)
# A position in the tenant list: "{created_at}#{tenant_id}".
_LIST_POSITION = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z#ten_[0-9a-f]{16}")


def _new_key(role: Role, tenant_id: str | None, now: datetime, api_key: str | None = None) -> tuple[str, ApiKeyRecord]:
    api_key = api_key or API_KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKeyRecord(
        key_id=f"key_{secrets.token_hex(8)}",
        key_hash=hash_api_key(api_key),
        role=role,
        tenant_id=tenant_id,
        created_at=now,
    )
    return api_key, record


def tenant_out(tenant: TenantRecord) -> TenantOut:
    limit = tenant.rate_limit
    rate_limit = RateLimit(rate=round(limit.rate), burst=limit.burst) if limit else None
    return TenantOut(
        tenant_id=tenant.tenant_id,
        name=tenant.name,
        timezone=tenant.timezone,
        active=tenant.active,
        created_at=tenant.created_at,
        rate_limit=rate_limit,
        allowed_origins=tenant.allowed_origins,
        validation=tenant.validation,
    )


def create_tenant(
    store: TenantStore, plans: UsagePlans, request: TenantCreate, now: datetime | None = None
) -> TenantCreated:
    now = now or utc_now()
    tenant_id = f"ten_{secrets.token_hex(8)}"
    usage_key_id, usage_key = plans.create_tenant_key(tenant_id)
    tenant = TenantRecord(
        tenant_id=tenant_id,
        name=request.name,
        timezone=request.timezone,
        active=True,
        created_at=now,
        usage_key_id=usage_key_id,
        usage_key=usage_key,
    )
    api_key, key = _new_key("tenant", tenant.tenant_id, now)
    try:
        store.create_tenant(tenant, key)
    except DuplicateName:
        plans.delete_tenant_key(usage_key_id)
        raise Conflict(f"A tenant named {request.name!r} exists.") from None
    return TenantCreated(**tenant_out(tenant).model_dump(), key_id=key.key_id, api_key=api_key)


def list_tenants(store: TenantStore, limit: int, cursor: str | None) -> TenantPage:
    after = decode_cursor(cursor, _LIST_BINDING, _LIST_POSITION) if cursor else None
    tenants, position = store.list_tenants(limit, after)
    next_cursor = encode_cursor(position, _LIST_BINDING) if position else None
    return TenantPage(items=[tenant_out(tenant) for tenant in tenants], next_cursor=next_cursor)


def _existing(store: TenantStore, tenant_id: str) -> TenantRecord:
    tenant = store.get_tenant(tenant_id)
    if tenant is None:
        raise NotFound(f"No tenant {tenant_id}.")
    return tenant


def update_tenant(store: TenantStore, plans: UsagePlans, tenant_id: str, patch: TenantPatch) -> TenantOut:
    """Applies the fields the patch sets; ``rate_limit: null`` restores the default.

    ``validation`` reaches ingest through the authorizer's answer to each request: a new mode
    applies to the next request.
    """
    tenant = _existing(store, tenant_id)
    if "active" in patch.model_fields_set and patch.active is not None:
        tenant.active = patch.active
    if "rate_limit" in patch.model_fields_set:
        limit = patch.rate_limit
        tenant.rate_limit = RateLimitRecord(rate=limit.rate, burst=limit.burst) if limit else None
        if tenant.usage_key_id:
            plans.apply_rate_limit(tenant.tenant_id, tenant.usage_key_id, tenant.rate_limit)
    if "validation" in patch.model_fields_set:
        tenant.validation = patch.validation
    if "allowed_origins" in patch.model_fields_set:
        previous = tenant.allowed_origins
        # Browsers send the scheme and host in lower case; one spelling per origin.
        tenant.allowed_origins = sorted({origin.lower() for origin in patch.allowed_origins or []})
        store.save_tenant_origins(tenant, previous)
    else:
        store.save_tenant(tenant)
    return tenant_out(tenant)


def create_key(
    store: TenantStore, tenant_id: str, role: KeyRole = "tenant", now: datetime | None = None
) -> ApiKeyCreated:
    _existing(store, tenant_id)
    api_key, key = _new_key(role, tenant_id, now or utc_now())
    store.add_key(key)
    return ApiKeyCreated(key_id=key.key_id, api_key=api_key, role=role)


def revoke_key(store: TenantStore, tenant_id: str, key_id: str) -> None:
    if not store.delete_key(tenant_id, key_id):
        raise NotFound(f"No key {key_id} for tenant {tenant_id}.")


def create_admin_key(store: TenantStore, api_key: str | None = None, now: datetime | None = None) -> ApiKeyCreated:
    """The operator's bootstrap: an admin key (the given one, or a new one). Idempotent for a given key."""
    if api_key:
        existing = store.get_key_by_hash(hash_api_key(api_key))
        if existing is not None and existing.role == "admin":
            return ApiKeyCreated(key_id=existing.key_id, api_key=api_key)
    api_key, key = _new_key("admin", None, now or utc_now(), api_key)
    try:
        store.add_key(key)
    except TemporarilyUnavailable:
        raise Unavailable("The tenant store is busy; retry.") from None
    return ApiKeyCreated(key_id=key.key_id, api_key=api_key)
