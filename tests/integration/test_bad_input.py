"""Every kind of bad request, through the real handlers: a 4xx in the contract's error shape, never a 500."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .support import (
    Functions,
    HttpAnswer,
    admin_context,
    api_event,
    assert_error_shape,
    authorizer_event,
    create_tenant,
    tenant_context,
)

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
    # Strict types, and only what a usage plan holds (0.5 used to be a 503; "false" used to deactivate)
    **{
        f"tenant-patch-{name}": Case(
            lambda body=body: api_event(
                "PATCH",
                "/v1/tenants/{tenant_id}",
                authorizer=admin_context(),
                path_parameters={"tenant_id": "ten_nobody"},
                body=body,
            ),
            422,
            "validation_error",
            field,
        )
        for name, body, field in [
            ("fractional-rate", {"rate_limit": {"rate": 0.5, "burst": 1}}, "rate_limit.rate"),
            ("string-rate", {"rate_limit": {"rate": "5", "burst": 1}}, "rate_limit.rate"),
            ("string-active", {"active": "false"}, "active"),
            ("number-active", {"active": 0}, "active"),
        ]
    },
    "tenant-host-time-zone": Case(
        lambda: api_event(
            "POST", "/v1/tenants", authorizer=admin_context(), body={"name": "S", "timezone": "localtime"}
        ),
        422,
        "validation_error",
        "timezone",
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
        # Deep enough to parse, then past a recursion limit further in (these were 500s)
        *(
            pytest.param(
                lambda depth=depth, route=route: api_event(
                    "POST",
                    route,
                    authorizer=tenant_context(TENANT),
                    raw_body=wrap_event(
                        route, '{"user_id": "u", "action": "a", "metadata": {"x": ' + "[" * depth + "]" * depth + "}}"
                    ),
                ),
                id=f"{route.rsplit('/', 1)[-1]}-metadata-{depth}-deep",
            )
            for depth in (930, 960, 990)
            for route in ("/v1/events", "/v1/events/batch")
        ),
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


# ---------------------------------------------------------------- hostile round two: media types

BODY_ROUTES = {
    "event": lambda: post_event(body=event(event_id="evt-media")),
    "batch": lambda: post_batch(body={"events": [event(event_id="evt-media")]}),
    "tenant": lambda: api_event("POST", "/v1/tenants", authorizer=admin_context(), body={"name": "Media Shop"}),
    "tenant-patch": lambda: api_event(
        "PATCH", "/v1/tenants/{tenant_id}", authorizer=admin_context(), path_parameters={"tenant_id": "ten_x"}, body={}
    ),
}
# The tenant patch names no tenant that exists: a body that gets through is a 404, not a 2xx.
READ_AS_JSON = {"event": {201}, "batch": {200}, "tenant": {201}, "tenant-patch": {404}}


def with_content_types(request: dict[str, Any], *pairs: tuple[str, str]) -> dict[str, Any]:
    """The request with these ``(header name, value)`` pairs as its Content-Type headers, as API
    Gateway hands them over: ``headers`` keeps the last value of a name, ``multiValueHeaders`` all."""
    headers = {name: value for name, value in request["headers"].items() if name.lower() != "content-type"}
    multi = {name: values for name, values in request["multiValueHeaders"].items() if name.lower() != "content-type"}
    for name, value in pairs:
        headers[name] = value
        multi.setdefault(name, []).append(value)
    return {**request, "headers": headers, "multiValueHeaders": multi}


JSON_TYPES = [
    [("Content-Type", "application/JSON")],
    [("content-type", "Application/Json; charset=UTF-8")],
    [("Content-Type", "application/vnd.api+json")],
    [("Content-Type", "application/merge-patch+json")],
    [("Content-Type", 'APPLICATION/PROBLEM+JSON; charset="utf-8"')],
    [("Content-Type", "application/json"), ("content-type", "application/JSON")],
    [("Content-Type", "application/json"), ("Content-Type", "application/vnd.api+json")],
]
OTHER_TYPES = [
    [("Content-Type", "text/plain")],
    [("Content-Type", "application/x-www-form-urlencoded")],
    [("Content-Type", "multipart/form-data; boundary=x")],
    [("Content-Type", "application/jsonp")],
    [("Content-Type", "application/json; charset=latin-1")],
    [("Content-Type", "text/json")],
    [("Content-Type", "*/*")],
    [("Content-Type", "")],
    [("Content-Type", "application/json"), ("content-type", "text/plain")],
    [("content-type", "text/plain"), ("Content-Type", "application/json")],
]


@pytest.mark.parametrize("route", list(BODY_ROUTES))
@pytest.mark.parametrize("pairs", JSON_TYPES, ids=lambda pairs: " + ".join(value for _, value in pairs))
def test_json_media_types_are_matched_case_insensitively_with_plus_json(
    functions: Functions, route: str, pairs: list[tuple[str, str]]
) -> None:
    # Given a body sent as JSON under any spelling of a JSON media type (one or several headers)
    answer = functions.http(with_content_types(BODY_ROUTES[route](), *pairs))
    # Then it is read as JSON (these were 500s)
    assert answer.status in READ_AS_JSON[route], answer.body


@pytest.mark.parametrize("route", list(BODY_ROUTES))
@pytest.mark.parametrize("pairs", OTHER_TYPES, ids=lambda pairs: " + ".join(value for _, value in pairs))
def test_any_other_media_type_is_a_415(functions: Functions, route: str, pairs: list[tuple[str, str]]) -> None:
    answer = functions.http(with_content_types(BODY_ROUTES[route](), *pairs))
    assert_error_shape(answer, 415, "unsupported_media_type")


# ---------------------------------------------------------------- path parameters under the body's rules

USER_ROUTES = {
    "events": ("GET", USER_EVENTS),
    "activity": ("GET", "/v1/users/{user_id}/activity"),
    "erasure": ("DELETE", "/v1/users/{user_id}"),
}


@pytest.mark.parametrize("route", list(USER_ROUTES))
@pytest.mark.parametrize(
    "user_id", ["u" * 129, "x" * 60_000, "a\x00b", "line\nbreak"], ids=["129", "60000", "nul", "lf"]
)
def test_a_user_id_in_a_path_obeys_the_body_rule(functions: Functions, route: str, user_id: str) -> None:
    # Given a user id no event could carry (a 60,000-character one used to be stored as an erasure)
    method, resource = USER_ROUTES[route]
    request = api_event(method, resource, authorizer=tenant_context(TENANT), path_parameters={"user_id": user_id})
    # Then every route that takes a user id answers 422 naming it
    answer = functions.http(request)
    assert_error_shape(answer, 422, "validation_error")
    assert "user_id" in {detail["field"] for detail in answer.body["error"]["details"]}


@pytest.mark.parametrize(
    ("method", "resource", "parameters"),
    [
        ("GET", "/v1/erasures/{erasure_id}", {"erasure_id": "e" * 60_000}),
        ("PATCH", "/v1/tenants/{tenant_id}", {"tenant_id": "t" * 60_000}),
        ("POST", "/v1/tenants/{tenant_id}/keys", {"tenant_id": "ten x"}),
        ("DELETE", "/v1/tenants/{tenant_id}/keys/{key_id}", {"tenant_id": "ten_x", "key_id": "k" * 129}),
    ],
)
def test_a_server_made_id_in_a_path_has_the_id_rule(
    functions: Functions, method: str, resource: str, parameters: dict[str, str]
) -> None:
    admin = resource.startswith("/v1/tenants")
    body = {"active": True} if method == "PATCH" else None
    context = admin_context() if admin else tenant_context(TENANT)
    answer = functions.http(api_event(method, resource, authorizer=context, path_parameters=parameters, body=body))
    assert_error_shape(answer, 422, "validation_error")


def test_the_nfc_and_nfd_spellings_of_a_user_are_one_user_on_every_route(functions: Functions) -> None:
    # Given an event of "Zoë" sent in NFD
    nfc, nfd = unicodedata.normalize("NFC", "Zoë"), unicodedata.normalize("NFD", "Zoë")
    assert functions.http(post_event(body=event(event_id="evt-zoe", user_id=nfd))).status == 201
    # Then it is the user "Zoë" in NFC, whichever spelling the path uses
    for spelling in (nfc, nfd):
        answer = functions.http(get_events({}, user_id=spelling))
        assert [item["user_id"] for item in answer.body["items"]] == [nfc]


# ---------------------------------------------------------------- one key per request


def test_two_different_keys_in_one_request_are_refused_by_the_authorizer(functions: Functions) -> None:
    created = create_tenant(functions, "Two keys")
    key = created["api_key"]
    request = authorizer_event(key)
    # Given the tenant's key and another value, under two spellings of the header's name
    for first, second in ((key, "atk_other"), ("atk_other", key)):
        both = {**request, "headers": {**request["headers"], "X-Api-Key": first, "x-api-key": second}}
        both["multiValueHeaders"] = {**request["multiValueHeaders"], "X-Api-Key": [first], "x-api-key": [second]}
        # Then the authorizer refuses the request (API Gateway answers 401)
        with pytest.raises(Exception, match=r"^Unauthorized$"):
            functions.invoke("AuthorizerFunction", both)
    # While one value, sent twice or under one name in multiValueHeaders only, is that key
    twice = {**request, "multiValueHeaders": {**request["multiValueHeaders"], "x-api-key": [key, key]}}
    assert functions.invoke("AuthorizerFunction", twice)["principalId"] == created["key_id"]
    hidden = {**request, "multiValueHeaders": {**request["multiValueHeaders"], "x-api-key": [key, "atk_other"]}}
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        functions.invoke("AuthorizerFunction", hidden)


def wrap_event(route: str, event_text: str) -> str:
    """The body of ``route`` holding one event written as ``event_text``."""
    return event_text if route == "/v1/events" else '{"events": [' + event_text + "]}"


def test_two_different_content_encodings_are_a_400(functions: Functions) -> None:
    request = post_event(body=event(event_id="evt-encodings"))
    for first, second in (("gzip", "identity"), ("identity", "gzip")):
        both = {**request, "headers": {**request["headers"], "Content-Encoding": first, "content-encoding": second}}
        both["multiValueHeaders"] = {
            **request["multiValueHeaders"],
            "Content-Encoding": [first],
            "content-encoding": [second],
        }
        assert_error_shape(functions.http(both), 400, "bad_request")
