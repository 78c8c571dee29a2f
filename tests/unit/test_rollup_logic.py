"""tracker.rollup, tracker.stats and tracker.erasure on in-memory fakes: every event counted exactly
once whatever happens to the runs (crashes at any write, reruns, timeouts, races, runs past their
lease, erasures), and statistics that never wait and always answer one snapshot."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.rollup_fakes import (
    LEASE,
    Crash,
    Fault,
    FaultyStore,
    Harness,
    InMemoryAggregateStore,
    Reader,
    Reference,
    StopAfter,
    StoredEvent,
    check_daily,
    check_statistics,
    erased,
    faults,
    rollup_under_fault,
    stored_from_received,
)
from tracker import stats
from tracker.aggregates import MAX_FIELDS_PER_PART, AggregateKey, ReceivedEvent, StoredAggregate
from tracker.erasure import erase_user_aggregates
from tracker.errors import ValidationFailed
from tracker.interfaces import Progress, RollupStore, TemporarilyUnavailable
from tracker.rollup import RollupReport, run_rollup
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
    """An event as ingest leaves it in the ``by_received_v2`` index."""
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
    options = {"settle": NO_SETTLE, "initial_lookback": LOOKBACK, "wall_clock": lambda: now, **kwargs}
    zone_of = options.pop("zone_of", lambda _tenant: KYIV)
    return run_rollup(store, zone_of, now=now, **options)


def reference(store: InMemoryAggregateStore, tenant: str = TENANT, zone: ZoneInfo = KYIV) -> Reference:
    as_of = store.progress.snapshot(tenant)[1]
    assert as_of is not None
    return Reference([stored_from_received(e) for e in store.events], tenant, zone, as_of)


def users_of(store: InMemoryAggregateStore) -> set[str]:
    return {e.user_id for e in store.events}


def actions_of(store: InMemoryAggregateStore) -> set[str]:
    return {e.action for e in store.events}


def wide_group(store: InMemoryAggregateStore, at: datetime, users: int) -> None:
    """Many distinct users received at one instant."""
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
    assert (report.events, report.commits, report.finished) == (3, 1, True)
    assert report.as_of == now - settle
    # And it committed its token and gave the lease back
    assert store.progress == Progress(as_of=now - settle, token=1, fence=1, lease_until=None)
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
    items_after_first = dict(store.items)
    # When the same schedule runs again, and an older schedule is retried after it
    again = rollup(store, now)
    older = rollup(store, now - timedelta(minutes=30))
    # Then neither counts anything nor moves the progress
    assert (again.events, again.commits, older.events, older.commits) == (0, 0, 0, 0)
    assert store.items == items_after_first
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
        store,
        lambda t: zones[t],
        now=moment + timedelta(minutes=1),
        settle=NO_SETTLE,
        initial_lookback=LOOKBACK,
        wall_clock=lambda: moment,
    )
    # Then each tenant sees only its own event, on its own local date
    for tenant, zone in zones.items():
        clock = stats.TenantClock(tenant, zone, moment + timedelta(minutes=1))
        items = stats.daily(store, clock, 2).items
        assert [(i.date.isoformat(), i.count, i.users) for i in items if i.count] == [
            ("2025-06-16" if tenant == TENANT else "2025-06-15", 1, 1)
        ]
        check_statistics(store, reference(store, tenant, zone), clock.now, users={"same"}, actions={"login"})


# ---------------------------------------------------------------- parts, writes and the lease


def test_a_part_never_ends_inside_a_group_received_at_one_instant() -> None:
    # Given 40 distinct users received at the very same instant, between other events
    store = InMemoryAggregateStore()
    at = T0 + timedelta(minutes=5)
    received(store, at - timedelta(seconds=1), user="before")
    wide_group(store, at, 40)
    received(store, at + timedelta(seconds=1), user="after")
    # When the rollup runs with parts of at most 7 events
    report = rollup(store, T0 + timedelta(minutes=10), max_events_per_part=7)
    # Then the first part takes the whole group (41 events): as_of is never inside it
    assert report.commits == 2
    assert [p.as_of for p in store.progress_history if p.token] == [
        at + timedelta(seconds=1),
        T0 + timedelta(minutes=10),
    ]
    check_statistics(
        store, reference(store), T0 + timedelta(minutes=10), users={"w000", "w039", "after"}, actions={"login", "view"}
    )


def test_each_aggregate_is_written_once_per_part_however_many_events_it_counts() -> None:
    # Given 1,000 events of 2 users on one hour, 3 actions
    store = InMemoryAggregateStore()
    for index in range(1_000):
        received(store, T0 + timedelta(milliseconds=index), user=f"u{index % 2}", action=("a", "b", "c")[index % 3])
    # When one run counts them
    report = rollup(store, T0 + timedelta(minutes=1))
    # Then it wrote each aggregate once: 2 user-hours, 2 user-days, their 2 top-user twins, 2 lifetime items,
    # 1 tenant-day, 3 action-days
    assert report.aggregates_written == store.writes == 12
    check_statistics(store, reference(store), T0 + timedelta(minutes=1), users={"u0", "u1"}, actions={"a", "b", "c"})


def _crash_scenario() -> tuple[InMemoryAggregateStore, datetime]:
    store = InMemoryAggregateStore()
    for minute in range(5):
        received(store, T0 + timedelta(minutes=minute), user="early")
    wide_group(store, T0 + timedelta(minutes=6), 12)
    for minute in range(7, 12):
        received(store, T0 + timedelta(minutes=minute), user=f"late{minute % 2}", action="view")
    return store, T0 + timedelta(minutes=15)


def _writes_of_a_clean_run() -> int:
    store, now = _crash_scenario()
    counter = FaultyStore(store, lambda _n, _what: None)
    rollup(counter, now, max_events_per_part=7)
    return counter.mutations


@pytest.mark.parametrize("lose_response", [False, True], ids=["not-applied", "applied-unanswered"])
@pytest.mark.parametrize("at", range(1, _writes_of_a_clean_run() + 1))
def test_a_run_that_dies_at_any_write_is_invisible_until_the_next_run_counts_everything_once(
    at: int, lose_response: bool
) -> None:
    # Given events for three parts
    store, now = _crash_scenario()
    reader = Reader(store, lambda: [stored_from_received(e) for e in store.events], TENANT, KYIV, lambda: now, "early")
    # When a run dies at its `at`-th write (the lease, the journal, any single aggregate, the commit)
    fault = Fault("lost_response" if lose_response else "crash", at)
    rollup_under_fault(
        store, fault, zone_of=lambda _t: KYIV, now=now, initial_lookback=LOOKBACK, harness=Harness(read=reader)
    )
    # Then a reader at every write saw an exact snapshot, never waiting; and after the next run every
    # event is counted exactly once
    assert reader.answers > 0
    assert store.progress.as_of == now
    check_statistics(
        store, reference(store), now, users={"early", "w000", "w011", "late0", "late1"}, actions={"login", "view"}
    )


@pytest.mark.parametrize("stop_at", [1, 2, 3])
def test_a_run_out_of_time_stops_between_parts_and_the_next_one_goes_on(stop_at: int) -> None:
    # Given more events than one run may count before its timeout
    store = InMemoryAggregateStore()
    for index in range(6):
        wide_group(store, T0 + timedelta(minutes=index), 10)
    now = T0 + timedelta(minutes=10)
    # When the run is told it is about to time out
    first = rollup(store, now, should_stop=StopAfter(stop_at), max_events_per_part=10)
    # Then it stops unfinished, its lease given back, with an exact as_of
    assert not first.finished
    assert first.commits == stop_at
    assert first.as_of is not None
    assert first.as_of < now
    assert store.progress.lease_until is None
    check_daily(store, reference(store), now, days=2)
    # And the next scheduled run finishes the work, counting each event once
    second = rollup(store, now + timedelta(minutes=1))
    assert second.finished
    assert first.events + second.events == 60
    check_statistics(store, reference(store), now, users={"w000", "w009"}, actions={"login", "view"})


class _CountingReads(InMemoryAggregateStore):
    def __init__(self) -> None:
        super().__init__()
        self.event_reads = 0

    def received_events(self, start: datetime, end: datetime) -> Iterator[ReceivedEvent]:
        self.event_reads += 1
        return super().received_events(start, end)


def _two_parts(store: InMemoryAggregateStore) -> datetime:
    """Two groups of 7 users (two parts of 7 events); the time to roll them up."""
    wide_group(store, T0, 7)
    wide_group(store, T0 + timedelta(seconds=1), 7)
    return T0 + timedelta(minutes=1)


@pytest.mark.parametrize("at", [1, 2, 3, 5, 8])
def test_of_two_runs_at_once_one_exits_without_reading_events(at: int) -> None:
    # Given events for two parts
    store = _CountingReads()
    now = _two_parts(store)
    # When a second run starts at the first run's `at`-th write (1: both read the record, neither holds the lease)
    reports = rollup_under_fault(store, Fault("race", at), zone_of=lambda _t: KYIV, now=now, initial_lookback=LOOKBACK)
    # Then one of them was skipped and read no event; the other counted everything, with no conflict
    (skipped,) = [report for report in reports if report.skipped]
    (worker,) = [report for report in reports if not report.skipped]
    assert (skipped.events, worker.events, worker.finished, worker.conflict) == (0, 14, True, False)
    assert store.event_reads == worker.commits
    check_statistics(store, reference(store), now, users={"w000", "w006"}, actions={"login", "view"})


@pytest.mark.parametrize("at", [2, 3, 6, 12, 17])
def test_a_run_past_its_lease_cannot_commit_once_another_took_over(at: int) -> None:
    # Given events for two parts
    store = InMemoryAggregateStore()
    now = _two_parts(store)
    # When the first run's lease runs out at its `at`-th write and a second run takes over
    first, second = rollup_under_fault(
        store, Fault("zombie", at), zone_of=lambda _t: KYIV, now=now, initial_lookback=LOOKBACK
    )
    # Then the second finished; the first committed nothing after the takeover
    assert second.finished
    assert first.conflict or first.commits == 0 or first.finished
    assert store.progress.token == max(p.token for p in store.progress_history)
    check_statistics(store, reference(store), now, users={"w000", "w006"}, actions={"login", "view"})


def test_a_run_whose_lease_expired_unnoticed_still_commits_when_no_one_took_over() -> None:
    # Given a run that holds an expired lease, but no other run started
    store = InMemoryAggregateStore()
    received(store, T0)
    wall = [T0]

    def slow_clock() -> datetime:
        wall[0] += LEASE
        return wall[0]

    # When it commits
    report = rollup(store, T0 + timedelta(minutes=1), wall_clock=slow_clock, lease_for=timedelta(seconds=1))
    # Then its commit stands: the fence, not the clock, decides
    assert report.finished
    assert store.progress.token == 1


# ---------------------------------------------------------------- statistics never wait


def test_statistics_before_any_rollup_are_zeros_as_of_the_epoch() -> None:
    store = InMemoryAggregateStore()
    daily = stats.daily(store, stats.TenantClock(TENANT, KYIV, T0), 3)
    assert daily.as_of == datetime(1970, 1, 1, tzinfo=UTC)
    assert [(i.count, i.users) for i in daily.items] == [(0, 0)] * 3


def test_a_statistic_read_while_a_run_writes_is_the_last_snapshot_without_waiting() -> None:
    # Given a counted event, then a run that died after writing half its aggregates
    store = InMemoryAggregateStore()
    received(store, T0)
    rollup(store, T0 + timedelta(minutes=1))
    received(store, T0 + timedelta(minutes=2), user="u2")

    def crash_midway(n: int, what: str) -> None:
        if what == "aggregate" and n == 4:
            raise Crash("killed")

    with pytest.raises(Crash):
        rollup(FaultyStore(store, crash_midway), T0 + timedelta(minutes=3))
    assert store.progress.lease_until is not None
    # When a statistic is read
    daily = stats.daily(store, stats.TenantClock(TENANT, KYIV, T0 + timedelta(minutes=3)), 1)
    # Then it answers at once from the last completed run
    assert daily.as_of == T0 + timedelta(minutes=1)
    assert [(i.count, i.users) for i in daily.items] == [(1, 1)]


@dataclass
class _SlowReader:
    """A statistics store in which ``during_read`` happens (once) in the middle of a read."""

    store: InMemoryAggregateStore
    during_read: Callable[[], object] | None = None

    def load_progress(self) -> Progress:
        return self.store.load_progress()

    def read_partition(self, partition: str, low: str | None = None, high: str | None = None) -> list[StoredAggregate]:
        if self.during_read is not None:
            action, self.during_read = self.during_read, None
            action()
        return self.store.read_partition(partition, low, high)

    def read_partitions(self, partitions: Iterable[str]) -> list[StoredAggregate]:
        return self.store.read_partitions(partitions)


@pytest.mark.parametrize("runs_during_the_read", [1, 2])
def test_a_statistic_that_spans_snapshot_flips_is_one_snapshot(runs_during_the_read: int) -> None:
    # Given a counted event, and runs that count more while the statistic is being read
    store = InMemoryAggregateStore()
    received(store, T0)
    rollup(store, T0 + timedelta(minutes=1))
    received(store, T0 + timedelta(minutes=2))
    received(store, T0 + timedelta(minutes=3))

    def runs() -> None:
        for minute in range(runs_during_the_read):
            rollup(store, T0 + timedelta(minutes=2 + minute, seconds=30))

    # When the statistic is read
    daily = stats.daily(_SlowReader(store, runs), stats.TenantClock(TENANT, KYIV, T0 + timedelta(minutes=3)), 1)
    # Then it is exact for the as_of it gives: the old snapshot after one flip, the new one after two
    expected = {1: (T0 + timedelta(minutes=1), 1), 2: (T0 + timedelta(minutes=3, seconds=30), 3)}
    assert (daily.as_of, daily.items[0].count) == expected[runs_during_the_read]


# ---------------------------------------------------------------- one tenant's failure


class _FailingTenant(InMemoryAggregateStore):
    """Writes of one tenant's aggregates fail (throttled after every retry) while ``failing``."""

    def __init__(self, tenant: str) -> None:
        super().__init__()
        self.tenant = tenant
        self.failing = True

    def write_aggregates(self, items: Sequence[StoredAggregate]) -> dict[AggregateKey, Exception]:
        failed: dict[AggregateKey, Exception] = {}
        healthy = []
        for item in items:
            if self.failing and item.key[0].startswith(self.tenant) and len(failed) < 2:
                failed[item.key] = TemporarilyUnavailable("throttled")
            else:
                healthy.append(item)
        return {**super().write_aggregates(healthy), **failed}


