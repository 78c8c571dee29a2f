"""Over HTTP against the local stack, as a new user would drive it after `make run`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from tests.e2e.conftest import ROOT, Stack, start_stack, stop_stack

pytestmark = pytest.mark.e2e


def assert_error(reply_body: object, code: str) -> None:
    assert isinstance(reply_body, dict), reply_body
    error = reply_body["error"]
    assert error["code"] == code, reply_body
    assert isinstance(error["message"], str)
    assert isinstance(error["details"], list)


def test_health_needs_no_key(stack: Stack) -> None:
    reply = stack.request("GET", "/v1/health")
    assert (reply.status, reply.body) == (200, {"status": "ok"})


def test_a_tenant_records_and_reads_back_a_users_events(stack: Stack) -> None:
    # Given a tenant made with the admin key
    tenant = stack.new_tenant(timezone="Europe/Kyiv")
    key = tenant["api_key"]
    user = "team/ä b"
    # When it sends one event and a batch, one of them a retry
    first = stack.request(
        "POST",
        "/v1/events",
        {"event_id": "e2e-1", "user_id": user, "action": "login", "occurred_at": "2025-10-10T18:30:00+03:00"},
        key,
    )
    retry = stack.request(
        "POST",
        "/v1/events",
        {"event_id": "e2e-1", "user_id": user, "action": "login", "occurred_at": "2025-10-10T18:30:00+03:00"},
        key,
    )
    batch = stack.request(
        "POST",
        "/v1/events/batch",
        {
            "events": [
                {"event_id": "e2e-2", "user_id": user, "action": "view", "occurred_at": "2025-10-10T16:00:00Z"},
                {"event_id": "e2e-3", "user_id": user, "action": "logout", "occurred_at": "2025-10-10T17:00:00Z"},
                {"user_id": user},
            ]
        },
        key,
    )
    # Then the answers say what was stored
    assert first.status == 201
    assert first.body["status"] == "accepted"
    assert retry.status == 200
    assert retry.body["status"] == "duplicate"
    assert retry.body["received_at"] == first.body["received_at"]
    assert batch.status == 200
    assert (batch.body["accepted"], batch.body["duplicates"], batch.body["rejected"]) == (2, 0, 1)
    assert batch.body["results"][2]["error"]["code"] == "validation_error"
    # And the user's events come back in order, paged, with the user id round-tripped
    path = f"/v1/users/{quote(user, safe='')}/events"
    page = stack.request("GET", f"{path}?from=2025-10-10T00:00:00Z&to=2025-10-11T00:00:00Z&limit=2", key=key)
    assert page.status == 200, page.body
    assert [item["event_id"] for item in page.body["items"]] == ["e2e-1", "e2e-2"]
    assert all(item["user_id"] == user for item in page.body["items"])
    rest = stack.request(
        "GET",
        f"{path}?from=2025-10-10T00:00:00Z&to=2025-10-11T00:00:00Z&limit=2&cursor={page.body['next_cursor']}",
        key=key,
    )
    assert [item["event_id"] for item in rest.body["items"]] == ["e2e-3"]
    assert rest.body["next_cursor"] is None
    # And the first event's occurred_at is given in UTC with milliseconds
    assert page.body["items"][0]["occurred_at"] == "2025-10-10T15:30:00.000Z"


def test_one_tenant_never_sees_another(stack: Stack) -> None:
    alice, bob = stack.new_tenant(), stack.new_tenant()
    stack.request("POST", "/v1/events", {"user_id": "u1", "action": "secret"}, alice["api_key"])
    reply = stack.request("GET", "/v1/users/u1/events", key=bob["api_key"])
    assert reply.status == 200
    assert reply.body["items"] == []
    page = stack.request("GET", "/v1/users/u1/events?limit=1", key=alice["api_key"])
    stack.request("POST", "/v1/events", {"user_id": "u1", "action": "again"}, alice["api_key"])
    cursor = stack.request("GET", "/v1/users/u1/events?limit=1", key=alice["api_key"]).body["next_cursor"]
    assert page.status == 200
    assert cursor
    stolen = stack.request("GET", f"/v1/users/u1/events?limit=1&cursor={cursor}", key=bob["api_key"])
    assert stolen.status == 400
    assert_error(stolen.body, "bad_request")


@pytest.mark.parametrize(
    ("method", "path", "body", "raw", "key_kind", "status", "code"),
    [
        ("POST", "/v1/events", {"user_id": "u", "action": "a"}, None, "none", 401, "unauthorized"),
        ("POST", "/v1/events", {"user_id": "u", "action": "a"}, None, "unknown", 401, "unauthorized"),
        ("GET", "/v1/tenants", None, None, "tenant", 403, "forbidden"),
        ("POST", "/v1/events", {"user_id": "u", "action": "a"}, None, "admin", 403, "forbidden"),
        ("GET", "/v1/nothing-here", None, None, "tenant", 404, "not_found"),
        ("POST", "/v1/events", None, b"{not json", "tenant", 400, "bad_request"),
        ("POST", "/v1/events", ["a list"], None, "tenant", 422, "validation_error"),
        (
            "POST",
            "/v1/events",
            {"user_id": "u", "action": "a", "occurred_at": "2025-10-10T18:30:00"},
            None,
            "tenant",
            422,
            "validation_error",
        ),
        (
            "POST",
            "/v1/events",
            {"user_id": "u", "action": "a", "metadata": {"x": "y" * 34_000}},
            None,
            "tenant",
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/v1/events/batch",
            {"events": [{"user_id": "u", "action": "a"}] * 501},
            None,
            "tenant",
            422,
            "validation_error",
        ),
        ("GET", "/v1/users/u/events?limit=0", None, None, "tenant", 422, "validation_error"),
        ("GET", "/v1/users/u/events?limit=abc", None, None, "tenant", 400, "bad_request"),
        ("GET", "/v1/users/u/events?cursor=bm9wZQ.AAAA", None, None, "tenant", 400, "bad_request"),
    ],
)
def test_bad_requests_get_the_contract_error(
    stack: Stack,
    tenant_key: str,
    method: str,
    path: str,
    body: object,
    raw: bytes | None,
    key_kind: str,
    status: int,
    code: str,
) -> None:
    key = {"none": None, "unknown": "atk_unknown_key", "tenant": tenant_key, "admin": stack.admin_key}[key_kind]
    reply = stack.request(method, path, body, key, raw=raw)
    assert reply.status == status, reply.body
    assert_error(reply.body, code)


@pytest.fixture(scope="module")
def tenant_key(stack: Stack) -> str:
    return str(stack.new_tenant()["api_key"])


def test_an_inactive_tenants_key_is_refused(stack: Stack) -> None:
    tenant = stack.new_tenant()
    stack.request("PATCH", f"/v1/tenants/{tenant['tenant_id']}", {"active": False}, stack.admin_key)
    reply = stack.request("GET", "/v1/users/u/events", key=tenant["api_key"])
    assert reply.status == 403
    assert_error(reply.body, "forbidden")


@pytest.mark.local_only
def test_a_rollup_invoked_through_the_lambda_api_counts_events_at_once(stack: Stack) -> None:
    # Given an event posted a moment ago
    tenant = stack.new_tenant(timezone="Asia/Kolkata")
    key = tenant["api_key"]
    occurred = datetime.now(UTC) - timedelta(minutes=5)
    posted = stack.request(
        "POST", "/v1/events", {"user_id": "stat-user", "action": "buy", "occurred_at": occurred.isoformat()}, key
    )
    assert posted.status == 201
    # When the rollup is invoked with the sample scheduled event, its time set to now
    scheduled = json.loads((ROOT / "events" / "rollup" / "scheduled_event.json").read_text())
    scheduled["time"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    invoked = stack.request(
        "POST", "/2015-03-31/functions/RollupFunction/invocations", scheduled, base=stack.lambda_api
    )
    assert invoked.status == 200, invoked.body
    assert "x-amz-function-error" not in invoked.headers, invoked.body
    # Then the statistics count it right away
    daily = stack.request("GET", "/v1/stats/daily?days=2", key=key)
    assert daily.status == 200, daily.body
    assert daily.body["timezone"] == "Asia/Kolkata"
    assert sum(day["count"] for day in daily.body["items"]) == 1
    top = stack.request("GET", "/v1/stats/top-users?hours=24&limit=3", key=key)
    assert top.body["items"] == [{"user_id": "stat-user", "count": 1}]
    frequency = stack.request("GET", "/v1/stats/frequency", key=key)
    assert frequency.body["items"] == [{"action": "buy", "total": 1}]


@pytest.mark.local_only
def test_swagger_ui_and_the_openapi_document_are_served(stack: Stack) -> None:
    docs = stack.request("GET", "/docs")
    assert docs.status == 200
    document = stack.request("GET", "/openapi.json")
    assert document.status == 200
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert document.body == committed
    assert "/v1/events/batch" in document.body["paths"]


@pytest.mark.local_only
def test_ctrl_c_stops_the_stack_cleanly() -> None:
    running = start_stack()
    try:
        assert running.request("GET", "/v1/health").status == 200
        assert stop_stack(running) == 0
    finally:
        if running.process.poll() is None:
            running.process.kill()
