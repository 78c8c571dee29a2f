"""Publishable ingest keys, bearer tokens and CORS, through the real functions on moto."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from local_stack.template import Template
from tests.iam import allows, method_arn
from tracker import tokens
from tracker.adapters.signing_keys import SecretsManagerSigningKeys

from .support import (
    API_ARN,
    STAGE,
    Functions,
    admin_call,
    api_event,
    assert_error_shape,
    authorizer_event,
    create_tenant,
    patch_tenant,
    revoke_key,
)

AUTHORIZER = "AuthorizerFunction"


def new_key(functions: Functions, tenant_id: str, body: Any = None, raw_body: str | None = None) -> Any:
    return admin_call(
        functions, "POST", "/v1/tenants/{tenant_id}/keys", tenant_id=tenant_id, body=body, raw_body=raw_body
    )


def authorize(functions: Functions, headers: dict[str, str], method: str = "POST", path: str = "/v1/events") -> Any:
    event = authorizer_event(None, method, path)
    event["headers"].update(headers)
    event["multiValueHeaders"].update({name: [value] for name, value in headers.items()})
    return functions.invoke(AUTHORIZER, event)


def can_call(answer: dict[str, Any], method: str, path: str) -> bool:
    return allows(answer, method_arn(API_ARN, STAGE, method, path))


def token_for(functions: Functions, context: dict[str, Any]) -> str:
    answer = functions.http(api_event("POST", "/v1/auth/token", authorizer=context))
    assert answer.status == 200, answer.body
    assert answer.body["token_type"] == "Bearer"
    assert answer.body["expires_in"] == 900
    return str(answer.body["access_token"])


def test_an_ingest_key_may_add_events_and_nothing_else(functions: Functions) -> None:
    # Given a tenant with a publishable ingest key
    tenant = create_tenant(functions)
    created = new_key(functions, tenant["tenant_id"], {"role": "ingest"})
    assert created.status == 201, created.body
    assert created.body["role"] == "ingest"
    # When the authorizer reads it
    answer = authorize(functions, {"x-api-key": created.body["api_key"]})
    # Then its policy allows the ingest routes only
    assert answer["context"]["role"] == "ingest"
    assert can_call(answer, "POST", "/v1/events")
    assert can_call(answer, "POST", "/v1/events/batch")
    assert not can_call(answer, "GET", "/v1/users/6/events")
    assert not can_call(answer, "GET", "/v1/stats/daily")
    assert not can_call(answer, "DELETE", "/v1/users/6")
    # And the handlers check the role again: ingest accepts it, the query refuses it
    context = {"tenant_id": tenant["tenant_id"], "role": "ingest", "key_id": created.body["key_id"], "timezone": "UTC"}
    stored = functions.http(
        api_event("POST", "/v1/events", authorizer=context, body={"user_id": "6", "action": "login"})
    )
    assert stored.status == 201, stored.body
    read = functions.http(
        api_event("GET", "/v1/users/{user_id}/events", authorizer=context, path_parameters={"user_id": "6"})
    )
    assert_error_shape(read, 403, "forbidden")


@pytest.mark.parametrize(
    ("body", "raw_body", "role"),
    [(None, None, "tenant"), (None, "", "tenant"), ({"role": "tenant"}, None, "tenant"), ({}, None, "tenant")],
)
def test_a_new_key_is_a_tenant_key_unless_asked(
    functions: Functions, body: Any, raw_body: str | None, role: str
) -> None:
    tenant = create_tenant(functions)
    answer = new_key(functions, tenant["tenant_id"], body, raw_body)
    assert answer.status == 201, answer.body
    assert answer.body["role"] == role


@pytest.mark.parametrize(
    ("body", "raw_body", "status"),
    [
        ({"role": "admin"}, None, 422),
        ({"role": "INGEST"}, None, 422),
        ({"role": 1}, None, 422),
        (None, "[]", 422),
        (None, "{", 400),
    ],
)
def test_a_bad_key_request_is_refused(functions: Functions, body: Any, raw_body: str | None, status: int) -> None:
    tenant = create_tenant(functions)
    answer = new_key(functions, tenant["tenant_id"], body, raw_body)
    assert answer.status == status, answer.body


def test_a_token_stands_for_its_key_until_the_key_is_revoked(functions: Functions) -> None:
    # Given a tenant key exchanged for a token
    tenant = create_tenant(functions)
    context = {"tenant_id": tenant["tenant_id"], "role": "tenant", "key_id": tenant["key_id"], "timezone": "UTC"}
    token = token_for(functions, context)
    # When the token alone is authorized
    answer = authorize(functions, {"Authorization": f"Bearer {token}"}, "GET", "/v1/users/6/events")
    # Then it has the key's tenant and role
    assert answer["context"]["tenant_id"] == tenant["tenant_id"]
    assert answer["context"]["role"] == "tenant"
    assert answer["principalId"] == tenant["key_id"]
    assert can_call(answer, "GET", "/v1/users/6/events")
    # And once the key is revoked, the token is refused too
    revoked = revoke_key(functions, tenant["tenant_id"], tenant["key_id"])
    assert revoked.status == 204
    with pytest.raises(Exception, match="Unauthorized"):
        authorize(functions, {"Authorization": f"Bearer {token}"})


def test_an_expired_or_altered_token_is_refused(functions: Functions, template: Template) -> None:
    tenant = create_tenant(functions)
    secret = template.functions["AuthTokenFunction"].environment["TOKEN_SIGNING_SECRET"]
    keys = SecretsManagerSigningKeys(boto3.client("secretsmanager"), secret)
    expired, _ = tokens.issue(
        keys, tenant["key_id"], tenant["tenant_id"], "tenant", datetime.now(UTC) - timedelta(seconds=901)
    )
    fresh, _ = tokens.issue(keys, tenant["key_id"], tenant["tenant_id"], "tenant", datetime.now(UTC))
    assert authorize(functions, {"Authorization": f"Bearer {fresh}"})["context"]["tenant_id"] == tenant["tenant_id"]
    for token in (expired, fresh[:-3] + "abc", "Bearer", ""):
        with pytest.raises(Exception, match="Unauthorized"):
            authorize(functions, {"Authorization": f"Bearer {token}"})


def test_a_token_of_a_tenant_deactivated_since_is_forbidden(functions: Functions) -> None:
    tenant = create_tenant(functions)
    context = {"tenant_id": tenant["tenant_id"], "role": "tenant", "key_id": tenant["key_id"], "timezone": "UTC"}
    token = token_for(functions, context)
    patched = patch_tenant(functions, tenant["tenant_id"], {"active": False})
    assert patched.status == 200
    answer = authorize(functions, {"Authorization": f"Bearer {token}"})
    assert not can_call(answer, "POST", "/v1/events")


def patch_origins(functions: Functions, tenant_id: str, origins: Any) -> Any:
    return patch_tenant(functions, tenant_id, {"allowed_origins": origins})


def preflight(functions: Functions, origin: str, path: str = "/v1/events") -> Any:
    event = api_event("OPTIONS", path, authorizer=None)
    event["headers"].update({"Origin": origin, "Access-Control-Request-Method": "POST"})
    event["multiValueHeaders"].update({"Origin": [origin], "Access-Control-Request-Method": ["POST"]})
    return functions.http(event)


def test_a_page_on_an_allowed_origin_may_send_events_and_no_other(functions: Functions) -> None:
    # Given a tenant that allows one web origin
    tenant = create_tenant(functions)
    patched = patch_origins(functions, tenant["tenant_id"], ["https://Shop.example", "http://localhost:8080"])
    assert patched.status == 200, patched.body
    assert patched.body["allowed_origins"] == ["http://localhost:8080", "https://shop.example"]
    # Then the preflight of that origin is answered with CORS headers, another origin's without
    allowed = preflight(functions, "https://shop.example", "/v1/events/batch")
    assert allowed.status == 204
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    assert "x-api-key" in allowed.headers["access-control-allow-headers"]
    other = preflight(functions, "https://evil.example")
    assert other.status == 204
    assert "access-control-allow-origin" not in other.headers
    # And the real request's answer (an error too) names the origin only for the key's own tenant
    key = authorize(
        functions, {"x-api-key": new_key(functions, tenant["tenant_id"], {"role": "ingest"}).body["api_key"]}
    )
    for origin, expected in (("https://shop.example", "https://shop.example"), ("https://evil.example", None)):
        for body, status in (({"user_id": "6", "action": "login"}, 201), ({"user_id": "6"}, 422)):
            event = api_event("POST", "/v1/events", authorizer=key["context"], body=body)
            event["headers"]["Origin"] = origin
            answer = functions.http(event)
            assert answer.status == status, answer.body
            assert answer.headers.get("access-control-allow-origin") == expected
    # And once the origin is removed, its preflight gets no CORS headers
    assert patch_origins(functions, tenant["tenant_id"], []).status == 200
    assert "access-control-allow-origin" not in preflight(functions, "https://shop.example").headers


@pytest.mark.parametrize(
    "origins",
    [
        ["*"],
        ["https://shop.example/"],
        ["https://shop.example/path"],
        ["shop.example"],
        ["ftp://shop.example"],
        ["https://shop example"],
        [f"https://s{index}.example" for index in range(21)],
        "https://shop.example",
    ],
)
def test_an_origin_that_is_not_scheme_host_and_port_is_refused(functions: Functions, origins: Any) -> None:
    tenant = create_tenant(functions)
    assert_error_shape(patch_origins(functions, tenant["tenant_id"], origins), 422, "validation_error")
