"""In-memory stand-ins for the rollup's stores, a store wrapper that injects faults at every write,
the brute-force reference every statistic is compared with, and the checks that compare them.

- ``InMemoryAggregateStore`` keeps the promises of the rollup's, the statistics' and erasure's
  stores as the DynamoDB ones do: events read in ``received_key`` order from ``[start, end)``, a
  progress record replaced only if its fence is the expected one, journals written only while the
  fence holds, items written only over a lower token, partitions read in sort key order with an
  inclusive ``BETWEEN``.
- ``FaultyStore`` wraps *any* rollup store (the fake or the real DynamoDB one) and calls a hook
  before each of the run's writes (the lease, the journal, every single aggregate, the commit,
  the journal deletions): a crash, a lost answer, a second run, a lease running out, an erasure,
  or a reader, exactly there.
- ``rollup_under_fault`` runs the real ``run_rollup`` under one ``Fault`` on any store, with a
  reader called at every write.
- ``Reference`` counts the stored events by brute force, with no aggregate and no shared code path;
  ``check_statistics`` and ``check_some`` read statistics through ``tracker.stats`` and compare
  each answer with the brute force at that answer's own ``as_of``; ``check_catalog_statistics``
  does the same for points, numeric properties and violations, read from the aggregates' accessors.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from tracker import stats
from tracker.aggregates import (
    AggregateKey,
    ReceivedEvent,
    StoredAggregate,
    day_users_partition,
    tenant_actions_partition,
    user_partition,
)
from tracker.interfaces import NO_PROGRESS, CatalogReader, Progress, RollupConflict, RollupStore, StatsStore
from tracker.local_calendar import dates, local_date, windows
from tracker.rollup import RollupReport, run_rollup
from tracker.stats import TenantClock
from tracker.timefmt import format_utc, parse_utc

# ---------------------------------------------------------------- the in-memory store


class InMemoryAggregateStore:
    """The Aggregates table and the ``by_received_v2`` index in memory: what the DynamoDB stores do."""

    def __init__(self) -> None:
        self.events: list[ReceivedEvent] = []
        self.items: dict[AggregateKey, StoredAggregate] = {}
        self.journals: dict[int, list[AggregateKey]] = {}
        self.progress: Progress = NO_PROGRESS
        self.progress_history: list[Progress] = []
        self.writes = 0

    # ------------------------------------------------------------ writing events (what ingest does)

    def add(self, event: ReceivedEvent) -> None:
        self.events.append(event)

    # ------------------------------------------------------------ the progress record

    def load_progress(self) -> Progress:
        return self.progress

    def replace_progress(self, progress: Progress, expected_fence: int) -> bool:
        if self.progress.fence != expected_fence:
            return False
        self.progress = progress
        self.progress_history.append(progress)
        return True

    # ------------------------------------------------------------ the rollup's store

    def received_events(self, start: datetime, end: datetime) -> Iterator[ReceivedEvent]:
        low, high = format_utc(start), format_utc(end)
        # received_key is "{time}#{tenant}#{id}": BETWEEN low AND high is [start, end).
        yield from sorted(
            (event for event in self.events if low <= event.received_key <= high), key=lambda e: e.received_key
        )

    def write_journal(self, token: int, keys: Sequence[AggregateKey]) -> None:
        if self.progress.fence != token:
            raise RollupConflict("the fence moved")
        self.journals[token] = list(keys)

    def read_journal(self, token: int) -> list[AggregateKey]:
        return list(self.journals.get(token, []))

    def delete_journals(self, tokens: Iterable[int]) -> None:
        for token in tokens:
            self.journals.pop(token, None)

    def load_aggregates(self, keys: Iterable[AggregateKey]) -> dict[AggregateKey, StoredAggregate]:
        return {key: self.items[key] for key in set(keys) if key in self.items}

    def write_aggregates(self, items: Sequence[StoredAggregate]) -> dict[AggregateKey, Exception]:
        failed: dict[AggregateKey, Exception] = {}
        for item in items:
            if not self._put_newer(item):
                failed[item.key] = RollupConflict(f"{item.key} has a higher token")
        return failed

    def _put_newer(self, item: StoredAggregate) -> bool:
        current = self.items.get(item.key)
        if current is not None and current.tag >= item.tag:
            return False
        self.items[item.key] = item
        self.writes += 1
        return True

    # ------------------------------------------------------------ the statistics' store

    def read_partition(self, partition: str, low: str | None = None, high: str | None = None) -> list[StoredAggregate]:
        keys = sorted(
            key
            for key in self.items
            if key[0] == partition and (low is None or high is None or low <= key[1] <= high)  # BETWEEN is inclusive
        )
        return [self.items[key] for key in keys]

    def read_partitions(self, partitions: Iterable[str]) -> list[StoredAggregate]:
        return [item for partition in partitions for item in self.read_partition(partition)]

    # ------------------------------------------------------------ erasure's store

    def user_items(self, tenant_id: str, user_id: str) -> list[AggregateKey]:
        return sorted(key for key in self.items if key[0] == user_partition(tenant_id, user_id))

    def tombstone(self, keys: Sequence[AggregateKey], token: int) -> None:
        for key in keys:
            self._put_newer(StoredAggregate(key, {}, {}, tag=token, base=0))


# ---------------------------------------------------------------- a store that fails where it is told

Mutation = Literal["progress", "journal", "aggregate", "delete_journals"]


class Crash(BaseException):
    """The run was killed (the Lambda timed out, its host died) at this write: no cleanup runs."""


class FaultyStore:
    """Delegates to ``store``; before each write of the run (every aggregate one by one) calls
    ``before(n, what)`` with its 1-based number: the hook may raise ``Crash``, run another run, an
    erasure or a reader. ``lose_response_at``: that write is applied, then the run crashes."""

    def __init__(
        self, store: RollupStore, before: Callable[[int, Mutation], None], lose_response_at: int | None = None
    ) -> None:
        self.store = store
        self.before = before
        self.lose_response_at = lose_response_at
        self.mutations = 0

    def _mutate(self, what: Mutation, apply: Callable[[], Any]) -> Any:
        self.mutations += 1
        self.before(self.mutations, what)
        result = apply()
        if self.mutations == self.lose_response_at:
            raise Crash(f"answer to write {self.mutations} ({what}) lost")
        return result

    def load_progress(self) -> Progress:
        return self.store.load_progress()

    def replace_progress(self, progress: Progress, expected_fence: int) -> bool:
        return bool(self._mutate("progress", lambda: self.store.replace_progress(progress, expected_fence)))

    def received_events(self, start: datetime, end: datetime) -> Iterator[ReceivedEvent]:
        return self.store.received_events(start, end)

    def write_journal(self, token: int, keys: Sequence[AggregateKey]) -> None:
        self._mutate("journal", lambda: self.store.write_journal(token, keys))

    def read_journal(self, token: int) -> list[AggregateKey]:
        return self.store.read_journal(token)

    def delete_journals(self, tokens: Iterable[int]) -> None:
        tokens = list(tokens)
        self._mutate("delete_journals", lambda: self.store.delete_journals(tokens))

    def load_aggregates(self, keys: Iterable[AggregateKey]) -> dict[AggregateKey, StoredAggregate]:
        return self.store.load_aggregates(keys)

    def write_aggregates(self, items: Sequence[StoredAggregate]) -> dict[AggregateKey, Exception]:
        failed: dict[AggregateKey, Exception] = {}
        for item in items:
            failed.update(self._mutate("aggregate", lambda item=item: self.store.write_aggregates([item])))
        return failed


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
class CatalogEntry:
    """An event type as the brute force sees it: its points, its number properties and since when."""

    points: int = 0
    numbers: tuple[tuple[str, datetime], ...] = ()


@dataclass(frozen=True)
class StoredEvent:
    """An event as stored, with only what statistics depend on."""

    tenant_id: str
    user_id: str
    action: str
    occurred_at: datetime
    received_at: datetime
    anonymous: bool = False
    """Erased after a run counted it: it stays in tenant-wide totals, under a user id of its own."""
    metadata: tuple[tuple[str, Any], ...] = ()
    """The top-level metadata values as the client sent them."""
    violations: frozenset[str] = frozenset()
    counted_with: CatalogEntry | None = None
    """Its type in the catalog when a run counted it (set once the snapshot passes it)."""


def erased(
    events: list[StoredEvent], tenant_id: str, user_id: str, as_of: datetime | None, number: int
) -> list[StoredEvent]:
    """The stored events after ``user_id`` of ``tenant_id`` is erased while the tenant's statistics are
    ``as_of``: the events counted by then stay, anonymous (a user id no one else has), the rest are gone."""
    kept = []
    for event in events:
        if event.anonymous or (event.tenant_id, event.user_id) != (tenant_id, user_id):
            kept.append(event)
        elif as_of is not None and event.received_at < as_of:
            kept.append(replace(event, user_id=f"{user_id} erased #{number}", anonymous=True))
    return kept


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
        totals = Counter(e.user_id for e in self.counted if start <= e.occurred_at < end and not e.anonymous)
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

    # ------------------------------------------------------------ points, properties, violations

    def _entry(self, event: StoredEvent) -> CatalogEntry:
        assert event.counted_with is not None, f"{event} is counted but was never given its catalog entry"
        return event.counted_with

    def _numbers(self, event: StoredEvent) -> dict[str, Decimal]:
        """The event's values that count: declared number when counted, received since, a JSON number."""
        counted = {}
        metadata = dict(event.metadata)
        for name, declared_at in self._entry(event).numbers:
            value = metadata.get(name)
            if event.received_at < declared_at or isinstance(value, bool):
                continue
            if isinstance(value, int):
                counted[name] = Decimal(value)
            elif isinstance(value, float) and math.isfinite(value):
                counted[name] = Decimal(repr(value))  # the decimal text JSON carries
        return counted

    def _mine(self, user_id: str) -> list[StoredEvent]:
        return [e for e in self.counted if e.user_id == user_id and not e.anonymous]

    def lifetime(self, user_id: str) -> tuple[int, dict[str, int], dict[str, int]]:
        """Everything the user ever did: events, events by action, points by action (those earning some)."""
        mine = self._mine(user_id)
        points: Counter[str] = Counter()
        for event in mine:
            points[event.action] += self._entry(event).points
        return len(mine), dict(Counter(e.action for e in mine)), {a: p for a, p in points.items() if p}

    def hour_points(self, user_id: str) -> dict[datetime, dict[str, int]]:
        """Points by action per hour (``[start, start + 1h)``, a local hour in the zones tested)."""
        result: dict[datetime, Counter[str]] = defaultdict(Counter)
        for event in self._mine(user_id):
            if points := self._entry(event).points:
                result[self._hour(event)][event.action] += points
        return {hour: dict(points) for hour, points in result.items()}

    def day_points(self, user_id: str) -> dict[date, tuple[dict[str, int], dict[int, int]]]:
        """Per local day: points by action, and by local hour as minutes after local midnight."""
        by_action: dict[date, Counter[str]] = defaultdict(Counter)
        by_hour: dict[date, Counter[int]] = defaultdict(Counter)
        for event in self._mine(user_id):
            if points := self._entry(event).points:
                day = self._local_date(event)
                midnight = datetime(day.year, day.month, day.day, tzinfo=self.zone).astimezone(UTC)
                by_action[day][event.action] += points
                by_hour[day][int((self._hour(event) - midnight) / timedelta(minutes=1))] += points
        return {day: (dict(by_action[day]), dict(by_hour[day])) for day in by_action}

    def daily_user_points(self) -> dict[tuple[date, str], int]:
        """Each user's points per local day (the top-users twins)."""
        totals: Counter[tuple[date, str]] = Counter()
        for event in self.counted:
            if not event.anonymous:
                totals[(self._local_date(event), event.user_id)] += self._entry(event).points
        return {key: points for key, points in totals.items() if points}

    def property_stats(self) -> dict[tuple[date, str, str], tuple[int, Decimal, Decimal, Decimal]]:
        """Count, sum, min and max of each property per local day and action, anonymous events included."""
        values: dict[tuple[date, str, str], list[Decimal]] = defaultdict(list)
        for event in self.counted:
            for name, value in self._numbers(event).items():
                values[(self._local_date(event), event.action, name)].append(value)
        wide = Context(prec=5_000)
        return {key: (len(found), _exact_sum(found, wide), min(found), max(found)) for key, found in values.items()}

    def violations(self) -> dict[tuple[date, str, str], int]:
        """Events per local day, action and kind of violation."""
        totals = Counter(
            (self._local_date(event), event.action, kind) for event in self.counted for kind in event.violations
        )
        return dict(totals)

    def _hour(self, event: StoredEvent) -> datetime:
        local = event.occurred_at.astimezone(self.zone)
        return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)


