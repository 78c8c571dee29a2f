"""The catalog and the tracking plan over HTTP, through the local gateway and its authorizer:
the tenant's mode travels in the authorizer's context to the ingest function."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Stack, send

pytestmark = pytest.mark.e2e

PURCHASE = {
    "name": "purchase",
    "description": "When someone buys",
    "points": 10,
    "properties": {"amount": {"type": "number", "required": True}, "sku": {"type": "string"}},
}


def batch(prefix: str) -> dict[str, Any]:
    return {
        "events": [
            {"event_id": f"{prefix}-0", "user_id": "u1", "action": "purchase", "metadata": {"amount": 50}},
            {"event_id": f"{prefix}-1", "user_id": "u1", "action": "purchase", "metadata": {"amount": "50"}},
            {"event_id": f"{prefix}-2", "user_id": "u1", "action": "purchase", "metadata": {"sku": "A"}},
            {"event_id": f"{prefix}-3", "user_id": "u1", "action": "teleport"},
        ]
    }


def set_mode(stack: Stack, tenant_id: str, mode: str) -> None:
    reply = send(stack, "PATCH", f"/v1/tenants/{tenant_id}", {"validation": mode}, stack.admin_key)
    assert reply.status == 200, reply.body
    assert reply.body["validation"] == mode


def test_the_tenants_mode_decides_what_ingest_does_with_violations(stack: Stack) -> None:
    # Given a tenant whose catalog declares purchase (before its first event: nothing is cached yet)
    tenant = stack.new_tenant()
    key = tenant["api_key"]
    created = send(stack, "POST", "/v1/event-types", PURCHASE, key)
    assert created.status == 201, created.body
    assert send(stack, "POST", "/v1/event-types", PURCHASE, key).status == 409
    found = send(stack, "GET", "/v1/event-types?search=BUYS", key=key)
    assert [item["name"] for item in found.body["items"]] == ["purchase"]
    # When the mode is block, Then the three bad events of a batch are rejected, each with its kind
    set_mode(stack, tenant["tenant_id"], "block")
    blocked = send(stack, "POST", "/v1/events/batch", batch("b"), key)
    assert blocked.status == 200, blocked.body
    assert [r["status"] for r in blocked.body["results"]] == ["accepted", "rejected", "rejected", "rejected"]
    kinds = [r["error"]["details"][0]["type"] for r in blocked.body["results"][1:]]
    assert kinds == ["type_mismatch", "required_missing", "unplanned_action"]
    single = send(stack, "POST", "/v1/events", batch("s")["events"][3], key)
    assert single.status == 422, single.body
    assert single.body["error"]["details"][0]["type"] == "unplanned_action"
    # And in flag and off modes every event is stored
    for mode in ("flag", "off"):
        set_mode(stack, tenant["tenant_id"], mode)
        reply = send(stack, "POST", "/v1/events/batch", batch(mode), key)
        assert (reply.body["accepted"], reply.body["rejected"]) == (4, 0), (mode, reply.body)
    stored = send(stack, "GET", "/v1/users/u1/events?limit=100", key=key)
    assert sorted(item["event_id"] for item in stored.body["items"]) == sorted(
        ["b-0", *(f"{mode}-{i}" for mode in ("flag", "off") for i in range(4))]
    )
