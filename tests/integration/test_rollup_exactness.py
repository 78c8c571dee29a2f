"""Exact scheduled rollups on DynamoDB (moto): events stored by the real ingest code, counted by the
real rollup into the template's tables, read back by the real statistics, and compared with a
brute-force count over the stored events, whatever happens to the runs."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from local_stack.aws import create_tables
from local_stack.template import REPO_ROOT, Template
from tests.rollup_fakes import (
    LEASE,
    CatalogEntry,
    Fault,
    FaultKind,
    Harness,
    Reader,
    Reference,
    StopAfter,
    StoredEvent,
    check_catalog_statistics,
    check_daily,
    check_statistics,
    erased,
    faults,
    rollup_under_fault,
)
from tests.support import emf_documents, function_environment, lambda_context, load_function_module
from tracker import catalog as event_types
from tracker import settings as tracker_settings
from tracker import stats
from tracker.adapters import dynamodb
from tracker.adapters.aggregates_table import aggregate_eraser, rollup_aggregates, stats_aggregates
from tracker.adapters.catalog_table import catalog_reader, event_type_store
from tracker.adapters.events_table import event_store
from tracker.adapters.tenants_table import tenant_store
from tracker.aggregates import PropertyStats
from tracker.catalog_models import EventTypeIn, EventTypePatch, PropertySpec
from tracker.erasure import erase_user_aggregates
from tracker.events import ingest_batch, prepare_event
from tracker.local_calendar import local_hour_start
from tracker.records import ApiKeyRecord, EventTypeRecord, PropertyType, TenantRecord
from tracker.rollup import RollupReport, run_rollup
from tracker.timefmt import format_utc, parse_utc
from tracker.tracking_plan import CatalogCache, plan_screen

TENANT = "ten_sample0000000001"
OTHER = "ten_other00000000002"
KYIV = ZoneInfo("Europe/Kyiv")
NO_SETTLE = timedelta(0)
EVENTS_DIR = REPO_ROOT / "events" / "rollup"


# ---------------------------------------------------------------- the emulated stack


@pytest.fixture(scope="module", autouse=True)
def _environment(template: Template, aws_environment: None) -> Iterator[None]:
    """The rollup function's environment from template.yaml; its cached client made afresh in it and forgotten after."""
    dynamodb.dynamodb_client.cache_clear()
    with function_environment(template.functions["RollupFunction"]):
        yield
    dynamodb.dynamodb_client.cache_clear()


