"""Tenants and their keys: create, names, list, patch, rotate, revoke, admin bootstrap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from tests.fakes import InMemoryTenantStore
from tracker.auth import authenticate
from tracker.errors import BadRequest, Conflict, NotFound, Unauthorized
from tracker.models import RateLimit, TenantCreate, TenantCreated, TenantPatch
from tracker.tenants import (
    API_KEY_PREFIX,
    create_admin_key,
    create_key,
    create_tenant,
    hash_api_key,
    list_tenants,
    revoke_key,
    update_tenant,
)

NOW = datetime(2025, 10, 10, 12, 0, tzinfo=UTC)


def new_tenant(store: InMemoryTenantStore, name: str = "Shop A", timezone: str = "UTC", minutes: int = 0) -> TenantCreated:
    return create_tenant(store, TenantCreate(name=name, timezone=timezone), now=NOW + timedelta(minutes=minutes))


# ---------------------------------------------------------------- create


def test_a_new_tenant_is_active_and_gets_a_key_shown_once(tenant_store: InMemoryTenantStore) -> None:
    # When a tenant is created
    created = new_tenant(tenant_store, "Shop A", "Europe/Kyiv")
    # Then it is active, with its timezone and a key
    assert created.name == "Shop A"
    assert created.timezone == "Europe/Kyiv"
    assert created.active is True
    assert created.created_at == NOW
    assert created.tenant_id.startswith("ten_")
    assert created.api_key.startswith(API_KEY_PREFIX)
    assert len(created.api_key) > 40
    # And only the key's hash is stored, under the tenant
    key = tenant_store.get_key_by_hash(hash_api_key(created.api_key))
    assert key is not None
    assert (key.key_id, key.role, key.tenant_id) == (created.key_id, "tenant", created.tenant_id)
    stored = repr(tenant_store.__dict__)
    assert created.api_key not in stored


def test_the_timezone_defaults_to_utc(tenant_store: InMemoryTenantStore) -> None:
    assert create_tenant(tenant_store, TenantCreate(name="Shop B")).timezone == "UTC"


def test_two_tenants_get_different_ids_and_keys(tenant_store: InMemoryTenantStore) -> None:
    first, second = new_tenant(tenant_store, "A"), new_tenant(tenant_store, "B")
    assert first.tenant_id != second.tenant_id
    assert first.api_key != second.api_key
    assert first.key_id != second.key_id


@pytest.mark.parametrize("second_name", ["Shop A", "shop a", "SHOP A", "  Shop A  "])
def test_a_duplicate_name_is_a_conflict_whatever_its_case(tenant_store: InMemoryTenantStore, second_name: str) -> None:
    # Given a tenant "Shop A"
    new_tenant(tenant_store, "Shop A")
    # When another is created with the same name in another case (or padded)
    # Then it is a 409 and nothing more is stored
    with pytest.raises(Conflict) as caught:
        new_tenant(tenant_store, second_name)
    assert caught.value.status == 409
    assert len(tenant_store.tenants) == 1
    assert len(tenant_store.keys_by_hash) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 129},
        {"name": "Shop", "timezone": "Mars/Olympus_Mons"},
        {"name": "Shop", "timezone": ""},
        {"name": "Shop", "tenant_id": "ten_mine"},
        {},
    ],
    ids=["empty", "blank", "long", "unknown-zone", "empty-zone", "extra-field", "no-name"],
)
def test_a_tenant_body_that_breaks_the_schema_is_refused(body: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        TenantCreate.model_validate(body)


# ---------------------------------------------------------------- list


def test_tenants_are_listed_by_creation_in_pages_without_keys(tenant_store: InMemoryTenantStore) -> None:
    # Given five tenants created one minute apart
    for n in range(5):
        new_tenant(tenant_store, f"Shop {n}", minutes=n)
    # When they are listed two by two
    names, cursor, pages = [], None, 0
    while True:
        page = list_tenants(tenant_store, 2, cursor)
        pages += 1
        names += [tenant.name for tenant in page.items]
        assert all("api_key" not in tenant.model_dump() for tenant in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    # Then every tenant is listed once, oldest first, in three pages
    assert names == [f"Shop {n}" for n in range(5)]
    assert pages == 3


def test_a_list_page_that_ends_at_the_last_tenant_has_no_cursor(tenant_store: InMemoryTenantStore) -> None:
    new_tenant(tenant_store, "A")
    new_tenant(tenant_store, "B", minutes=1)
    assert list_tenants(tenant_store, 2, None).next_cursor is None


def test_a_list_cursor_that_was_not_made_by_the_list_is_a_400(tenant_store: InMemoryTenantStore) -> None:
    with pytest.raises(BadRequest):
        list_tenants(tenant_store, 2, "bm90IGEgY3Vyc29y.AAAA")


# ---------------------------------------------------------------- patch


def test_a_tenant_is_deactivated_and_reactivated(tenant_store: InMemoryTenantStore) -> None:
    created = new_tenant(tenant_store)
    assert update_tenant(tenant_store, created.tenant_id, TenantPatch(active=False)).active is False
    assert tenant_store.tenants[created.tenant_id].active is False
    assert update_tenant(tenant_store, created.tenant_id, TenantPatch(active=True)).active is True


def test_a_rate_limit_is_set_and_null_restores_the_default(tenant_store: InMemoryTenantStore) -> None:
    created = new_tenant(tenant_store)
    # When a rate limit is set
    out = update_tenant(tenant_store, created.tenant_id, TenantPatch.model_validate({"rate_limit": {"rate": 5, "burst": 10}}))
    # Then it is stored and shown
    assert out.rate_limit == RateLimit(rate=5, burst=10)
    assert tenant_store.tenants[created.tenant_id].rate_limit is not None
    # When a patch leaves rate_limit out, Then it stays
    out = update_tenant(tenant_store, created.tenant_id, TenantPatch.model_validate({"active": False}))
    assert out.rate_limit == RateLimit(rate=5, burst=10)
    # When rate_limit is null, Then the default is back (no override)
    out = update_tenant(tenant_store, created.tenant_id, TenantPatch.model_validate({"rate_limit": None}))
    assert out.rate_limit is None
    assert tenant_store.tenants[created.tenant_id].rate_limit is None
    assert out.active is False


def test_an_empty_patch_changes_nothing(tenant_store: InMemoryTenantStore) -> None:
    created = new_tenant(tenant_store)
    before = tenant_store.tenants[created.tenant_id].model_copy()
    update_tenant(tenant_store, created.tenant_id, TenantPatch.model_validate({}))
    update_tenant(tenant_store, created.tenant_id, TenantPatch.model_validate({"active": None}))
    assert tenant_store.tenants[created.tenant_id] == before


@pytest.mark.parametrize(
    "body",
    [
        {"rate_limit": {"rate": 0, "burst": 10}},
        {"rate_limit": {"rate": 5, "burst": 0}},
        {"rate_limit": {"rate": 5}},
        {"active": "maybe"},
        {"name": "Renamed"},
        {"timezone": "Europe/Kyiv"},
    ],
    ids=["zero-rate", "zero-burst", "no-burst", "not-bool", "rename", "timezone-is-fixed"],
)
def test_a_patch_that_breaks_the_schema_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TenantPatch.model_validate(body)


def test_patching_an_unknown_tenant_is_a_404(tenant_store: InMemoryTenantStore) -> None:
    with pytest.raises(NotFound):
        update_tenant(tenant_store, "ten_nobody", TenantPatch(active=False))


# ---------------------------------------------------------------- keys


def test_a_rotated_key_works_beside_the_old_one_until_that_is_revoked(tenant_store: InMemoryTenantStore) -> None:
    # Given a tenant and a second key
    created = new_tenant(tenant_store)
    rotated = create_key(tenant_store, created.tenant_id)
    assert rotated.key_id != created.key_id
    # Then both keys authenticate as the tenant
    assert authenticate(tenant_store, created.api_key).tenant_id == created.tenant_id
    assert authenticate(tenant_store, rotated.api_key).key_id == rotated.key_id
    # When the old key is revoked
    revoke_key(tenant_store, created.tenant_id, created.key_id)
    # Then it is refused and the new one still works
    with pytest.raises(Unauthorized):
        authenticate(tenant_store, created.api_key)
    assert authenticate(tenant_store, rotated.api_key).tenant_id == created.tenant_id


def test_a_key_for_an_unknown_tenant_is_a_404(tenant_store: InMemoryTenantStore) -> None:
    with pytest.raises(NotFound):
        create_key(tenant_store, "ten_nobody")
    assert tenant_store.keys_by_hash == {}


def test_revoking_an_unknown_key_is_a_404(tenant_store: InMemoryTenantStore) -> None:
    created = new_tenant(tenant_store)
    with pytest.raises(NotFound):
        revoke_key(tenant_store, created.tenant_id, "key_nobody")
    # And revoking twice is a 404 the second time
    revoke_key(tenant_store, created.tenant_id, created.key_id)
    with pytest.raises(NotFound):
        revoke_key(tenant_store, created.tenant_id, created.key_id)


def test_a_key_cannot_be_revoked_through_another_tenant(tenant_store: InMemoryTenantStore) -> None:
    # Given tenants A and B
    tenant_a, tenant_b = new_tenant(tenant_store, "A"), new_tenant(tenant_store, "B")
    # When A's key is revoked under B's path, Then it is a 404 and A's key still works
    with pytest.raises(NotFound):
        revoke_key(tenant_store, tenant_b.tenant_id, tenant_a.key_id)
    assert authenticate(tenant_store, tenant_a.api_key).tenant_id == tenant_a.tenant_id


# ---------------------------------------------------------------- admin bootstrap


def test_the_admin_bootstrap_is_idempotent_for_a_given_key(tenant_store: InMemoryTenantStore) -> None:
    # When the operator runs the bootstrap twice with the same key
    first = create_admin_key(tenant_store, "atk_operator-chosen-key")
    second = create_admin_key(tenant_store, "atk_operator-chosen-key")
    # Then there is one admin key, and it authenticates as admin
    assert first == second
    assert len(tenant_store.keys_by_hash) == 1
    principal = authenticate(tenant_store, "atk_operator-chosen-key")
    assert (principal.role, principal.tenant_id, principal.active) == ("admin", None, True)


def test_the_admin_bootstrap_without_a_key_makes_a_new_one(tenant_store: InMemoryTenantStore) -> None:
    first = create_admin_key(tenant_store)
    second = create_admin_key(tenant_store)
    assert first.api_key != second.api_key
    assert first.api_key.startswith(API_KEY_PREFIX)
    assert authenticate(tenant_store, first.api_key).role == "admin"
    assert authenticate(tenant_store, second.api_key).role == "admin"