def test_a_tenant_whose_writes_fail_is_set_apart_and_the_others_move_on() -> None:
    # Given two tenants counted once, then more events of both, and writes that fail for one of them
    # (after some of its writes went through)
    store = _FailingTenant(OTHER)
    store.failing = False
    received(store, T0, tenant=TENANT, user="t0")
    received(store, T0, tenant=OTHER, user="o0")
    first = T0 + timedelta(minutes=1)
    rollup(store, first)
    store.failing = True
    for minute in range(2, 5):
        received(store, T0 + timedelta(minutes=minute), tenant=TENANT, user=f"t{minute}")
        received(store, T0 + timedelta(minutes=minute), tenant=OTHER, user=f"o{minute}")
    now = T0 + timedelta(minutes=5)
    # When a run goes
    report = rollup(store, now)
    # Then it names the failed tenant; the other tenant's statistics moved on, the failed one's stayed as they were
    assert report.failed_tenants == (OTHER,)
    assert store.progress.snapshot(TENANT)[1] == now
    assert store.progress.snapshot(OTHER)[1] == first
    check_statistics(store, reference(store, TENANT), now, users={"t0", "t2"}, actions={"login"})
    check_statistics(store, reference(store, OTHER), now, users={"o0", "o2"}, actions={"login"})
    # And when the writes work again, the next run counts the failed tenant's events exactly once
    store.failing = False
    received(store, now + timedelta(seconds=1), tenant=OTHER, user="o0")
    later = now + timedelta(minutes=1)
    rollup(store, later)
    assert store.progress.lagging == {}
    for tenant, users in ((TENANT, {"t0", "t2"}), (OTHER, {"o0", "o2"})):
        check_statistics(store, reference(store, tenant), later, users=users, actions={"login"})