class Stack:
    """The template's tables on moto (inside ``mock_aws``), and what the tests do with them through
    the real code. It also remembers each event ingest accepted, as ingest made it (``prepare_event``),
    so that between runs the reference needs no Scan; ``assert_model_is_what_is_stored`` checks it."""

    def __init__(self, template: Template) -> None:
        self.client = dynamodb.dynamodb_client()  # one client for the whole module, as in a warm Lambda
        create_tables(self.client, template)
        self.events_table = tracker_settings.get_settings().events_table
        self.sent = 0
        self.stored: list[StoredEvent] = []
        self.stored_ids: set[tuple[str, str]] = set()
        self.owners: dict[tuple[str, str], str] = {}
        self.flagging = False
        """Ingest in the tracking plan's ``flag`` mode: events are stored with their violations."""
        self.catalog: dict[tuple[str, str], EventTypeRecord] = {}
        """Every tenant's catalog as stored, by tenant and name."""

    def ingest(self, tenant: str, raws: list[dict[str, Any]], received_at: datetime) -> dict[str, int]:
        screen = plan_screen("flag", event_type_store(), CatalogCache(0), tenant) if self.flagging else None
        result = ingest_batch(event_store(), raws, tenant, received_at, concurrency=1, screen=screen)
        for outcome in result.results:
            # An id is stored once, whatever the answers said (see the same-millisecond retry test).
            if outcome.status == "accepted" and (tenant, str(outcome.event_id)) not in self.stored_ids:
                self.stored_ids.add((tenant, str(outcome.event_id)))
                record = prepare_event(raws[outcome.index], tenant, received_at)
                self.owners[(tenant, str(outcome.event_id))] = record.user_id
                metadata = raws[outcome.index].get("metadata") or {}
                self.stored.append(
                    StoredEvent(
                        tenant,
                        record.user_id,
                        record.action,
                        record.occurred_at,
                        record.received_at,
                        metadata=tuple(sorted(metadata.items())),
                        violations=self._violations(tenant, record.action, metadata) if self.flagging else frozenset(),
                    )
                )
        return {"accepted": result.accepted, "duplicates": result.duplicates, "rejected": result.rejected}

    def _violations(self, tenant: str, action: str, metadata: dict[str, Any]) -> frozenset[str]:
        """What the plan flags, by brute force: an action not in the catalog; a declared property
        missing while required, or present with another JSON type."""
        event_type = self.catalog.get((tenant, action))
        if event_type is None:
            return frozenset({"unplanned_action"})
        kinds = set()
        for name, rule in event_type.properties.items():
            value = metadata.get(name)
            if value is None:
                kinds |= {"required_missing"} if rule.required else set()
            elif _json_type(value) != rule.type:
                kinds.add("type_mismatch")
        return frozenset(kinds)

    def edit_catalog(
        self, tenant: str, name: str, points: int | None, properties: dict[str, PropertyType], now: datetime
    ) -> None:
        """Creates, changes (points and properties) or deletes (``points`` None) an event type, as
        the catalog routes do."""
        store = event_type_store()
        exists = (tenant, name) in self.catalog
        specs = {key: PropertySpec(type=kind) for key, kind in properties.items()}
        if points is None:
            if exists:
                event_types.delete_event_type(store, tenant, name)
                del self.catalog[(tenant, name)]
            return
        if exists:
            patch = EventTypePatch(points=points, properties=specs)
            event_types.update_event_type(store, tenant, name, patch, now=now)
        else:
            event_types.create_event_type(store, tenant, EventTypeIn(name=name, points=points, properties=specs), now)
        record = store.get_event_type(tenant, name)
        assert record is not None
        self.catalog[(tenant, name)] = record

    def mark_counted(self) -> None:
        """Gives each event a run counted since the last call its type as the catalog has it now
        (the catalog changes only between runs)."""
        progress = stats_aggregates().load_progress()
        marked = []
        for event in self.stored:
            as_of = progress.snapshot(event.tenant_id)[1]
            counted_now = event.counted_with is None and as_of is not None and event.received_at < as_of
            entry = self._entry(event.tenant_id, event.action) if counted_now else None
            marked.append(replace(event, counted_with=entry) if entry is not None else event)
        self.stored = marked

    def _entry(self, tenant: str, action: str) -> CatalogEntry:
        event_type = self.catalog.get((tenant, action))
        if event_type is None:
            return CatalogEntry()
        numbers = [(key, rule.declared_at) for key, rule in event_type.properties.items() if rule.type == "number"]
        assert all(declared_at is not None for _, declared_at in numbers)
        return CatalogEntry(event_type.points, tuple((key, at) for key, at in sorted(numbers) if at is not None))

    def raw(self, user: str, action: str, occurred_at: datetime, **extra: Any) -> dict[str, Any]:
        self.sent += 1
        return {
            "event_id": f"evt-{self.sent:05d}",
            "user_id": user,
            "action": action,
            "occurred_at": format_utc(occurred_at),
            **extra,
        }

    def stored_events(self) -> list[StoredEvent]:
        """Every event in the Events table (a test-only Scan): what the statistics must count."""
        found = []
        for page in self.client.get_paginator("scan").paginate(TableName=self.events_table):
            for item in page["Items"]:
                found.append(
                    StoredEvent(
                        tenant_id=item["tenant_id"]["S"],
                        user_id=item["user_id"]["S"],
                        action=item["action"]["S"],
                        occurred_at=parse_utc(item["occurred_at"]["S"]),
                        received_at=parse_utc(item["received_at"]["S"]),
                        metadata=tuple(sorted(json.loads(item["metadata"]["S"]).items())) if "metadata" in item else (),
                        violations=frozenset(v["M"]["kind"]["S"] for v in item.get("violations", {}).get("L", [])),
                    )
                )
        return found

    def assert_model_is_what_is_stored(self) -> None:
        key = lambda e: (e.tenant_id, e.user_id, e.action, e.occurred_at, e.received_at)  # noqa: E731
        model = [replace(event, counted_with=None) for event in self.stored]
        assert sorted(model, key=key) == sorted(self.stored_events(), key=key)

    def reference(self, tenant: str, zone: ZoneInfo) -> Reference:
        as_of = stats_aggregates().load_progress().snapshot(tenant)[1]
        assert as_of is not None
        return Reference(self.stored, tenant, zone, as_of)

    def erase(self, tenant: str, user: str) -> None:
        """What the erasure worker does: the user's events, then their aggregates (fenced)."""
        events = event_store()
        for keys in events.user_event_pages(tenant, user):
            events.delete_events(keys)
        erase_user_aggregates(aggregate_eraser(), tenant, user)
        self.stored_ids = {
            (t, event_id) for (t, event_id), owner in self.owners.items() if (t, owner) != (tenant, user)
        }
        as_of = stats_aggregates().load_progress().snapshot(tenant)[1]
        self.stored = erased(self.stored, tenant, user, as_of, len(self.stored))


@pytest.fixture
def stack(template: Template) -> Iterator[Stack]:
    with mock_aws():
        stack = Stack(template)
        yield stack
        stack.assert_model_is_what_is_stored()


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else "other"


def rollup(now: datetime, zones: dict[str, ZoneInfo] | None = None, **kwargs: Any) -> RollupReport:
    options = {
        "settle": NO_SETTLE,
        "initial_lookback": timedelta(hours=3),
        "wall_clock": lambda: now,
        "catalog": catalog_reader(),
        **kwargs,
    }
    store = options.pop("store", None) or rollup_aggregates()
    zone_of = (zones or {}).get
    return run_rollup(store, lambda tenant: zone_of(tenant) or KYIV, now=now, **options)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---------------------------------------------------------------- deterministic scenarios


def test_a_wide_group_received_at_one_instant_is_one_part_and_counted_once(stack: Stack) -> None:
    # Given one batch of 80 distinct users, all received at the same instant, then one more event
    at = utc("2025-10-26T00:40:00Z")
    raws = [stack.raw(f"user-{i:03d}", ("login", "view")[i % 2], at - timedelta(minutes=i % 50)) for i in range(80)]
    assert stack.ingest(TENANT, raws, at)["accepted"] == 80
    stack.ingest(TENANT, [stack.raw("user-000", "edit", at)], at + timedelta(milliseconds=1))
    now = at + timedelta(seconds=5)
    # When the rollup runs on DynamoDB with parts of at most 10 events
    report = rollup(now, max_events_per_part=10)
    # Then the group was one part (as_of never inside it), each aggregate written once per part
    assert (report.events, report.commits, report.finished) == (81, 2, True)
    # And every statistic is exact
    check_statistics(
        stats_aggregates(),
        stack.reference(TENANT, KYIV),
        now,
        users=["user-000", "user-001", "user-079"],
        actions=["login", "view", "edit"],
    )