def _exact_sum(values: Iterable[Decimal], context: Context) -> Decimal:
    total = Decimal(0)
    for value in values:
        total = context.add(total, value)
    return total


def check_catalog_statistics(store: StatsStore, reference: Reference, users: Iterable[str]) -> None:
    """Points (lifetime, per hour, per day and local hour, per day in the top-users twins), numeric
    property statistics and violations per action-day, read from the aggregates as of the snapshot,
    each equal to the brute force."""
    tenant = reference.tenant_id

    def read(partition: str) -> list[Any]:
        as_of, items = stats.snapshot(store, tenant, lambda: store.read_partition(partition))
        assert as_of == reference.as_of
        return items

    for user in users:
        items = read(user_partition(tenant, user))
        lifetime = [(i.count, i.actions, i.points_by_action) for i in items if i.sort_key == "P"]
        assert lifetime == ([reference.lifetime(user)] if reference.lifetime(user)[0] else []), f"lifetime of {user}"
        hours = {parse_utc(i.sort_key[2:]): i.points_by_action for i in items if i.sort_key.startswith("H#")}
        assert {h: p for h, p in hours.items() if p} == reference.hour_points(user), f"hour points of {user}"
        days = {
            date.fromisoformat(i.sort_key[2:]): (i.points_by_action, i.hour_points)
            for i in items
            if i.sort_key.startswith("D#") and i.points
        }
        assert days == reference.day_points(user), f"day points of {user}"
    expected_twins = reference.daily_user_points()
    twins = {
        (day, item.sort_key): item.points
        for day in sorted({day for day, _ in expected_twins} | {reference._local_date(e) for e in reference.counted})
        for item in read(day_users_partition(tenant, day))
        if item.points
    }
    assert twins == expected_twins, "points of the top-users twins"
    action_days = read(tenant_actions_partition(tenant))
    properties = {}
    violations = {}
    for item in action_days:
        day, _, action = item.sort_key.partition("#")
        for name in item.properties:
            found = item.property_stats(name)
            assert found is not None
            properties[(date.fromisoformat(day), action, name)] = (found.count, found.sum, found.min, found.max)
        for kind, count in item.violations.items():
            violations[(date.fromisoformat(day), action, kind)] = count
    assert properties == reference.property_stats(), "numeric properties"
    assert violations == reference.violations(), "violations"


