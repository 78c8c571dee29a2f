"""The scheduled rollup: counts each event received since the last run exactly once.

Why it is exact, whatever happens:

* Events are read in one total order, ``received_key`` (received time, tenant, event id), by
  merging the shards of the ``by_received`` index: never a Scan, only what arrived since.
* Their deltas are committed in chunks, each one DynamoDB transaction that also moves the
  progress record forward *on condition that its version is the one this run read*. A crash
  between chunks loses nothing and repeats nothing: the next run starts after the last commit.
  Two runs at once: the second commit of the slower one fails its condition and it stops.
* ``as_of`` only moves to an instant before which every event is counted and after which none
  is. A chunk that ends inside a group of events with the same received time marks the
  progress ``partial`` until the group is finished (statistics wait for that).
* Only events received ``settle`` before "now" are counted, so writes still in flight (the
  ingest function's timeout is well under it) are not passed over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import TypeVar
from zoneinfo import ZoneInfo

from tracker.aggregates import AggregateKey, Chunk, ReceivedEvent, UserDayActions, buckets
from tracker.interfaces import Progress, RollupConflict, RollupStore
from tracker.timefmt import truncate_to_millis

# A DynamoDB transaction holds at most 100 items; one is the progress record.
MAX_ITEMS_PER_COMMIT = 99
# Bounds one commit when many events hit the same few items, so a run always makes progress.
MAX_EVENTS_PER_COMMIT = 5_000
READ_AHEAD = 100

T = TypeVar("T")


@dataclass(frozen=True)
class RollupReport:
    events: int
    commits: int
    started_from: datetime
    as_of: datetime | None
    finished: bool
    conflict: bool


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while block := list(islice(iterator, size)):
        yield block


class _Run:
    def __init__(self, store: RollupStore, start: datetime, end: datetime, progress: Progress | None) -> None:
        self.store = store
        self.start = start
        self.end = end
        self.progress = progress
        self.user_days: dict[AggregateKey, UserDayActions] = {}
        self.events = 0
        self.commits = 0

    def commit(self, chunk: Chunk, next_event: ReceivedEvent | None) -> None:
        last = chunk.last_event
        previous = self.progress
        if next_event is None:
            progress_as_of, position, partial = self.end, None, False
        elif last is not None and next_event.received_at == last.received_at:
            # The chunk ends inside a group of events received at the same instant: as_of waits.
            progress_as_of = previous.as_of if previous and previous.as_of else self.start
            position, partial = last.received_key, True
        else:
            progress_as_of = next_event.received_at
            position, partial = (last.received_key if last else None), False
        version = previous.version + 1 if previous else 1
        new = Progress(as_of=progress_as_of, position=position, partial=partial, version=version)
        self.store.commit(chunk, new, previous.version if previous else None)
        self.progress = new
        self.user_days.update(chunk.user_days)
        self.events += chunk.events
        self.commits += 1


def run_rollup(
    store: RollupStore,
    zone_of: Callable[[str], ZoneInfo],
    *,
    now: datetime,
    settle: timedelta,
    initial_lookback: timedelta,
    should_stop: Callable[[], bool] = lambda: False,
) -> RollupReport:
    """Counts the events received since the last run, up to ``now - settle``."""
    progress = store.load_progress()
    end = truncate_to_millis(now - settle)
    start = progress.as_of if progress and progress.as_of else end - initial_lookback
    after = progress.position if progress else None
    run = _Run(store, start, end, progress)
    if end <= start:
        return _report(run, finished=True)
    events = (event for event in store.received_events(start, end) if after is None or event.received_key > after)
    chunk = Chunk()
    try:
        for block in _batched(events, READ_AHEAD):
            planned = [(event, buckets(event, zone_of(event.tenant_id))) for event in block]
            missing = {event_buckets.user_day for _, event_buckets in planned} - run.user_days.keys()
            run.user_days.update(store.load_user_days(missing))
            for event, event_buckets in planned:
                full = chunk.keys_with(event_buckets) > MAX_ITEMS_PER_COMMIT or chunk.events >= MAX_EVENTS_PER_COMMIT
                if chunk.events and full:
                    run.commit(chunk, next_event=event)
                    chunk = Chunk()
                    if should_stop():
                        return _report(run, finished=False)
                chunk.add(event, event_buckets, run.user_days)
        run.commit(chunk, next_event=None)
    except RollupConflict:
        return _report(run, finished=False, conflict=True)
    return _report(run, finished=True)


def _report(run: _Run, finished: bool, conflict: bool = False) -> RollupReport:
    as_of = run.progress.as_of if run.progress else None
    return RollupReport(run.events, run.commits, run.start, as_of, finished, conflict)