# ---------------------------------------------------------------- erasure


def _erase(store: InMemoryAggregateStore, stored: list[StoredEvent], tenant: str, user: str) -> list[StoredEvent]:
    """What the erasure worker does (events, then aggregates), and the brute force's view of it."""
    store.events = [e for e in store.events if (e.tenant_id, e.user_id) != (tenant, user)]
    erase_user_aggregates(store, tenant, user)
    return erased(stored, tenant, user, store.progress.snapshot(tenant)[1], len(store.progress_history))


@pytest.mark.parametrize("at", range(1, 14))
def test_an_erasure_while_a_run_holds_half_written_values_of_the_user_wins(at: int) -> None:
    # Given a counted user, then more events of that user and others
    store = InMemoryAggregateStore()
    received(store, T0, user="gone", action="login")
    received(store, T0, user="stays", action="login")
    rollup(store, T0 + timedelta(minutes=1))
    for minute in range(2, 6):
        received(store, T0 + timedelta(minutes=minute), user="gone", action="edit")
        received(store, T0 + timedelta(minutes=minute), user="stays", action="view")
    stored = [stored_from_received(e) for e in store.events]
    now = T0 + timedelta(minutes=10)
    holder = {"stored": stored}

    def erase() -> None:
        holder["stored"] = _erase(store, holder["stored"], TENANT, "gone")

    # When the user is erased at the run's `at`-th write, and the schedule runs again
    rollup_under_fault(
        store,
        Fault("erase", at),
        zone_of=lambda _t: KYIV,
        now=now,
        initial_lookback=LOOKBACK,
        harness=Harness(erase=erase),
    )
    assert holder["stored"] != stored, "the erasure happened during the run"
    rollup(store, now + timedelta(minutes=1))
    # Then the user is gone from every per-user statistic and top list; tenant totals keep what was counted
    clock = stats.TenantClock(TENANT, KYIV, now)
    activity = stats.user_activity(store, clock, "gone", period="1d", start=T0 - timedelta(days=1), end=now)
    assert sum(w.count for w in activity.items) == 0
    assert "gone" not in [u.user_id for u in stats.top_users(store, clock, 24, 10).items]
    as_of = store.progress.snapshot(TENANT)[1]
    assert as_of is not None
    check_statistics(
        store, Reference(holder["stored"], TENANT, KYIV, as_of), now, users={"gone", "stays"}, actions={"login", "edit"}
    )


