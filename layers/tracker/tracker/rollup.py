"""The scheduled rollup: counts each event received since the last run exactly once, and makes the
counts visible at once.

How a run goes:

1. **Lease.** It reads the progress record; if another run holds the lease, it stops at once
   (``skipped``) without reading any event. Otherwise it takes the next token of the fence with a
   lease, in one conditional write: two runs started together cannot both get it. A holder whose
   lease ran out is presumed dead: its token is listed ``dirty``.
2. **Read.** Events received in ``[as_of, now - settle)`` in ``received_key`` order (merged shards
   of the ``by_received_v2`` index), at most ``MAX_EVENTS_PER_PART`` of them per part, a part never
   ending inside a group of events received in the same millisecond. Deltas are summed in memory.
   An event earns the points of its action in its tenant's catalog, and counts in the statistics of
   the properties declared ``number`` then (since it was received): the run reads each tenant's
   catalog once, at the tenant's first event, so a change applies to the events counted after it.
3. **Journal, then write.** The keys the part will write are journaled (conditional on the fence),
   then each aggregate is read once and written once: its value as of the committed snapshot and
   its new value tagged with the token (see ``tracker.aggregates``). An item is only written over a
   lower token, so a fenced-out run cannot overwrite a newer one. Keys journaled by ``dirty`` parts
   are rewritten too, so nothing a dead run left becomes visible.
4. **Commit.** One conditional write of the progress record (fence still this token) moves the
   token and ``as_of``: readers see the whole part at once, and never wait for it.

A tenant whose writes keep failing is set apart (``lagging``: its statistics stay at their last
snapshot and its keys are rewritten next time) while every other tenant moves on. A run near its
deadline stops between parts; the next scheduled run goes on. Only events received ``settle``
before "now" are counted, so writes still in flight (the ingest timeout is under it) are not
passed over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from tracker.aggregates import (
    UNSCORED,
    USERS,
    AggregateKey,
    Counters,
    Scoring,
    StoredAggregate,
    Tally,
    buckets,
    day_users_partition,
    day_users_value,
    merge,
    new_users,
    part_key,
    split,
    tenant_of,
)
from tracker.interfaces import CatalogReader, Lag, Progress, RollupConflict, RollupStore
from tracker.records import EventTypeRecord
from tracker.timefmt import truncate_to_millis, utc_now

# Bounds the memory and the time of one part (about 10 MB of events); a run writes each aggregate once per part.
MAX_EVENTS_PER_PART = 50_000
DEFAULT_LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class RollupReport:
    events: int
    commits: int
    started_from: datetime | None
    as_of: datetime | None
    finished: bool
    conflict: bool = False
    skipped: bool = False
    aggregates_written: int = 0
    failed_tenants: tuple[str, ...] = ()
    failures: dict[str, str] = field(default_factory=dict)
    """A failure message per failed tenant, for the log."""


def scoring_of(event_type: EventTypeRecord) -> Scoring:
    """What an event type's events earn: its points, its number properties since they were declared
    (one stored before ``declared_at`` existed counts from the type's creation)."""
    return Scoring(
        points=event_type.points,
        numbers={
            name: rule.declared_at or event_type.created_at
            for name, rule in event_type.properties.items()
            if rule.type == "number"
        },
    )


class _Catalogs:
    """Each tenant's catalog as scorings by action, read at the tenant's first event of the run."""

    def __init__(self, reader: CatalogReader | None) -> None:
        self._reader = reader
        self._tenants: dict[str, dict[str, Scoring]] = {}

    def scoring(self, tenant_id: str, action: str) -> Scoring:
        if self._reader is None:
            return UNSCORED
        actions = self._tenants.get(tenant_id)
        if actions is None:
            catalog = self._reader.tenant_catalog(tenant_id)
            actions = self._tenants[tenant_id] = {event_type.name: scoring_of(event_type) for event_type in catalog}
        return actions.get(action, UNSCORED)


@dataclass
class _Part:
    """The events of one part, summed, and where the part ends."""

    tally: Tally
    end: datetime
    cut: bool


def run_rollup(
    store: RollupStore,
    zone_of: Callable[[str], ZoneInfo],
    *,
    now: datetime,
    settle: timedelta,
    initial_lookback: timedelta,
    should_stop: Callable[[], bool] = lambda: False,
    lease_for: timedelta = DEFAULT_LEASE,
    wall_clock: Callable[[], datetime] = utc_now,
    max_events_per_part: int = MAX_EVENTS_PER_PART,
    catalog: CatalogReader | None = None,
) -> RollupReport:
    """Counts the events received since the last run, up to ``now - settle``; without a ``catalog``
    events earn no points and count in no property."""
    end = truncate_to_millis(now - settle)
    seen = store.load_progress()
    wall = wall_clock()
    if seen.lease_until is not None and seen.lease_until > wall:
        return RollupReport(0, 0, None, seen.as_of, finished=False, skipped=True)
    abandoned = (seen.fence,) if seen.lease_until is not None else ()
    progress = replace(seen, fence=seen.fence + 1, lease_until=wall + lease_for, dirty=seen.dirty + abandoned)
    if not store.replace_progress(progress, seen.fence):
        return RollupReport(0, 0, None, seen.as_of, finished=False, skipped=True)
    events = commits = written = 0
    failures: dict[str, str] = {}
    started_from = _start(progress, end, initial_lookback)
    catalogs = _Catalogs(catalog)
    try:
        while True:
            if progress.as_of is not None and end <= progress.as_of:
                _release(store, progress)
                return RollupReport(events, commits, started_from, progress.as_of, finished=True)
            part = _read_part(
                store,
                progress,
                zone_of,
                catalogs,
                end=end,
                lookback=initial_lookback,
                max_events=max_events_per_part,
            )
            items, failed = _write_part(store, progress, part.tally)
            more = part.cut and not should_stop()
            progress = _commit(store, progress, started=started_from, part_end=part.end, failed=failed, more=more)
            events, commits, written = events + part.tally.events, commits + 1, written + items
            failures.update(failed)
            if not more:
                return RollupReport(
                    events,
                    commits,
                    started_from,
                    progress.as_of,
                    finished=not part.cut,
                    aggregates_written=written,
                    failed_tenants=tuple(sorted(failures)),
                    failures=failures,
                )
    except RollupConflict:
        return RollupReport(events, commits, started_from, progress.as_of, finished=False, conflict=True)
    except Exception:
        _abandon(store, progress)
        raise


def _start(progress: Progress, end: datetime, initial_lookback: timedelta) -> datetime:
    """Where reading starts: the global ``as_of``, or further back for a lagging tenant."""
    default = progress.as_of or end - initial_lookback
    return min([default, *(lag.as_of or default for lag in progress.lagging.values())])


def _read_part(
    store: RollupStore,
    progress: Progress,
    zone_of: Callable[[str], ZoneInfo],
    catalogs: _Catalogs,
    *,
    end: datetime,
    lookback: timedelta,
    max_events: int,
) -> _Part:
    default = progress.as_of or end - lookback
    thresholds = {tenant: lag.as_of or default for tenant, lag in progress.lagging.items()}
    tally = Tally()
    previous: datetime | None = None
    for event in store.received_events(_start(progress, end, lookback), end):
        received_at = event.received_at
        if tally.events >= max_events and received_at != previous:
            return _Part(tally, received_at, cut=True)
        previous = received_at
        if received_at >= thresholds.get(event.tenant_id, default):
            scoring = catalogs.scoring(event.tenant_id, event.action)
            tally.add(event, buckets(event, zone_of(event.tenant_id)), scoring)
    return _Part(tally, end, cut=False)


def _write_part(store: RollupStore, progress: Progress, tally: Tally) -> tuple[int, dict[str, str]]:
    """Journals, reads and writes every aggregate of the part once; the items written and the
    tenants whose writes failed (with why)."""
    token = progress.fence
    deltas = dict(tally.deltas)
    bases = _load_values(store, progress, deltas)
    for user_day in tally.user_days():
        for key, amount in new_users(user_day, bases.get(user_day, {}), deltas[user_day]).items():
            deltas[key] = merge(deltas[key], {USERS: amount})
    items: dict[AggregateKey, StoredAggregate] = {}
    for key, delta in deltas.items():
        committed_token = progress.snapshot(tenant_of(key))[0]
        base = bases.get(key, {})
        for item in _items_of(key, base, merge(base, delta), token, committed_token):
            items[item.key] = item
    for item in _cleanup_items(store, progress, items.keys()):
        items[item.key] = item
    if not items:
        return 0, {}
    store.write_journal(token, sorted(items))
    failed = store.write_aggregates(list(items.values()))
    if any(isinstance(error, RollupConflict) for error in failed.values()):
        raise RollupConflict("An item was written by a higher token: this run was fenced out.")
    return len(items), {tenant_of(key): f"{type(error).__name__}: {error}" for key, error in failed.items()}


def _load_values(store: RollupStore, progress: Progress, keys: Iterable[AggregateKey]) -> dict[AggregateKey, Counters]:
    """The values of these keys in each tenant's committed snapshot, their parts put together."""
    first = store.load_aggregates(keys)
    rest = store.load_aggregates(part_key(key, n) for key, item in first.items() for n in range(1, item.parts))
    values: dict[AggregateKey, Counters] = {}
    for key, item in first.items():
        parts = [item, *(rest[part] for n in range(1, item.parts) if (part := part_key(key, n)) in rest)]
        values[key] = merge(*(_value(part, progress) for part in parts))
    return values


def _value(item: StoredAggregate, progress: Progress) -> Counters:
    value = item.value_at(progress.snapshot(tenant_of(item.key))[0])
    if value is None:  # only a reader older than a commit sees this; the lease holder is never older
        raise RollupConflict(f"{item.key} was written past the committed snapshot.")
    return value


def _items_of(key: AggregateKey, base: Counters, new: Counters, token: int, committed: int) -> list[StoredAggregate]:
    """The items (parts) that hold ``key`` as ``base`` now and ``new`` once ``token`` is committed,
    and for a user-day its top-users twin."""
    old_parts, new_parts = split(base), split(new)
    count = max(len(old_parts), len(new_parts))
    items = [
        StoredAggregate(
            part_key(key, n),
            old_parts[n] if n < len(old_parts) else {},
            new_parts[n] if n < len(new_parts) else {},
            token,
            committed,
            parts=count if n == 0 else 1,
        )
        for n in range(count)
    ]
    if key[1].startswith("D#"):
        tenant, _, user = key[0].split("#", 2)
        twin = (day_users_partition(tenant, date.fromisoformat(key[1][2:])), user)
        items.append(StoredAggregate(twin, day_users_value(base), day_users_value(new), token, committed))
    return items


def _cleanup_items(store: RollupStore, progress: Progress, planned: Iterable[AggregateKey]) -> list[StoredAggregate]:
    """The keys journaled by abandoned parts and not written by this one, rewritten with their
    committed value: what a dead run left can never become visible."""
    wanted: dict[int, set[str] | None] = dict.fromkeys(progress.dirty)  # None: every tenant's keys
    for tenant, lag in progress.lagging.items():
        for token in lag.dirty:
            if token not in wanted or wanted[token] is not None:
                wanted[token] = {*(wanted.get(token) or ()), tenant}
    keys: set[AggregateKey] = set()
    for token, tenants in wanted.items():
        keys.update(key for key in store.read_journal(token) if tenants is None or tenant_of(key) in tenants)
    keys -= set(planned)
    found = store.load_aggregates(keys)
    cleaned = []
    for key in sorted(keys):
        item = found.get(key)
        value = _value(item, progress) if item else {}
        parts = item.parts if item else 1
        committed = progress.snapshot(tenant_of(key))[0]
        cleaned.append(StoredAggregate(key, value, value, progress.fence, committed, parts=parts))
    return cleaned


def _commit(
    store: RollupStore, progress: Progress, *, started: datetime, part_end: datetime, failed: dict[str, str], more: bool
) -> Progress:
    token = progress.fence
    as_of = max(part_end, progress.as_of) if progress.as_of else part_end
    lagging: dict[str, Lag] = {}
    for tenant in failed:
        before = progress.lagging.get(tenant)
        if before is None:
            # A tenant that fails in the very first run is counted from where that run started.
            lagging[tenant] = Lag(progress.token, progress.as_of or started, (*progress.dirty, token))
        else:
            lagging[tenant] = replace(before, dirty=(*before.dirty, *progress.dirty, token))
    caught_up = part_end >= as_of
    for tenant in progress.lagging.keys() - failed.keys():
        if not caught_up:  # a lagging tenant read up to here, still behind the others
            lagging[tenant] = Lag(token, part_end, ())
    committed = Progress(
        as_of=as_of,
        token=token,
        fence=token + 1 if more else token,
        lease_until=progress.lease_until if more else None,
        dirty=(),
        lagging=lagging,
    )
    if not store.replace_progress(committed, token):
        raise RollupConflict("The fence moved: another run or an erasure took over.")
    kept = {token for lag in lagging.values() for token in lag.dirty}
    done = {token, *progress.dirty, *(t for lag in progress.lagging.values() for t in lag.dirty)}
    store.delete_journals(sorted(done - kept))
    return committed


def _abandon(store: RollupStore, progress: Progress) -> None:
    """After a failure: gives the lease back, this part listed dirty, so the next run need not wait
    for the lease to run out (best effort: if this fails too, the lease runs out)."""
    with suppress(Exception):
        abandoned = replace(progress, lease_until=None, dirty=(*progress.dirty, progress.fence))
        store.replace_progress(abandoned, progress.fence)


def _release(store: RollupStore, progress: Progress) -> None:
    """Gives the lease back when there was nothing to count."""
    if not store.replace_progress(replace(progress, lease_until=None), progress.fence):
        raise RollupConflict("The fence moved: another run or an erasure took over.")
