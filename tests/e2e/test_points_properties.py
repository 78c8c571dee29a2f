"""Points and a numeric property over HTTP, against the local stack (or a deployed one): the catalog,
events in the tracking plan's ``flag`` mode, the rollup invoked as the scheduler does, and the
statistics read back with every digit (the JSON parsed with ``parse_float=Decimal``)."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.conftest import Stack, run_rollup, send

pytestmark = pytest.mark.e2e

KYIV = ZoneInfo("Europe/Kyiv")
BIG = 123456789012345678901234567890  # 30 digits


def exact_get(stack: Stack, path: str, key: str) -> Any:
    """The answer's JSON with every decimal exact (``Stack.request`` parses floats)."""
    request = urllib.request.Request(f"{stack.api}{path}", headers={"x-api-key": key})  # noqa: S310 - local test URL
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310
        assert answer.status == 200
        return json.loads(answer.read(), parse_float=Decimal)


def accepted(stack: Stack, key: str, events: list[dict[str, Any]]) -> None:
    reply = send(stack, "POST", "/v1/events/batch", {"events": events}, key)
    assert reply.status == 200, reply.body
    assert reply.body["accepted"] == len(events), reply.body


def test_points_and_a_property_are_counted_exactly_over_http(stack: Stack) -> None:
    # Given a tenant in Kyiv whose catalog gives purchase 10 points and a number amount, in flag mode
    tenant = stack.new_tenant(timezone=KYIV.key)
    key = tenant["api_key"]
    purchase = {"name": "purchase", "points": 10, "properties": {"amount": {"type": "number", "required": True}}}
    assert send(stack, "POST", "/v1/event-types", purchase, key).status == 201
    reply = send(stack, "PATCH", f"/v1/tenants/{tenant['tenant_id']}", {"validation": "flag"}, stack.admin_key)
    assert reply.status == 200, reply.body
    # And purchases of two users (one amount a string: flagged and not counted), counted by the rollup
    accepted(
        stack,
        key,
        [
            {"user_id": "zoë/1", "action": "purchase", "metadata": {"amount": 0.1}},
            {"user_id": "zoë/1", "action": "purchase", "metadata": {"amount": 0.2}},
            {"user_id": "u2", "action": "purchase", "metadata": {"amount": BIG}},
            {"user_id": "u2", "action": "purchase", "metadata": {"amount": "50"}},
        ],
    )
    run_rollup(stack, datetime.now(UTC))
    # When the points change, and one more purchase is counted after the change
    reply = send(stack, "PATCH", "/v1/event-types/purchase", {"points": 25, "properties": purchase["properties"]}, key)
    assert reply.status == 200, reply.body
    accepted(stack, key, [{"user_id": "zoë/1", "action": "purchase", "metadata": {"amount": 1}}])
    run_rollup(stack, datetime.now(UTC))
    today = datetime.now(KYIV).date().isoformat()

    # Then each user's points are those of the type when each event was counted
    user = quote("zoë/1", safe="")
    points = exact_get(stack, f"/v1/users/{user}/points", key)
    assert (points["user_id"], points["total"]) == ("zoë/1", 10 + 10 + 25)
    assert points["by_action"] == {"purchase": {"count": 3, "points": 45}}
    today_points = exact_get(stack, f"/v1/users/{user}/points?{urlencode({'from': today, 'to': today})}", key)
    assert today_points["total"] == 45
    top = exact_get(stack, "/v1/stats/top-users?hours=24&by=points", key)
    assert top["items"] == [{"user_id": "zoë/1", "points": 45, "count": 3}, {"user_id": "u2", "points": 20, "count": 2}]
    # And the day's amount is exact: 0.1 + 0.2 + 1 + a 30-digit integer, the string left out
    daily = exact_get(stack, f"/v1/stats/actions/purchase/properties/amount/daily?from={today}&to={today}", key)
    (day,) = daily["items"]
    exact_sum = Decimal("123456789012345678901234567891.3")  # BIG + 1.3, all 31 digits
    assert (day["count"], day["sum"], day["min"], day["max"]) == (4, exact_sum, Decimal("0.1"), BIG)
    # And the string amount is a type_mismatch of the day
    violations = exact_get(stack, f"/v1/stats/violations?from={today}&to={today}", key)
    assert violations["items"] == [{"date": today, "action": "purchase", "kind": "type_mismatch", "count": 1}]
    # And every answer is as of the last rollup
    assert points["as_of"] == daily["as_of"] == violations["as_of"]