# ---------------------------------------------------------------- item sizes


def test_a_user_day_with_10000_distinct_actions_is_split_into_parts_far_under_400_kb() -> None:
    # Given one user doing 10,000 distinct 64-character actions in one hour, with a 128-character id
    store = InMemoryAggregateStore()
    user = "u" * 128
    actions = [f"{index:05d}".ljust(64, "x") for index in range(10_000)]
    for index, action in enumerate(actions):
        received(store, T0 + timedelta(milliseconds=index), user=user, action=action)
    # When the rollup counts them, in two runs
    rollup(store, T0 + timedelta(seconds=5))
    rollup(store, T0 + timedelta(minutes=1))
    # Then every item holds at most MAX_FIELDS_PER_PART counters and weighs under 40 KB
    sizes = [len(json.dumps([item.committed, item.pending])) + len(item.key[0]) for item in store.items.values()]
    assert max(sizes) < 40_000
    assert max(len(item.pending) for item in store.items.values()) <= MAX_FIELDS_PER_PART
    # And the statistics put the parts together exactly
    clock = stats.TenantClock(TENANT, KYIV, T0 + timedelta(minutes=1))
    for period in ("1h", "1d"):
        activity = stats.user_activity(store, clock, user, period=period, start=T0, end=T0 + timedelta(hours=1))
        assert sum(w.count for w in activity.items) == 10_000
        assert sum(len(w.by_action) for w in activity.items) == 10_000
    per_action = stats.action_daily(store, clock, stats.date_range(clock, T0, T0 + timedelta(hours=1)), actions[-1])
    assert [(d.count, d.users) for d in per_action.items if d.count] == [(1, 1)]


