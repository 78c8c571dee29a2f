"""The REQUEST authorizer on the real tenants table, with keys made through the tenants function."""

from __future__ import annotations

from typing import Any

import pytest

from local_stack.template import Template
from tests.iam import allows, method_arn
from tracker.tenants import create_admin_key

from .support import (
    API_ARN,
    STAGE,
    Functions,
    admin_call,
    authorizer_event,
    create_tenant,
    patch_tenant,
    revoke_key,
    tenant_store,
)

AUTHORIZER = "AuthorizerFunction"


def authorize(
    functions: Functions, api_key: str | None, method: str = "POST", path: str = "/v1/events"
) -> dict[str, Any]:
    answer: dict[str, Any] = functions.invoke(AUTHORIZER, authorizer_event(api_key, method, path))
    return answer


def can_call(answer: dict[str, Any], method: str, path: str) -> bool:
    return allows(answer, method_arn(API_ARN, STAGE, method, path))


def test_a_key_made_by_the_tenants_function_is_allowed_on_data_routes(functions: Functions) -> None:
    # Given a tenant created through the tenants function
    created = create_tenant(functions, timezone="Europe/Kyiv")
    # When its key is authorized for POST /v1/events
    answer = authorize(functions, created["api_key"])
    # Then the policy allows the data routes (all of them: it is cached per key) and not the admin ones
    assert answer["principalId"] == created["key_id"]
    assert answer["context"]["tenant_id"] == created["tenant_id"]
    assert answer["context"]["role"] == "tenant"
    assert answer["context"]["key_id"] == created["key_id"]
    assert can_call(answer, "POST", "/v1/events")
    assert can_call(answer, "GET", "/v1/users/a%2Fb/events")
    assert not can_call(answer, "GET", "/v1/tenants")
    assert not can_call(answer, "DELETE", f"/v1/tenants/{created['tenant_id']}/keys/{created['key_id']}")


def test_the_header_name_is_case_insensitive(functions: Functions) -> None:
    created = create_tenant(functions, timezone="Europe/Kyiv")
    event = authorizer_event(None)
    event["headers"]["X-Api-Key"] = created["api_key"]
    answer = functions.invoke(AUTHORIZER, event)
    assert answer["context"]["tenant_id"] == created["tenant_id"]


@pytest.mark.parametrize("api_key", ["atk_unknown-key", "", None], ids=["unknown", "empty", "missing"])
def test_an_unknown_or_missing_key_raises_unauthorized(functions: Functions, api_key: str | None) -> None:
    # API Gateway turns exactly this exception message into its UNAUTHORIZED gateway response (401)
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(functions, api_key)


def test_a_revoked_key_raises_unauthorized(functions: Functions) -> None:
    created = create_tenant(functions, timezone="Europe/Kyiv")
    revoked = revoke_key(functions, created["tenant_id"], created["key_id"])
    assert revoked.status == 204
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(functions, created["api_key"])


def test_a_rotated_key_works_beside_the_first(functions: Functions) -> None:
    created = create_tenant(functions, timezone="Europe/Kyiv")
    rotated = admin_call(functions, "POST", "/v1/tenants/{tenant_id}/keys", tenant_id=created["tenant_id"])
    assert rotated.status == 201
    assert authorize(functions, rotated.body["api_key"])["context"]["key_id"] == rotated.body["key_id"]
    assert authorize(functions, created["api_key"])["context"]["key_id"] == created["key_id"]


def test_an_inactive_tenant_gets_a_deny(functions: Functions) -> None:
    # Given a tenant deactivated through the tenants function
    created = create_tenant(functions, timezone="Europe/Kyiv")
    patched = patch_tenant(functions, created["tenant_id"], {"active": False})
    assert patched.status == 200
    assert patched.body["active"] is False
    # When its key is authorized
    answer = authorize(functions, created["api_key"])
    # Then the policy denies every route (API Gateway answers 403)
    assert {statement["Effect"] for statement in answer["policyDocument"]["Statement"]} == {"Deny"}
    assert not can_call(answer, "POST", "/v1/events")
    assert not can_call(answer, "GET", "/v1/users/u/events")


def test_the_operators_admin_key_is_allowed_only_on_the_tenants_routes(
    functions: Functions, template: Template, dynamodb: Any
) -> None:
    # Given the admin key the operator's bootstrap writes
    admin = create_admin_key(tenant_store(template, dynamodb), "atk_operator-admin-key")
    # When it is authorized
    answer = authorize(functions, admin.api_key, "GET", "/v1/tenants")
    # Then it may call the tenants routes and nothing else
    assert answer["context"]["role"] == "admin"
    assert answer["context"]["tenant_id"] == ""
    assert can_call(answer, "GET", "/v1/tenants")
    assert can_call(answer, "POST", "/v1/tenants/ten_x/keys")
    assert not can_call(answer, "POST", "/v1/events")
    assert not can_call(answer, "GET", "/v1/users/u/events")
