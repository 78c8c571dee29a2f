"""Tenants and their keys: create, names, list, patch (active, rate limit), rotate, revoke, admin bootstrap."""

from __future__ import annotations

import unicodedata

import pytest
from pydantic import ValidationError

from tests.fakes import DEFAULT_PLAN, InMemoryTenantStore
from tracker.errors import BadRequest, Conflict, NotFound, Unauthorized
from tracker.interfaces import TemporarilyUnavailable
from tracker.records import RateLimitRecord
from tracker.tenant_models import RateLimit, TenantCreate, TenantPatch
from tracker.tenants import API_KEY_PREFIX, create_admin_key, create_key, hash_api_key, list_tenants, revoke_key

from .support import RECEIVED, Admin

# ---------------------------------------------------------------- create


def test_a_new_tenant_is_active_and_gets_a_key_shown_once(admin: Admin) -> None:
    # When a tenant is created
    created = admin.create("Shop A", "Europe/Kyiv")
    # Then it is active, with its timezone and a key
    assert created.name == "Shop A"
    assert created.timezone == "Europe/Kyiv"
    assert created.active is True
    assert created.created_at == RECEIVED
    assert created.tenant_id.startswith("ten_")
    assert created.api_key.startswith(API_KEY_PREFIX)
    assert len(created.api_key) > 40
    # And only the key's hash is stored, under the tenant
    key = admin.store.get_key_by_hash(hash_api_key(created.api_key))
    assert key is not None
    assert (key.key_id, key.role, key.tenant_id) == (created.key_id, "tenant", created.tenant_id)
    assert created.api_key not in repr(admin.store.__dict__)


def test_a_new_tenant_gets_a_usage_key_in_the_default_plan(admin: Admin) -> None:
    created = admin.create()
    (usage_key_id,) = admin.plans.keys_of(created.tenant_id)
    assert admin.plans.plan_of_key[usage_key_id] == DEFAULT_PLAN
    tenant = admin.store.tenants[created.tenant_id]
    assert (tenant.usage_key_id, tenant.usage_key) == (usage_key_id, admin.plans.key_values[usage_key_id])
    # The usage key is API Gateway's, not the tenant's x-api-key
    assert tenant.usage_key != created.api_key


def test_the_timezone_defaults_to_utc(admin: Admin) -> None:
    assert admin.create("Shop B").timezone == "UTC"


def test_two_tenants_get_different_ids_and_keys(admin: Admin) -> None:
    first, second = admin.create("A"), admin.create("B")
    assert first.tenant_id != second.tenant_id
    assert first.api_key != second.api_key
    assert first.key_id != second.key_id


@pytest.mark.parametrize("second_name", ["Shop A", "shop a", "SHOP A", "  Shop A  "])
def test_a_duplicate_name_is_a_conflict_whatever_its_case(admin: Admin, second_name: str) -> None:
    # Given a tenant "Shop A"
    admin.create("Shop A")
    # When another is created with the same name in another case (or padded)
    # Then it is a 409 and nothing more is stored
    with pytest.raises(Conflict) as caught:
        admin.create(second_name)
    assert caught.value.status == 409
    assert len(admin.store.tenants) == 1
    assert len(admin.store.keys_by_hash) == 1


def test_a_duplicate_name_leaves_no_usage_key_behind(admin: Admin) -> None:
    # Given a tenant "Shop A"
    admin.create("Shop A")
    # When "Shop A" is created again (a client retrying after a timeout, say) and refused
    for _ in range(3):
        with pytest.raises(Conflict):
            admin.create("Shop A")
    # Then API Gateway holds the usage key of the one tenant only, not one more per refused request
    assert len(admin.plans.key_tenant) == 1


def test_a_tenant_is_not_created_when_api_gateway_refuses_its_usage_key(admin: Admin) -> None:
    admin.plans.down = True
    with pytest.raises(TemporarilyUnavailable):
        admin.create("Shop A")
    assert admin.store.tenants == {}
    # And the name is still free
    admin.plans.down = False
    assert admin.create("Shop A").name == "Shop A"


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