@pytest.mark.parametrize(("at", "lose_response"), [(1, True), (3, False), (60, False), (150, True), (173, True)])
def test_a_run_killed_half_way_is_invisible_and_the_next_run_counts_exactly(
    stack: Stack, at: int, lose_response: bool
) -> None:
    # Given events before, in and after a wide group, and a reader polling before every write
    start = utc("2025-03-30T00:30:00Z")
    stack.ingest(TENANT, [stack.raw("early", "login", start - timedelta(minutes=40))], start - timedelta(minutes=10))
    stack.ingest(TENANT, [stack.raw(f"w{i:03d}", "view", start) for i in range(70)], start)
    stack.ingest(TENANT, [stack.raw("late", "edit", start)], start + timedelta(minutes=10))
    now = start + timedelta(minutes=11)
    reader = Reader(stats_aggregates(), lambda: stack.stored, TENANT, KYIV, lambda: now, "early")
    # When a run dies at its `at`-th write (the lease, the journal, an aggregate, the commit), and runs again
    fault = Fault("lost_response" if lose_response else "crash", at)
    reports = rollup_under_fault(
        rollup_aggregates(),
        fault,
        zone_of=lambda _t: KYIV,
        now=now,
        initial_lookback=timedelta(hours=3),
        harness=Harness(read=reader),
        max_events_per_part=50_000,
    )
    # Then no reader waited or saw a mix, and the second run finishes with every event counted once
    assert reader.answers > 1
    assert reports[-1].finished
    check_statistics(
        stats_aggregates(),
        stack.reference(TENANT, KYIV),
        now,
        users=["early", "w000", "w069", "late"],
        actions=["login", "view", "edit"],
    )


@pytest.mark.parametrize(("kind", "at"), [("race", 1), ("race", 4), ("zombie", 5), ("zombie", 30)])
def test_two_rollups_at_once_never_count_twice(stack: Stack, kind: FaultKind, at: int) -> None:
    # Given enough events for several parts
    start = utc("2025-11-02T05:30:00Z")
    for minute in range(2):
        raws = [stack.raw(f"w{i:03d}", "login", start - timedelta(minutes=i)) for i in range(35)]
        stack.ingest(TENANT, raws, start + timedelta(minutes=minute))
    now = start + timedelta(minutes=5)
    zones = {TENANT: ZoneInfo("America/New_York")}
    # When a second run starts during the first (race), or after the first one's lease ran out (zombie)
    reports = rollup_under_fault(
        rollup_aggregates(),
        Fault(kind, at),
        zone_of=zones.__getitem__,
        now=now,
        initial_lookback=timedelta(hours=1),
        max_events_per_part=20,
    )
    # Then a racing run was skipped, a zombie did not commit over the run that took over
    if kind == "race":
        assert sum(report.skipped for report in reports) == 1
    # And once the schedule runs again, each event is counted once
    rollup(now + LEASE, zones)
    check_statistics(
        stats_aggregates(), stack.reference(TENANT, zones[TENANT]), now, users=["w000", "w034"], actions=["login"]
    )


def test_an_erasure_during_a_run_leaves_no_trace_of_the_user_in_per_user_statistics(stack: Stack) -> None:
    # Given a counted user, more events of them and of others, and a run that the erasure interrupts
    start = utc("2025-06-15T10:00:00Z")
    stack.ingest(TENANT, [stack.raw("gone", "login", start), stack.raw("stays", "login", start)], start)
    rollup(start + timedelta(seconds=1))
    later = start + timedelta(minutes=5)
    stack.ingest(TENANT, [stack.raw("gone", "edit", later), stack.raw("stays", "view", later)], later)
    now = later + timedelta(seconds=1)
    # When the user is erased at the run's 6th write (its values are half written), and the schedule runs again
    rollup_under_fault(
        rollup_aggregates(),
        Fault("erase", 6),
        zone_of=lambda _t: KYIV,
        now=now,
        initial_lookback=timedelta(hours=1),
        harness=Harness(erase=lambda: stack.erase(TENANT, "gone")),
    )
    rollup(now + LEASE)
    # Then the user is gone from per-user statistics and top users; the tenant keeps the anonymous count
    clock = stats.TenantClock(TENANT, KYIV, now)
    store = stats_aggregates()
    assert "gone" not in [u.user_id for u in stats.top_users(store, clock, 24, 10).items]
    activity = stats.user_activity(store, clock, "gone", period="1d", start=start, end=now)
    assert sum(w.count for w in activity.items) == 0
    check_statistics(store, stack.reference(TENANT, KYIV), now, users=["gone", "stays"], actions=["login", "view"])
    stack.stored = [e for e in stack.stored if not e.anonymous]  # what the Events table still holds


def test_a_points_change_applies_to_the_events_counted_after_it_never_to_those_before(stack: Stack) -> None:
    # Given purchases worth 10 points, one counted, one received but not counted yet
    at = utc("2025-06-15T10:00:00Z")
    stack.edit_catalog(TENANT, "purchase", 10, {}, at - timedelta(hours=1))
    stack.ingest(TENANT, [stack.raw("u1", "purchase", at)], at)
    rollup(at + timedelta(seconds=1))
    stack.mark_counted()
    stack.ingest(TENANT, [stack.raw("u1", "purchase", at)], at + timedelta(seconds=2))
    # When the points change to 25 before the next run counts the second purchase
    stack.edit_catalog(TENANT, "purchase", 25, {}, at + timedelta(seconds=3))
    rollup(at + timedelta(seconds=4))
    stack.mark_counted()
    # Then the first purchase keeps its 10 points and the second earns 25, everywhere points are kept
    store = stats_aggregates()
    _, items = stats.snapshot(store, TENANT, lambda: store.read_partition(f"{TENANT}#U#u1"))
    points = {item.sort_key: item.points for item in items}
    assert points == {"D#2025-06-15": 35, "H#2025-06-15T10:00:00.000Z": 35, "P": 35}
    check_catalog_statistics(store, stack.reference(TENANT, KYIV), ["u1"])


