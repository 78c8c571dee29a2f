"""tracker.aggregates: where an event is counted, and the deltas a chunk of events adds."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.aggregates import (
    Buckets,
    Chunk,
    ReceivedEvent,
    action_counts,
    action_day_sort_key,
    buckets,
    day_sort_key,
    hour_sort_key,
    hour_users_partition,
    tenant_actions_partition,
    tenant_days_partition,
    user_partition,
)
from tracker.timefmt import format_utc

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
    return ReceivedEvent(
        received_key=f"{received}#{tenant}#{event_id}",
        tenant_id=tenant,
        user_id=user,
        action=action,
        occurred_at=datetime.fromisoformat(occurred.replace("Z", "+00:00")),
    )


# ---------------------------------------------------------------- keys and buckets


def test_keys_are_scoped_by_tenant_and_sort_as_time() -> None:
    hour = datetime(2025, 6, 15, 4, 30, tzinfo=UTC)
    assert user_partition(TENANT, "a/b é") == f"{TENANT}#U#a/b é"
    assert hour_sort_key(hour) == "H#2025-06-15T04:30:00.000Z"
    assert day_sort_key(date(2025, 6, 15)) == "D#2025-06-15"
    assert hour_users_partition(TENANT, hour) == f"{TENANT}#H#2025-06-15T04:30:00.000Z"
    assert tenant_days_partition(TENANT) == f"{TENANT}#D"
    assert tenant_actions_partition(TENANT) == f"{TENANT}#A"
    assert action_day_sort_key(date(2025, 6, 15), "doc.delete") == "2025-06-15#doc.delete"


def test_received_at_is_read_back_from_the_received_key() -> None:
    assert event(received="2025-06-15T05:00:00.123Z").received_at == datetime(2025, 6, 15, 5, 0, 0, 123000, tzinfo=UTC)


def test_an_event_is_counted_in_its_local_hour_and_local_day() -> None:
    # Given an event at 00:17 in Kolkata on 2025-06-15 (18:47Z the day before)
    late_evening_utc = event(occurred="2025-06-14T18:47:00Z")
    # When its buckets are computed in the tenant's zone
    result = buckets(late_evening_utc, KOLKATA)
    # Then its hour is local 00:00 (18:30Z) and its day is the local date
    assert result == Buckets(
        user_hour=(f"{TENANT}#U#u1", "H#2025-06-14T18:30:00.000Z"),
        user_day=(f"{TENANT}#U#u1", "D#2025-06-15"),
        hour_users=(f"{TENANT}#H#2025-06-14T18:30:00.000Z", "u1"),
        tenant_day=(f"{TENANT}#D", "2025-06-15"),
        action_day=(f"{TENANT}#A", "2025-06-15#login"),
    )
    assert len(result.all()) == 5


def test_the_repeated_hour_of_a_fall_back_night_is_two_buckets() -> None:
    # Given two events at 03:30 Kyiv time on 2025-10-26, one before and one after the clocks fell back
    first, second = event(occurred="2025-10-26T00:30:00Z"), event(occurred="2025-10-26T01:30:00Z")
    # Then they land in different hours of the same local day
    assert buckets(first, KYIV).user_hour != buckets(second, KYIV).user_hour
    assert buckets(first, KYIV).user_day == buckets(second, KYIV).user_day == (f"{TENANT}#U#u1", "D#2025-10-26")


def test_an_event_that_arrives_days_late_is_counted_in_the_day_it_occurred() -> None:
    late = event(occurred="2025-06-10T12:00:00Z", received="2025-06-15T05:00:00.000Z")
    assert buckets(late, KYIV).tenant_day == (f"{TENANT}#D", "2025-06-10")


def test_action_counts_reads_only_action_attributes() -> None:
    assert action_counts([("count", 5), ("users", 2), ("a:login", 3), ("a:doc.edit", 2)]) == {
        "login": 3,
        "doc.edit": 2,
    }


# ---------------------------------------------------------------- chunks


def test_a_chunk_counts_events_and_new_users_once() -> None:
    # Given a user with no events yet that day, then a second event of the same user and action
    first, second = event(event_id="e1"), event(event_id="e2")
    b1, b2 = buckets(first, KYIV), buckets(second, KYIV)
    chunk = Chunk()
    # When both are added
    chunk.add(first, b1, {b1.user_day: None})
    chunk.add(second, b2, {b2.user_day: None})
    # Then every bucket counts 2, and the user is one distinct user of the day and of the action-day
    assert {key: delta.count for key, delta in chunk.deltas.items()} == dict.fromkeys(b1.all(), 2)
    assert chunk.deltas[b1.tenant_day].users == 1
    assert chunk.deltas[b1.action_day].users == 1
    assert chunk.deltas[b1.user_hour].actions == {"login": 2}
    assert chunk.deltas[b1.user_day].actions == {"login": 2}
    assert chunk.user_days == {b1.user_day: frozenset({"login"})}
    assert chunk.events == 2
    assert chunk.last_event == second


def test_a_user_already_counted_that_day_is_not_a_new_user() -> None:
    # Given the user-day already holds a committed "login"
    login, edit = event(event_id="e1"), event(event_id="e2", action="edit")
    b_login, b_edit = buckets(login, KYIV), buckets(edit, KYIV)
    known = {b_login.user_day: frozenset({"login"})}
    chunk = Chunk()
    # When a login and a first edit of that day are added
    chunk.add(login, b_login, known)
    chunk.add(edit, b_edit, known)
    # Then the day gains no user, the login action-day no user, the edit action-day one user
    assert chunk.deltas[b_login.tenant_day].users == 0
    assert chunk.deltas[b_login.action_day].users == 0
    assert chunk.deltas[b_edit.action_day].users == 1
    assert chunk.user_days[b_login.user_day] == frozenset({"login", "edit"})


def test_keys_with_counts_the_items_a_transaction_would_hold() -> None:
    first, other_user = event(user="u1"), event(user="u2", event_id="e2")
    b1, b2 = buckets(first, KYIV), buckets(other_user, KYIV)
    chunk = Chunk()
    assert chunk.keys_with(b1) == 5
    chunk.add(first, b1, {b1.user_day: None})
    # Another user shares the tenant-day and action-day items only
    assert chunk.keys_with(b2) == 8
    assert chunk.keys_with(b1) == 5


@settings(max_examples=100, deadline=None)
@given(
    stream=st.lists(
        st.tuples(
            st.sampled_from(["u1", "u2", "u3"]),
            st.sampled_from(["login", "view", "edit"]),
            st.integers(min_value=0, max_value=3 * 24 * 60),
        ),
        max_size=60,
    ),
    committed=st.dictionaries(
        st.tuples(st.sampled_from(["u1", "u2", "u3"]), st.integers(min_value=0, max_value=3)),
        st.frozensets(st.sampled_from(["login", "view", "edit"]), min_size=1),
        max_size=5,
    ),
)
def test_chunk_deltas_add_exactly_what_was_not_committed_yet(
    stream: list[tuple[str, str, int]], committed: dict[tuple[str, int], frozenset[str]]
) -> None:
    # Given user-days (user, day offset) that already hold some actions, and events over three Kyiv days
    first_day = date(2025, 10, 25)
    origin = datetime(2025, 10, 24, 21, 0, tzinfo=UTC)  # local midnight of the first day
    events = [
        event(user=user, action=action, occurred=format_utc(origin + timedelta(minutes=minute)), event_id=f"e{i}")
        for i, (user, action, minute) in enumerate(stream)
    ]
    planned = [(e, buckets(e, KYIV)) for e in events]
    known = {
        b.user_day: committed.get((e.user_id, (date.fromisoformat(b.user_day[1][2:]) - first_day).days))
        for e, b in planned
    }
    # When all are added to one chunk
    chunk = Chunk()
    for e, b in planned:
        chunk.add(e, b, known)
    # Then a day gains the users with nothing committed that day, an action-day those without that action
    for key, delta in chunk.deltas.items():
        if key[0] == tenant_days_partition(TENANT):
            user_days = {b.user_day for _, b in planned if b.tenant_day == key}
            assert delta.users == sum(known[user_day] is None for user_day in user_days)
            assert delta.count == sum(b.tenant_day == key for _, b in planned)
        elif key[0] == tenant_actions_partition(TENANT):
            action = key[1].split("#")[1]
            user_days = {b.user_day for _, b in planned if b.action_day == key}
            assert delta.users == sum(action not in (known[user_day] or frozenset()) for user_day in user_days)
            assert delta.count == sum(b.action_day == key for _, b in planned)
        else:
            assert delta.users == 0
            assert delta.count == sum(key in b.all() for _, b in planned)
    # And the action sets the chunk leaves are the committed ones plus what it added
    for user_day, actions in chunk.user_days.items():
        added = {e.action for e, b in planned if b.user_day == user_day}
        assert actions == (known[user_day] or frozenset()) | added
    assert chunk.events == len(events)