def test_tenants_are_listed_by_creation_in_pages_without_keys(admin: Admin) -> None:
    # Given five tenants created one minute apart
    for n in range(5):
        admin.create(f"Shop {n}", minutes=n)
    # When they are listed two by two
    names: list[str] = []
    cursor, pages = None, 0
    while True:
        page = list_tenants(admin.store, 2, cursor)
        pages += 1
        names += [tenant.name for tenant in page.items]
        assert all("api_key" not in tenant.model_dump() for tenant in page.items)
        assert all("usage_key" not in str(tenant.model_dump()) for tenant in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    # Then every tenant is listed once, oldest first, in three pages
    assert names == [f"Shop {n}" for n in range(5)]
    assert pages == 3


def test_a_list_page_that_ends_at_the_last_tenant_has_no_cursor(admin: Admin) -> None:
    admin.create("A")
    admin.create("B", minutes=1)
    assert list_tenants(admin.store, 2, None).next_cursor is None


def test_a_list_cursor_that_was_not_made_by_the_list_is_a_400(tenant_store: InMemoryTenantStore) -> None:
    with pytest.raises(BadRequest):
        list_tenants(tenant_store, 2, "bm90IGEgY3Vyc29y.AAAA")


# ---------------------------------------------------------------- patch


def test_a_tenant_is_deactivated_and_reactivated(admin: Admin) -> None:
    created = admin.create()
    assert admin.patch(created.tenant_id, {"active": False}).active is False
    assert admin.store.tenants[created.tenant_id].active is False
    assert admin.patch(created.tenant_id, {"active": True}).active is True


def test_a_rate_limit_is_set_and_null_restores_the_default(admin: Admin) -> None:
    created = admin.create()
    (usage_key_id,) = admin.plans.keys_of(created.tenant_id)
    # When a rate limit is set
    out = admin.patch(created.tenant_id, {"rate_limit": {"rate": 5, "burst": 10}})
    # Then it is stored, shown, and the tenant's usage key moves to a plan with that throttle
    assert out.rate_limit == RateLimit(rate=5, burst=10)
    assert admin.store.tenants[created.tenant_id].rate_limit == RateLimitRecord(rate=5, burst=10)
    assert admin.plans.limit_of(usage_key_id) == RateLimitRecord(rate=5, burst=10)
    # When a patch leaves rate_limit out, Then it stays
    out = admin.patch(created.tenant_id, {"active": False})
    assert out.rate_limit == RateLimit(rate=5, burst=10)
    assert admin.plans.limit_of(usage_key_id) == RateLimitRecord(rate=5, burst=10)
    # When rate_limit is null, Then the default is back (no override, the default plan)
    out = admin.patch(created.tenant_id, {"rate_limit": None})
    assert out.rate_limit is None
    assert admin.store.tenants[created.tenant_id].rate_limit is None
    assert admin.plans.plan_of_key[usage_key_id] == DEFAULT_PLAN
    assert out.active is False


def test_a_rate_limit_api_gateway_refuses_leaves_the_tenant_unchanged(admin: Admin) -> None:
    created = admin.create()
    admin.plans.down = True
    with pytest.raises(TemporarilyUnavailable):
        admin.patch(created.tenant_id, {"rate_limit": {"rate": 5, "burst": 10}})
    assert admin.store.tenants[created.tenant_id].rate_limit is None


def test_an_empty_patch_changes_nothing(admin: Admin) -> None:
    created = admin.create()
    before = admin.store.tenants[created.tenant_id].model_copy()
    admin.patch(created.tenant_id, {})
    admin.patch(created.tenant_id, {"active": None})
    assert admin.store.tenants[created.tenant_id] == before


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


def test_patching_an_unknown_tenant_is_a_404(admin: Admin) -> None:
    with pytest.raises(NotFound):
        admin.patch("ten_nobody", {"active": False})


# ---------------------------------------------------------------- keys


def test_a_rotated_key_works_beside_the_old_one_until_that_is_revoked(admin: Admin) -> None:
    # Given a tenant and a second key
    created = admin.create()
    rotated = create_key(admin.store, created.tenant_id)
    assert rotated.key_id != created.key_id
    # Then both keys authenticate as the tenant
    assert admin.authenticate(created.api_key).tenant_id == created.tenant_id
    assert admin.authenticate(rotated.api_key).key_id == rotated.key_id
    # When the old key is revoked
    revoke_key(admin.store, created.tenant_id, created.key_id)
    # Then it is refused and the new one still works
    with pytest.raises(Unauthorized):
        admin.authenticate(created.api_key)
    assert admin.authenticate(rotated.api_key).tenant_id == created.tenant_id


def test_a_key_for_an_unknown_tenant_is_a_404(tenant_store: InMemoryTenantStore) -> None:
    with pytest.raises(NotFound):
        create_key(tenant_store, "ten_nobody")
    assert tenant_store.keys_by_hash == {}


def test_revoking_an_unknown_key_is_a_404(admin: Admin) -> None:
    created = admin.create()
    with pytest.raises(NotFound):
        revoke_key(admin.store, created.tenant_id, "key_nobody")
    # And revoking twice is a 404 the second time
    revoke_key(admin.store, created.tenant_id, created.key_id)
    with pytest.raises(NotFound):
        revoke_key(admin.store, created.tenant_id, created.key_id)


def test_a_key_cannot_be_revoked_through_another_tenant(admin: Admin) -> None:
    # Given tenants A and B
    tenant_a, tenant_b = admin.create("A"), admin.create("B")
    # When A's key is revoked under B's path, Then it is a 404 and A's key still works
    with pytest.raises(NotFound):
        revoke_key(admin.store, tenant_b.tenant_id, tenant_a.key_id)
    assert admin.authenticate(tenant_a.api_key).tenant_id == tenant_a.tenant_id


# ---------------------------------------------------------------- admin bootstrap


def test_the_admin_bootstrap_is_idempotent_for_a_given_key(admin: Admin) -> None:
    # When the operator runs the bootstrap twice with the same key
    first = create_admin_key(admin.store, "atk_operator-chosen-key")
    second = create_admin_key(admin.store, "atk_operator-chosen-key")
    # Then there is one admin key, and it authenticates as admin
    assert first == second
    assert len(admin.store.keys_by_hash) == 1
    principal = admin.authenticate("atk_operator-chosen-key")
    assert (principal.role, principal.tenant_id, principal.active) == ("admin", None, True)


def test_the_admin_bootstrap_without_a_key_makes_a_new_one(admin: Admin) -> None:
    first = create_admin_key(admin.store)
    second = create_admin_key(admin.store)
    assert first.api_key != second.api_key
    assert first.api_key.startswith(API_KEY_PREFIX)
    assert admin.authenticate(first.api_key).role == "admin"
    assert admin.authenticate(second.api_key).role == "admin"


# ---------------------------------------------------------------- strict types, usage-plan limits, names


@pytest.mark.parametrize(
    "body",
    [
        {"active": "false"},
        {"active": 0},
        {"active": "true"},
        {"rate_limit": {"rate": "5", "burst": 10}},
        {"rate_limit": {"rate": 5, "burst": "10"}},
        {"rate_limit": {"rate": 0.5, "burst": 10}},
        {"rate_limit": {"rate": 5.5, "burst": 10}},
        {"rate_limit": {"rate": True, "burst": 10}},
        {"rate_limit": {"rate": 5, "burst": 10.0}},
        {"rate_limit": {"rate": 10_001, "burst": 10}},
        {"rate_limit": {"rate": 5, "burst": 5_001}},
        {"rate_limit": {"rate": 5, "burst": 0}},
        {"rate_limit": "5/10"},
    ],
    ids=repr,
)
def test_a_patch_is_read_with_strict_types_and_usage_plan_limits(body: dict[str, object]) -> None:
    # Given a value of another JSON type, or a rate limit a usage plan cannot hold
    # Then the patch is refused (a string "false" used to deactivate the tenant; 0.5 to answer 503)
    with pytest.raises(ValidationError):
        TenantPatch.model_validate(body)


@pytest.mark.parametrize("limit", [{"rate": 1, "burst": 1}, {"rate": 10_000, "burst": 5_000}])
def test_whole_rate_limits_within_the_account_limits_are_accepted(admin: Admin, limit: dict[str, int]) -> None:
    created = admin.create()
    assert admin.patch(created.tenant_id, {"rate_limit": limit}).rate_limit == RateLimit(**limit)


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "Factory", "utc", "/etc/localtime", "../UTC", "Europe"])
def test_a_time_zone_is_a_name_of_the_tz_database_not_of_the_host(zone: str) -> None:
    with pytest.raises(ValidationError):
        TenantCreate(name="Shop", timezone=zone)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Kyiv", "Asia/Kolkata", "America/Argentina/Buenos_Aires", "US/Eastern"])
def test_tz_database_zones_and_links_are_accepted(zone: str) -> None:
    assert TenantCreate(name="Shop", timezone=zone).timezone == zone


def test_tenant_names_are_nfc_normalized(admin: Admin) -> None:
    # Given a tenant named in NFC, Then the same name in NFD is a duplicate
    admin.create(unicodedata.normalize("NFC", "Café"))
    with pytest.raises(Conflict):
        admin.create(unicodedata.normalize("NFD", "Café"))
