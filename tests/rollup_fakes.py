"""In-memory stand-ins for the rollup's store, store wrappers that inject crashes and races, the
brute-force reference every statistic is compared with, and the checks that compare them.

- ``InMemoryAggregateStore`` keeps the promises of ``tracker.rollup.RollupStore`` and
  ``tracker.stats.StatsStore`` as the DynamoDB store does: events read in ``received_key`` order from
  ``[start, end)`` (compared as the fixed-width strings of the ``by_received`` index), a commit that is
  one atomic transaction conditional on the progress version, ``ADD`` on numeric attributes, partitions
  read in sort key order with an inclusive ``BETWEEN``.
- ``CrashingStore``, ``StopAfter`` and ``InterleavedStore`` wrap *any* rollup store (the fake or the
  real DynamoDB one) to crash a run after some commits, stop it as the Lambda timeout would, or let
  another run commit between a run's reads and its commit.
- ``rollup_under_fault`` runs the real ``run_rollup`` under one ``Fault`` (crash, lost answer, timeout,
  race, rerun) on any store.
- ``Reference`` counts the stored events by brute force, with no aggregate and no shared code path:
  each statistic is what the contract says it is, over the events received before ``as_of``;
  ``check_statistics`` reads every statistic through ``tracker.stats`` and compares.
- ``moto_transactions_copy_each_table_once`` keeps moto's TransactWriteItems from copying a whole
  table once per item (the integration suites would take minutes).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import strategies as st

from tracker import stats
from tracker.aggregates import ACTION_PREFIX, AggregateKey, Chunk, ReceivedEvent, UserDayActions, action_counts
from tracker.interfaces import AggregateItem, Progress, RollupConflict, RollupStore, StatsStore
from tracker.local_calendar import dates, local_date, windows
from tracker.rollup import MAX_ITEMS_PER_COMMIT, RollupReport, run_rollup
from tracker.stats import TenantClock
from tracker.timefmt import format_utc

# ---------------------------------------------------------------- moto, made fast enough


class _CopyEachTableOncePerTransaction:
    """Stands in for the ``copy`` module inside ``moto.dynamodb.models``: during a TransactWriteItems,
    a table is deep-copied once, not once per item of the transaction."""

    def __init__(self) -> None:
        self.copies: dict[int, tuple[Any, Any]] | None = None

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        if self.copies is None or not isinstance(value, Table):
            return copy.deepcopy(value, memo)
        if id(value) not in self.copies:
            self.copies[id(value)] = (value, copy.deepcopy(value))
        return self.copies[id(value)][1]


@contextlib.contextmanager
def moto_transactions_copy_each_table_once() -> Iterator[None]:
    """moto backs a table up before a TransactWriteItems with one deepcopy of the whole table *per
    item* of the transaction: 100 copies for a full rollup commit, which makes a few hundred events
    take minutes. One copy per table and transaction is the same backup (taken before any write,
    restored on a cancellation), so what moto checks and does is unchanged; only the time is."""
    from moto.dynamodb import models

    shim = _CopyEachTableOncePerTransaction()
    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        shim.copies = {}
        try:
            original(self, transact_items)
        finally:
            shim.copies = None

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(models, "copy", shim)
        patch.setattr(models.DynamoDBBackend, "transact_write_items", transact_write_items)
        yield


# ---------------------------------------------------------------- the in-memory store


class InMemoryAggregateStore:
    """The aggregates and the ``by_received`` index in memory: what ``DynamoAggregateStore`` does."""

    def __init__(self) -> None:
        self.events: list[ReceivedEvent] = []
        self.items: dict[AggregateKey, dict[str, int]] = {}
        self.progress: Progress | None = None
        self.commits: list[Chunk] = []
        self.transaction_sizes: list[int] = []
        self.progress_history: list[Progress] = []

    # ------------------------------------------------------------ writing events (what ingest does)

    def add(self, event: ReceivedEvent) -> None:
        self.events.append(event)

    # ------------------------------------------------------------ RollupStore

    def load_progress(self) -> Progress | None:
        return self.progress

    def received_events(self, start: datetime, end: datetime) -> Iterator[ReceivedEvent]:
        low, high = format_utc(start), format_utc(end)
        # received_key is "{time}#{tenant}#{id}": BETWEEN low AND high is [start, end).
        yield from sorted(
            (event for event in self.events if low <= event.received_key <= high), key=lambda e: e.received_key
        )

    def load_user_days(self, keys: Iterable[AggregateKey]) -> dict[AggregateKey, UserDayActions]:
        found: dict[AggregateKey, UserDayActions] = {}
        for key in keys:
            item = self.items.get(key)
            found[key] = None if item is None else frozenset(a for a, n in action_counts(item.items()).items() if n)
        return found

    def commit(self, chunk: Chunk, progress: Progress, expected_version: int | None) -> None:
        current = self.progress.version if self.progress else None
        if current != expected_version:
            raise RollupConflict(f"version is {current}, not {expected_version}")
        size = len(chunk.deltas) + 1
        if size > MAX_ITEMS_PER_COMMIT + 1:
            raise AssertionError(f"A DynamoDB transaction holds at most 100 items, not {size}")
        for key, delta in chunk.deltas.items():
            item = self.items.setdefault(key, {})
            item["count"] = item.get("count", 0) + delta.count
            if delta.users:
                item["users"] = item.get("users", 0) + delta.users
            for action, amount in delta.actions.items():
                name = f"{ACTION_PREFIX}{action}"
                item[name] = item.get(name, 0) + amount
        self.progress = progress
        self.progress_history.append(progress)
        self.commits.append(chunk)
        self.transaction_sizes.append(size)

    # ------------------------------------------------------------ StatsStore

    def read_partition(self, partition: str, low: str | None = None, high: str | None = None) -> list[AggregateItem]:
        keys = sorted(
            sk
            for pk, sk in self.items
            if pk == partition and (low is None or high is None or low <= sk <= high)  # BETWEEN is inclusive
        )
        return [self._aggregate_item(partition, sk) for sk in keys]

    def read_partitions(self, partitions: Iterable[str]) -> dict[str, list[AggregateItem]]:
        return {partition: self.read_partition(partition) for partition in partitions}

    def _aggregate_item(self, partition: str, sort_key: str) -> AggregateItem:
        item = self.items[(partition, sort_key)]
        return AggregateItem(
            sort_key=sort_key,
            count=item.get("count", 0),
            users=item.get("users", 0),
            actions=action_counts(item.items()),
        )


# ---------------------------------------------------------------- store wrappers


class Crash(Exception):
    """The run died (the Lambda was killed, the network dropped) in the middle of a commit."""


class CrashingStore:
    """Delegates to ``store``; the commit after ``after`` successful ones crashes.

    ``lose_response``: the crashing commit is applied and only its answer is lost (the transaction
    succeeded, the Lambda died before hearing so); otherwise it is never applied.
    """

    def __init__(self, store: RollupStore, after: int, *, lose_response: bool = False) -> None:
        self.store = store
        self.after = after
        self.lose_response = lose_response
        self.succeeded = 0

    def load_progress(self) -> Progress | None:
        return self.store.load_progress()

    def received_events(self, start: datetime, end: datetime) -> Iterator[ReceivedEvent]:
        return self.store.received_events(start, end)

    def load_user_days(self, keys: Iterable[AggregateKey]) -> dict[AggregateKey, UserDayActions]:
        return self.store.load_user_days(keys)

    def commit(self, chunk: Chunk, progress: Progress, expected_version: int | None) -> None:
        if self.succeeded >= self.after:
            if self.lose_response:
                self.store.commit(chunk, progress, expected_version)
            raise Crash(f"crashed after {self.succeeded} commits")
        self.store.commit(chunk, progress, expected_version)
        self.succeeded += 1


class InterleavedStore:
    """Delegates to ``store``; just before its ``at``-th commit (1-based) it calls ``interloper``,
    once: another rollup gets in between this run's reads and its commit.

    When ``interloper`` returns True it has applied this run's pending commit itself (to make the
    *other* run lose the race), and the commit is not repeated.
    """

    def __init__(self, store: RollupStore, at: int, interloper: Callable[[Chunk, Progress, int | None], bool]) -> None:
        self.store = store
        self.at = at
        self.interloper = interloper
        self.commits = 0

    def load_progress(self) -> Progress | None:
        return self.store.load_progress()

    def received_events(self, start: datetime, end: datetime) -> Iterator[ReceivedEvent]:
        return self.store.received_events(start, end)

    def load_user_days(self, keys: Iterable[AggregateKey]) -> dict[AggregateKey, UserDayActions]:
        return self.store.load_user_days(keys)

    def commit(self, chunk: Chunk, progress: Progress, expected_version: int | None) -> None:
        self.commits += 1
        if self.commits == self.at and self.interloper(chunk, progress, expected_version):
            return
        self.store.commit(chunk, progress, expected_version)


class RecordingStore:
    """Delegates to ``store`` and records, per commit, how many aggregate items it wrote and its progress."""

    def __init__(self, store: RollupStore) -> None:
        self.store = store
        self.commits: list[tuple[int, Progress]] = []

    def load_progress(self) -> Progress | None:
        return self.store.load_progress()

    def received_events(self, start: datetime, end: datetime) -> Iterator[ReceivedEvent]:
        return self.store.received_events(start, end)

    def load_user_days(self, keys: Iterable[AggregateKey]) -> dict[AggregateKey, UserDayActions]:
        return self.store.load_user_days(keys)

    def commit(self, chunk: Chunk, progress: Progress, expected_version: int | None) -> None:
        self.store.commit(chunk, progress, expected_version)
        self.commits.append((len(chunk.deltas), progress))


@dataclass
class StopAfter:
    """A ``should_stop`` that says "the Lambda is about to time out" from its ``calls``-th call on."""

    calls: int
    asked: int = 0

    def __call__(self) -> bool:
        self.asked += 1
        return self.asked >= self.calls


# ---------------------------------------------------------------- the brute-force reference


@dataclass(frozen=True)
class StoredEvent:
    """An event as stored, with only what statistics depend on."""

    tenant_id: str
    user_id: str
    action: str
    occurred_at: datetime
    received_at: datetime


@dataclass
class Reference:
    """Every statistic of one tenant counted by brute force over the stored events it covers.

    ``as_of``: only events received before it are counted (the contract's meaning of ``as_of``).
    """

    events: list[StoredEvent]
    tenant_id: str
    zone: ZoneInfo
    as_of: datetime
    counted: list[StoredEvent] = field(init=False)

    def __post_init__(self) -> None:
        self.counted = [e for e in self.events if e.tenant_id == self.tenant_id and e.received_at < self.as_of]

    def _local_date(self, event: StoredEvent) -> date:
        return event.occurred_at.astimezone(self.zone).date()

    def activity(self, user_id: str, spans: Iterable[tuple[datetime, datetime]]) -> list[tuple[int, dict[str, int]]]:
        """Per window: the user's events with ``start <= occurred_at < end``, and their actions."""
        mine = [e for e in self.counted if e.user_id == user_id]
        result = []
        for start, end in spans:
            inside = [e for e in mine if start <= e.occurred_at < end]
            result.append((len(inside), dict(sorted(Counter(e.action for e in inside).items()))))
        return result

    def daily(self, days: Iterable[date]) -> list[tuple[date, int, int]]:
        per_day: dict[date, list[StoredEvent]] = defaultdict(list)
        for event in self.counted:
            per_day[self._local_date(event)].append(event)
        return [(day, len(per_day[day]), len({e.user_id for e in per_day[day]})) for day in days]

    def top_users(self, start: datetime, end: datetime, limit: int) -> list[tuple[str, int]]:
        totals = Counter(e.user_id for e in self.counted if start <= e.occurred_at < end)
        return sorted(totals.items(), key=lambda entry: (-entry[1], entry[0]))[:limit]

    def trend(self, days: Iterable[date]) -> list[tuple[date, dict[str, int]]]:
        result = []
        for day in days:
            counts = Counter(e.action for e in self.counted if self._local_date(e) == day)
            result.append((day, dict(counts)))
        return result

    def frequency(self, days: Iterable[date], action: str | None = None) -> list[tuple[str, int]]:
        wanted = set(days)
        totals = Counter(
            e.action for e in self.counted if self._local_date(e) in wanted and (action is None or e.action == action)
        )
        if action is not None:
            return [(action, totals[action])]
        return sorted(totals.items(), key=lambda entry: (-entry[1], entry[0]))

    def action_daily(self, days: Iterable[date], action: str) -> list[tuple[date, int, int, float]]:
        result = []
        for day in days:
            done = [e for e in self.counted if e.action == action and self._local_date(e) == day]
            users = len({e.user_id for e in done})
            result.append((day, len(done), users, round(len(done) / users, 4) if users else 0.0))
        return result


def stored_from_received(event: ReceivedEvent) -> StoredEvent:
    return StoredEvent(event.tenant_id, event.user_id, event.action, event.occurred_at, event.received_at)


# ---------------------------------------------------------------- running the rollup under a fault

FaultKind = Literal["none", "twice", "crash", "lost_response", "stop", "race_first_loses", "race_second_loses"]
FAULT_KINDS: tuple[FaultKind, ...] = (
    "twice",
    "crash",
    "lost_response",
    "stop",
    "race_first_loses",
    "race_second_loses",
)


@dataclass(frozen=True)
class Fault:
    """What goes wrong during one scheduled rollup.

    ``crash`` / ``lost_response``: the commit after ``at`` successful ones dies (not applied / applied but
    unanswered), then the run is started again. ``stop``: the run is told it is about to time out at its
    ``at``-th check and the next scheduled run goes on. ``race_*``: a second run starts at the same
    time; it commits (``race_first_loses``), or the first run commits (``race_second_loses``), between
    the other's reads and its ``at``-th commit. ``twice``: the same window is rolled up again, and a
    retried older schedule runs after it.
    """

    kind: FaultKind = "none"
    at: int = 1


def faults(max_at: int = 3) -> st.SearchStrategy[Fault]:
    """Any fault but none; ``at`` from 0 (crashes: the very first commit) or 1 (the others) to ``max_at``."""
    return st.sampled_from(FAULT_KINDS).flatmap(
        lambda kind: st.builds(
            Fault,
            kind=st.just(kind),
            at=st.integers(min_value=0 if kind in ("crash", "lost_response") else 1, max_value=max_at),
        )
    )


def rollup_under_fault(
    store: RollupStore,
    fault: Fault,
    *,
    zone_of: Callable[[str], ZoneInfo],
    now: datetime,
    initial_lookback: timedelta,
    settle: timedelta = timedelta(0),
) -> list[RollupReport]:
    """Runs the real ``run_rollup`` on ``store`` as ``fault`` says; the reports of every run, in order."""

    def run(target: RollupStore, at: datetime = now, should_stop: Callable[[], bool] = lambda: False) -> RollupReport:
        return run_rollup(
            target, zone_of, now=at, settle=settle, initial_lookback=initial_lookback, should_stop=should_stop
        )

    reports: list[RollupReport] = []
    if fault.kind == "none":
        reports.append(run(store))
    elif fault.kind == "twice":
        reports += [run(store), run(store), run(store, now - timedelta(hours=1))]
    elif fault.kind in ("crash", "lost_response"):
        with contextlib.suppress(Crash):
            reports.append(run(CrashingStore(store, fault.at, lose_response=fault.kind == "lost_response")))
        reports.append(run(store))
    elif fault.kind == "stop":
        reports.append(run(store, should_stop=StopAfter(fault.at)))
    elif fault.kind == "race_first_loses":

        def second_run_commits_first(_chunk: Chunk, _progress: Progress, _expected: int | None) -> bool:
            reports.append(run(store))
            return False

        reports.append(run(InterleavedStore(store, fault.at, second_run_commits_first)))
    else:

        def second_run_loses(chunk: Chunk, progress: Progress, expected: int | None) -> bool:
            applied: list[bool] = []

            def first_run_commits_first(_chunk: Chunk, _progress: Progress, _expected: int | None) -> bool:
                store.commit(chunk, progress, expected)
                applied.append(True)
                return False

            reports.append(run(InterleavedStore(store, 1, first_run_commits_first)))
            return bool(applied)

        reports.append(run(InterleavedStore(store, fault.at, second_run_loses)))
    return reports


# ---------------------------------------------------------------- every statistic against the reference


def check_statistics(
    store: StatsStore,
    reference: Reference,
    now: datetime,
    *,
    users: Iterable[str],
    actions: Iterable[str],
    top_limit: int = 5,
    top_hours: int | None = None,
) -> None:
    """Reads every statistic of ``reference``'s tenant through ``tracker.stats`` and asserts each one
    equals the brute-force count: activity 1h/4h/1d of each user, daily counts and distinct users, top
    users, trend, frequency (all, and of the first action), and each action's daily count, users and average."""
    zone = reference.zone
    clock = TenantClock(tenant_id=reference.tenant_id, zone=zone, now=now)
    occurred = [e.occurred_at for e in reference.events if e.tenant_id == reference.tenant_id]
    first, last = min([*occurred, now]), max([*occurred, now])
    start, end = first - timedelta(hours=1), last + timedelta(hours=2)

    for user in users:
        for period in ("1h", "4h", "1d"):
            activity = stats.user_activity(store, clock, user, period=period, start=start, end=end)
            spans = [(w.start, w.end) for w in activity.items]
            assert activity.as_of == reference.as_of
            assert spans[0][0] <= start < spans[0][1]
            assert spans[-1][0] < end <= spans[-1][1]
            assert all(a[1] == b[0] for a, b in itertools.pairwise(spans)), "windows must be contiguous"
            got = [(w.count, w.by_action) for w in activity.items]
            assert got == reference.activity(user, spans), f"{period} activity of {user}"

    today = local_date(now, zone)
    days = min(366, (today - local_date(first, zone)).days + 1)
    daily = stats.daily(store, clock, days)
    assert daily.as_of == reference.as_of
    assert daily.timezone == zone.key
    listed = [item.date for item in daily.items]
    assert listed == dates(today - timedelta(days=days - 1), today)
    assert [(i.date, i.count, i.users) for i in daily.items] == reference.daily(listed), "daily"

    hours = top_hours or min(720, int((now - first) / timedelta(hours=1)) + 2)
    top = stats.top_users(store, clock, hours, top_limit)
    assert top.as_of == reference.as_of
    ((_, current_end),) = windows(now, now + timedelta(milliseconds=1), "1h", zone)
    assert top.to == current_end, "top users end with the current local hour"
    assert len(list(windows(top.from_, top.to, "1h", zone))) == hours, "and span `hours` local hours"
    assert [(u.user_id, u.count) for u in top.items] == reference.top_users(top.from_, top.to, top_limit), "top"

    days_range = stats.date_range(clock, local_date(first, zone), local_date(last, zone))
    trend = stats.trend(store, clock, days_range)
    assert trend.as_of == reference.as_of
    assert [(d.date, d.counts) for d in trend.items] == reference.trend(days_range), "trend"

    frequency = stats.frequency(store, clock, days_range, None)
    assert frequency.as_of == reference.as_of
    assert [(a.action, a.total) for a in frequency.items] == reference.frequency(days_range), "frequency"
    actions = list(actions)
    if actions:
        one = stats.frequency(store, clock, days_range, actions[0])
        assert [(a.action, a.total) for a in one.items] == reference.frequency(days_range, actions[0])
    for action in actions:
        per_day = stats.action_daily(store, clock, days_range, action)
        assert per_day.as_of == reference.as_of
        got_days = [(d.date, d.count, d.users, d.avg_per_user) for d in per_day.items]
        assert got_days == reference.action_daily(days_range, action), f"daily {action}"


def check_daily(store: StatsStore, reference: Reference, now: datetime, days: int) -> None:
    """The cheap check between runs: the tenant's daily counts and distinct users as of the progress."""
    clock = TenantClock(tenant_id=reference.tenant_id, zone=reference.zone, now=now)
    daily = stats.daily(store, clock, days)
    assert daily.as_of == reference.as_of
    assert [(i.date, i.count, i.users) for i in daily.items] == reference.daily([i.date for i in daily.items])
