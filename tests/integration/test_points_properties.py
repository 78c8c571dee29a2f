"""Points, numeric properties and violations in-process on moto: the catalog made through
the event types handler, events sent through the ingest handler (tracking plan ``flag``), counted by
the real rollup with the real catalog reader, read back through the stats handler, every number
compared exactly (the JSON parsed with ``parse_float=Decimal``); the sample events' answers with
nothing counted; the contract's 400s and 422s for the bad input of issue 13."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from fractions import Fraction
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from moto import mock_aws

from local_stack.template import Template
from tests.support import function_environment
from tracker.adapters.aggregates_table import rollup_aggregates
from tracker.adapters.catalog_table import catalog_reader
from tracker.local_calendar import local_date
from tracker.rollup import run_rollup
from tracker.timefmt import utc_now

from .support import Functions, api_event, sample_event, tenant_context, with_request

TENANT = "ten_exact00000000001"
OTHER = "ten_exact00000000002"
KYIV = ZoneInfo("Europe/Kyiv")
BIG = 12345678901234567890123456789  # 29 digits: a double keeps 17
CATALOG = [
    {"name": "purchase", "points": 10, "properties": {"amount": {"type": "number", "required": True}}},
    {"name": "login", "points": 1},
    {"name": "browse", "points": 0, "properties": {"amount": {"type": "number"}}},
]


def context(tenant: str) -> dict[str, Any]:
    return {**tenant_context(tenant), "timezone": KYIV.key, "validation": "flag"}


def call(functions: Functions, tenant: str, method: str, resource: str, **kwargs: Any) -> tuple[int, Any]:
    """The handler's answer, its JSON read with every decimal exact."""
    event = api_event(method, resource, authorizer=context(tenant), **kwargs)
    result = functions.invoke(functions.function_for(event), event)
    return result["statusCode"], json.loads(result["body"], parse_float=Decimal) if result.get("body") else None


def send(functions: Functions, tenant: str, events: list[dict[str, Any]]) -> None:
    status, body = call(functions, tenant, "POST", "/v1/events/batch", body={"events": events})
    assert status == 200, body
    assert body["accepted"] == len(events), body


def rollup(template: Template) -> None:
    with function_environment(template.functions["RollupFunction"]):
        report = run_rollup(
            rollup_aggregates(),
            lambda _tenant: KYIV,
            now=utc_now() + timedelta(seconds=1),
            settle=timedelta(0),
            initial_lookback=timedelta(hours=1),
            catalog=catalog_reader(),
        )
    assert report.finished


@pytest.fixture
def counted(functions: Functions, template: Template) -> datetime:
    """The catalog, then events of two users (and of another tenant with the same names), rolled up."""
    for event_type in CATALOG:
        status, body = call(functions, TENANT, "POST", "/v1/event-types", body=event_type)
        assert status == 201, body
    # Another tenant: the same names, other points, other amounts, no tracking-plan violation
    status, body = call(functions, OTHER, "POST", "/v1/event-types", body={**CATALOG[0], "points": 1000})
    assert status == 201, body
    send(functions, OTHER, [{"user_id": "u1", "action": "purchase", "metadata": {"amount": 999}}] * 3)
    send(
        functions,
        TENANT,
        [
            {"user_id": "u1", "action": "purchase", "metadata": {"amount": 0.1}},
            {"user_id": "u1", "action": "purchase", "metadata": {"amount": 0.2}},
            {"user_id": "u1", "action": "login"},
            {"user_id": "u1", "action": "login"},
            {"user_id": "u2", "action": "purchase", "metadata": {"amount": BIG}},
            {"user_id": "u2", "action": "purchase", "metadata": {"amount": -1e-300}},
            {"user_id": "u2", "action": "purchase", "metadata": {"amount": "50"}},  # type_mismatch, not counted
            {"user_id": "u2", "action": "purchase", "metadata": {"amount": True}},  # type_mismatch, not counted
            {"user_id": "u2", "action": "purchase"},  # required_missing
            {"user_id": "u2", "action": "unknown.action", "metadata": {"amount": 5}},  # unplanned, no points
            {"user_id": "u3", "action": "browse", "metadata": {"amount": 7}},  # no points, a property
        ],
    )
    rollup(template)
    return utc_now()


