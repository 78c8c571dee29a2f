"""Who a key is, and what the IAM policy the authorizer returns lets it call.

The policies are evaluated the way API Gateway does (``tests.iam``): a route is allowed when some
Allow statement matches its method ARN and no Deny does.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes import InMemoryTenantStore
from tests.iam import method_arn
from tests.iam import allows as policy_allows
from tracker.auth import Principal, authenticate, policy
from tracker.errors import Unauthorized
from tracker.models import TenantCreate, TenantPatch
from tracker.tenants import create_admin_key, create_tenant, revoke_key, update_tenant

API = "arn:aws:execute-api:eu-central-1:123456789012:a1b2c3d4e5"
STAGE = "prod"
ASKED = f"{API}/{STAGE}/POST/v1/events"
"""The route the authorizer was called for; the policy must cover the others too (it is cached per key)."""

DATA_ROUTES = [
    ("POST", "v1/events"),
    ("POST", "v1/events/batch"),
    ("GET", "v1/users/user-1/events"),
    ("GET", "v1/users/a%2Fb/events"),
    ("GET", "v1/stats/daily"),
    ("DELETE", "v1/users/user-1"),
    ("GET", "v1/health"),
]
ADMIN_ROUTES = [
    ("POST", "v1/tenants"),
    ("GET", "v1/tenants"),
    ("PATCH", "v1/tenants/ten_1"),
    ("POST", "v1/tenants/ten_1/keys"),
    ("DELETE", "v1/tenants/ten_1/keys/key_1"),
]


def allows(answer: dict[str, Any], method: str, path: str, stage: str = STAGE) -> bool:
    """API Gateway's decision for one route: an explicit Deny wins, then an Allow, else deny."""
    return policy_allows(answer, method_arn(API, stage, method, path))


def principal(role: str = "tenant", *, active: bool = True) -> Principal:
    tenant_id = "ten_1" if role == "tenant" else None
    return Principal(key_id="key_1", role=role, tenant_id=tenant_id, active=active)  # type: ignore[arg-type]


# ---------------------------------------------------------------- authenticate


@pytest.mark.parametrize("api_key", [None, "", "atk_unknown", "not even a key"], ids=["none", "empty", "unknown", "junk"])
def test_no_key_or_an_unknown_key_is_unauthorized(tenant_store: InMemoryTenantStore, api_key: str | None) -> None:
    create_tenant(tenant_store, TenantCreate(name="Shop A"))
    with pytest.raises(Unauthorized) as caught:
        authenticate(tenant_store, api_key)
    assert caught.value.status == 401


def test_a_tenant_key_is_its_tenant(tenant_store: InMemoryTenantStore) -> None:
    created = create_tenant(tenant_store, TenantCreate(name="Shop A", timezone="Europe/Kyiv"))
    principal = authenticate(tenant_store, created.api_key)
    assert (principal.key_id, principal.role, principal.tenant_id, principal.active) == (
        created.key_id,
        "tenant",
        created.tenant_id,
        True,
    )


def test_a_revoked_key_is_unauthorized(tenant_store: InMemoryTenantStore) -> None:
    created = create_tenant(tenant_store, TenantCreate(name="Shop A"))
    revoke_key(tenant_store, created.tenant_id, created.key_id)
    with pytest.raises(Unauthorized):
        authenticate(tenant_store, created.api_key)


def test_the_key_of_an_inactive_tenant_is_known_but_inactive(tenant_store: InMemoryTenantStore) -> None:
    created = create_tenant(tenant_store, TenantCreate(name="Shop A"))
    update_tenant(tenant_store, created.tenant_id, TenantPatch(active=False))
    assert authenticate(tenant_store, created.api_key).active is False


def test_the_key_of_a_tenant_that_is_gone_is_inactive(tenant_store: InMemoryTenantStore) -> None:
    created = create_tenant(tenant_store, TenantCreate(name="Shop A"))
    del tenant_store.tenants[created.tenant_id]
    assert authenticate(tenant_store, created.api_key).active is False


def test_an_admin_key_is_active_and_has_no_tenant(tenant_store: InMemoryTenantStore) -> None:
    admin = create_admin_key(tenant_store, "atk_admin")
    principal = authenticate(tenant_store, "atk_admin")
    assert (principal.key_id, principal.role, principal.tenant_id, principal.active) == (admin.key_id, "admin", None, True)


# ---------------------------------------------------------------- policies


def test_a_tenant_policy_allows_every_data_route_and_no_admin_route() -> None:
    answer = policy(principal("tenant"), ASKED)
    assert [route for route in DATA_ROUTES if not allows(answer, *route)] == []
    assert [route for route in ADMIN_ROUTES if allows(answer, *route)] == []


def test_an_admin_policy_allows_only_the_tenants_routes() -> None:
    answer = policy(principal("admin"), f"{API}/{STAGE}/GET/v1/tenants")
    assert [route for route in ADMIN_ROUTES if not allows(answer, *route)] == []
    assert [route for route in DATA_ROUTES if route[1] != "v1/health" and allows(answer, *route)] == []


@pytest.mark.parametrize("role", ["tenant", "admin"])
def test_an_inactive_principal_gets_a_deny_for_everything(role: str) -> None:
    answer = policy(principal(role, active=False), ASKED)
    assert {statement["Effect"] for statement in answer["policyDocument"]["Statement"]} == {"Deny"}
    assert [route for route in DATA_ROUTES + ADMIN_ROUTES if allows(answer, *route)] == []


def test_the_policy_stays_in_the_api_and_stage_it_was_asked_for() -> None:
    answer = policy(principal("tenant"), ASKED)
    assert not allows(answer, "POST", "v1/events", stage="dev")
    for statement in answer["policyDocument"]["Statement"]:
        assert all(resource.startswith(f"{API}/{STAGE}/") for resource in statement["Resource"])


def test_the_policy_carries_the_context_the_handlers_read() -> None:
    answer = policy(principal("tenant"), ASKED)
    assert answer["principalId"] == "key_1"
    assert answer["policyDocument"]["Version"] == "2012-10-17"
    # The context holds (at least) what tenant_id_of and require_admin read, all strings
    assert answer["context"].items() >= {"tenant_id": "ten_1", "role": "tenant", "key_id": "key_1"}.items()
    assert all(isinstance(value, str) for value in answer["context"].values())
    admin = policy(principal("admin"), ASKED)
    assert admin["context"].items() >= {"tenant_id": "", "role": "admin", "key_id": "key_1"}.items()
    assert all(isinstance(value, str) for value in admin["context"].values())


def test_end_to_end_an_inactive_tenants_key_gets_a_deny(tenant_store: InMemoryTenantStore) -> None:
    # Given a tenant that was deactivated
    created = create_tenant(tenant_store, TenantCreate(name="Shop A"))
    update_tenant(tenant_store, created.tenant_id, TenantPatch(active=False))
    # When its key is authorized for any route
    answer = policy(authenticate(tenant_store, created.api_key), ASKED)
    # Then API Gateway is told to deny it (403), whatever the route
    assert not allows(answer, "POST", "v1/events")
    assert not allows(answer, "GET", "v1/users/u/events")
