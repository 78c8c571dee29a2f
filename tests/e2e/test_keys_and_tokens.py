"""Ingest keys, bearer tokens and CORS over HTTP, through the gateway (local stack or a deployed one)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Stack, send

pytestmark = pytest.mark.e2e
ORIGIN = "https://shop.example"


def test_an_ingest_key_sends_events_and_reads_nothing(stack: Stack) -> None:
    tenant = stack.new_tenant()
    created = send(stack, "POST", f"/v1/tenants/{tenant['tenant_id']}/keys", {"role": "ingest"}, stack.admin_key)
    assert created.status == 201, created.body
    ingest_key = created.body["api_key"]
    assert send(stack, "POST", "/v1/events", {"user_id": "6", "action": "login"}, ingest_key).status == 201
    batch = send(stack, "POST", "/v1/events/batch", {"events": [{"user_id": "6", "action": "view"}]}, ingest_key)
    assert batch.status == 200
    assert batch.body["accepted"] == 1
    for method, path in (("GET", "/v1/users/6/events"), ("GET", "/v1/stats/daily"), ("DELETE", "/v1/users/6")):
        answer = send(stack, method, path, key=ingest_key)
        assert answer.status == 403, (method, path, answer.body)
        assert answer.body["error"]["code"] == "forbidden"


def test_a_token_reads_what_its_key_reads_until_the_key_is_revoked(stack: Stack) -> None:
    tenant = stack.new_tenant()
    assert send(stack, "POST", "/v1/events", {"user_id": "6", "action": "login"}, tenant["api_key"]).status == 201
    issued = send(stack, "POST", "/v1/auth/token", key=tenant["api_key"])
    assert issued.status == 200, issued.body
    assert issued.body["token_type"] == "Bearer"
    bearer = {"Authorization": f"Bearer {issued.body['access_token']}"}
    events = stack.request("GET", "/v1/users/6/events", headers=bearer)
    assert events.status == 200, events.body
    assert [event["action"] for event in events.body["items"]] == ["login"]
    assert stack.request("GET", "/v1/tenants", headers=bearer).status == 403
    revoked = send(stack, "DELETE", f"/v1/tenants/{tenant['tenant_id']}/keys/{tenant['key_id']}", key=stack.admin_key)
    assert revoked.status == 204
    refused = stack.request("GET", "/v1/users/6/events", headers=bearer)
    assert refused.status == 401
    assert refused.body["error"]["code"] == "unauthorized"


def test_a_tampered_token_or_no_credential_is_unauthorized(stack: Stack) -> None:
    tenant = stack.new_tenant()
    token = send(stack, "POST", "/v1/auth/token", key=tenant["api_key"]).body["access_token"]
    for headers in ({"Authorization": f"Bearer {token[:-2]}xx"}, {"Authorization": "Bearer"}, {}):
        answer = stack.request("GET", "/v1/users/6/events", headers=headers)
        assert answer.status == 401, (headers, answer.body)
        assert answer.body["error"]["code"] == "unauthorized"


def test_cors_for_an_allowed_origin_only(stack: Stack) -> None:
    tenant = stack.new_tenant()
    patched = send(stack, "PATCH", f"/v1/tenants/{tenant['tenant_id']}", {"allowed_origins": [ORIGIN]}, stack.admin_key)
    assert patched.status == 200, patched.body
    key = send(stack, "POST", f"/v1/tenants/{tenant['tenant_id']}/keys", {"role": "ingest"}, stack.admin_key).body[
        "api_key"
    ]
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key",
    }
    allowed = stack.request("OPTIONS", "/v1/events", headers=preflight)
    assert allowed.status == 204
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    other = stack.request("OPTIONS", "/v1/events", headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    sent = stack.request("POST", "/v1/events", {"user_id": "6", "action": "buy"}, key, headers={"Origin": ORIGIN})
    assert sent.status == 201
    assert sent.headers["access-control-allow-origin"] == ORIGIN
    # The gateway's own refusals are readable by the page too
    refused = stack.request(
        "POST", "/v1/events", {"user_id": "6", "action": "buy"}, "atk_wrong", headers={"Origin": ORIGIN}
    )
    assert refused.status == 401
    assert refused.headers["access-control-allow-origin"] == ORIGIN