def test_a_property_declared_later_counts_only_the_events_received_after_its_declaration(stack: Stack) -> None:
    # Given purchases carrying an amount, before and at the instant amount is declared a number
    at = utc("2025-06-15T10:00:00Z")
    stack.edit_catalog(TENANT, "purchase", 0, {}, at - timedelta(hours=1))
    stack.ingest(TENANT, [stack.raw("u1", "purchase", at, metadata={"amount": 0.1})], at - timedelta(milliseconds=1))
    stack.edit_catalog(TENANT, "purchase", 0, {"amount": "number"}, at)
    stack.ingest(TENANT, [stack.raw("u2", "purchase", at, metadata={"amount": 0.2})], at)
    stack.ingest(TENANT, [stack.raw("u3", "purchase", at, metadata={"amount": -3})], at + timedelta(seconds=1))
    # When the rollup counts all three after the declaration
    rollup(at + timedelta(seconds=2))
    stack.mark_counted()
    # Then amount counts the two received from its declaration on, exactly
    store = stats_aggregates()
    _, items = stats.snapshot(store, TENANT, lambda: store.read_partition(f"{TENANT}#A"))
    (purchase,) = items
    assert purchase.property_stats("amount") == PropertyStats(count=2, sum=Decimal("-2.8"), min=-3, max=Decimal("0.2"))
    check_catalog_statistics(store, stack.reference(TENANT, KYIV), ["u1", "u2", "u3"])


def test_erasing_a_user_removes_their_points_and_keeps_tenant_wide_property_statistics(stack: Stack) -> None:
    # Given two users' purchases with points and an amount, counted
    at = utc("2025-06-15T10:00:00Z")
    stack.edit_catalog(TENANT, "purchase", 10, {"amount": "number"}, at - timedelta(hours=1))
    raws = [
        stack.raw("gone", "purchase", at, metadata={"amount": 2.5}),
        stack.raw("gone", "purchase", at - timedelta(days=1), metadata={"amount": 4}),
        stack.raw("stays", "purchase", at, metadata={"amount": 1}),
    ]
    stack.ingest(TENANT, raws, at)
    rollup(at + timedelta(seconds=1))
    stack.mark_counted()
    store = stats_aggregates()
    properties_before = stats.snapshot(store, TENANT, lambda: store.read_partition(f"{TENANT}#A"))[1]
    # When one of them is erased
    stack.erase(TENANT, "gone")
    # Then their points are gone: no lifetime item, no user-day, no top-users twin
    _, theirs = stats.snapshot(store, TENANT, lambda: store.read_partition(f"{TENANT}#U#gone"))
    assert theirs == []
    _, twins = stats.snapshot(store, TENANT, lambda: store.read_partition(f"{TENANT}#DU#2025-06-15"))
    assert [(twin.sort_key, twin.points) for twin in twins] == [("stays", 10)]
    # And the tenant's property statistics keep the erased user's values, anonymous
    properties_after = stats.snapshot(store, TENANT, lambda: store.read_partition(f"{TENANT}#A"))[1]
    assert properties_after == properties_before
    assert [item.property_stats("amount") for item in properties_after] == [
        PropertyStats(count=1, sum=4, min=4, max=4),
        PropertyStats(count=2, sum=Decimal("3.5"), min=1, max=Decimal("2.5")),
    ]
    check_catalog_statistics(store, stack.reference(TENANT, KYIV), ["gone", "stays"])
    stack.stored = [e for e in stack.stored if not e.anonymous]  # what the Events table still holds


def test_a_retried_event_is_stored_once_and_counted_once(stack: Stack) -> None:
    # Given an event sent, counted, then sent again by the client (a retry), twice in one batch too
    at = utc("2025-06-15T10:00:00Z")
    event = stack.raw("u1", "login", at - timedelta(minutes=5), metadata={"device": "ios"})
    assert stack.ingest(TENANT, [event], at) == {"accepted": 1, "duplicates": 0, "rejected": 0}
    rollup(at + timedelta(seconds=1))
    retry = {**event, "sent_at": format_utc(at + timedelta(minutes=1))}
    later = at + timedelta(minutes=2)
    outcome = stack.ingest(TENANT, [retry, retry, {**event, "action": "logout"}], later)
    # When the schedule runs again
    rollup(later + timedelta(seconds=1))
    # Then the retries were duplicates, the changed copy a conflict, and the event counted once
    assert outcome == {"accepted": 0, "duplicates": 2, "rejected": 1}
    assert len(stack.stored_events()) == 1
    daily = stats.daily(stats_aggregates(), stats.TenantClock(TENANT, KYIV, later), 1)
    assert [(i.count, i.users) for i in daily.items] == [(1, 1)]
    check_statistics(
        stats_aggregates(), stack.reference(TENANT, KYIV), later + timedelta(seconds=1), users=["u1"], actions=["login"]
    )


def test_a_retry_received_in_the_same_millisecond_is_a_duplicate_and_counted_once(stack: Stack) -> None:
    """Two requests carrying the same event, received within the same millisecond (a client retrying
    at once, or sending twice): the contract answers the second with "duplicate"."""
    # Given an event stored by one request
    at = utc("2025-06-15T10:00:00Z")
    event = stack.raw("u1", "login", at - timedelta(minutes=5))
    first = stack.ingest(TENANT, [event], at)
    # When another request with the same event is received in the same millisecond
    second = stack.ingest(TENANT, [event], at)
    rollup(at + timedelta(seconds=1))
    # Then it is stored and counted once, and the second answer says duplicate
    assert len(stack.stored_events()) == 1
    daily = stats.daily(stats_aggregates(), stats.TenantClock(TENANT, KYIV, at), 1)
    assert [(i.count, i.users) for i in daily.items] == [(1, 1)]
    assert first == {"accepted": 1, "duplicates": 0, "rejected": 0}
    assert second == {"accepted": 0, "duplicates": 1, "rejected": 0}