# ---------------------------------------------------------------- ranges


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
any_fault = st.one_of(st.just(Fault()), faults(max_at=40))
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
        st.tuples(st.just("wide"), st.sampled_from([0, 1, 1_000]), st.integers(min_value=5, max_value=20)),
        st.tuples(st.just("rollup"), st.sampled_from([0, 1, 30_000, 7_200_000]), any_fault),
        st.tuples(
            st.just("erase"), st.just(0), st.sampled_from([TENANT, OTHER]), st.sampled_from(["u1", "u2", "w000"])
        ),
    ),
    max_size=14,
)


@dataclass
class _World:
    """The store, what the brute force knows is stored, and the readers polling each tenant."""

    store: InMemoryAggregateStore
    zones: dict[str, ZoneInfo]
    clock: datetime
    stored: list[StoredEvent] = field(default_factory=list)
    readers: list[Reader] = field(default_factory=list)
    erasures: tuple[str, str] = (TENANT, "u1")

    def __post_init__(self) -> None:
        self.readers = [
            Reader(self.store, lambda: self.stored, tenant, zone, lambda: self.clock, "u1")
            for tenant, zone in self.zones.items()
        ]

    def receive(self, event: ReceivedEvent) -> None:
        self.store.add(event)
        self.stored.append(stored_from_received(event))

    def read(self) -> None:
        for reader in self.readers:
            reader()

    def erase(self) -> None:
        self.stored = _erase(self.store, self.stored, *self.erasures)


