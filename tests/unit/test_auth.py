"""Who a key is, and what the IAM policy the authorizer returns lets it call.

The policies are evaluated the way API Gateway does (``tests.iam``): a route is allowed when some
Allow statement matches its method ARN and no Deny does.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.iam import allows as policy_allows
from tests.iam import method_arn
from tracker import auth
from tracker.auth import Principal, policy
from tracker.errors import Unauthorized
from tracker.tenants import create_admin_key, revoke_key

from .support import DEFAULT_LIMIT, Admin

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
    return policy_allows(answer, method_arn(API, stage, method, path))


def principal(role: str = "tenant", *, active: bool = True) -> Principal:
    tenant_id = "ten_1" if role == "tenant" else None
    return Principal(key_id="key_1", role=role, tenant_id=tenant_id, active=active)  # type: ignore[arg-type]


# ---------------------------------------------------------------- authenticate


@pytest.mark.parametrize(
    "api_key", [None, "", "atk_unknown", "not even a key"], ids=["none", "empty", "unknown", "junk"]
)
def test_no_key_or_an_unknown_key_is_unauthorized(admin: Admin, api_key: str | None) -> None:
    admin.create("Shop A")
    with pytest.raises(Unauthorized) as caught:
        admin.authenticate(api_key)
    assert caught.value.status == 401


def test_a_tenant_key_is_its_tenant_with_its_timezone_and_the_default_rate(admin: Admin) -> None:
    created = admin.create("Shop A", "Europe/Kyiv")
    found = admin.authenticate(created.api_key)
    assert (found.key_id, found.role, found.tenant_id, found.active) == (
        created.key_id,
        "tenant",
        created.tenant_id,
        True,
    )
    assert found.timezone == "Europe/Kyiv"
    assert (found.rate, found.burst) == (DEFAULT_LIMIT.rate, DEFAULT_LIMIT.burst)
    assert found.usage_key == admin.store.tenants[created.tenant_id].usage_key


def test_a_tenant_with_its_own_rate_limit_gets_it(admin: Admin) -> None:
    created = admin.create()
    admin.patch(created.tenant_id, {"rate_limit": {"rate": 5, "burst": 10}})
    found = admin.authenticate(created.api_key)
    assert (found.rate, found.burst) == (5, 10)


def test_a_revoked_key_is_unauthorized(admin: Admin) -> None:
    created = admin.create()
    revoke_key(admin.store, created.tenant_id, created.key_id)
    with pytest.raises(Unauthorized):
        admin.authenticate(created.api_key)


def test_the_key_of_an_inactive_tenant_is_known_but_inactive(admin: Admin) -> None:
    created = admin.create()
    admin.patch(created.tenant_id, {"active": False})
    assert admin.authenticate(created.api_key).active is False


def test_the_key_of_a_tenant_that_is_gone_is_inactive(admin: Admin) -> None:
    created = admin.create()
    del admin.store.tenants[created.tenant_id]
    assert admin.authenticate(created.api_key).active is False


def test_an_admin_key_is_active_and_has_no_tenant(admin: Admin) -> None:
    made = create_admin_key(admin.store, "atk_admin")
    found = admin.authenticate("atk_admin")
    assert (found.key_id, found.role, found.tenant_id, found.active) == (made.key_id, "admin", None, True)


# ---------------------------------------------------------------- policies


def test_a_tenant_policy_allows_every_data_route_and_no_admin_route() -> None:
    answer = policy(principal("tenant"), ASKED)
    assert [route for route in DATA_ROUTES if not allows(answer, *route)] == []
    assert [route for route in ADMIN_ROUTES if allows(answer, *route)] == []


def test_an_admin_policy_allows_only_the_tenants_routes() -> None:
    answer = policy(principal("admin"), f"{API}/{STAGE}/GET/v1/tenants")
    assert [route for route in ADMIN_ROUTES if not allows(answer, *route)] == []
    assert [route for route in DATA_ROUTES if allows(answer, *route)] == []


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


def test_the_policy_carries_the_context_the_handlers_read(admin: Admin) -> None:
    created = admin.create()
    answer = policy(admin.authenticate(created.api_key), ASKED)
    assert answer["principalId"] == created.key_id
    assert answer["policyDocument"]["Version"] == "2012-10-17"
    # The context holds (at least) what tenant_id_of and require_admin read; values are scalars
    expected = {"tenant_id": created.tenant_id, "role": "tenant", "key_id": created.key_id}
    assert answer["context"].items() >= expected.items()
    assert all(isinstance(value, str | int | float | bool) for value in answer["context"].values())
    # And the usage key API Gateway meters the tenant's rate by
    assert answer["usageIdentifierKey"] == admin.store.tenants[created.tenant_id].usage_key
    admin_answer = policy(principal("admin"), ASKED)
    assert admin_answer["context"].items() >= {"tenant_id": "", "role": "admin", "key_id": "key_1"}.items()


def test_end_to_end_an_inactive_tenants_key_gets_a_deny(admin: Admin) -> None:
    # Given a tenant that was deactivated
    created = admin.create()
    admin.patch(created.tenant_id, {"active": False})
    # When its key is authorized for any route
    answer = policy(admin.authenticate(created.api_key), ASKED)
    # Then API Gateway is told to deny it (403), whatever the route
    assert not allows(answer, "POST", "v1/events")
    assert not allows(answer, "GET", "v1/users/u/events")


def test_two_different_keys_in_one_request_are_unauthorized(admin: Admin) -> None:
    # Given two valid keys (the gateway's usage plan could meter one while the authorizer accepts the other)
    first, second = admin.create("Shop A"), admin.create("Shop B")
    # When both are sent, Then the request is refused, whichever comes first
    for keys in ([first.api_key, second.api_key], [second.api_key, first.api_key], [first.api_key, "atk_other"]):
        with pytest.raises(Unauthorized):
            auth.authenticate(admin.store, keys, DEFAULT_LIMIT)
