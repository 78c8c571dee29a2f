"""Isolation as a property: whatever the tenants, users and events, each tenant reads exactly its own.

Random tenants (2-4, each in a time zone of its own choosing), users drawn from one small pool (so the
same user id, and the same event ids, exist in several tenants) and events are ingested in-process
through the real ingest handler (each tenant's catalog giving the same action names other points, and a
number property), counted by the real rollup on moto, then read back through the query
and stats handlers and the statistics functions. Every answer is compared with a brute force over
the events that tenant sent: nothing more, nothing less, nothing of another tenant.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import boto3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from local_stack.aws import create_tables
from local_stack.template import Template
from tests.support import function_environment
from tracker import stats
from tracker.adapters.aggregates_table import rollup_aggregates, stats_aggregates
from tracker.adapters.catalog_table import catalog_reader
from tracker.interfaces import StatsStore
from tracker.local_calendar import local_date, local_hour_start
from tracker.rollup import RollupReport, run_rollup
from tracker.timefmt import format_utc, parse_utc, utc_now

from .support import Functions, HttpAnswer, api_event, tenant_context

TENANT_IDS = ("ten_5f3a9c0d1e2b4a67", "ten_5f3a9c0d1e2b4a68", "ten_0000000000000001", "ten_ffffffffffffffff")
USERS = ("shared", "a/b", "é x", "u#1")
ACTIONS = ("login", "view", "buy")
ZONES = ("UTC", "Europe/Kyiv", "Asia/Kolkata", "America/St_Johns")
MAX_MINUTES_AGO = 25 * 60
TOP_HOURS = 27  # covers every event drawn
PAGE = 3
HOUR = timedelta(hours=1)

events_strategy = st.lists(
    st.tuples(st.sampled_from(USERS), st.sampled_from(ACTIONS), st.integers(0, MAX_MINUTES_AGO)), max_size=8
)
tenants_strategy = st.lists(st.tuples(st.sampled_from(ZONES), events_strategy), min_size=2, max_size=4)


@dataclass(frozen=True)
class Sent:
    tenant: str
    event_id: str
    user: str
    action: str
    occurred_at: datetime


def points_of(tenant: str, action: str) -> int:
    """Each tenant's catalog gives the same action names other points (``view`` none)."""
    return {"login": 1, "buy": 10, "view": 0}[action] * (TENANT_IDS.index(tenant) + 1)


def metadata_of(tenant: str) -> dict[str, Any]:
    """Every event carries its tenant, and a number (``n``, declared on ``buy``) of its own."""
    return {"tenant": tenant, "n": TENANT_IDS.index(tenant) + 0.5}


def create_catalog(functions: Functions, tenant: str, zone: ZoneInfo) -> None:
    for action in ACTIONS:
        body = {"name": action, "points": points_of(tenant, action)}
        if action == "buy":
            body["properties"] = {"n": {"type": "number"}}
        answer = functions.http(api_event("POST", "/v1/event-types", authorizer=context_of(tenant, zone), body=body))
        assert answer.status == 201, answer.body


def context_of(tenant: str, zone: ZoneInfo) -> dict[str, Any]:
    return {**tenant_context(tenant), "timezone": zone.key}


def ingest(functions: Functions, tenant: str, zone: ZoneInfo, drawn: list[Any], anchor: datetime) -> list[Sent]:
    # Every tenant has the user "shared", and event ids evt-0, evt-1 ... as every other tenant
    drawn = [("shared", "login", 0), *drawn]
    raws = [
        {
            "event_id": f"evt-{index}",
            "user_id": user,
            "action": action,
            "occurred_at": format_utc(anchor - timedelta(minutes=minutes_ago)),
            "metadata": metadata_of(tenant),
        }
        for index, (user, action, minutes_ago) in enumerate(drawn)
    ]
    answer = functions.http(
        api_event("POST", "/v1/events/batch", authorizer=context_of(tenant, zone), body={"events": raws})
    )
    assert answer.status == 200, answer.body
    assert (answer.body["accepted"], answer.body["duplicates"], answer.body["rejected"]) == (len(raws), 0, 0)
    return [Sent(tenant, raw["event_id"], raw["user_id"], raw["action"], parse_utc(raw["occurred_at"])) for raw in raws]