@settings(max_examples=120, deadline=None)
@given(zones=st.tuples(st.sampled_from(ZONES), st.sampled_from(ZONES)), anchor=st.sampled_from(ANCHORS), plan=steps)
def test_every_statistic_equals_a_brute_force_count_whatever_happens_to_the_runs(
    zones: tuple[str, str], anchor: datetime, plan: list[tuple[Any, ...]]
) -> None:
    # Given two tenants in their zones, a stream of batches, wide groups, erasures and faulty rollups,
    # and a reader of each tenant's statistics before every single write of every run
    world = _World(InMemoryAggregateStore(), {TENANT: ZoneInfo(zones[0]), OTHER: ZoneInfo(zones[1])}, anchor)
    lookback = timedelta(days=2)
    for step in plan:
        kind, gap = step[0], timedelta(milliseconds=step[1])
        world.clock += gap
        if kind == "batch":
            for tenant, user, action, late_ms in step[2]:
                event_id = f"e{len(world.stored):05d}"
                occurred = world.clock - timedelta(milliseconds=late_ms)
                world.receive(
                    ReceivedEvent(f"{format_utc(world.clock)}#{tenant}#{event_id}", tenant, user, action, occurred)
                )
        elif kind == "wide":
            for index in range(step[2]):
                event_id = f"e{len(world.stored):05d}"
                occurred = world.clock - timedelta(hours=1)
                action = ("login", "view")[index % 2]
                world.receive(
                    ReceivedEvent(
                        f"{format_utc(world.clock)}#{TENANT}#{event_id}", TENANT, f"w{index:03d}", action, occurred
                    )
                )
        elif kind == "erase":
            world.erasures = (step[2], step[3])
            world.erase()
        else:
            # When a scheduled rollup runs, with its fault (an erasure during the run erases the last user named)
            rollup_under_fault(
                world.store,
                step[2],
                zone_of=world.zones.__getitem__,
                now=world.clock,
                initial_lookback=lookback,
                harness=Harness(erase=world.erase, read=world.read),
            )
        # Then every answer so far was exact at its own as_of, and as_of never went back
        world.read()
    # When a last, undisturbed run goes
    now = world.clock + timedelta(milliseconds=1)
    rollup(world.store, now, initial_lookback=lookback, zone_of=world.zones.__getitem__)
    # Then every statistic of each tenant equals the brute-force count of its events
    assert world.store.progress.as_of == now
    assert world.store.progress.lagging == {}
    for tenant, zone in world.zones.items():
        check_statistics(
            world.store,
            Reference(world.stored, tenant, zone, now),
            now,
            users=["u1", "u2", "u3", "w000"],
            actions=["login", "view", "edit"],
        )
