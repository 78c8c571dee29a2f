"""Section 3: what one rollup run asks of DynamoDB, per event, with and without older events.

In-process on moto (``mock_aws``) with the template's tables. The tenants and every event are written
straight into moto (the items ``tracker.adapters.events_table.event_to_item`` makes, as ingest stores them); older
events are rolled up by a first run at ``t0`` (the product's rollup, not counted). Then the events
received since (``t0 - settle`` to ``t1 - settle``) are counted by one ``tracker.rollup.run_rollup`` at
``t1``, on the product's own client (``tracker.adapters.dynamodb.dynamodb_client()``), whose requests and items
read are counted with botocore hooks.

- A: 100,000 older events (received over the 3 previous days, each a few seconds to 2 minutes after it
  occurred), already rolled up; then 10,000 new events with ``occurred_at`` anywhere in the last 3 days.
- B: the same 10,000 new events, no older event (the previous run at ``t0`` found nothing).
- C: 10,000 new events sent as they happen (``occurred_at`` at most 5 s before received): the usual case
  for a rollup every minute; it shows how the write cost depends on how many aggregates events touch.
- D: C's events, each with 2 numeric properties (``amount``, a decimal, and ``quantity``) in its metadata,
  in a catalog that gives every action points and declares both properties ``number``: what points
  (user-hours, user-days, their top-users twins, the lifetime items) and property statistics
  (action-days) add to C's writes.

Every run reads the tenants' catalogs as the rollup function does (one Query per tenant and run).

Two tenants: Europe/Kyiv with 200 users (80 % of the events) and UTC with 50 users; 20 actions.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bench.common import function, log
from bench.data import TenantSpec, create_tenants, spread, write_events, write_events_with_client, zone_reader
from bench.dynamo import Recorder, item_size, mocked_aws

if TYPE_CHECKING:
    from bench.dynamo import Moto
    from local_stack.template import Template
    from tracker.records import EventRecord

TENANTS = {
    "kyiv": TenantSpec("kyiv", "Bench Kyiv shop", "Europe/Kyiv", users=200, share=0.8),
    "second": TenantSpec("second", "Bench second app", "UTC", users=50, share=0.2),
}
TENANT_IDS = {key: f"ten_bench{number:02d}{key}" for number, key in enumerate(TENANTS)}
HISTORY = timedelta(days=3)
WINDOW = timedelta(minutes=10)
SEED = 20251010


@dataclass(frozen=True)
class Clock:
    t0: datetime
    t1: datetime
    settle: timedelta


def _clock(settle: timedelta) -> Clock:
    t1 = datetime.now(UTC).replace(second=0, microsecond=0)
    return Clock(t0=t1 - WINDOW, t1=t1, settle=settle)


def _tables(moto: Moto) -> tuple[str, str, str]:
    return moto.tables["EventsTable"], moto.tables["TenantsTable"], moto.tables["AggregatesTable"]


def _user_days(events: Sequence[EventRecord]) -> int:
    zones = {TENANT_IDS[key]: ZoneInfo(tenant.timezone) for key, tenant in TENANTS.items()}
    return len({(e.tenant_id, e.user_id, e.occurred_at.astimezone(zones[e.tenant_id]).date()) for e in events})


def _aggregates_touched(events: Sequence[EventRecord]) -> int:
    """How many distinct aggregate items the events add to (what a rollup must write at least): five
    per event's buckets (the lifetime item included), and the top-users twin of each user-day."""
    from tracker.aggregates import ReceivedEvent, buckets
    from tracker.timefmt import format_utc

    zones = {TENANT_IDS[key]: ZoneInfo(tenant.timezone) for key, tenant in TENANTS.items()}
    keys = set()
    for event in events:
        received = ReceivedEvent(
            received_key=f"{format_utc(event.received_at)}#{event.tenant_id}#{event.event_id}",
            tenant_id=event.tenant_id,
            user_id=event.user_id,
            action=event.action,
            occurred_at=event.occurred_at,
        )
        where = buckets(received, zones[event.tenant_id])
        keys |= {where.user_hour, where.user_day, where.tenant_day, where.action_day, where.lifetime}
        keys.add((where.user_day[0] + "#twin", where.user_day[1]))
    return len(keys)


PROPERTIES = ("amount", "quantity")


def _with_properties(rng: random.Random, events: Sequence[EventRecord]) -> list[EventRecord]:
    """The events with an ``amount`` (two decimals) and a ``quantity`` in their metadata."""
    return [
        event.model_copy(
            update={
                "metadata": {
                    **(event.metadata or {}),
                    "amount": round(rng.uniform(0.5, 500), 2),
                    "quantity": rng.randint(1, 5),
                }
            }
        )
        for event in events
    ]