def test_points_are_those_of_the_catalog_per_user_and_action(functions: Functions, counted: datetime) -> None:
    # When u1's and u2's lifetime points, and today's, are read
    _, u1 = call(functions, TENANT, "GET", "/v1/users/{user_id}/points", path_parameters={"user_id": "u1"})
    _, u2 = call(functions, TENANT, "GET", "/v1/users/{user_id}/points", path_parameters={"user_id": "u2"})
    today = local_date(counted, KYIV).isoformat()
    status, u2_today = call(
        functions,
        TENANT,
        "GET",
        "/v1/users/{user_id}/points",
        path_parameters={"user_id": "u2"},
        query={"from": today, "to": today},
    )
    # Then each action earns its type's points, per event; an unknown action earns none
    assert (u1["total"], u1["by_action"]) == (
        22,
        {"login": {"count": 2, "points": 2}, "purchase": {"count": 2, "points": 20}},
    )
    assert u2["total"] == 50
    assert u2["by_action"] == {"purchase": {"count": 5, "points": 50}, "unknown.action": {"count": 1, "points": 0}}
    assert status == 200
    assert (u2_today["total"], u2_today["by_action"]) == (u2["total"], u2["by_action"])
    # And the other tenant's u1 (1000 points a purchase) is not in it
    _, other = call(functions, OTHER, "GET", "/v1/users/{user_id}/points", path_parameters={"user_id": "u1"})
    assert other["total"] == 3000


def test_top_users_by_points_rank_points_then_user_id(functions: Functions, counted: datetime) -> None:
    status, body = call(functions, TENANT, "GET", "/v1/stats/top-users", query={"hours": "2", "by": "points"})
    assert status == 200, body
    # u3 earned no points: not listed
    assert body["items"] == [{"user_id": "u2", "points": 50, "count": 6}, {"user_id": "u1", "points": 22, "count": 4}]
    _, by_events = call(functions, TENANT, "GET", "/v1/stats/top-users", query={"hours": "2"})
    assert [(u["user_id"], u["count"]) for u in by_events["items"]] == [("u2", 6), ("u1", 4), ("u3", 1)]


def test_property_daily_is_exact_for_decimals_and_large_integers(functions: Functions, counted: datetime) -> None:
    today = local_date(counted, KYIV).isoformat()
    path = "/v1/stats/actions/{action}/properties/{property}/daily"
    status, body = call(
        functions,
        TENANT,
        "GET",
        path,
        path_parameters={"action": "purchase", "property": "amount"},
        query={"from": today, "to": today},
    )
    assert status == 200, body
    (day,) = body["items"]
    # 0.1 + 0.2 + BIG - 1e-300: every digit, as JSON numbers (the strings and the bool are not counted)
    with localcontext(prec=400):
        exact_sum = Decimal("0.3") + BIG - Decimal("1E-300")
    assert day["count"] == 4
    assert day["sum"] == exact_sum
    assert isinstance(day["sum"], Decimal)
    assert (day["min"], day["max"]) == (Decimal("-1E-300"), BIG)
    assert day["avg"] == Decimal(repr(float(Fraction(exact_sum) / 4)))
    # The property of another action, and an unknown property, are apart
    _, browse = call(functions, TENANT, "GET", path, path_parameters={"action": "browse", "property": "amount"})
    assert [(d["count"], d["sum"]) for d in browse["items"] if d["count"]] == [(1, 7)]
    _, unknown = call(functions, TENANT, "GET", path, path_parameters={"action": "purchase", "property": "qty"})
    assert all(d == {**d, "count": 0, "sum": 0, "avg": None, "min": None, "max": None} for d in unknown["items"])
    # And the other tenant's 999s are not in it
    _, other = call(functions, OTHER, "GET", path, path_parameters={"action": "purchase", "property": "amount"})
    assert [(d["count"], d["sum"]) for d in other["items"] if d["count"]] == [(3, 2997)]


def test_the_decimal_sum_is_written_as_the_number_0_3(functions: Functions, template: Template) -> None:
    # Given 0.1 and 0.2 (whose doubles add up to 0.30000000000000004)
    status, body = call(
        functions, TENANT, "POST", "/v1/event-types", body={"name": "tip", "properties": {"x": {"type": "number"}}}
    )
    assert status == 201, body
    send(functions, TENANT, [{"user_id": "u", "action": "tip", "metadata": {"x": x}} for x in (0.1, 0.2)])
    rollup(template)
    # When the day is read; then the body holds the JSON number 0.3
    event = api_event(
        "GET",
        "/v1/stats/actions/{action}/properties/{property}/daily",
        authorizer=context(TENANT),
        path_parameters={"action": "tip", "property": "x"},
        query={"from": local_date(utc_now(), KYIV).isoformat()},
    )
    raw = functions.invoke("StatsFunction", event)["body"]
    assert '"sum":0.3,' in raw
    assert '"min":0.1,' in raw
    assert '"max":0.2}' in raw


def test_violations_count_each_flagged_event_by_kind(functions: Functions, counted: datetime) -> None:
    status, body = call(functions, TENANT, "GET", "/v1/stats/violations")
    assert status == 200, body
    today = local_date(counted, KYIV).isoformat()
    assert body["items"] == [
        {"date": today, "action": "purchase", "kind": "required_missing", "count": 1},
        {"date": today, "action": "purchase", "kind": "type_mismatch", "count": 2},
        {"date": today, "action": "unknown.action", "kind": "unplanned_action", "count": 1},
    ]
    _, other = call(functions, OTHER, "GET", "/v1/stats/violations")
    assert other["items"] == []


