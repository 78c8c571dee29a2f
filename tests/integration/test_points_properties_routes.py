"""Points, numeric properties and violations through the real stats handler on moto: the answers'
shape and exact numbers, and the contract's 400s and 422s for the bad input of issue 13."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from tests.integration.test_stats_routes import (  # noqa: F401 (fixtures)
    AS_OF,
    Api,
    Data,
    _Context,
    _environment,
    _fast_moto_transactions,
    _fresh_client_and_settings,
    api,
    empty,
    no_tables,
    stats_app,
    sample_event,
    stats_template,
)
from tracker.timefmt import format_utc

SAMPLES = ["user_points", "user_points_range", "top_users_by_points", "property_daily", "violations"]


def get_exact(api: Api, sample: str, params: dict[str, str] | None = None, **path: str) -> tuple[int, Any]:
    """As ``Api.get``, the body read with every decimal exact."""
    status, body = api.get(sample, params, **path)
    return status, json.loads(json.dumps(body), parse_float=Decimal) if status != 200 else body


# ---------------------------------------------------------------- with nothing counted yet


@pytest.mark.parametrize("name", SAMPLES)
def test_each_new_sample_event_answers_zeros_as_of_the_epoch(api: Api, empty: Data, name: str) -> None:
    # Given no rollup ever ran; when the sample event is sent as is
    status, body = api.get(name)
    # Then it is a 200 with as_of at the epoch and nothing counted
    assert status == 200
    assert body["as_of"] == "1970-01-01T00:00:00.000Z"
    if name.startswith("user_points"):
        assert (body["user_id"], body["total"], body["by_action"]) == ("user/42", 0, {})
    else:
        assert all(item.get("count", 0) == 0 for item in body["items"])


def test_lifetime_points_have_no_range_and_a_range_names_its_local_days(api: Api, empty: Data) -> None:
    _, lifetime = api.get("user_points")
    assert (lifetime["from"], lifetime["to"]) == (None, None)
    _, ranged = api.get("user_points_range")
    # 6-12 October 2025 in Kyiv (+03:00): from local midnight of the 6th to local midnight of the 13th
    assert (ranged["from"], ranged["to"]) == ("2025-10-05T21:00:00.000Z", "2025-10-12T21:00:00.000Z")


def test_property_daily_lists_every_day_with_a_zero_sum_and_null_avg_min_max(api: Api, empty: Data) -> None:
    status, body = api.get("property_daily", {"from": "2025-10-06", "to": "2025-10-08"})
    assert status == 200
    assert (body["action"], body["property"]) == ("purchase", "amount")
    assert body["items"] == [
        {"date": f"2025-10-0{day}", "count": 0, "sum": 0, "avg": None, "min": None, "max": None} for day in (6, 7, 8)
    ]


def test_a_property_name_is_taken_as_decoded_from_the_path(api: Api, empty: Data) -> None:
    # Any metadata key is a property name: slashes, spaces, colons, Unicode, 128 characters
    for name in ("a/b", "total amount", "n:x", "é", "x" * 128, "%41"):
        status, body = api.get("property_daily", property=name)
        assert (status, body["property"]) == (200, name)


def test_top_users_by_points_on_an_empty_store_lists_nobody(api: Api, empty: Data) -> None:
    status, body = api.get("top_users_by_points")
    assert (status, body["by"], body["items"]) == (200, "points", [])
    assert body["as_of"] == "1970-01-01T00:00:00.000Z" != format_utc(AS_OF)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("sample", "params", "path", "field"),
    [
        ("user_points", {}, {"user_id": "x" * 129}, "user_id"),
        ("user_points", {}, {"user_id": "bad\u0000id"}, "user_id"),
        ("user_points", {}, {"user_id": "tab\there"}, "user_id"),
        ("user_points", {"from": "2025-10-12", "to": "2025-10-11"}, {}, "from"),
        ("user_points", {"from": "2025-10-12T10:00:00Z", "to": "2025-10-12T10:00:00Z"}, {}, "from"),
        ("user_points", {"from": "2024-10-01", "to": "2025-10-02"}, {}, "to"),
        ("user_points", {"from": "2024-10-01T00:00:00Z", "to": "2025-10-02T00:00:01Z"}, {}, "to"),
        ("user_points", {"from": "1999-12-31"}, {}, "from"),
        ("user_points", {"to": "1999-12-31T23:59:59Z"}, {}, "to"),
        ("top_users_by_points", {"by": "users"}, {}, "by"),
        ("top_users_by_points", {"by": "POINTS"}, {}, "by"),
        ("top_users_by_points", {"by": ""}, {}, "by"),
        ("top_users_by_points", {"by": "points", "hours": "721"}, {}, "hours"),
        ("property_daily", {}, {"property": "p" * 129}, "property"),
        ("property_daily", {}, {"property": "new\nline"}, "property"),
        ("property_daily", {}, {"property": "nul\u0000"}, "property"),
        ("property_daily", {}, {"action": "bad action"}, "action"),
        ("property_daily", {}, {"action": "a" * 65}, "action"),
        ("property_daily", {"from": "2024-06-01", "to": "2025-06-02"}, {}, "to"),
        ("property_daily", {"from": "2025-10-08", "to": "2025-10-07"}, {}, "from"),
        ("violations", {"from": "2024-06-01", "to": "2025-06-02"}, {}, "to"),
        ("violations", {"from": "2025-10-08T00:00:00Z", "to": "2025-10-08T00:00:00Z"}, {}, "from"),
        ("violations", {"from": "1999-12-31"}, {}, "from"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    api: Api, no_tables: None, sample: str, params: dict[str, str], path: dict[str, str], field: str
) -> None:
    # Given no tables at all (a refused request reads nothing); when the bad request is sent
    status, body = api.get(sample, params or None, **path)
    # Then it is a 422 in the contract's shape, naming the field
    assert status == 422, body
    assert body["error"]["code"] == "validation_error"
    assert field in {detail["field"] for detail in body["error"]["details"]}, body


@pytest.mark.parametrize(
    ("sample", "params"),
    [
        ("user_points", {"from": "yesterday"}),
        ("user_points", {"to": "2025-02-30"}),
        ("user_points", {"from": "1760000000"}),
        ("property_daily", {"from": "2025-10-32"}),
        ("violations", {"to": "noon"}),
        ("top_users_by_points", {"by": "points", "limit": "ten"}),
    ],
)
def test_unparseable_parameters_are_a_400(api: Api, no_tables: None, sample: str, params: dict[str, str]) -> None:
    status, body = api.get(sample, params)
    assert status == 400, body
    assert body["error"]["code"] == "bad_request"


def test_a_property_name_with_an_unpaired_surrogate_is_a_422(stats_app: Any, no_tables: None) -> None:
    # Given the path parameter as a Lambda event can carry it ("\\ud800" in its JSON)
    event = sample_event("property_daily")
    event["pathParameters"]["property"] = "\ud800"
    # When it is handled; then it is a 422 naming the property, not a 500 while writing the answer
    answer = stats_app.lambda_handler(event, _Context())
    body = json.loads(answer["body"])
    assert answer["statusCode"] == 422, body
    assert [detail["field"] for detail in body["error"]["details"]] == ["property"]


def test_an_empty_property_name_is_no_route(api: Api, no_tables: None) -> None:
    # API Gateway never routes an empty path segment; the handler answers a 422 if one comes anyway
    status, body = api.get("property_daily", property="")
    assert status in (404, 422), body
    assert "error" in body