def test_an_event_that_arrives_days_late_lands_in_its_old_window(stack: Stack) -> None:
    # Given an event of a day four days ago, counted, then another of that day arriving later still
    day = utc("2025-10-26T08:15:00Z")
    first_arrival = day + timedelta(days=4)
    stack.ingest(TENANT, [stack.raw("u1", "login", day)], first_arrival)
    rollup(first_arrival + timedelta(seconds=1))
    later = first_arrival + timedelta(minutes=30)
    stack.ingest(TENANT, [stack.raw("u1", "edit", day + timedelta(minutes=20))], later)
    # When the next run goes
    rollup(later + timedelta(seconds=1))
    # Then the old day, hour and 4h window hold both, and the user is still one user that day
    store, clock = stats_aggregates(), stats.TenantClock(TENANT, KYIV, later + timedelta(seconds=1))
    daily = stats.daily(store, clock, 5)
    assert [(i.date.isoformat(), i.count, i.users) for i in daily.items if i.count] == [("2025-10-26", 2, 1)]
    hour = utc("2025-10-26T08:00:00Z")
    hourly = stats.user_activity(store, clock, "u1", period="1h", start=hour, end=hour + timedelta(hours=1))
    assert [(w.count, w.by_action) for w in hourly.items] == [(2, {"edit": 1, "login": 1})]
    check_statistics(store, stack.reference(TENANT, KYIV), clock.now, users=["u1"], actions=["login", "edit"])


def test_statistics_count_exactly_the_events_received_before_as_of(stack: Stack) -> None:
    # Given events received at t1, at t2 and after t2
    t1, t2 = utc("2025-06-15T10:00:00Z"), utc("2025-06-15T10:05:00Z")
    stack.ingest(TENANT, [stack.raw("u1", "login", t1)], t1)
    stack.ingest(TENANT, [stack.raw("u2", "login", t1)], t2)
    stack.ingest(TENANT, [stack.raw("u3", "login", t1)], t2 + timedelta(milliseconds=1))
    # When the rollup runs with now = t2 (settle 0)
    rollup(t2)
    # Then as_of is t2 and only the event received before t2 is counted
    daily = stats.daily(stats_aggregates(), stats.TenantClock(TENANT, KYIV, t2), 1)
    assert daily.as_of == t2
    assert [(i.count, i.users) for i in daily.items] == [(1, 1)]
    # And the next run takes the rest, exactly once
    rollup(t2 + timedelta(seconds=1))
    daily = stats.daily(stats_aggregates(), stats.TenantClock(TENANT, KYIV, t2), 1)
    assert [(i.count, i.users) for i in daily.items] == [(3, 3)]


def test_missed_schedules_are_caught_up_by_the_next_run(stack: Stack) -> None:
    # Given a run, then five hours of events (in every shard of the received index) and no run
    start = utc("2025-11-02T04:00:00Z")
    rollup(start)
    for hour in range(5):
        raws = [
            stack.raw(f"u{i}", ("login", "view")[i % 2], start + timedelta(hours=hour, minutes=i)) for i in range(6)
        ]
        stack.ingest(TENANT, raws, start + timedelta(hours=hour, minutes=30))
    # When the next scheduled run finally goes
    now = start + timedelta(hours=5, minutes=1)
    report = rollup(now, {TENANT: ZoneInfo("America/New_York")})
    # Then it counts every event of the hours it missed, once
    assert (report.events, report.finished) == (30, True)
    check_statistics(
        stats_aggregates(),
        stack.reference(TENANT, ZoneInfo("America/New_York")),
        now,
        users=["u0", "u5"],
        actions=["login", "view"],
    )


def test_a_run_out_of_time_continues_next_time(stack: Stack) -> None:
    # Given more events than one run may commit before its timeout
    at = utc("2025-06-15T10:00:00Z")
    for minute in range(3):
        stack.ingest(TENANT, [stack.raw(f"w{i:03d}", "view", at) for i in range(40)], at + timedelta(minutes=minute))
    now = at + timedelta(minutes=5)
    # When the run is told it is about to time out after its first part (of at most 40 events)
    first = rollup(now, should_stop=StopAfter(1), max_events_per_part=40)
    # Then it stops with progress that is exact as of itself
    assert not first.finished
    assert first.commits == 1
    check_daily(stats_aggregates(), stack.reference(TENANT, KYIV), now, days=1)
    # And the next scheduled run counts the rest
    second = rollup(now + timedelta(minutes=1))
    assert second.finished
    assert first.events + second.events == 120
    check_statistics(stats_aggregates(), stack.reference(TENANT, KYIV), now, users=["w000"], actions=["view"])


@pytest.mark.parametrize(
    ("zone_name", "moments"),
    [
        # Kyiv falls back on 2025-10-26 at 01:00Z: 03:30 happens twice; the day lasts 25 hours.
        (
            "Europe/Kyiv",
            ["2025-10-25T21:00:00Z", "2025-10-26T00:30:00Z", "2025-10-26T01:30:00Z", "2025-10-26T21:59:59Z"],
        ),
        # Kyiv springs forward on 2025-03-30 at 01:00Z; the day lasts 23 hours.
        (
            "Europe/Kyiv",
            ["2025-03-29T21:59:59Z", "2025-03-29T22:00:00Z", "2025-03-30T00:59:59Z", "2025-03-30T01:00:00Z"],
        ),
        # New York springs forward on 2025-03-09 at 07:00Z and falls back on 2025-11-02 at 06:00Z.
        ("America/New_York", ["2025-03-09T04:59:59Z", "2025-03-09T06:59:00Z", "2025-03-09T07:00:00Z"]),
        ("America/New_York", ["2025-11-02T05:30:00Z", "2025-11-02T06:30:00Z", "2025-11-03T04:59:59Z"]),
        # Local midnight is 18:30Z in Kolkata and 18:15Z in Kathmandu.
        ("Asia/Kolkata", ["2025-06-14T18:20:00Z", "2025-06-14T18:29:59.999Z", "2025-06-14T18:30:00Z"]),
        ("Asia/Kathmandu", ["2025-06-14T18:14:59.999Z", "2025-06-14T18:15:00Z", "2025-06-14T18:20:00Z"]),
    ],
)
def test_windows_and_days_follow_the_tenant_zone_through_the_rollup(
    stack: Stack, zone_name: str, moments: list[str]
) -> None:
    # Given a tenant in a zone with a DST change or a :30/:45 offset, and events around its boundaries
    zone = ZoneInfo(zone_name)
    occurred = [utc(moment) for moment in moments]
    received_at = max(occurred) + timedelta(minutes=1)
    raws = [stack.raw(f"u{i % 2}", ("login", "view")[i % 2], moment) for i, moment in enumerate(occurred)]
    stack.ingest(TENANT, raws, received_at)
    # When the rollup counts them in the tenant's zone
    now = received_at + timedelta(seconds=1)
    rollup(now, {TENANT: zone}, initial_lookback=timedelta(hours=1))
    # Then every statistic, window and day follows the tenant's local clock
    check_statistics(
        stats_aggregates(), stack.reference(TENANT, zone), now, users=["u0", "u1"], actions=["login", "view"]
    )