def stored_from_received(event: ReceivedEvent) -> StoredEvent:
    return StoredEvent(event.tenant_id, event.user_id, event.action, event.occurred_at, event.received_at)


# ---------------------------------------------------------------- running the rollup under a fault

FaultKind = Literal["none", "twice", "crash", "crash_older", "lost_response", "stop", "race", "zombie", "erase"]
FAULT_KINDS: tuple[FaultKind, ...] = (
    "twice",
    "crash",
    "crash_older",
    "lost_response",
    "stop",
    "race",
    "zombie",
    "erase",
)
LEASE = timedelta(minutes=5)
SMALL_PART = 7
"""Events per part in the tests: runs are cut into parts, as a deadline or a backlog would."""


@dataclass(frozen=True)
class Fault:
    """What goes wrong during one scheduled rollup, at the run's ``at``-th write (1-based).

    ``crash`` / ``lost_response``: that write is not applied / applied and unanswered, and the run
    dies; the next run starts once its lease ran out. ``crash_older``: the same, and the next run is a
    retried older schedule (it counts fewer events than the dead run wrote). ``stop``: the run is told
    it is about to time out at its ``at``-th check between parts; the next scheduled run goes on. ``race``: a second run
    starts then (before the first took the lease, or while it holds it). ``zombie``: the first run's
    lease runs out then, a second run takes over and finishes, and the first goes on (it must not
    commit). ``erase``: a user is erased then. ``twice``: the same window is rolled up again, and a
    retried older schedule runs after it.
    """

    kind: FaultKind = "none"
    at: int = 1


