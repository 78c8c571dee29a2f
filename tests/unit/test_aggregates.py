"""tracker.aggregates: where an event is counted, what a part of a run adds, and how a snapshot is read."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.support import received_event
from tracker.aggregates import (
    MAX_FIELDS_PER_PART,
    Buckets,
    ReceivedEvent,
    StoredAggregate,
    Tally,
    action_day_sort_key,
    assemble,
    buckets,
    day_sort_key,
    day_users_partition,
    hour_of_field,
    hour_sort_key,
    merge,
    new_users,
    part_key,
    prefixed,
    split,
    tenant_actions_partition,
    tenant_days_partition,
    user_partition,
)

TENANT = "ten_agg0000000000001"
KYIV = ZoneInfo("Europe/Kyiv")
KOLKATA = ZoneInfo("Asia/Kolkata")


def event(
    user: str = "u1",
    action: str = "login",
    occurred: str = "2025-06-15T04:47:00Z",
    received: str = "2025-06-15T05:00:00.000Z",
    event_id: str = "e1",
    tenant: str = TENANT,
) -> ReceivedEvent:
    return received_event(tenant, user=user, action=action, occurred=occurred, received=received, event_id=event_id)


# ---------------------------------------------------------------- keys and buckets


def test_keys_are_scoped_by_tenant_and_sort_as_time() -> None:
    hour = datetime(2025, 6, 15, 4, 30, tzinfo=UTC)
    assert user_partition(TENANT, "a/b é") == f"{TENANT}#U#a/b é"
    assert hour_sort_key(hour) == "H#2025-06-15T04:30:00.000Z"
    assert day_sort_key(date(2025, 6, 15)) == "D#2025-06-15"
    assert day_users_partition(TENANT, date(2025, 6, 15)) == f"{TENANT}#DU#2025-06-15"
    assert tenant_days_partition(TENANT) == f"{TENANT}#D"
    assert tenant_actions_partition(TENANT) == f"{TENANT}#A"
    assert action_day_sort_key(date(2025, 6, 15), "doc.delete") == "2025-06-15#doc.delete"
    assert part_key((f"{TENANT}#U#u1", "D#2025-06-15"), 0) == (f"{TENANT}#U#u1", "D#2025-06-15")
    assert part_key((f"{TENANT}#U#u1", "D#2025-06-15"), 2) == (f"{TENANT}#U#u1", "D#2025-06-15~2")


def test_received_at_is_read_back_from_the_received_key() -> None:
    assert event(received="2025-06-15T05:00:00.123Z").received_at == datetime(2025, 6, 15, 5, 0, 0, 123000, tzinfo=UTC)


def test_an_event_is_counted_in_its_local_hour_and_local_day() -> None:
    # Given an event at 00:17 in Kolkata on 2025-06-15 (18:47Z the day before)
    late_evening_utc = event(occurred="2025-06-14T18:47:00Z")
    # When its buckets are computed in the tenant's zone
    result = buckets(late_evening_utc, KOLKATA)
    # Then its hour is local 00:00 (18:30Z), the first hour of the local day
    assert result == Buckets(
        user_hour=(f"{TENANT}#U#u1", "H#2025-06-14T18:30:00.000Z"),
        user_day=(f"{TENANT}#U#u1", "D#2025-06-15"),
        tenant_day=(f"{TENANT}#D", "2025-06-15"),
        action_day=(f"{TENANT}#A", "2025-06-15#login"),
        hour="h:0",
    )


def test_the_repeated_hour_of_a_fall_back_night_is_two_buckets() -> None:
    # Given two events at 03:30 Kyiv time on 2025-10-26, one before and one after the clocks fell back
    first, second = event(occurred="2025-10-26T00:30:00Z"), event(occurred="2025-10-26T01:30:00Z")
    # Then they land in different hours of the same local day, named by minutes from its midnight
    assert buckets(first, KYIV).user_hour != buckets(second, KYIV).user_hour
    assert buckets(first, KYIV).user_day == buckets(second, KYIV).user_day == (f"{TENANT}#U#u1", "D#2025-10-26")
    assert (buckets(first, KYIV).hour, buckets(second, KYIV).hour) == ("h:180", "h:240")
    assert hour_of_field("h:240", date(2025, 10, 26), KYIV) == datetime(2025, 10, 26, 1, 0, tzinfo=UTC)


def test_an_event_that_arrives_days_late_is_counted_in_the_day_it_occurred() -> None:
    late = event(occurred="2025-06-10T12:00:00Z", received="2025-06-15T05:00:00.000Z")
    assert buckets(late, KYIV).tenant_day == (f"{TENANT}#D", "2025-06-10")


# ---------------------------------------------------------------- values


def test_prefixed_reads_only_the_counters_of_a_kind() -> None:
    assert prefixed({"count": 5, "users": 2, "a:login": 3, "a:doc.edit": 2, "h:60": 5}, "a:") == {
        "login": 3,
        "doc.edit": 2,
    }


def test_a_tally_adds_each_event_to_its_four_aggregates() -> None:
    # Given two events of a user, same hour, two actions
    first, second = event(event_id="e1"), event(event_id="e2", action="edit")
    tally = Tally()
    # When both are added
    tally.add(first, buckets(first, KYIV))
    tally.add(second, buckets(second, KYIV))
    # Then the user-hour and user-day count both by action, the day by hour too; users are not derived yet
    where = buckets(first, KYIV)
    assert tally.deltas[where.user_hour] == {"count": 2, "a:login": 1, "a:edit": 1}
    assert tally.deltas[where.user_day] == {"count": 2, "a:login": 1, "a:edit": 1, where.hour: 2}
    assert tally.deltas[where.tenant_day] == {"count": 2}
    assert tally.deltas[where.action_day] == {"count": 1}
    assert tally.user_days() == [where.user_day]
    assert tally.events == 2


def test_a_user_already_counted_that_day_is_not_a_new_user() -> None:
    # Given a user-day that already holds a committed login
    where = buckets(event(), KYIV)
    edit_day = (f"{TENANT}#A", "2025-06-15#edit")
    # When its delta adds a login and a first edit
    added = new_users(where.user_day, {"count": 1, "a:login": 1}, {"count": 2, "a:login": 1, "a:edit": 1})
    # Then the day gains no user, the login action-day none, the edit action-day one
    assert added == {edit_day: 1}
    # And a user-day with nothing yet is a new user of the day and of each action
    assert new_users(where.user_day, {}, {"count": 1, "a:login": 1}) == {where.tenant_day: 1, where.action_day: 1}


@settings(max_examples=200, deadline=None)
@given(value=st.dictionaries(st.text(min_size=1, max_size=8), st.integers(min_value=1, max_value=9), max_size=800))
def test_a_value_split_into_parts_is_put_together_again(value: dict[str, int]) -> None:
    parts = split(value)
    assert all(len(part) <= MAX_FIELDS_PER_PART for part in parts)
    assert merge(*parts) == value
    assert len(parts) == max(1, -(-len(value) // MAX_FIELDS_PER_PART))


# ---------------------------------------------------------------- snapshots


def test_an_item_is_read_as_of_the_committed_token() -> None:
    # Given an item committed as {count: 1} by token 3 and rewritten by token 5 as {count: 2}
    item = StoredAggregate(("p", "s"), committed={"count": 1}, pending={"count": 2}, tag=5, base=3)
    # Then a reader at 3 or 4 sees 1, a reader at 5 or later sees 2, a reader older than 3 must read again
    assert [item.value_at(token) for token in (2, 3, 4, 5, 9)] == [
        None,
        {"count": 1},
        {"count": 1},
        {"count": 2},
        {"count": 2},
    ]


def test_parts_are_assembled_per_value_and_empty_values_left_out() -> None:
    partition = f"{TENANT}#U#u1"
    items = [
        StoredAggregate((partition, "D#2025-06-15"), {"count": 3, "a:x": 3}, {"count": 4, "a:x": 4}, 7, 6, parts=2),
        StoredAggregate((partition, "D#2025-06-15~1"), {}, {"a:y": 1}, 7, 6),
        StoredAggregate((partition, "D#2025-06-16"), {}, {}, 9, 0),
    ]
    assert [(a.sort_key, a.value) for a in assemble(items, 6) or []] == [("D#2025-06-15", {"count": 3, "a:x": 3})]
    assert [(a.sort_key, a.actions) for a in assemble(items, 7) or []] == [("D#2025-06-15", {"x": 4, "y": 1})]
    assert assemble(items, 5) is None
