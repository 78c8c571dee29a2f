"""Every kind of bad request, through the real handlers: a 4xx in the contract's error shape, never a 500."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .support import Functions, HttpAnswer, admin_context, api_event, assert_error_shape, tenant_context

TENANT = "ten_badinput00000001"
USER_EVENTS = "/v1/users/{user_id}/events"


def post_event(body: Any = None, raw_body: str | None = None) -> dict[str, Any]:
    return api_event("POST", "/v1/events", authorizer=tenant_context(TENANT), body=body, raw_body=raw_body)


def post_batch(body: Any = None, raw_body: str | None = None) -> dict[str, Any]:
    return api_event("POST", "/v1/events/batch", authorizer=tenant_context(TENANT), body=body, raw_body=raw_body)


def get_events(query: dict[str, str], user_id: str = "user-1") -> dict[str, Any]:
    return api_event(
        "GET", USER_EVENTS, authorizer=tenant_context(TENANT), path_parameters={"user_id": user_id}, query=query
    )


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"event_id": "evt-1", "user_id": "user-1", "action": "login"}
    base.update(fields)
    return {name: value for name, value in base.items() if value is not None}


def in_hours(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


@dataclass(frozen=True)
class Case:
    request: Callable[[], dict[str, Any]]
    status: int
    code: str
    field: str | None = None
    """A field that ``details`` must name."""


ADMIN_ROUTES = [
    ("POST", "/v1/tenants", {}, {"name": "Shop"}),
    ("GET", "/v1/tenants", {}, None),
    ("PATCH", "/v1/tenants/{tenant_id}", {"tenant_id": TENANT}, {"active": False}),
    ("POST", "/v1/tenants/{tenant_id}/keys", {"tenant_id": TENANT}, None),
    ("DELETE", "/v1/tenants/{tenant_id}/keys/{key_id}", {"tenant_id": TENANT, "key_id": "key_x"}, None),
]

CASES: dict[str, Case] = {
    # ------------------------------------------------ bodies that are not JSON, or not an object
    "event-not-json": Case(lambda: post_event(raw_body="{not json"), 400, "bad_request"),
    "batch-not-json": Case(lambda: post_batch(raw_body="events: [1, 2]"), 400, "bad_request"),
    "event-truncated-json": Case(lambda: post_event(raw_body='{"user_id": "u", "action": "login"'), 400, "bad_request"),
    "event-json-list": Case(lambda: post_event(body=[event()]), 422, "validation_error"),
    "event-json-string": Case(lambda: post_event(body="user-1 login"), 422, "validation_error"),
    "event-json-number": Case(lambda: post_event(raw_body="42"), 422, "validation_error"),
    "batch-json-list": Case(lambda: post_batch(body=[event()]), 422, "validation_error"),
    "batch-json-list-of-batch": Case(lambda: post_batch(body=[{"events": [event()]}]), 422, "validation_error"),
    "tenant-json-list": Case(
        lambda: api_event("POST", "/v1/tenants", authorizer=admin_context(), body=[{"name": "Shop L"}]),
        422,
        "validation_error",
    ),
    "batch-json-string": Case(lambda: post_batch(body="events"), 422, "validation_error"),
    # ------------------------------------------------ missing fields
    "event-no-user_id": Case(lambda: post_event(body=event(user_id=None)), 422, "validation_error", "user_id"),
    "event-no-action": Case(lambda: post_event(body=event(action=None)), 422, "validation_error", "action"),
    "event-empty-object": Case(lambda: post_event(body={}), 422, "validation_error", "user_id"),
    "batch-no-events": Case(lambda: post_batch(body={"items": [event()]}), 422, "validation_error", "events"),
    "batch-events-not-a-list": Case(lambda: post_batch(body={"events": event()}), 422, "validation_error", "events"),
    # ------------------------------------------------ times
    "occurred_at-without-offset": Case(
        lambda: post_event(body=event(occurred_at="2025-10-10T18:30:00")), 422, "validation_error", "occurred_at"
    ),
    "occurred_at-in-1970": Case(
        lambda: post_event(body=event(occurred_at="1970-01-01T00:00:00Z")), 422, "validation_error", "occurred_at"
    ),
    "occurred_at-two-hours-ahead": Case(
        lambda: post_event(body=event(occurred_at=in_hours(2))), 422, "validation_error", "occurred_at"
    ),
    "occurred_at-not-a-time": Case(
        lambda: post_event(body=event(occurred_at="last tuesday")), 422, "validation_error", "occurred_at"
    ),
    # ------------------------------------------------ sizes and counts
    "event-33-kib": Case(
        lambda: post_event(body=event(metadata={"blob": "x" * (33 * 1024)})), 413, "payload_too_large"
    ),
    "event-metadata-over-16-kib": Case(
        lambda: post_event(body=event(metadata={"blob": "x" * (17 * 1024)})), 422, "validation_error", "metadata"
    ),
    "batch-2-mib": Case(
        lambda: post_batch(
            body={"events": [event(event_id=f"e{n}", metadata={"b": "x" * 20_000}) for n in range(105)]}
        ),
        413,
        "payload_too_large",
    ),
    "batch-501-events": Case(
        lambda: post_batch(body={"events": [event(event_id=f"e{n}") for n in range(501)]}),
        422,
        "validation_error",
        "events",
    ),
    "batch-empty-events": Case(lambda: post_batch(body={"events": []}), 422, "validation_error", "events"),
    # ------------------------------------------------ query parameters
    "limit-0": Case(lambda: get_events({"limit": "0"}), 422, "validation_error", "limit"),
    "limit-1001": Case(lambda: get_events({"limit": "1001"}), 422, "validation_error", "limit"),
    "limit-abc": Case(lambda: get_events({"limit": "abc"}), 400, "bad_request", "limit"),
    "from-after-to": Case(
        lambda: get_events({"from": "2025-10-11T00:00:00Z", "to": "2025-10-10T00:00:00Z"}),
        422,
        "validation_error",
        "from",
    ),
    "from-not-a-time": Case(lambda: get_events({"from": "yesterday"}), 400, "bad_request", "from"),
    "order-sideways": Case(lambda: get_events({"order": "sideways"}), 422, "validation_error", "order"),
    "action-with-space": Case(lambda: get_events({"action": "log in"}), 422, "validation_error", "action"),
    "cursor-garbage": Case(lambda: get_events({"cursor": "not-a-cursor"}), 400, "bad_request"),
    # ------------------------------------------------ roles: the handlers' own checks
    **{
        f"tenant-key-on-{method}-{resource}": Case(
            lambda method=method, resource=resource, params=params, body=body: api_event(
                method, resource, authorizer=tenant_context(TENANT), path_parameters=params or None, body=body
            ),
            403,
            "forbidden",
        )
        for method, resource, params, body in ADMIN_ROUTES
    },
    "admin-key-on-post-event": Case(
        lambda: api_event("POST", "/v1/events", authorizer=admin_context(), body=event()), 403, "forbidden"
    ),
    "admin-key-on-post-batch": Case(
        lambda: api_event("POST", "/v1/events/batch", authorizer=admin_context(), body={"events": [event()]}),
        403,
        "forbidden",
    ),
    "admin-key-on-query": Case(
        lambda: api_event(
            "GET", USER_EVENTS, authorizer=admin_context(), path_parameters={"user_id": "user-1"}, query={"limit": "5"}
        ),
        403,
        "forbidden",
    ),
    "no-authorizer-context-on-post-event": Case(
        lambda: api_event("POST", "/v1/events", authorizer=None, body=event()), 403, "forbidden"
    ),
    # ------------------------------------------------ tenants routes
    "tenant-not-json": Case(
        lambda: api_event("POST", "/v1/tenants", authorizer=admin_context(), raw_body="name=Shop"), 400, "bad_request"
    ),
    "tenant-no-name": Case(
        lambda: api_event("POST", "/v1/tenants", authorizer=admin_context(), body={"timezone": "UTC"}),
        422,
        "validation_error",
        "name",
    ),
    "tenant-unknown-timezone": Case(
        lambda: api_event(
            "POST", "/v1/tenants", authorizer=admin_context(), body={"name": "S", "timezone": "Mars/Base"}
        ),
        422,
        "validation_error",
        "timezone",
    ),
    "tenant-patch-unknown-tenant": Case(
        lambda: api_event(
            "PATCH",
            "/v1/tenants/{tenant_id}",
            authorizer=admin_context(),
            path_parameters={"tenant_id": "ten_nobody"},
            body={"active": False},
        ),
        404,
        "not_found",
    ),
    "tenant-patch-zero-rate": Case(
        lambda: api_event(
            "PATCH",
            "/v1/tenants/{tenant_id}",
            authorizer=admin_context(),
            path_parameters={"tenant_id": "ten_nobody"},
            body={"rate_limit": {"rate": 0, "burst": 1}},
        ),
        422,
        "validation_error",
        "rate_limit.rate",
    ),
    "key-for-unknown-tenant": Case(
        lambda: api_event(
            "POST",
            "/v1/tenants/{tenant_id}/keys",
            authorizer=admin_context(),
            path_parameters={"tenant_id": "ten_nobody"},
        ),
        404,
        "not_found",
    ),
    "revoke-unknown-key": Case(
        lambda: api_event(
            "DELETE",
            "/v1/tenants/{tenant_id}/keys/{key_id}",
            authorizer=admin_context(),
            path_parameters={"tenant_id": "ten_nobody", "key_id": "key_nobody"},
        ),
        404,
        "not_found",
    ),
    "tenant-list-limit-abc": Case(
        lambda: api_event("GET", "/v1/tenants", authorizer=admin_context(), query={"limit": "abc"}), 400, "bad_request"
    ),
    "tenant-list-bad-cursor": Case(
        lambda: api_event("GET", "/v1/tenants", authorizer=admin_context(), query={"cursor": "bm9wZQ.AAAA"}),
        400,
        "bad_request",
    ),
}


def check(answer: HttpAnswer, case: Case) -> None:
    assert answer.status != 500, answer.body
    assert_error_shape(answer, case.status, case.code)
    if case.field is not None:
        assert case.field in {detail["field"] for detail in answer.body["error"]["details"]}, answer.body


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_request_gets_its_4xx_in_the_contract_shape(functions: Functions, name: str) -> None:
    # Given a bad request, When the function the template routes it to handles it
    case = CASES[name]
    answer = functions.http(case.request())
    # Then the answer is the expected error, in the one error shape
    check(answer, case)


def test_a_list_of_events_sent_to_the_single_event_route_stores_nothing(functions: Functions, dynamodb: Any) -> None:
    # Given two events sent as a JSON array to POST /v1/events (which takes one event)
    answer = functions.http(post_event(body=[event(event_id="evt-first"), event(event_id="evt-second")]))
    # Then it is a 422, and neither event is stored (not one of them silently, the other dropped)
    assert_error_shape(answer, 422, "validation_error")
    stored = functions.http(get_events({"limit": "10"})).body["items"]
    assert stored == []


def test_a_body_over_a_limit_is_refused_before_it_is_parsed(functions: Functions) -> None:
    # A 2 MiB body that is not even JSON: the size check comes first
    answer = functions.http(post_batch(raw_body="x" * (2 * 1024 * 1024)))
    assert_error_shape(answer, 413, "payload_too_large")


def test_an_unknown_route_is_a_404_in_the_contract_shape(functions: Functions) -> None:
    event = api_event("GET", "/v1/events", authorizer=tenant_context(TENANT))
    assert_error_shape(functions.http(event, logical_id="IngestFunction"), 404, "not_found")


def test_a_cursor_edited_by_one_byte_is_a_400(functions: Functions) -> None:
    # Given three events of a user and the cursor of the first page of one
    for n in range(3):
        assert (
            functions.http(post_event(body=event(event_id=f"evt-{n}", occurred_at=f"2025-10-10T10:0{n}:00Z"))).status
            == 201
        )
    first = functions.http(get_events({"limit": "1"}))
    cursor = first.body["next_cursor"]
    assert cursor
    # When one character in the middle of the cursor is changed
    middle = len(cursor) // 3
    edited = cursor[:middle] + ("A" if cursor[middle] != "A" else "B") + cursor[middle + 1 :]
    # Then the query is a 400
    assert_error_shape(functions.http(get_events({"limit": "1", "cursor": edited})), 400, "bad_request")
    # And the cursor of another user, or of another query, is a 400 too
    assert_error_shape(
        functions.http(get_events({"limit": "1", "cursor": cursor}, user_id="user-2")), 400, "bad_request"
    )
    assert_error_shape(
        functions.http(get_events({"limit": "1", "cursor": cursor, "order": "desc"})), 400, "bad_request"
    )
    # While the cursor itself still works
    assert functions.http(get_events({"limit": "1", "cursor": cursor})).status == 200


def test_a_cursor_of_another_tenant_is_a_400(functions: Functions) -> None:
    for n in range(2):
        assert (
            functions.http(post_event(body=event(event_id=f"evt-{n}", occurred_at=f"2025-10-10T10:0{n}:00Z"))).status
            == 201
        )
    cursor = functions.http(get_events({"limit": "1"})).body["next_cursor"]
    other = api_event(
        "GET",
        USER_EVENTS,
        authorizer=tenant_context("ten_other0000000001"),
        path_parameters={"user_id": "user-1"},
        query={"limit": "1", "cursor": cursor},
    )
    assert_error_shape(functions.http(other), 400, "bad_request")


# ---------------------------------------------------------------- hostile but well-formed bodies

DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize(
    "request_body",
    [
        pytest.param(
            lambda: post_event(raw_body='{"user_id": "u", "action": "a", "metadata": {"n": 1' + "0" * 5000 + "}}"),
            id="event-5000-digit-number",
        ),
        pytest.param(
            lambda: post_batch(raw_body='{"events": [{"user_id": "u", "action": "a", "n": 1' + "0" * 5000 + "}]}"),
            id="batch-5000-digit-number",
        ),
        pytest.param(
            lambda: post_event(raw_body='{"user_id": "u", "action": "a", "metadata": {"deep": ' + DEEP + "}}"),
            id="event-nested-5000-deep",
        ),
        pytest.param(lambda: post_batch(raw_body='{"events": ' + DEEP + "}"), id="batch-nested-5000-deep"),
        pytest.param(
            lambda: api_event("POST", "/v1/tenants", authorizer=admin_context(), raw_body='{"name": ' + DEEP + "}"),
            id="tenant-nested-5000-deep",
        ),
        pytest.param(
            lambda: post_event(body=event(occurred_at="0001-01-01T00:00:00+01:00")), id="event-year-1-with-offset"
        ),
        pytest.param(
            lambda: post_event(body=event(occurred_at="9999-12-31T23:59:59-01:00")), id="event-year-9999-with-offset"
        ),
        pytest.param(
            lambda: post_event(body=event(occurred_at="9999-12-31T23:00:00Z", sent_at="2000-01-01T00:00:00Z")),
            id="event-skew-past-year-9999",
        ),
        pytest.param(
            lambda: post_batch(
                body={"events": [event(occurred_at="0001-01-01T00:00:00+01:00"), event(event_id="evt-2")]}
            ),
            id="batch-year-1-with-offset",
        ),
        pytest.param(lambda: post_event(raw_body='{"user_id": "u\\ud800", "action": "a"}'), id="event-lone-surrogate"),
        pytest.param(lambda: post_event(body=event(metadata={"n": float("nan")})), id="event-nan"),
        pytest.param(
            lambda: post_event(raw_body='{"user_id": "u", "action": "a", "metadata": {"n": Infinity}}'),
            id="event-infinity",
        ),
    ],
)
def test_a_hostile_but_parseable_body_is_a_4xx_not_a_500(
    functions: Functions, request_body: Callable[[], dict[str, Any]]
) -> None:
    # Given a body that Python's JSON parser or calendar finds extreme
    answer = functions.http(request_body())
    # Then it is refused (or, for a batch, the event is rejected) in the contract's shape, never a 500
    assert answer.status != 500, answer.body
    if answer.status == 200:
        assert answer.body["rejected"] >= 1
        return
    assert 400 <= answer.status < 500
    assert set(answer.body["error"]) == {"code", "message", "details"}