def faults(max_at: int = 12) -> st.SearchStrategy[Fault]:
    return st.builds(Fault, kind=st.sampled_from(FAULT_KINDS), at=st.integers(min_value=1, max_value=max_at))


@dataclass
class Harness:
    """What a fault may do besides running the rollup: erase a user, read statistics."""

    erase: Callable[[], None] = lambda: None
    read: Callable[[], None] = lambda: None


def rollup_under_fault(
    store: RollupStore,
    fault: Fault,
    *,
    zone_of: Callable[[str], ZoneInfo],
    now: datetime,
    initial_lookback: timedelta,
    settle: timedelta = timedelta(0),
    harness: Harness | None = None,
    max_events_per_part: int = SMALL_PART,
    catalog: CatalogReader | None = None,
) -> list[RollupReport]:
    """Runs the real ``run_rollup`` on ``store`` as ``fault`` says, ``harness.read`` before every write;
    the reports of every run, in order. The wall clock starts at ``now`` and moves past a lease when
    a run has to wait for one."""
    harness = harness or Harness()
    wall = [now]

    def run(target: RollupStore, at: datetime = now, should_stop: Callable[[], bool] = lambda: False) -> RollupReport:
        return run_rollup(
            target,
            zone_of,
            now=at,
            settle=settle,
            initial_lookback=initial_lookback,
            should_stop=should_stop,
            lease_for=LEASE,
            wall_clock=lambda: wall[0],
            max_events_per_part=max_events_per_part,
            catalog=catalog,
        )

    def reading(_n: int, _what: Mutation) -> None:
        harness.read()

    reports: list[RollupReport] = []

    def at_the_fault(n: int, what: Mutation) -> None:
        harness.read()
        if n != fault.at:
            return
        if fault.kind in ("crash", "crash_older"):
            raise Crash(f"died before write {n} ({what})")
        if fault.kind == "race":
            reports.append(run(FaultyStore(store, reading)))
        elif fault.kind == "zombie":
            wall[0] += LEASE + timedelta(milliseconds=1)
            reports.append(run(FaultyStore(store, reading)))
        elif fault.kind == "erase":
            harness.erase()

    if fault.kind in ("none", "race", "zombie", "erase"):
        reports.insert(0, run(FaultyStore(store, at_the_fault)))
    elif fault.kind == "twice":
        reports += [run(FaultyStore(store, reading)) for _ in range(2)]
        reports.append(run(FaultyStore(store, reading), now - timedelta(hours=1)))
    elif fault.kind in ("crash", "crash_older", "lost_response"):
        lost = fault.at if fault.kind == "lost_response" else None
        with contextlib.suppress(Crash):
            reports.append(run(FaultyStore(store, at_the_fault, lose_response_at=lost)))
        wall[0] += LEASE + timedelta(milliseconds=1)
        rerun_at = now - timedelta(minutes=1) if fault.kind == "crash_older" else now
        reports.append(run(FaultyStore(store, reading), rerun_at))
    else:
        reports.append(run(FaultyStore(store, reading), should_stop=StopAfter(fault.at)))
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