def _lord_howe_night(stack: Stack) -> tuple[ZoneInfo, datetime, datetime, Reference]:
    """Lord Howe Island (Australia/Lord_Howe) falls back 30 minutes on 2025-04-06 at 15:00Z
    (02:00 +11:00 -> 01:30 +10:30): its local hour 01:00 lasts 90 minutes, later ones start at :30Z.
    One event every 20 minutes through that night, counted by the rollup."""
    zone = ZoneInfo("Australia/Lord_Howe")
    start = utc("2025-04-05T13:00:00Z")
    occurred = [start + timedelta(minutes=20 * i) for i in range(15)]
    received_at = occurred[-1] + timedelta(minutes=1)
    stack.ingest(TENANT, [stack.raw("u1", "login", moment) for moment in occurred], received_at)
    now = received_at + timedelta(seconds=1)
    rollup(now, {TENANT: zone}, initial_lookback=timedelta(hours=1))
    return zone, start, now, stack.reference(TENANT, zone)


def test_hourly_activity_is_exact_across_a_half_hour_dst_change(stack: Stack) -> None:
    # Given the Lord Howe fall-back night counted by the rollup
    zone, start, now, reference = _lord_howe_night(stack)
    # When the user's 1h activity over that night is read
    hourly = stats.user_activity(
        stats_aggregates(), stats.TenantClock(TENANT, zone, now), "u1", period="1h", start=start, end=now
    )
    # Then each window holds exactly the events that occurred in it, and starts at a local hour
    spans = [(w.start, w.end) for w in hourly.items]
    assert [(w.count, w.by_action) for w in hourly.items] == reference.activity("u1", spans)
    assert all(local_hour_start(s, zone) == s for s, _ in spans), "1h windows must start at local hours"


def test_top_users_are_exact_across_a_half_hour_dst_change(stack: Stack) -> None:
    # Given the Lord Howe fall-back night counted by the rollup
    zone, _, now, reference = _lord_howe_night(stack)
    # When the top users of the last 6 hours are read (the whole night)
    top = stats.top_users(stats_aggregates(), stats.TenantClock(TENANT, zone, now), 6, 3)
    # Then they count every event that occurred in [from, to)
    assert [(u.user_id, u.count) for u in top.items] == reference.top_users(top.from_, top.to, 3)


# ---------------------------------------------------------------- the rollup handler


def _emf_metrics(stdout: str) -> list[dict[str, Any]]:
    """The EMF documents printed on stdout: each as {name: value} plus its namespace and units."""
    found = []
    for document in emf_documents(stdout):
        directive = document["_aws"]["CloudWatchMetrics"][0]
        units = {metric["Name"]: metric.get("Unit") for metric in directive["Metrics"]}
        single = {
            name: value[0] if isinstance(value, list) and len(value) == 1 else value
            for name in units
            for value in [document[name]]
        }
        found.append({"namespace": directive["Namespace"], "units": units, **single})
    return found


def _sample(name: str) -> dict[str, Any]:
    sample: dict[str, Any] = json.loads(Path(EVENTS_DIR / name).read_text(encoding="utf-8"))
    return sample