def _create_catalogs(client: Any, table: str, since: datetime) -> None:
    """Every bench action in both tenants' catalogs: 1 to 20 points, both properties declared number."""
    from bench.data import ACTIONS
    from tracker.adapters.catalog_table import DynamoEventTypeStore
    from tracker.records import EventTypeRecord, PropertyRule

    store = DynamoEventTypeStore(client, table)
    rule = PropertyRule(type="number", declared_at=since)
    for tenant_id in TENANT_IDS.values():
        for points, action in enumerate(ACTIONS, start=1):
            properties = dict.fromkeys(PROPERTIES, rule)
            record = EventTypeRecord(
                tenant_id=tenant_id,
                name=action,
                description="",
                points=points,
                properties=properties,
                created_at=since,
                updated_at=since,
            )
            store.create_event_type(record)


def _expected_totals(events: Sequence[EventRecord]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for event in events:
        totals[event.tenant_id] = totals.get(event.tenant_id, 0) + 1
    return totals


def scenario(
    template: Template,
    clock: Clock,
    old: Sequence[EventRecord],
    new: Sequence[EventRecord],
    *,
    fast: bool = True,
    direct_setup: bool = True,
    catalog: bool = False,
) -> dict[str, Any]:
    """Sets up ``old`` (rolled up at ``t0``) and ``new``, then measures one rollup run at ``t1``; with
    ``catalog``, every action earns points and declares the two properties."""
    spec = function(template, "RollupFunction")
    with mocked_aws(template, spec.environment, fast=fast) as moto:
        from tracker.adapters.aggregates_table import rollup_aggregates, stats_aggregates
        from tracker.adapters.catalog_table import catalog_reader
        from tracker.adapters.tenants_table import DynamoTenantStore, tenant_store
        from tracker.aggregates import assemble, tenant_days_partition
        from tracker.rollup import run_rollup
        from tracker.settings import get_settings

        events_table, tenants_table, aggregates_table = _tables(moto)
        setup_client: Any = moto.direct if direct_setup else moto.client
        setup_started = time.perf_counter()
        setup_tenants = DynamoTenantStore(setup_client, tenants_table)
        created = create_tenants(setup_tenants, TENANTS.values(), clock.t0 - HISTORY - timedelta(days=1))
        assert created == TENANT_IDS, created
        if catalog:
            _create_catalogs(moto.client, moto.tables["CatalogTable"], clock.t0 - HISTORY - timedelta(days=1))
        if direct_setup:
            write_events(moto.direct, events_table, old)
        else:
            write_events_with_client(moto.client, events_table, list(old))
        previous = run_rollup(
            rollup_aggregates(),
            zone_reader(setup_tenants),
            now=clock.t0,
            settle=clock.settle,
            initial_lookback=HISTORY + timedelta(hours=1),
            catalog=catalog_reader(),
        )
        if not previous.finished or previous.events != len(old):
            raise RuntimeError(f"the set-up rollup counted {previous.events} of {len(old)} events: {previous}")
        if direct_setup:
            write_events(moto.direct, events_table, new)
        else:
            write_events_with_client(moto.client, events_table, list(new))
        setup_seconds = time.perf_counter() - setup_started

        settings = get_settings()
        with Recorder(moto.client) as recorder, _PollingReader(aggregates_table) as poller:
            started = time.perf_counter()
            report = run_rollup(
                rollup_aggregates(),
                zone_reader(tenant_store()),
                now=clock.t1,
                settle=clock.settle,
                initial_lookback=timedelta(hours=settings.rollup_initial_lookback_hours),
                catalog=catalog_reader(),
            )
            seconds = time.perf_counter() - started

        counts = recorder.counts
        reader = stats_aggregates()
        token = reader.load_progress().token
        totals = {
            tenant_id: sum(
                a.count for a in assemble(reader.read_partition(tenant_days_partition(tenant_id)), token) or []
            )
            for tenant_id in TENANT_IDS.values()
        }
        aggregates = list(moto.direct.scan_items(aggregates_table))
        sizes = [item_size(item) for item in aggregates]
        checks = {
            "all_new_events_counted": report.events == len(new) and report.finished and not report.conflict,
            "daily_totals_match_events": totals == _expected_totals([*old, *new]),
            "no_failed_write": not counts.errors and not report.failed_tenants,
            "aggregate_items_under_4kb": max(sizes) < 4096,
        }
        per_event = max(1, len(new))
        return {
            "old_events": len(old),
            "new_events": len(new),
            "distinct_user_days_of_new_events": _user_days(new),
            "distinct_aggregates_of_new_events": _aggregates_touched(new),
            "events_counted": report.events,
            "commits": report.commits,
            "aggregates_written": report.aggregates_written,
            "rollup_seconds": round(seconds, 2),
            "setup_seconds": round(setup_seconds, 1),
            "dynamodb": counts.as_dict(),
            "items_read_per_event": round(counts.total_items_read / per_event, 4),
            "keys_and_items_read_per_event": round((counts.items_read["Query"] + counts.keys_requested) / per_event, 4),
            "read_units_per_event": round(counts.read_units / per_event, 4),
            "aggregate_writes_per_event": round(report.aggregates_written / per_event, 4),
            "write_items_per_event": round(counts.write_items / per_event, 4),
            "write_units_per_event": round(counts.write_units / per_event, 4),
            "aggregate_items": len(aggregates),
            "aggregate_item_bytes": {"max": max(sizes), "mean": round(sum(sizes) / len(sizes), 1)},
            "reader_every_100ms": poller.figures(),
            "checks": checks,
            "_aggregates": aggregates,
        }


class _PollingReader:
    """A dashboard polling ``GET /v1/stats/daily`` every 100 ms while the run goes (on a client of its
    own, so the run's counts are not mixed with it): its answers, its 503s, and whether ``as_of`` or a
    count ever went back."""

    def __init__(self, aggregates_table: str) -> None:
        import boto3

        from tracker.adapters.aggregates_table import DynamoStatsAggregates

        self._store = DynamoStatsAggregates(boto3.client("dynamodb"), aggregates_table)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self.answers = self.unavailable = self.went_back = 0

    def __enter__(self) -> _PollingReader:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        from tracker import stats
        from tracker.errors import Unavailable
        from tracker.interfaces import TemporarilyUnavailable

        clock = stats.TenantClock(TENANT_IDS["kyiv"], ZoneInfo(TENANTS["kyiv"].timezone), datetime.now(UTC))
        last: tuple[datetime, int] | None = None
        while not self._stop.wait(0.1):
            try:
                daily = stats.daily(self._store, clock, 4)
            except (Unavailable, TemporarilyUnavailable):
                self.unavailable += 1
                continue
            seen = (daily.as_of, sum(item.count for item in daily.items))
            if last is not None and (seen[0] < last[0] or seen[1] < last[1]):
                self.went_back += 1
            last = seen
            self.answers += 1

    def figures(self) -> dict[str, int]:
        return {"answers": self.answers, "status_503": self.unavailable, "as_of_or_count_went_back": self.went_back}


def _events(count_old: int, count_new: int, clock: Clock) -> tuple[list[EventRecord], ...]:
    rng = random.Random(SEED)  # noqa: S311 - reproducible test data
    received_new = (clock.t0 - clock.settle, clock.t1 - clock.settle)
    new = spread(
        rng, TENANTS, TENANT_IDS, count_new, prefix="new", received=received_new, occurred_after=clock.t1 - HISTORY
    )
    old = spread(
        rng,
        TENANTS,
        TENANT_IDS,
        count_old,
        prefix="old",
        received=(clock.t0 - HISTORY, clock.t0 - clock.settle),
        occurred_after=None,
        lag=timedelta(minutes=2),
    )
    live = spread(rng, TENANTS, TENANT_IDS, count_new, prefix="live", received=received_new, occurred_after=None)
    return old, new, live


OLD_RECEIVED_INDEX = {
    "IndexName": "by_received",
    "KeySchema": [{"AttributeName": "received_part"}, {"AttributeName": "received_key"}],
    "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["tenant_id", "user_id", "action", "occurred_at"]},
}
"""The index the rollup read before metadata and violations were projected (for the comparison)."""


def _event_item_sizes(template: Template, event: EventRecord) -> dict[str, int]:
    """What one ingested event weighs in the Events table and in each GSI (its projection), and in the
    ``by_received`` index it replaced."""
    from tracker.adapters.events_table import event_to_item

    item = event_to_item(event)
    table = template.tables["EventsTable"].create_kwargs
    keys = [key["AttributeName"] for key in table["KeySchema"]]
    sizes = {"table": item_size(item)}
    for index in [*table.get("GlobalSecondaryIndexes", []), OLD_RECEIVED_INDEX]:
        projection = index["Projection"]
        names = set(item) if projection["ProjectionType"] == "ALL" else set(keys)
        names |= {key["AttributeName"] for key in index["KeySchema"]}
        names |= set(projection.get("NonKeyAttributes", []))
        sizes[index["IndexName"]] = item_size({name: value for name, value in item.items() if name in names})
    return sizes


def _ingest_write_units(sizes: dict[str, int]) -> dict[str, int]:
    """Write units of one ingest PutItem: 1 per KB in the table and in each index, now and with the old index."""

    def units(size: int) -> int:
        return -(-size // 1024)

    now = sum(units(size) for name, size in sizes.items() if name != OLD_RECEIVED_INDEX["IndexName"])
    before = now - units(sizes["by_received_v2"]) + units(sizes[OLD_RECEIVED_INDEX["IndexName"]])
    return {"now": now, "before_by_received_v2": before}


def _strip(result: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in result.items() if not key.startswith("_")}


def speedups_check(template: Template, settle: timedelta, old_events: int, new_events: int) -> dict[str, Any]:
    """A small scenario A twice: moto as it is with the set-up through botocore, then the bench's fast path.

    Same requests, same items read, same aggregates: the fast path changes CPU time only. (Both skip
    moto's whole-table backup per transaction item, which only a failed transaction would use.)
    """
    clock = _clock(settle)
    old, new, _ = _events(old_events, new_events, clock)
    plain = scenario(template, clock, old, new, fast=False, direct_setup=False)
    fast = scenario(template, clock, old, new, fast=True, direct_setup=True)

    def canonical(items: list[dict[str, Any]]) -> list[str]:
        # The progress record holds the lease's wall-clock time.
        kept = [{k: v for k, v in item.items() if k != "lease_until"} for item in items]
        return sorted(repr(sorted(item.items())) for item in kept)

    same_counts = plain["dynamodb"] == fast["dynamodb"]
    same_aggregates = canonical(plain["_aggregates"]) == canonical(fast["_aggregates"])
    return {
        "old_events": len(old),
        "new_events": len(new),
        "same_dynamodb_counts": same_counts,
        "same_aggregates": same_aggregates,
        "plain_rollup_seconds": plain["rollup_seconds"],
        "fast_rollup_seconds": fast["rollup_seconds"],
        "ok": same_counts and same_aggregates,
    }


def run(template: Template, *, old_events: int, new_events: int, check_events: tuple[int, int]) -> dict[str, Any]:
    spec = function(template, "RollupFunction")
    settle = timedelta(seconds=float(spec.environment.get("ROLLUP_SETTLE_SECONDS", "60")))
    log("rollup: checking that the moto fast path changes no answer")
    check = speedups_check(template, settle, *check_events)
    log(f"rollup: fast path check {'ok' if check['ok'] else 'FAILED'}")
    clock = _clock(settle)
    old, new, live = _events(old_events, new_events, clock)
    log(f"rollup: scenario A ({old_events:,} older events rolled up, then {new_events:,} new)")
    with_history = scenario(template, clock, old, new)
    log(f"rollup: A took {with_history['rollup_seconds']} s; scenario B ({new_events:,} new events only)")
    alone = scenario(template, clock, [], new)
    log(f"rollup: B took {alone['rollup_seconds']} s; scenario C ({new_events:,} events sent as they happen)")
    live_run = scenario(template, clock, [], live)
    log(f"rollup: C took {live_run['rollup_seconds']} s; scenario D (C's events with points and 2 properties)")
    scored = _with_properties(random.Random(SEED), live)  # noqa: S311 - reproducible test data
    scored_run = scenario(template, clock, [], scored, catalog=True)
    a_items, b_items = (x["dynamodb"]["total_items_read"] for x in (with_history, alone))
    a_keys, b_keys = (
        x["dynamodb"]["items_read"].get("Query", 0) + x["dynamodb"]["keys_requested"] for x in (with_history, alone)
    )
    event_sizes = _event_item_sizes(template, new[0])
    scored_sizes = _event_item_sizes(template, scored[0])
    return {
        "event_item_bytes": event_sizes,
        "event_with_properties_item_bytes": scored_sizes,
        "ingest_write_units": {
            "event": _ingest_write_units(event_sizes),
            "event_with_properties": _ingest_write_units(scored_sizes),
        },
        "settle_seconds": settle.total_seconds(),
        "t0": clock.t0.isoformat(),
        "t1": clock.t1.isoformat(),
        "tenants": {key: {"timezone": t.timezone, "users": t.users, "share": t.share} for key, t in TENANTS.items()},
        "actions": 20,
        "A_with_history": _strip(with_history),
        "B_without_history": _strip(alone),
        "C_live_events": _strip(live_run),
        "D_points_and_properties": _strip(scored_run),
        "D_vs_C": {
            "aggregate_writes_per_event": [
                scored_run["aggregate_writes_per_event"],
                live_run["aggregate_writes_per_event"],
            ],
            "write_units_per_event": [scored_run["write_units_per_event"], live_run["write_units_per_event"]],
            "largest_item_bytes": [
                scored_run["aggregate_item_bytes"]["max"],
                live_run["aggregate_item_bytes"]["max"],
            ],
        },
        "A_vs_B": {
            "items_read": [a_items, b_items],
            "items_read_equal": a_items == b_items,
            "keys_and_items_read": [a_keys, b_keys],
            "keys_and_items_read_equal": a_keys == b_keys,
            "requests_equal": with_history["dynamodb"]["requests"] == alone["dynamodb"]["requests"],
        },
        "fast_path_check": check,
    }
