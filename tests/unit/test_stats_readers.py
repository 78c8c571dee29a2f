"""The readers of points, numeric properties and violations (``tracker.stats``) on in-memory
aggregates written with the counter names of the aggregates spec: what each route answers, from one
snapshot, for a tenant in Europe/Kyiv; and ``tracker.exact_json``, which keeps decimal sums exact."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.rollup_fakes import CatalogEntry, InMemoryAggregateStore, Reference, StoredEvent
from tracker import stats
from tracker.aggregates import (
    ReceivedEvent,
    StoredAggregate,
    day_users_partition,
    tenant_actions_partition,
    user_partition,
)
from tracker.errors import ValidationFailed
from tracker.exact_json import exact_dumps, exact_model_json
from tracker.interfaces import Progress
from tracker.local_calendar import day_start
from tracker.records import EventTypeRecord, PropertyRule
from tracker.rollup import run_rollup
from tracker.timefmt import format_utc

TENANT = "ten_read000000000001"
OTHER = "ten_read000000000002"
KYIV = ZoneInfo("Europe/Kyiv")
NOW = datetime(2025, 10, 12, 9, 30, tzinfo=UTC)  # 12:30 in Kyiv
AS_OF = datetime(2025, 10, 12, 9, 29, tzinfo=UTC)
TOKEN = 7


def store_with(values: dict[tuple[str, str], dict[str, Any]], token: int = TOKEN) -> InMemoryAggregateStore:
    """Aggregates as a committed run left them (every item written by ``token`` or before)."""
    store = InMemoryAggregateStore()
    for key, value in values.items():
        store.items[key] = StoredAggregate(key, committed={}, pending=value, tag=token, base=0)
    store.progress = Progress(as_of=AS_OF, token=token, fence=token, lease_until=None)
    return store


def clock(tenant: str = TENANT) -> stats.TenantClock:
    return stats.TenantClock(tenant, KYIV, NOW)


def days(first: str, last: str) -> list[date]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


U1 = user_partition(TENANT, "u1")


# ---------------------------------------------------------------- points of a user


def test_lifetime_points_come_from_the_lifetime_item_with_its_parts() -> None:
    # Given the lifetime item of u1, split in two parts, and day items that must not be added again
    store = store_with(
        {
            (U1, "P"): {"count": 5, "a:login": 3, "a:purchase": 2, "p:purchase": 20},
            (U1, "P~1"): {"a:refer": 1, "p:refer": 20},
            (U1, "D#2025-10-12"): {"count": 1, "a:purchase": 1, "p:purchase": 10},
            (user_partition(OTHER, "u1"), "P"): {"count": 1, "a:purchase": 1, "p:purchase": 999},
        }
    )
    # When the lifetime points are read
    answer = stats.user_points(store, clock(), "u1", None, None)
    # Then every action of the user is listed with its count and points, and nothing else
    assert answer.total == 40
    assert {action: (p.count, p.points) for action, p in answer.by_action.items()} == {
        "login": (3, 0),
        "purchase": (2, 20),
        "refer": (1, 20),
    }
    assert (answer.from_, answer.to, answer.as_of) == (None, None, AS_OF)


def test_points_over_dates_add_the_user_days_of_the_local_range() -> None:
    # Given u1's days in and around 6-8 October
    store = store_with(
        {
            (U1, "D#2025-10-05"): {"count": 1, "a:purchase": 1, "p:purchase": 10},
            (U1, "D#2025-10-06"): {"count": 2, "a:purchase": 2, "p:purchase": 20},
            (U1, "D#2025-10-08"): {"count": 1, "a:login": 1, "p:login": 1},
            (U1, "D#2025-10-09"): {"count": 1, "a:purchase": 1, "p:purchase": 10},
            (U1, "H#2025-10-06T10:00:00.000Z"): {"count": 2, "a:purchase": 2, "p:purchase": 20},
            (U1, "P"): {"count": 5, "a:purchase": 4, "p:purchase": 40},
        }
    )
    # When the points of 2025-10-06 .. 2025-10-08 are read
    answer = stats.user_points(store, clock(), "u1", date(2025, 10, 6), date(2025, 10, 8))
    # Then only those days count, and the answer names the local days it covers
    assert answer.total == 21
    assert {a: (p.count, p.points) for a, p in answer.by_action.items()} == {"purchase": (2, 20), "login": (1, 1)}
    assert (answer.from_, answer.to) == (day_start(date(2025, 10, 6), KYIV), day_start(date(2025, 10, 9), KYIV))


def test_points_over_times_add_the_local_hours_the_range_touches() -> None:
    # Given u1's hours from 09:00Z to 12:00Z
    store = store_with(
        {
            (U1, f"H#2025-10-10T{hour:02d}:00:00.000Z"): {"count": 1, "a:purchase": 1, "p:purchase": 10 * hour}
            for hour in range(9, 13)
        }
    )
    # When 10:30Z .. 12:00Z is asked for
    start, end = datetime(2025, 10, 10, 10, 30, tzinfo=UTC), datetime(2025, 10, 10, 12, tzinfo=UTC)
    answer = stats.user_points(store, clock(), "u1", start, end)
    # Then the hours 10:00Z and 11:00Z count (the range touches them), and the answer says so
    assert answer.total == 100 + 110
    assert (answer.from_, answer.to) == (datetime(2025, 10, 10, 10, tzinfo=UTC), end)


def test_points_read_the_committed_snapshot_not_a_run_in_progress() -> None:
    # Given a lifetime item a run with a later token is rewriting
    store = store_with({})
    store.items[(U1, "P")] = StoredAggregate(
        (U1, "P"),
        committed={"count": 1, "a:buy": 1, "p:buy": 10},
        pending={"count": 2, "a:buy": 2, "p:buy": 20},
        tag=TOKEN + 1,
        base=TOKEN,
    )
    # When the points are read
    answer = stats.user_points(store, clock(), "u1", None, None)
    # Then the value as of the committed token is answered
    assert answer.total == 10


def test_an_unknown_user_has_no_points() -> None:
    answer = stats.user_points(store_with({}), clock(), "nobody", None, None)
    assert (answer.total, answer.by_action) == (0, {})


def test_points_ranges_follow_the_statistics_rules() -> None:
    # Given any store; when a range is empty or longer than 366 days; then it is refused
    store = store_with({})
    with pytest.raises(ValidationFailed):
        stats.user_points(store, clock(), "u1", date(2025, 10, 8), date(2025, 10, 7))
    with pytest.raises(ValidationFailed):
        stats.user_points(store, clock(), "u1", date(2024, 10, 1), date(2025, 10, 2))
    assert stats.user_points(store, clock(), "u1", date(2024, 10, 2), date(2025, 10, 2)).total == 0


# ---------------------------------------------------------------- top users by points


def test_top_users_by_points_rank_points_of_the_window_ties_by_user_id() -> None:
    # Given today's top-users items (Kyiv; the window of 2 hours is 11:00-13:00 local, 08:00-10:00Z)
    today = day_users_partition(TENANT, date(2025, 10, 12))
    eleven, twelve, ten = "ph:660", "ph:720", "ph:600"
    store = store_with(
        {
            (today, "a"): {"count": 3, "h:660": 3, "points": 30, eleven: 30},
            (today, "b"): {"count": 2, "h:720": 2, "points": 30, twelve: 30},
            (today, "c"): {"count": 9, "h:600": 9, "points": 90, ten: 90},  # before the window
            (today, "d"): {"count": 7, "h:720": 7},  # events but no points
            (today, "e"): {"count": 2, "h:660": 1, "h:600": 1, "points": 25, eleven: 5, ten: 20},
        }
    )
    # When ranked by points over 2 hours
    answer = stats.top_users(store, clock(), 2, 10, "points")
    # Then the points within the window rank them, ties by user id; no points, not listed
    assert [(u.user_id, u.points, u.count) for u in answer.items] == [("a", 30, 3), ("b", 30, 2), ("e", 5, 1)]  # type: ignore[union-attr]
    assert answer.by == "points"
    # And by events the ranking and shape are those of the contract
    by_events = stats.top_users(store, clock(), 2, 10)
    assert [(u.user_id, u.count) for u in by_events.items] == [("d", 7), ("a", 3), ("b", 2), ("e", 1)]
    assert "points" not in json.dumps(by_events.model_dump(mode="json")["items"])


def test_top_users_by_points_over_whole_days_use_the_day_total() -> None:
    # Given yesterday's item (a whole day inside a 48-hour window)
    yesterday = day_users_partition(TENANT, date(2025, 10, 11))
    store = store_with({(yesterday, "a"): {"count": 4, "h:60": 4, "points": 40, "ph:60": 40}})
    # When ranked by points over 48 hours; then the day's total counts
    answer = stats.top_users(store, clock(), 48, 3, "points")
    assert [(u.user_id, u.points) for u in answer.items] == [("a", 40)]  # type: ignore[union-attr]


# ---------------------------------------------------------------- numeric properties


ACTIONS = tenant_actions_partition(TENANT)


def test_property_daily_gives_exact_sums_and_empty_days() -> None:
    # Given purchase amounts on two days, another action with the same property, another tenant
    store = store_with(
        {
            (ACTIONS, "2025-10-06#purchase"): {
                "count": 3,
                "users": 1,
                "n:amount": 2,
                "s:amount": Decimal("0.3"),
                "mn:amount": Decimal("0.1"),
                "mx:amount": Decimal("0.2"),
            },
            (ACTIONS, "2025-10-08#purchase"): {
                "count": 1,
                "users": 1,
                "n:amount": 1,
                "s:amount": 12345678901234567890123,
                "mn:amount": 12345678901234567890123,
                "mx:amount": 12345678901234567890123,
            },
            (ACTIONS, "2025-10-06#refund"): {"count": 1, "n:amount": 1, "s:amount": 5, "mn:amount": 5, "mx:amount": 5},
            (tenant_actions_partition(OTHER), "2025-10-06#purchase"): {"count": 1, "n:amount": 1, "s:amount": 7},
        }
    )
    # When 6-8 October of purchase's amount is read
    answer = stats.property_daily(store, clock(), days("2025-10-06", "2025-10-08"), "purchase", "amount")
    # Then each day is listed: exact sums, the mean as a double, an empty day with null mean/min/max
    rows = [(i.date.isoformat(), i.count, i.sum, i.avg, i.min, i.max) for i in answer.items]
    assert rows == [
        ("2025-10-06", 2, Decimal("0.3"), 0.15, Decimal("0.1"), Decimal("0.2")),
        ("2025-10-07", 0, 0, None, None, None),
        (
            "2025-10-08",
            1,
            12345678901234567890123,
            1.2345678901234568e22,
            12345678901234567890123,
            12345678901234567890123,
        ),
    ]
    # And the JSON answer holds every digit, as numbers
    body = json.loads(exact_model_json(answer), parse_float=Decimal)
    assert (body["items"][0]["sum"], body["items"][0]["min"]) == (Decimal("0.3"), Decimal("0.1"))
    assert body["items"][2]["sum"] == 12345678901234567890123
    assert body["items"][1] == {"date": "2025-10-07", "count": 0, "sum": 0, "avg": None, "min": None, "max": None}
    assert (body["action"], body["property"], body["as_of"]) == ("purchase", "amount", "2025-10-12T09:29:00.000Z")


def test_a_minimum_of_zero_is_a_value_not_an_empty_day() -> None:
    # Given a day whose amounts are 0 and 2
    store = store_with(
        {(ACTIONS, "2025-10-06#purchase"): {"count": 2, "n:amount": 2, "s:amount": 2, "mn:amount": 0, "mx:amount": 2}}
    )
    # When read; then the minimum is 0, not null
    (day,) = stats.property_daily(store, clock(), days("2025-10-06", "2025-10-06"), "purchase", "amount").items
    assert (day.count, day.sum, day.min, day.max, day.avg) == (2, 2, 0, 2, 1.0)


def test_an_unknown_action_or_property_gives_zeros() -> None:
    store = store_with({(ACTIONS, "2025-10-06#purchase"): {"count": 1, "n:amount": 1, "s:amount": 3}})
    for action, name in (("purchase", "quantity"), ("nothing", "amount"), ("purchase", "amoun")):
        answer = stats.property_daily(store, clock(), days("2025-10-06", "2025-10-07"), action, name)
        assert [(i.count, i.sum, i.avg) for i in answer.items] == [(0, 0, None), (0, 0, None)]


@settings(deadline=None)  # no timing in a test: a loaded machine must not fail it
@given(
    st.lists(
        st.decimals(allow_nan=False, allow_infinity=False, places=3, max_value=10**12, min_value=-(10**12)), min_size=1
    )
)
def test_the_mean_is_the_double_nearest_to_the_exact_mean(values: list[Decimal]) -> None:
    # Given one day of amounts (their counters as the rollup adds them up)
    total = sum(values, Decimal(0))
    store = store_with(
        {
            (ACTIONS, "2025-10-06#buy"): {
                "n:x": len(values),
                "s:x": total,
                "mn:x": min(values),
                "mx:x": max(values),
            }
        }
    )
    # When read; then avg is the exact mean rounded once, to the nearest double
    (day,) = stats.property_daily(store, clock(), days("2025-10-06", "2025-10-06"), "buy", "x").items
    exact = Fraction(total) / len(values)
    assert day.avg is not None
    assert abs(Fraction(day.avg) - exact) <= min(abs(Fraction(neighbour) - exact) for neighbour in _neighbours(day.avg))


def _neighbours(value: float) -> list[float]:
    import math

    return [math.nextafter(value, math.inf), math.nextafter(value, -math.inf)]


# ---------------------------------------------------------------- violations


def test_violations_list_non_zero_counts_by_date_action_kind() -> None:
    store = store_with(
        {
            (ACTIONS, "2025-10-06#zz"): {"count": 1, "v:unplanned_action": 1},
            (ACTIONS, "2025-10-06#purchase"): {"count": 5, "v:type_mismatch": 2, "v:required_missing": 1},
            (ACTIONS, "2025-10-07#login"): {"count": 5},
            (ACTIONS, "2025-10-09#purchase"): {"count": 1, "v:type_mismatch": 1},  # after the range
            (tenant_actions_partition(OTHER), "2025-10-06#purchase"): {"count": 1, "v:type_mismatch": 9},
        }
    )
    answer = stats.violations(store, clock(), days("2025-10-06", "2025-10-08"))
    assert [(v.date.isoformat(), v.action, v.kind, v.count) for v in answer.items] == [
        ("2025-10-06", "purchase", "required_missing", 1),
        ("2025-10-06", "purchase", "type_mismatch", 2),
        ("2025-10-06", "zz", "unplanned_action", 1),
    ]
    assert answer.as_of == AS_OF


# ---------------------------------------------------------------- exact JSON


@settings(deadline=None)  # no timing in a test: a loaded machine must not fail it
@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_a_decimal_is_written_as_a_json_number_with_every_digit(value: Decimal) -> None:
    text = exact_dumps({"v": value, "d": [date(2025, 10, 6), None, 1, 0.5, "é"]})
    parsed = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    assert parsed["v"] == value
    assert isinstance(parsed["v"], Decimal)
    assert parsed["d"] == ["2025-10-06", None, 1, Decimal("0.5"), "é"]


def test_a_decimal_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(ValueError, match="not a JSON number"):
        exact_dumps(Decimal("NaN"))


# ---------------------------------------------------------------- the readers against brute force


@dataclass(frozen=True)
class FixedCatalog:
    """A catalog reader over fixed event types (the rollup reads it once per tenant and run)."""

    types: tuple[EventTypeRecord, ...]

    def tenant_catalog(self, tenant_id: str) -> list[EventTypeRecord]:
        return [replace_tenant(event_type, tenant_id) for event_type in self.types]


def replace_tenant(event_type: EventTypeRecord, tenant_id: str) -> EventTypeRecord:
    return event_type.model_copy(update={"tenant_id": tenant_id})


DECLARED = NOW - timedelta(days=3)
AMOUNTS = st.one_of(
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from(["50", True, None]),
)
drawn_events = st.lists(
    st.tuples(
        st.sampled_from(["u1", "u2", "u/3"]),
        st.sampled_from(["buy", "login", "other"]),
        st.integers(0, 47 * 60),  # minutes before NOW
        AMOUNTS,
        st.frozensets(st.sampled_from(["unplanned_action", "required_missing", "type_mismatch"])),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(drawn_events, st.integers(0, 50), st.integers(0, 5))
def test_points_properties_and_violations_read_what_brute_force_counts(
    drawn: list[tuple[str, str, int, Any, frozenset[str]]], buy_points: int, login_points: int
) -> None:
    # Given a catalog (buy: points and a number amount; login: points; other: not in it) and events
    catalog = FixedCatalog(
        (
            EventTypeRecord(
                tenant_id=TENANT,
                name="buy",
                description="",
                points=buy_points,
                properties={"amount": PropertyRule(type="number", declared_at=DECLARED)},
                created_at=DECLARED,
                updated_at=DECLARED,
            ),
            EventTypeRecord(
                tenant_id=TENANT,
                name="login",
                description="",
                points=login_points,
                properties={},
                created_at=DECLARED,
                updated_at=DECLARED,
            ),
        )
    )
    entries = {"buy": CatalogEntry(buy_points, (("amount", DECLARED),)), "login": CatalogEntry(login_points)}
    store = InMemoryAggregateStore()
    stored = []
    for number, (user, action, minutes_ago, amount, kinds) in enumerate(drawn):
        occurred = NOW - timedelta(minutes=minutes_ago)
        metadata = {} if amount is None else {"amount": amount}
        store.add(
            ReceivedEvent(
                received_key=f"{format_utc(occurred)}#{TENANT}#e{number:03d}",
                tenant_id=TENANT,
                user_id=user,
                action=action,
                occurred_at=occurred,
                metadata=json.loads(json.dumps(metadata), parse_float=Decimal),
                violations=tuple(sorted(kinds)),
            )
        )
        stored.append(
            StoredEvent(
                TENANT,
                user,
                action,
                occurred,
                occurred,
                metadata=tuple(metadata.items()),
                violations=kinds,
                counted_with=entries.get(action, CatalogEntry()),
            )
        )
    # When the rollup counts them
    report = run_rollup(
        store, lambda _t: KYIV, now=NOW, settle=timedelta(0), initial_lookback=timedelta(hours=49), catalog=catalog
    )
    assert report.finished
    reference = Reference(stored, TENANT, KYIV, report.as_of or NOW)
    here = clock()
    # Then each user's points, lifetime and over the local days, are the brute force's
    for user in ("u1", "u2", "u/3", "nobody"):
        _, counts, points = reference.lifetime(user)
        expected = {a: (counts[a], points.get(a, 0)) for a in counts}
        lifetime = stats.user_points(store, here, user, None, None)
        assert {a: (p.count, p.points) for a, p in lifetime.by_action.items()} == expected, user
        assert lifetime.total == sum(points.values())
        two_days = stats.user_points(store, here, user, date(2025, 10, 10), date(2025, 10, 12))
        assert two_days.total == lifetime.total  # every event lies in those local days
    # And top users by points over the whole window rank the brute force's points
    top = stats.top_users(store, here, 49, 100, "points")
    start, end = top.from_, top.to
    window: Counter[str] = Counter()
    for event in reference.counted:
        if start <= event.occurred_at < end:
            window[event.user_id] += entries.get(event.action, CatalogEntry()).points
    ranked = sorted(((u, p) for u, p in window.items() if p), key=lambda entry: (-entry[1], entry[0]))
    assert [(u.user_id, u.points) for u in top.items] == ranked  # type: ignore[union-attr]
    # And the amount of buy per day, and the violations, are the brute force's, exactly
    days = [date(2025, 10, 10), date(2025, 10, 11), date(2025, 10, 12)]
    expected_stats = reference.property_stats()
    for day in stats.property_daily(store, here, days, "buy", "amount").items:
        found = expected_stats.get((day.date, "buy", "amount"))
        if found is None:
            assert (day.count, day.sum, day.avg, day.min, day.max) == (0, 0, None, None, None)
            continue
        count, total, low, high = found
        assert (day.count, day.sum, day.min, day.max) == (count, total, low, high)
        assert day.avg == float(Fraction(total) / count)
    flagged = stats.violations(store, here, days).items
    assert {(v.date, v.action, v.kind): v.count for v in flagged} == reference.violations()
