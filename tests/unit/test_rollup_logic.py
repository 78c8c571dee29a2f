"""tracker.rollup and tracker.stats on in-memory fakes: every event counted exactly once, whatever
happens to the runs (crashes, reruns, timeouts, races), and statistics that say what they counted."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.rollup_fakes import (
    Crash,
    CrashingStore,
    Fault,
    FaultKind,
    InMemoryAggregateStore,
    Reference,
    StopAfter,
    check_daily,
    check_statistics,
    faults,
    rollup_under_fault,
    stored_from_received,
)
from tracker import stats
from tracker.aggregates import ReceivedEvent
from tracker.errors import Unavailable, ValidationFailed
from tracker.interfaces import AggregateItem, Progress, RollupStore
from tracker.rollup import MAX_EVENTS_PER_COMMIT, MAX_ITEMS_PER_COMMIT, RollupReport, run_rollup
from tracker.timefmt import format_utc

TENANT = "ten_roll000000000001"
OTHER = "ten_roll000000000002"
KYIV = ZoneInfo("Europe/Kyiv")
T0 = datetime(2025, 10, 25, 20, 0, tzinfo=UTC)
NO_SETTLE = timedelta(0)
LOOKBACK = timedelta(hours=6)


def received(
    store: InMemoryAggregateStore,
    at: datetime,
    *,
    user: str = "u1",
    action: str = "login",
    occurred: datetime | None = None,
    tenant: str = TENANT,
    event_id: str | None = None,
) -> ReceivedEvent:
    """An event as ingest leaves it in the ``by_received`` index."""
    event_id = event_id or f"e{len(store.events):05d}"
    event = ReceivedEvent(
        received_key=f"{format_utc(at)}#{tenant}#{event_id}",
        tenant_id=tenant,
        user_id=user,
        action=action,
        occurred_at=occurred or at,
    )
    store.add(event)
    return event


def rollup(store: RollupStore, now: datetime, **kwargs: Any) -> RollupReport:
    options = {"settle": NO_SETTLE, "initial_lookback": LOOKBACK, **kwargs}
    return run_rollup(store, lambda _tenant: KYIV, now=now, **options)


def reference(store: InMemoryAggregateStore, tenant: str = TENANT, zone: ZoneInfo = KYIV) -> Reference:
    assert store.progress is not None
    assert store.progress.as_of is not None
    return Reference([stored_from_received(e) for e in store.events], tenant, zone, store.progress.as_of)


def users_of(store: InMemoryAggregateStore) -> set[str]:
    return {e.user_id for e in store.events}


def actions_of(store: InMemoryAggregateStore) -> set[str]:
    return {e.action for e in store.events}


def wide_group(store: InMemoryAggregateStore, at: datetime, users: int) -> None:
    """Many distinct users received at one instant: more items than one transaction holds."""
    for index in range(users):
        received(store, at, user=f"w{index:03d}", action=("login", "view")[index % 2], occurred=at - timedelta(hours=1))


# ---------------------------------------------------------------- one run


def test_a_run_counts_what_was_received_before_now_minus_settle_and_says_so() -> None:
    # Given events received at several instants, one exactly at now - settle and one after it
    store = InMemoryAggregateStore()
    settle = timedelta(seconds=60)
    now = T0 + timedelta(minutes=30)
    for minute in (1, 5, 28):
        received(store, T0 + timedelta(minutes=minute))
    received(store, now - settle)
    received(store, now - settle + timedelta(milliseconds=1))
    # When the rollup runs
    report = rollup(store, now, settle=settle)
    # Then it counted the three received strictly before now - settle, and as_of says exactly that
    assert report.events == 3
    assert report.finished
    assert report.as_of == now - settle
    assert store.progress == Progress(as_of=now - settle, position=None, partial=False, version=1)
    check_statistics(store, reference(store), now, users=users_of(store), actions=actions_of(store))


def test_a_first_run_reads_back_only_the_initial_lookback() -> None:
    # Given an event received long before the first run's lookback, and one inside it
    store = InMemoryAggregateStore()
    now = T0 + timedelta(hours=10)
    received(store, now - LOOKBACK - timedelta(milliseconds=1))
    received(store, now - LOOKBACK)
    # When the first run goes
    report = rollup(store, now)
    # Then it starts at now - lookback
    assert report.started_from == now - LOOKBACK
    assert report.events == 1


def test_rolling_up_the_same_window_again_counts_nothing_twice() -> None:
    # Given a window rolled up once
    store = InMemoryAggregateStore()
    for minute in range(10):
        received(store, T0 + timedelta(minutes=minute), user=f"u{minute % 3}")
    now = T0 + timedelta(hours=1)
    rollup(store, now)
    items_after_first = {key: dict(item) for key, item in store.items.items()}
    # When the same schedule runs again, and an older schedule is retried after it
    again = rollup(store, now)
    older = rollup(store, now - timedelta(minutes=30))
    # Then neither counts anything nor moves the progress
    assert (again.events, again.commits, older.events, older.commits) == (0, 0, 0, 0)
    assert store.items == items_after_first
    assert store.progress is not None
    assert store.progress.as_of == now
    check_statistics(store, reference(store), now, users=users_of(store), actions=actions_of(store))


def test_missed_schedules_are_caught_up_by_the_next_run() -> None:
    # Given events over 30 hours and no run in between (the schedule missed them)
    store = InMemoryAggregateStore()
    rollup(store, T0)
    for hour in range(30):
        received(store, T0 + timedelta(hours=hour, minutes=7), user=f"u{hour % 4}", action=("a", "b")[hour % 2])
    # When the next run goes
    report = rollup(store, T0 + timedelta(hours=31))
    # Then it counts all of them
    assert report.events == 30
    check_statistics(store, reference(store), T0 + timedelta(hours=31), users=users_of(store), actions={"a", "b"})


def test_an_event_received_days_after_it_occurred_lands_in_its_own_day_and_hour() -> None:
    # Given a run already counted that day, then an event that occurred 3 days before it is received
    store = InMemoryAggregateStore()
    received(store, T0 - timedelta(days=3), occurred=T0 - timedelta(days=3))
    rollup(store, T0 - timedelta(days=3) + timedelta(minutes=1))
    received(store, T0, user="u1", occurred=T0 - timedelta(days=3, minutes=-10))
    # When the next run goes
    rollup(store, T0 + timedelta(minutes=1))
    # Then the old day holds both, and the user is still one distinct user that day
    check_statistics(store, reference(store), T0 + timedelta(minutes=1), users={"u1"}, actions={"login"})
    daily = stats.daily(store, stats.TenantClock(TENANT, KYIV, T0), 4)
    assert [(i.count, i.users) for i in daily.items] == [(2, 1), (0, 0), (0, 0), (0, 0)]


def test_distinct_users_stay_exact_across_runs_and_actions() -> None:
    # Given a user who logs in, is counted, then logs in again and edits the same local day
    store = InMemoryAggregateStore()
    received(store, T0, user="u1", action="login")
    rollup(store, T0 + timedelta(minutes=1))
    received(store, T0 + timedelta(minutes=2), user="u1", action="login")
    received(store, T0 + timedelta(minutes=3), user="u1", action="edit")
    received(store, T0 + timedelta(minutes=3), user="u2", action="edit")
    # When the next run counts them
    rollup(store, T0 + timedelta(minutes=5))
    # Then the day has 2 users (not 3), login 1 user, edit 2 users
    clock = stats.TenantClock(TENANT, KYIV, T0 + timedelta(minutes=5))
    days = stats.date_range(clock, T0, T0 + timedelta(minutes=5))
    assert [(i.count, i.users) for i in stats.daily(store, clock, 1).items] == [(4, 2)]
    per_action = {a: stats.action_daily(store, clock, days, a).items[0] for a in ("login", "edit")}
    assert (per_action["login"].count, per_action["login"].users, per_action["login"].avg_per_user) == (2, 1, 2.0)
    assert (per_action["edit"].count, per_action["edit"].users, per_action["edit"].avg_per_user) == (2, 2, 1.0)


def test_tenants_are_counted_apart_each_in_its_own_zone() -> None:
    # Given the same instant, 22:30Z, for two tenants: 01:30 next day in Kyiv, 22:30 in UTC
    store = InMemoryAggregateStore()
    moment = datetime(2025, 6, 15, 22, 30, tzinfo=UTC)
    received(store, moment, tenant=TENANT, user="same")
    received(store, moment, tenant=OTHER, user="same")
    zones = {TENANT: KYIV, OTHER: ZoneInfo("UTC")}
    # When the rollup runs
    run_rollup(
        store, lambda t: zones[t], now=moment + timedelta(minutes=1), settle=NO_SETTLE, initial_lookback=LOOKBACK
    )
    # Then each tenant sees only its own event, on its own local date
    for tenant, zone in zones.items():
        clock = stats.TenantClock(tenant, zone, moment + timedelta(minutes=1))
        items = stats.daily(store, clock, 2).items
        assert [(i.date.isoformat(), i.count, i.users) for i in items if i.count] == [
            ("2025-06-16" if tenant == TENANT else "2025-06-15", 1, 1)
        ]
        check_statistics(store, reference(store, tenant, zone), clock.now, users={"same"}, actions={"login"})


# ---------------------------------------------------------------- commits, chunks and partial groups


def test_a_group_received_at_one_instant_is_split_across_transactions_and_marked_partial() -> None:
    # Given 120 distinct users received at the very same instant (about 3 items each)
    store = InMemoryAggregateStore()
    at = T0 + timedelta(minutes=5)
    wide_group(store, at, 120)
    received(store, at + timedelta(seconds=1), user="after")
    # When the rollup runs
    report = rollup(store, T0 + timedelta(minutes=10))
    # Then it needed several transactions, none over DynamoDB's 100 items
    assert report.commits >= 4
    assert max(store.transaction_sizes) <= MAX_ITEMS_PER_COMMIT + 1
    # And while the group was unfinished the progress said partial and as_of did not move into it
    middle = [p for p in store.progress_history if p.partial]
    assert middle
    assert all(p.as_of is not None and p.as_of <= at for p in middle)
    assert all(p.position is not None and p.position.startswith(format_utc(at)) for p in middle)
    assert store.progress == Progress(T0 + timedelta(minutes=10), None, False, len(store.progress_history))
    check_statistics(
        store, reference(store), T0 + timedelta(minutes=10), users={"w000", "w119", "after"}, actions={"login", "view"}
    )


def test_many_events_on_the_same_few_items_are_bounded_per_commit() -> None:
    # Given more events than one commit takes, all on the same five items
    store = InMemoryAggregateStore()
    for index in range(MAX_EVENTS_PER_COMMIT + 3):
        received(store, T0 + timedelta(milliseconds=index))
    # When the rollup runs
    report = rollup(store, T0 + timedelta(minutes=1))
    # Then it made two commits and counted each once
    assert report.commits == 2
    assert [chunk.events for chunk in store.commits] == [MAX_EVENTS_PER_COMMIT, 3]
    assert store.items[(f"{TENANT}#D", "2025-10-25")]["count"] == MAX_EVENTS_PER_COMMIT + 3


@pytest.mark.parametrize("lose_response", [False, True], ids=["crash-before-commit", "crash-after-commit"])
@pytest.mark.parametrize("after", [0, 1, 2, 3, 4, 5])
def test_a_run_that_crashes_half_way_and_runs_again_counts_everything_once(after: int, lose_response: bool) -> None:
    # Given a group of 200 users at one instant (7 commits) and more events before and after it
    store = InMemoryAggregateStore()
    for minute in range(5):
        received(store, T0 + timedelta(minutes=minute), user="early")
    wide_group(store, T0 + timedelta(minutes=6), 200)
    for minute in range(7, 12):
        received(store, T0 + timedelta(minutes=minute), user=f"late{minute % 2}", action="view")
    now = T0 + timedelta(minutes=15)
    # When a run dies in the middle of a commit
    with pytest.raises(Crash):
        rollup(CrashingStore(store, after, lose_response=lose_response), now)
    assert len(store.commits) == after + lose_response
    # Then what it committed is exact as of its progress (unless a group is half counted)
    if store.progress is not None and not store.progress.partial:
        check_daily(store, reference(store), now, days=2)
    # And when it runs again, every event is counted exactly once
    report = rollup(store, now)
    assert report.finished
    check_statistics(
        store, reference(store), now, users={"early", "w000", "w199", "late0", "late1"}, actions={"login", "view"}
    )


@pytest.mark.parametrize("stop_at", [1, 2, 3])
def test_a_run_out_of_time_stops_between_commits_and_the_next_one_goes_on(stop_at: int) -> None:
    # Given more work than one run may do before its timeout
    store = InMemoryAggregateStore()
    for index in range(6):
        wide_group(store, T0 + timedelta(minutes=index), 40)
    now = T0 + timedelta(minutes=10)
    # When the run is told it is about to time out
    first = rollup(store, now, should_stop=StopAfter(stop_at))
    # Then it stops unfinished, with an honest as_of
    assert not first.finished
    assert first.commits == stop_at
    assert first.as_of is not None
    assert first.as_of < now
    # And the next scheduled run finishes the work, counting each event once
    second = rollup(store, now + timedelta(minutes=1))
    assert second.finished
    assert first.events + second.events == 240
    check_statistics(store, reference(store), now, users={"w000", "w039"}, actions={"login", "view"})


@pytest.mark.parametrize("kind", ["race_first_loses", "race_second_loses"])
@pytest.mark.parametrize("at", [1, 2, 3])
def test_two_runs_at_once_one_wins_and_nothing_is_counted_twice(kind: FaultKind, at: int) -> None:
    # Given events for several commits
    store = InMemoryAggregateStore()
    for index in range(4):
        wide_group(store, T0 + timedelta(minutes=index), 40)
    now = T0 + timedelta(minutes=10)
    # When two runs go at once and one commits between the other's reads and its commit
    reports = rollup_under_fault(
        store,
        Fault(kind, at),
        zone_of=lambda _t: KYIV,
        now=now,
        initial_lookback=LOOKBACK,
    )
    # Then exactly one of them hit the conflict and stopped
    assert len(reports) == 2
    assert sum(report.conflict for report in reports) == 1
    # And after the next run every event is counted once
    rollup(store, now)
    check_statistics(store, reference(store), now, users={"w000", "w039"}, actions={"login", "view"})


# ---------------------------------------------------------------- statistics snapshots


@dataclass
class _StatsStoreSpy:
    """A statistics store that lets ``during_read`` happen (once) in the middle of a read."""

    store: InMemoryAggregateStore
    during_read: Callable[[], object] | None = None

    def load_progress(self) -> Progress | None:
        return self.store.load_progress()

    def read_partition(self, partition: str, low: str | None = None, high: str | None = None) -> list[AggregateItem]:
        if self.during_read is not None:
            action, self.during_read = self.during_read, None
            action()
        return self.store.read_partition(partition, low, high)

    def read_partitions(self, partitions: Iterable[str]) -> dict[str, list[AggregateItem]]:
        return self.store.read_partitions(partitions)


def test_statistics_before_any_rollup_are_zeros_as_of_the_epoch() -> None:
    store = InMemoryAggregateStore()
    daily = stats.daily(store, stats.TenantClock(TENANT, KYIV, T0), 3)
    assert daily.as_of == datetime(1970, 1, 1, tzinfo=UTC)
    assert [(i.count, i.users) for i in daily.items] == [(0, 0)] * 3


def test_a_statistic_read_while_a_rollup_commits_is_read_again() -> None:
    # Given a counted event, and a rollup that commits a second one while the statistic is being read
    store = InMemoryAggregateStore()
    received(store, T0)
    rollup(store, T0 + timedelta(minutes=1))
    received(store, T0 + timedelta(minutes=2))
    spy = _StatsStoreSpy(store, during_read=lambda: rollup(store, T0 + timedelta(minutes=3)))
    # When the statistic is read
    daily = stats.daily(spy, stats.TenantClock(TENANT, KYIV, T0 + timedelta(minutes=3)), 1)
    # Then it reflects exactly the as_of it gives
    assert daily.as_of == T0 + timedelta(minutes=3)
    assert daily.items[0].count == 2


def test_statistics_wait_while_a_group_is_half_counted_then_give_up_with_503() -> None:
    # Given a run stopped in the middle of a group received at one instant
    store = InMemoryAggregateStore()
    wide_group(store, T0, 100)
    rollup(store, T0 + timedelta(minutes=1), should_stop=StopAfter(1))
    assert store.progress is not None
    assert store.progress.partial
    # When a statistic is asked
    with mock.patch("tracker.stats.time.sleep") as sleep, pytest.raises(Unavailable) as raised:
        stats.daily(store, stats.TenantClock(TENANT, KYIV, T0), 1)
    # Then it does not answer with counts that match no as_of
    assert sleep.call_count == stats.SNAPSHOT_ATTEMPTS
    assert raised.value.status == 503


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (T0, T0),
        (T0, T0 - timedelta(milliseconds=1)),
        (T0, T0 + timedelta(days=366, milliseconds=1)),
    ],
)
def test_empty_reversed_and_too_long_ranges_are_refused(start: datetime, end: datetime) -> None:
    clock = stats.TenantClock(TENANT, KYIV, T0)
    with pytest.raises(ValidationFailed):
        stats.instant_range(clock, start, end, stats.DEFAULT_RANGE)
    with pytest.raises(ValidationFailed):
        stats.date_range(clock, start, end)


def test_more_than_1000_windows_are_refused() -> None:
    store = InMemoryAggregateStore()
    clock = stats.TenantClock(TENANT, ZoneInfo("UTC"), T0)
    fits = stats.user_activity(store, clock, "u1", period="1h", start=T0, end=T0 + timedelta(hours=1000))
    assert len(fits.items) == 1000
    with pytest.raises(ValidationFailed):
        stats.user_activity(store, clock, "u1", period="1h", start=T0, end=T0 + timedelta(hours=1000, milliseconds=1))


# ---------------------------------------------------------------- property: any stream, any faults

ZONES = ["UTC", "Europe/Kyiv", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe"]
ANCHORS = [
    datetime(2025, 3, 30, 0, 0, tzinfo=UTC),  # Kyiv springs forward at 01:00Z
    datetime(2025, 10, 26, 0, 0, tzinfo=UTC),  # Kyiv falls back at 01:00Z
    datetime(2025, 3, 9, 5, 0, tzinfo=UTC),  # New York springs forward at 07:00Z
    datetime(2025, 11, 2, 4, 0, tzinfo=UTC),  # New York falls back at 06:00Z
    datetime(2025, 6, 14, 17, 0, tzinfo=UTC),  # midnight in Kolkata (18:30Z) and Kathmandu (18:15Z)
    datetime(2025, 4, 5, 13, 0, tzinfo=UTC),  # Lord Howe falls back 30 minutes at 15:00Z
    datetime(2025, 10, 4, 14, 0, tzinfo=UTC),  # Lord Howe springs forward 30 minutes at 15:30Z
]
any_fault = st.one_of(st.just(Fault()), faults(max_at=4))
events_strategy = st.tuples(
    st.sampled_from([TENANT, OTHER]),
    st.sampled_from(["u1", "u2", "u3", "u4"]),
    st.sampled_from(["login", "view", "edit"]),
    st.one_of(
        st.integers(min_value=-59 * 60_000, max_value=3 * 3_600_000),  # up to an hour ahead, or a little late
        st.integers(min_value=1, max_value=4 * 86_400_000),  # days late
    ),
)
steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("batch"), st.sampled_from([0, 0, 1, 999, 60_000, 5_400_000]), st.lists(events_strategy, max_size=12)
        ),
        st.tuples(st.just("wide"), st.sampled_from([0, 1, 1_000]), st.integers(min_value=20, max_value=90)),
        st.tuples(st.just("rollup"), st.sampled_from([0, 1, 30_000, 7_200_000]), any_fault),
    ),
    max_size=14,
)


@settings(max_examples=120, deadline=None)
@given(zones=st.tuples(st.sampled_from(ZONES), st.sampled_from(ZONES)), anchor=st.sampled_from(ANCHORS), plan=steps)
def test_every_statistic_equals_a_brute_force_count_whatever_happens_to_the_runs(
    zones: tuple[str, str], anchor: datetime, plan: list[tuple[Any, ...]]
) -> None:
    # Given two tenants in their zones, and a stream of batches, wide groups and faulty rollups
    store = InMemoryAggregateStore()
    tenant_zones = {TENANT: ZoneInfo(zones[0]), OTHER: ZoneInfo(zones[1])}
    clock = anchor
    lookback = timedelta(days=2)
    for step in plan:
        kind, gap = step[0], timedelta(milliseconds=step[1])
        clock += gap
        if kind == "batch":
            for tenant, user, action, late_ms in step[2]:
                received(
                    store,
                    clock,
                    user=user,
                    action=action,
                    occurred=clock - timedelta(milliseconds=late_ms),
                    tenant=tenant,
                )
        elif kind == "wide":
            wide_group(store, clock, step[2])
        else:
            # When a scheduled rollup runs, with its fault
            rollup_under_fault(store, step[2], zone_of=tenant_zones.__getitem__, now=clock, initial_lookback=lookback)
            # Then whatever was committed is exact as of the progress (a half-counted group waits)
            if store.progress is not None and not store.progress.partial:
                for tenant, zone in tenant_zones.items():
                    check_daily(store, reference(store, tenant, zone), clock, days=7)
    # When a last, undisturbed run goes
    now = clock + timedelta(milliseconds=1)
    run_rollup(store, tenant_zones.__getitem__, now=now, settle=NO_SETTLE, initial_lookback=lookback)
    # Then every statistic of each tenant equals the brute-force count of its events
    assert store.progress is not None
    assert store.progress.as_of == now
    for tenant, zone in tenant_zones.items():
        check_statistics(
            store,
            reference(store, tenant, zone),
            now,
            users=["u1", "u2", "u3", "w000"],
            actions=["login", "view", "edit"],
        )