def test_the_rollup_handler_runs_on_both_schedule_shapes_and_reports_its_metrics(
    stack: Stack, template: Template, capsys: pytest.CaptureFixture[str]
) -> None:
    from aws_lambda_powertools.metrics.provider import cold_start

    from tracker.rest import metrics

    # Given a tenant in Kyiv, and events received before each sample schedule's time minus the settle time
    rule_event, scheduler_input = _sample("scheduled_event.json"), _sample("scheduler_input.json")
    first_time, second_time = utc(rule_event["time"]), utc(scheduler_input["time"])
    assert rule_event["detail-type"] == "Scheduled Event"
    assert set(scheduler_input) == {"time"}
    assert first_time < second_time
    settle = timedelta(seconds=float(template.functions["RollupFunction"].environment["ROLLUP_SETTLE_SECONDS"]))
    tenant_store().create_tenant(
        TenantRecord(tenant_id=TENANT, name="Sample", timezone="Europe/Kyiv", active=True, created_at=first_time),
        ApiKeyRecord(key_id="key_x", key_hash="0" * 64, role="tenant", tenant_id=TENANT, created_at=first_time),
    )
    # Local midnight in Kyiv is 21:00Z: the first event is on the next local day.
    first_batch = [stack.raw("u1", "login", utc("2025-10-11T21:00:00Z")), stack.raw("u2", "view", first_time)]
    stack.ingest(TENANT, first_batch, first_time - settle - timedelta(minutes=5))
    stack.ingest(TENANT, [stack.raw("u1", "edit", first_time)], first_time - settle + timedelta(seconds=1))
    rollup_function = template.functions["RollupFunction"]
    handler = load_function_module(rollup_function)
    metrics.clear_metrics()
    cold_start.is_cold_start = False
    capsys.readouterr()
    # When the EventBridge rule's scheduled event, then the Scheduler's input, invoke the handler
    first = handler.lambda_handler(rule_event, lambda_context(rollup_function))
    first_out = capsys.readouterr().out
    second = handler.lambda_handler(scheduler_input, lambda_context(rollup_function))
    second_out = capsys.readouterr().out
    # Then each run counted what was received before its schedule's time (to the second) minus settle
    assert first["as_of"] == format_utc(first_time + timedelta(seconds=1) - settle)
    assert (first["events"], first["finished"], first["conflict"]) == (2, True, False)
    assert second["as_of"] == format_utc(second_time + timedelta(seconds=1) - settle)
    assert (second["events"], second["finished"]) == (1, True)
    # And the statistics, in the tenant's zone, count each event once
    daily = stats.daily(stats_aggregates(), stats.TenantClock(TENANT, KYIV, second_time), 2)
    assert [(i.date.isoformat(), i.count, i.users) for i in daily.items] == [("2025-10-11", 0, 0), ("2025-10-12", 3, 2)]
    # And the metrics were emitted as EMF on stdout
    namespace = template.functions["RollupFunction"].environment["POWERTOOLS_METRICS_NAMESPACE"]
    for out, report in ((first_out, first), (second_out, second)):
        (document,) = [d for d in _emf_metrics(out) if "RollupRuns" in d]
        assert document["namespace"] == namespace
        assert document["RollupRuns"] == 1
        assert document["RollupEventsProcessed"] == report["events"]
        assert document["RollupDuration"] >= 0
        assert document["units"]["RollupDuration"] == "Milliseconds"
        assert document["RollupLag"] == pytest.approx(report["lag_seconds"])
        assert document["RollupLag"] > 0
        assert document["units"]["RollupLag"] == "Seconds"


# ---------------------------------------------------------------- property: any stream, any faults

ZONES = ["UTC", "Europe/Kyiv", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu"]
ANCHORS = [
    utc("2025-03-30T00:00:00Z"),  # Kyiv springs forward at 01:00Z
    utc("2025-10-26T00:00:00Z"),  # Kyiv falls back at 01:00Z
    utc("2025-03-09T06:00:00Z"),  # New York springs forward at 07:00Z
    utc("2025-11-02T05:00:00Z"),  # New York falls back at 06:00Z
    utc("2025-06-14T17:45:00Z"),  # local midnight in Kathmandu (18:15Z) and Kolkata (18:30Z)
]
USERS = ["u1", "u2", "u3"]
ACTIONS = ["login", "view", "edit"]

PROPERTIES = ["amount", "qty"]
property_value = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -0.0, 0.1, 0.2, "50", True]),
)
new_event = st.tuples(
    st.sampled_from([TENANT, OTHER]),
    st.sampled_from(USERS),
    st.sampled_from(ACTIONS),
    st.one_of(
        st.integers(min_value=-59 * 60_000, max_value=2 * 3_600_000),  # up to 59 min ahead, or a bit late
        st.integers(min_value=3_600_000, max_value=2 * 86_400_000),  # hours or days late
    ),
    st.one_of(st.none(), st.integers(min_value=-3_600_000, max_value=3_600_000)),  # the client's clock skew
    st.one_of(st.none(), st.fixed_dictionaries({}, optional=dict.fromkeys(PROPERTIES, property_value))),
)
# An event type created, changed or deleted (points None): points, and how amount and qty are declared.
catalog_edit = st.tuples(
    st.sampled_from([TENANT, OTHER]),
    st.sampled_from(ACTIONS),
    st.one_of(st.none(), st.integers(min_value=0, max_value=1_000_000)),
    st.dictionaries(st.sampled_from(PROPERTIES), st.sampled_from(["number", "number", "string"])),
)
batch_step = st.tuples(
    st.just("batch"),
    st.sampled_from([0, 0, 1, 1_000, 600_000, 3_600_000]),  # ms since the previous step
    st.lists(new_event, max_size=8),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=3),  # retries of earlier events
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=1),  # same id, other content
)
wide_step = st.tuples(st.just("wide"), st.sampled_from([0, 1, 1_000]), st.integers(min_value=34, max_value=45))
# The catalog is edited between runs: just before a rollup step's run, after the events before it were received.
rollup_step = st.tuples(
    st.just("rollup"),
    st.sampled_from([0, 1, 30_000, 3_600_000]),
    st.one_of(st.just(Fault()), faults(max_at=60)),
    st.lists(catalog_edit, max_size=2),
)
# A wide group is rolled up at once by a run that crashes, stops, races or repeats in the middle of it.
wide_then_faulty_rollup = st.tuples(
    wide_step, st.tuples(st.just("rollup"), st.sampled_from([1, 30_000]), faults(max_at=60), st.just([]))
)
plans = st.tuples(
    st.lists(st.one_of(batch_step, batch_step, rollup_step), min_size=1, max_size=8),
    st.one_of(st.none(), st.tuples(st.integers(min_value=0, max_value=8), wide_then_faulty_rollup)),
).map(lambda plan: plan[0] if plan[1] is None else [*plan[0][: plan[1][0]], *plan[1][1], *plan[0][plan[1][0] :]])


def _wire(
    stack: Stack,
    tenant: str,
    user: str,
    action: str,
    occurred: datetime,
    skew: int | None,
    metadata: dict[str, Any] | None,
) -> dict[str, Any]:
    """An event as a client with a clock ``skew`` ms off sends it (``sent_at`` now by its clock)."""
    extra = {} if metadata is None else {"metadata": metadata}
    if skew is None:
        return {"tenant": tenant, **stack.raw(user, action, occurred, **extra)}
    off = timedelta(milliseconds=skew)
    return {"tenant": tenant, **stack.raw(user, action, occurred + off, **extra), "sent_at": "{sent_at}", "skew": skew}