# ---------------------------------------------------------------- the sample events, nothing counted


SAMPLES = ["user_points", "user_points_range", "top_users_by_points", "property_daily", "violations"]


@pytest.fixture
def no_tables(template: Template, function_modules: dict[str, ModuleType]) -> Iterator[Functions]:
    """The functions on a moto without tables: a request refused before it reads needs none."""
    with mock_aws():
        yield Functions(template, function_modules)


def get(functions: Functions, sample: str, params: dict[str, str] | None = None, **path: str) -> tuple[int, Any]:
    """``events/stats/<sample>.json`` through the stats handler, with other parameters if given."""
    event = with_request(sample_event(f"stats/{sample}.json"), params, path)
    result = functions.invoke("StatsFunction", event)
    return result["statusCode"], json.loads(result["body"], parse_float=Decimal)


# ---------------------------------------------------------------- with nothing counted yet


@pytest.mark.parametrize("name", SAMPLES)
def test_each_new_sample_event_answers_zeros_as_of_the_epoch(functions: Functions, name: str) -> None:
    # Given no rollup ever ran; when the sample event is sent as is
    status, body = get(functions, name)
    # Then it is a 200 with as_of at the epoch and nothing counted
    assert status == 200
    assert body["as_of"] == "1970-01-01T00:00:00.000Z"
    if name.startswith("user_points"):
        assert (body["user_id"], body["total"], body["by_action"]) == ("user/42", 0, {})
    else:
        assert all(item.get("count", 0) == 0 for item in body["items"])


def test_lifetime_points_have_no_range_and_a_range_names_its_local_days(functions: Functions) -> None:
    _, lifetime = get(functions, "user_points")
    assert (lifetime["from"], lifetime["to"]) == (None, None)
    _, ranged = get(functions, "user_points_range")
    # 6-12 October 2025 in Kyiv (+03:00): from local midnight of the 6th to local midnight of the 13th
    assert (ranged["from"], ranged["to"]) == ("2025-10-05T21:00:00.000Z", "2025-10-12T21:00:00.000Z")


def test_property_daily_lists_every_day_with_a_zero_sum_and_null_avg_min_max(functions: Functions) -> None:
    status, body = get(functions, "property_daily", {"from": "2025-10-06", "to": "2025-10-08"})
    assert status == 200
    assert (body["action"], body["property"]) == ("purchase", "amount")
    assert body["items"] == [
        {"date": f"2025-10-0{day}", "count": 0, "sum": 0, "avg": None, "min": None, "max": None} for day in (6, 7, 8)
    ]


def test_a_property_name_is_taken_as_decoded_from_the_path(functions: Functions) -> None:
    # Any metadata key is a property name: slashes, spaces, colons, Unicode, 128 characters
    for name in ("a/b", "total amount", "n:x", "é", "x" * 128, "%41"):
        status, body = get(functions, "property_daily", property=name)
        assert (status, body["property"]) == (200, name)


def test_top_users_by_points_on_an_empty_store_lists_nobody(functions: Functions) -> None:
    status, body = get(functions, "top_users_by_points")
    assert (status, body["by"], body["items"]) == (200, "points", [])
    assert body["as_of"] == "1970-01-01T00:00:00.000Z"


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
    no_tables: Functions, sample: str, params: dict[str, str], path: dict[str, str], field: str
) -> None:
    # Given no tables at all (a refused request reads nothing); when the bad request is sent
    status, body = get(no_tables, sample, params or None, **path)
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
def test_unparseable_parameters_are_a_400(no_tables: Functions, sample: str, params: dict[str, str]) -> None:
    status, body = get(no_tables, sample, params)
    assert status == 400, body
    assert body["error"]["code"] == "bad_request"


def test_a_property_name_with_an_unpaired_surrogate_is_a_422(no_tables: Functions) -> None:
    # Given the path parameter as a Lambda event can carry it ("\\ud800" in its JSON)
    event = sample_event("stats/property_daily.json")
    event["pathParameters"]["property"] = "\ud800"
    # When it is handled; then it is a 422 naming the property, not a 500 while writing the answer
    answer = no_tables.invoke("StatsFunction", event)
    body = json.loads(answer["body"])
    assert answer["statusCode"] == 422, body
    assert [detail["field"] for detail in body["error"]["details"]] == ["property"]


def test_an_empty_property_name_is_no_route(no_tables: Functions) -> None:
    # API Gateway never routes an empty path segment; the handler answers a 422 if one comes anyway
    status, body = get(no_tables, "property_daily", property="")
    assert status in (404, 422), body
    assert "error" in body