def rollup(template: Template, zones: dict[str, ZoneInfo], now: datetime) -> RollupReport:
    with function_environment(template.functions["RollupFunction"]):
        return run_rollup(
            rollup_aggregates(),
            zones.__getitem__,
            now=now,
            settle=timedelta(0),
            initial_lookback=timedelta(hours=1),
            catalog=catalog_reader(),
        )


def get_of_user(
    functions: Functions, resource: str, tenant: str, zone: ZoneInfo, user: str, query: dict[str, str]
) -> HttpAnswer:
    """``GET resource`` (a route of ``{user_id}``) for ``user``, with the tenant's key."""
    authorizer = context_of(tenant, zone)
    return functions.http(
        api_event("GET", resource, authorizer=authorizer, path_parameters={"user_id": user}, query=query)
    )


def read_user_events(
    functions: Functions, tenant: str, zone: ZoneInfo, user: str, cursor: str | None = None
) -> tuple[int, Any]:
    query = {"limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
    answer = get_of_user(functions, "/v1/users/{user_id}/events", tenant, zone, user, query)
    return answer.status, answer.body


def check_events(functions: Functions, tenant: str, zone: ZoneInfo, own: list[Sent]) -> dict[str, str]:
    """Each user's events, page by page, are exactly the tenant's own; returns a first-page cursor per user."""
    cursors = {}
    for user in USERS:
        expected = sorted(
            ((format_utc(e.occurred_at), e.event_id, e.action) for e in own if e.user == user),
            key=lambda entry: (entry[0], entry[1]),
        )
        found, cursor = [], None
        while True:
            status, body = read_user_events(functions, tenant, zone, user, cursor)
            assert status == 200, body
            for item in body["items"]:
                assert item["user_id"] == user
                assert item["metadata"] == metadata_of(tenant), (tenant, item)
                found.append((item["occurred_at"], item["event_id"], item["action"]))
            if cursor is None and body["next_cursor"]:
                cursors[user] = body["next_cursor"]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert found == expected, (tenant, user)
    return cursors


def check_activity(functions: Functions, tenant: str, zone: ZoneInfo, own: list[Sent], anchor: datetime) -> None:
    """The stats handler's per-user activity: each 1h window counts the tenant's own events of that user."""
    query = {"period": "1h", "from": format_utc(anchor - timedelta(hours=27)), "to": format_utc(anchor + HOUR)}
    for user in USERS:
        answer = get_of_user(functions, "/v1/users/{user_id}/activity", tenant, zone, user, query)
        assert answer.status == 200, answer.body
        assert answer.body["user_id"] == user
        mine = [e for e in own if e.user == user]
        for window in answer.body["items"]:
            start, end = parse_utc(window["start"]), parse_utc(window["end"])
            inside = [e for e in mine if start <= e.occurred_at < end]
            assert window["count"] == len(inside), (tenant, user, window)
            assert window["by_action"] == dict(sorted(Counter(e.action for e in inside).items())), (tenant, user)
        assert sum(window["count"] for window in answer.body["items"]) == len(mine), (tenant, user)


def check_tenant_statistics(clock: stats.TenantClock, own: list[Sent]) -> None:
    """Daily, top users, trend, frequency and per-action daily: the tenant's own events, brute force."""
    store = stats_aggregates()
    zone = clock.zone
    day_of = {e: local_date(e.occurred_at, zone) for e in own}

    daily = stats.daily(store, clock, 3)
    for day in daily.items:
        on_day = [e for e in own if day_of[e] == day.date]
        assert (day.count, day.users) == (len(on_day), len({e.user for e in on_day})), (clock.tenant_id, day)
    assert sum(day.count for day in daily.items) == len(own)

    top = stats.top_users(store, clock, TOP_HOURS, 100)
    end = local_hour_start(clock.now, zone) + HOUR
    counted = Counter(e.user for e in own if end - TOP_HOURS * HOUR <= e.occurred_at < end)
    expected_top = sorted(counted.items(), key=lambda entry: (-entry[1], entry[0]))
    assert [(item.user_id, item.count) for item in top.items] == expected_top, clock.tenant_id

    days = stats.date_range(clock, None, None)
    per_day_action: dict[tuple[date, str], list[Sent]] = defaultdict(list)
    for e in own:
        per_day_action[(day_of[e], e.action)].append(e)
    trend = stats.trend(store, clock, days)
    for trend_day in trend.items:
        expected_counts = {action: len(per_day_action[(trend_day.date, action)]) for action in ACTIONS}
        assert trend_day.counts == {a: n for a, n in expected_counts.items() if n}, (clock.tenant_id, trend_day)

    in_range = [e for e in own if day_of[e] in set(days)]
    totals = Counter(e.action for e in in_range)
    frequency = stats.frequency(store, clock, days, None)
    assert [(item.action, item.total) for item in frequency.items] == sorted(
        totals.items(), key=lambda entry: (-entry[1], entry[0])
    ), clock.tenant_id
    # Every tenant has a login of "shared": the per-action daily users are the tenant's own
    per_action = stats.action_daily(store, clock, days, "login")
    for row in per_action.items:
        events = per_day_action[(row.date, "login")]
        assert (row.count, row.users) == (len(events), len({e.user for e in events})), row
    check_tenant_points_and_property(store, clock, own, days)


def check_tenant_points_and_property(
    store: StatsStore, clock: stats.TenantClock, own: list[Sent], days: list[date]
) -> None:
    """Points by the tenant's own catalog and the tenant's own numbers, though every tenant has the
    same users, actions and property name."""
    tenant = clock.tenant_id
    for user in USERS:
        mine = [e for e in own if e.user == user]
        points = stats.user_points(store, clock, user, None, None)
        assert points.total == sum(points_of(tenant, e.action) for e in mine), (tenant, user)
        assert {a: p.count for a, p in points.by_action.items()} == dict(Counter(e.action for e in mine))
    top = stats.top_users(store, clock, TOP_HOURS, 100, "points")
    end = local_hour_start(clock.now, clock.zone) + HOUR
    earned: Counter[str] = Counter()
    for e in own:
        if end - TOP_HOURS * HOUR <= e.occurred_at < end:
            earned[e.user] += points_of(tenant, e.action)
    ranked = sorted(((u, p) for u, p in earned.items() if p), key=lambda entry: (-entry[1], entry[0]))
    assert [(item.user_id, item.points) for item in top.items] == ranked, tenant  # type: ignore[union-attr]
    bought = Counter(local_date(e.occurred_at, clock.zone) for e in own if e.action == "buy")
    value = Decimal(str(metadata_of(tenant)["n"]))
    for day in stats.property_daily(store, clock, days, "buy", "n").items:
        assert (day.count, day.sum) == (bought[day.date], value * bought[day.date]), (tenant, day)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(drawn_tenants=tenants_strategy)
def test_each_tenant_reads_exactly_its_own_events_and_counts(
    template: Template,
    function_modules: dict[str, ModuleType],
    boto_session: boto3.Session,
    drawn_tenants: list[tuple[str, list[Any]]],
) -> None:
    functions = Functions(template, function_modules)
    with mock_aws():
        create_tables(boto_session.client("dynamodb"), template)
        # Given tenants with events of users whose ids (and event ids) other tenants use too
        anchor = utc_now()
        zones = {TENANT_IDS[index]: ZoneInfo(zone) for index, (zone, _) in enumerate(drawn_tenants)}
        sent: list[Sent] = []
        for (tenant, zone), (_, drawn) in zip(zones.items(), drawn_tenants, strict=True):
            create_catalog(functions, tenant, zone)
            sent += ingest(functions, tenant, zone, drawn, anchor)
        # When the rollup counts them
        now = utc_now() + timedelta(milliseconds=1)
        report = rollup(template, zones, now)
        assert report.finished, report
        assert not report.conflict, report
        assert report.events == len(sent), report
        # Then each tenant reads exactly its own events and statistics
        cursors: dict[str, dict[str, str]] = {}
        for tenant, zone in zones.items():
            own = [e for e in sent if e.tenant == tenant]
            cursors[tenant] = check_events(functions, tenant, zone, own)
            check_activity(functions, tenant, zone, own, anchor)
            with function_environment(template.functions["RollupFunction"]):
                check_tenant_statistics(stats.TenantClock(tenant, zone, now), own)
        # And a tenant's cursor is a 400 for every other tenant, for the same user and query
        for tenant, by_user in cursors.items():
            for user, cursor in by_user.items():
                for other, zone in zones.items():
                    if other != tenant:
                        status, body = read_user_events(functions, other, zone, user, cursor)
                        assert status == 400, (tenant, other, user, body)
                        assert body["error"]["code"] == "bad_request"