@dataclass
class Reader:
    """A statistics reader polling one tenant while runs go on: each answer must equal the brute
    force over the stored events at that answer's own ``as_of``, and ``as_of`` never goes back."""

    store: StatsStore
    events: Callable[[], list[StoredEvent]]
    tenant_id: str
    zone: ZoneInfo
    now: Callable[[], datetime]
    user: str
    last_as_of: datetime | None = None
    answers: int = 0

    def __call__(self) -> None:
        now = self.now()
        clock = TenantClock(tenant_id=self.tenant_id, zone=self.zone, now=now)
        daily = stats.daily(self.store, clock, 4)
        self._check_as_of(daily.as_of)
        reference = Reference(self.events(), self.tenant_id, self.zone, daily.as_of)
        assert [(i.date, i.count, i.users) for i in daily.items] == reference.daily([i.date for i in daily.items])
        top = stats.top_users(self.store, clock, 30, 3)
        reference = self._reference(top.as_of)
        assert [(u.user_id, u.count) for u in top.items] == reference.top_users(top.from_, top.to, 3), "top"
        start = now - timedelta(days=3)
        activity = stats.user_activity(self.store, clock, self.user, period="1h", start=start, end=now)
        reference = self._reference(activity.as_of)
        got = [(w.count, w.by_action) for w in activity.items]
        assert got == reference.activity(self.user, [(w.start, w.end) for w in activity.items]), "activity"
        days = stats.date_range(clock, start, now)
        per_action = stats.action_daily(self.store, clock, days, "login")
        reference = self._reference(per_action.as_of)
        got_days = [(d.date, d.count, d.users, d.avg_per_user) for d in per_action.items]
        assert got_days == reference.action_daily(days, "login"), "action daily"

    def _reference(self, as_of: datetime) -> Reference:
        self._check_as_of(as_of)
        return Reference(self.events(), self.tenant_id, self.zone, as_of)

    def _check_as_of(self, as_of: datetime) -> None:
        assert self.last_as_of is None or as_of >= self.last_as_of, "as_of went backwards"
        self.last_as_of = as_of
        self.answers += 1
