"""What the functions tell CloudWatch: EMF metrics on stdout, structured log lines with the correlation id."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from local_stack.template import Template
from tests.support import emf_documents

from .support import Functions, api_event, tenant_context

TENANT = "ten_observe000000001"
PRIVATE_DIMENSIONS = {"tenant_id", "tenant", "user_id", "user", "key_id", "event_id"}


def post(resource: str, body: Any, request_id: str | None = None) -> dict[str, Any]:
    return api_event("POST", resource, authorizer=tenant_context(TENANT), body=body, request_id=request_id)


def event(event_id: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "user_id": "user-private-42", "action": "login", **fields}


def metric_values(blobs: list[dict[str, Any]], name: str) -> list[float]:
    values: list[float] = []
    for blob in blobs:
        if name in blob:
            value = blob[name]
            values += value if isinstance(value, list) else [value]
    return values


def request_blob(blobs: list[dict[str, Any]]) -> dict[str, Any]:
    (blob,) = [blob for blob in blobs if "Requests" in blob]
    return blob


def assert_route_dimension_only(blob: dict[str, Any], route: str) -> None:
    """Every dimension set has ``route``; none has a tenant, user, key or event (unbounded cardinality)."""
    assert blob["route"] == route
    for directive in blob["_aws"]["CloudWatchMetrics"]:
        for dimensions in directive["Dimensions"]:
            assert "route" in dimensions
            assert not set(dimensions) & PRIVATE_DIMENSIONS, dimensions
    assert TENANT not in json.dumps(blob)
    assert "user-private-42" not in json.dumps(blob)


def test_a_batch_emits_requests_and_event_counts_with_a_route_dimension(
    functions: Functions, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a batch of two new events, a copy of the first, and a bad one
    batch = {"events": [event("evt-1"), event("evt-2"), event("evt-1"), event("evt-3", action="log in")]}
    capsys.readouterr()
    # When the ingest function handles it
    answer = functions.http(post("/v1/events/batch", batch))
    assert answer.status == 200
    # Then its EMF document counts the request and the events, by route only
    blobs = emf_documents(capsys.readouterr().out)
    blob = request_blob(blobs)
    assert_route_dimension_only(blob, "POST /v1/events/batch")
    names = {metric["Name"] for directive in blob["_aws"]["CloudWatchMetrics"] for metric in directive["Metrics"]}
    assert names >= {"Requests", "EventsAccepted", "EventsDuplicate", "EventsRejected"}
    assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ActivityTracker"
    assert metric_values([blob], "Requests") == [1.0]
    assert metric_values([blob], "EventsAccepted") == [2.0]
    assert metric_values([blob], "EventsDuplicate") == [1.0]
    assert metric_values([blob], "EventsRejected") == [1.0]


def test_single_events_count_as_accepted_then_duplicate(
    functions: Functions, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert functions.http(post("/v1/events", event("evt-1"))).status == 201
    first = request_blob(emf_documents(capsys.readouterr().out))
    assert functions.http(post("/v1/events", event("evt-1"))).status == 200
    second = request_blob(emf_documents(capsys.readouterr().out))
    assert_route_dimension_only(first, "POST /v1/events")
    assert_route_dimension_only(second, "POST /v1/events")
    assert (metric_values([first], "EventsAccepted"), metric_values([first], "EventsDuplicate")) == ([1.0], [0.0])
    assert (metric_values([second], "EventsAccepted"), metric_values([second], "EventsDuplicate")) == ([0.0], [1.0])


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (event("evt-early", occurred_at="1970-01-01T00:00:00Z"), 422),
        (event("evt-no-user", user_id=None), 422),
        (event("evt-1", action="logout"), 409),
    ],
    ids=["occurred-in-1970", "schema-invalid", "conflict"],
)
def test_a_refused_single_event_counts_as_rejected(
    functions: Functions, capsys: pytest.CaptureFixture[str], body: dict[str, Any], status: int
) -> None:
    # Given evt-1 stored
    assert functions.http(post("/v1/events", event("evt-1"))).status == 201
    capsys.readouterr()
    # When a single event is refused (a time out of bounds, a broken schema, another content for evt-1)
    answer = functions.http(post("/v1/events", {k: v for k, v in body.items() if v is not None}))
    assert answer.status == status
    # Then it is counted as a rejected event, as the batch route counts the same refusals
    blob = request_blob(emf_documents(capsys.readouterr().out))
    assert metric_values([blob], "EventsRejected") == [1.0]
    assert metric_values([blob], "ClientErrors") == [1.0]


def test_the_first_invocation_reports_a_cold_start_once(
    functions: Functions, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    functions.http(post("/v1/events", event("evt-1")))
    functions.http(post("/v1/events", event("evt-2")))
    assert metric_values(emf_documents(capsys.readouterr().out), "ColdStart") == [1.0]


def test_every_http_function_counts_requests_by_route(functions: Functions, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    functions.http(
        api_event(
            "GET", "/v1/users/{user_id}/events", authorizer=tenant_context(TENANT), path_parameters={"user_id": "u"}
        )
    )
    assert_route_dimension_only(request_blob(emf_documents(capsys.readouterr().out)), "GET /v1/users/{user_id}/events")


# ---------------------------------------------------------------- logs


@pytest.fixture
def log_stream(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The functions' Powertools logger, writing to a buffer instead of the stdout it bound at import."""
    from tracker.rest import logger

    buffer = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", buffer)
    return buffer


def log_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_an_unexpected_failure_is_logged_with_the_api_gateway_request_id(
    functions: Functions, template: Template, dynamodb: Any, log_stream: io.StringIO
) -> None:
    # Given an events table that is gone (a broken deployment)
    dynamodb.delete_table(TableName=template.functions["IngestFunction"].environment["EVENTS_TABLE"])
    request_id = "c0ffee00-1234-4321-abcd-000000000042"
    # When an event is posted
    answer = functions.http(post("/v1/events", event("evt-1", metadata={"secret": "s3cr3t"}), request_id=request_id))
    # Then the answer is an error in the contract's shape without a stack trace
    assert answer.status >= 500
    assert set(answer.body["error"]) == {"code", "message", "details"}
    assert "Traceback" not in json.dumps(answer.body)
    # And the structured log lines carry the API Gateway request id as the correlation id
    lines = log_lines(log_stream)
    assert lines, "no structured log line was written"
    assert all(line["correlation_id"] == request_id for line in lines), lines
    error = next(line for line in lines if line["level"] == "ERROR")
    assert error["service"] == "activity-tracker"
    assert "function_request_id" in error
    assert "exception" in error
    # And the event's content is not in the logs
    assert "s3cr3t" not in log_stream.getvalue()


def test_log_lines_do_not_carry_a_previous_requests_correlation_id(
    functions: Functions, template: Template, dynamodb: Any, log_stream: io.StringIO
) -> None:
    dynamodb.delete_table(TableName=template.functions["IngestFunction"].environment["EVENTS_TABLE"])
    functions.http(post("/v1/events", event("evt-1"), request_id="request-one"))
    functions.http(post("/v1/events", event("evt-2"), request_id="request-two"))
    ids = [line["correlation_id"] for line in log_lines(log_stream)]
    assert "request-one" in ids
    assert "request-two" in ids
    assert ids == sorted(ids, key=["request-one", "request-two"].index)