@pytest.mark.timeout(1800)  # a reader before every write of every run: slow on moto
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
@given(zones=st.tuples(st.sampled_from(ZONES), st.sampled_from(ZONES)), anchor=st.sampled_from(ANCHORS), plan=plans)
def test_every_statistic_equals_a_brute_force_count_over_the_stored_events(
    template: Template, zones: tuple[str, str], anchor: datetime, plan: list[tuple[Any, ...]]
) -> None:
    tenant_zones = {TENANT: ZoneInfo(zones[0]), OTHER: ZoneInfo(zones[1])}
    with mock_aws():
        stack = Stack(template)
        store = rollup_aggregates()
        # Given both tenants flag what breaks their plan: login earns 1, view 10 with amount a number
        stack.flagging = True
        for tenant in tenant_zones:
            stack.edit_catalog(tenant, "login", 1, {}, anchor)
            stack.edit_catalog(tenant, "view", 10, {"amount": "number"}, anchor)
        clock = [anchor]
        sent: list[dict[str, Any]] = []
        wide_groups = 0
        readers = [
            Reader(stats_aggregates(), lambda: stack.stored, tenant, zone, lambda: clock[0], "u1")
            for tenant, zone in tenant_zones.items()
        ]

        def read() -> None:
            """One tenant's reader before each write, the tenants in turn (moto is slow)."""
            readers.append(readers.pop(0))
            readers[0]()

        for step in plan:
            clock[0] += timedelta(milliseconds=step[1])
            if step[0] == "batch":
                # Given a batch per tenant: new events, retries of earlier ones, and a changed copy of one
                _, _, new, retries, changed = step
                wires = [
                    _wire(stack, tenant, user, action, clock[0] - timedelta(milliseconds=late), skew, metadata)
                    for tenant, user, action, late, skew, metadata in new
                ]
                wires += [sent[index % len(sent)] for index in retries if sent]
                wires += [{**sent[index % len(sent)], "action": "other"} for index in changed if sent]
                sent += wires[: len(new)]
                _send(stack, wires, clock[0])
            elif step[0] == "wide":
                # Given many distinct users received at one instant (several parts' worth)
                wide_groups += 1
                raws = [stack.raw(f"w{wide_groups}-{i:03d}", ACTIONS[i % 3], clock[0]) for i in range(step[2])]
                stack.ingest(TENANT, raws, clock[0])
            else:
                # When the catalog is edited (points, properties declared anew, types deleted), then a
                # scheduled rollup runs, with its fault (an erasure of u1 of the first tenant, maybe),
                # and readers of both tenants before each of its writes
                for tenant, action, points, properties in step[3]:
                    stack.edit_catalog(tenant, action, points, properties, clock[0])
                rollup_under_fault(
                    store,
                    step[2],
                    zone_of=tenant_zones.__getitem__,
                    now=clock[0],
                    initial_lookback=clock[0] - anchor + timedelta(hours=1),
                    harness=Harness(erase=lambda: stack.erase(TENANT, "u1"), read=read),
                    max_events_per_part=15,
                    catalog=catalog_reader(),
                )
                stack.mark_counted()
                # Then points, properties and violations are exact after the step, whatever its fault did
                for tenant, zone in tenant_zones.items():
                    if stats_aggregates().load_progress().snapshot(tenant)[1] is not None:  # a first run may crash
                        check_catalog_statistics(stats_aggregates(), stack.reference(tenant, zone), USERS)
            # Then every answer was exact at its own as_of, and as_of never went back
            read()
            read()
        # When a last undisturbed run goes
        now = clock[0] + LEASE
        run_rollup(
            store,
            tenant_zones.__getitem__,
            now=now,
            settle=NO_SETTLE,
            initial_lookback=now - anchor + timedelta(hours=1),
            wall_clock=lambda: now,
            catalog=catalog_reader(),
        )
        stack.mark_counted()
        # Then every statistic of each tenant equals the brute-force count of its stored events: points
        # of each event as its type had them when it was counted, properties from their declaration on
        for tenant, zone in tenant_zones.items():
            check_statistics(
                stats_aggregates(),
                stack.reference(tenant, zone),
                now,
                users=["u1", "w1-000"],
                actions=ACTIONS,
                top_limit=3,
                top_hours=6,
            )
            check_catalog_statistics(stats_aggregates(), stack.reference(tenant, zone), [*USERS, "w1-000"])
        stack.stored = [e for e in stack.stored if not e.anonymous]  # what the Events table still holds
        stack.assert_model_is_what_is_stored()


def _send(stack: Stack, wires: list[dict[str, Any]], received_at: datetime) -> None:
    """Sends each tenant's part of ``wires`` as one batch received at ``received_at``."""
    for tenant, group in itertools.groupby(sorted(wires, key=lambda w: w["tenant"]), key=lambda w: w["tenant"]):
        raws = []
        for wire in group:
            raw = {key: value for key, value in wire.items() if key not in ("tenant", "skew")}
            if "skew" in wire:
                raw["sent_at"] = format_utc(received_at + timedelta(milliseconds=wire["skew"]))
            raws.append(raw)
        stack.ingest(tenant, raws, received_at)


def test_the_sample_schedule_events_are_what_eventbridge_sends() -> None:
    rule_event, scheduler_input = _sample("scheduled_event.json"), _sample("scheduler_input.json")
    assert rule_event["source"] == "aws.events"
    assert rule_event["detail-type"] == "Scheduled Event"
    assert utc(rule_event["time"]).tzinfo is not None
    assert scheduler_input == {"time": scheduler_input["time"]}
    assert utc(scheduler_input["time"]) > datetime(2025, 1, 1, tzinfo=UTC)
