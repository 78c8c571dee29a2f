"""The tracking plan at ingest (api.md, "Event types"): violations, the three modes, batches and the catalog cache."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import InMemoryEventStore, InMemoryEventTypeStore
from tracker import catalog
from tracker.catalog_models import EventTypeIn, EventTypePatch
from tracker.errors import ValidationFailed
from tracker.events import ingest_batch, prepare_event
from tracker.records import EventRecord, EventTypeRecord, ValidationMode
from tracker.tracking_plan import CatalogCache, plan_screen, screen_one, screen_records, violations_of

from .support import OTHER_TENANT, RECEIVED, TENANT, raw_event

PURCHASE = {
    "name": "purchase",
    "points": 10,
    "properties": {
        "amount": {"type": "number", "required": True},
        "sku": {"type": "string"},
        "gift": {"type": "boolean"},
    },
}


@pytest.fixture
def types() -> InMemoryEventTypeStore:
    store = InMemoryEventTypeStore()
    catalog.create_event_type(store, TENANT, EventTypeIn.model_validate(PURCHASE))
    catalog.create_event_type(store, TENANT, EventTypeIn.model_validate({"name": "login"}))
    return store


def record(action: str = "purchase", metadata: dict[str, Any] | None = None, event_id: str = "evt-1") -> EventRecord:
    return prepare_event(raw_event(action=action, metadata=metadata, event_id=event_id), TENANT, RECEIVED)


def purchase_type(store: InMemoryEventTypeStore) -> EventTypeRecord:
    found = store.get_event_type(TENANT, "purchase")
    assert found is not None
    return found


def kinds(event: EventRecord, event_type: EventTypeRecord | None) -> list[tuple[str, str]]:
    return [(violation.kind, violation.field) for violation, _ in violations_of(event, event_type)]


# ---------------------------------------------------------------- violations


def test_an_event_that_follows_its_type_has_no_violation(types: InMemoryEventTypeStore) -> None:
    event = record(metadata={"amount": 50, "sku": "A-1", "gift": False, "other": [1]})
    assert kinds(event, purchase_type(types)) == []


def test_an_action_not_in_the_catalog_is_unplanned() -> None:
    assert kinds(record(action="teleport"), None) == [("unplanned_action", "action")]


@pytest.mark.parametrize("metadata", [None, {}, {"sku": "A-1"}, {"amount": None}])
def test_a_required_property_absent_or_null_is_missing(types: InMemoryEventTypeStore, metadata: Any) -> None:
    assert kinds(record(metadata=metadata), purchase_type(types)) == [("required_missing", "metadata.amount")]


def test_an_optional_property_may_be_absent_or_null(types: InMemoryEventTypeStore) -> None:
    assert kinds(record(metadata={"amount": 1, "sku": None}), purchase_type(types)) == []


@pytest.mark.parametrize(
    "value",
    ["50", True, False, "NaN", "1e400", [50], {"value": 50}, "", math.inf, -math.inf, math.nan],
    ids=repr,
)
def test_a_number_property_takes_only_finite_json_numbers(types: InMemoryEventTypeStore, value: Any) -> None:
    event = record(metadata={"amount": 1}).model_copy(update={"metadata": {"amount": value}})
    assert kinds(event, purchase_type(types)) == [("type_mismatch", "metadata.amount")]


@pytest.mark.parametrize("value", [0, -3, 50, 1.5, 10**30, 1e300, -0.0])
def test_numbers_of_every_size_are_numbers(types: InMemoryEventTypeStore, value: Any) -> None:
    assert kinds(record(metadata={"amount": value}), purchase_type(types)) == []


def test_1e400_as_sent_in_json_is_not_a_number() -> None:
    # Python's JSON reader makes 1e400 an infinity: out of range, a type mismatch (not a stored inf)
    sent = json.loads('{"amount": 1e400}')
    event = record(metadata={"amount": 1}).model_copy(update={"metadata": sent})
    store = InMemoryEventTypeStore()
    catalog.create_event_type(store, TENANT, EventTypeIn.model_validate(PURCHASE))
    [(violation, message)] = violations_of(event, purchase_type(store))
    assert violation.kind == "type_mismatch"
    assert "out of range" in message


def test_strings_and_booleans_are_strict(types: InMemoryEventTypeStore) -> None:
    event = record(metadata={"amount": 1, "sku": 5, "gift": 1})
    assert kinds(event, purchase_type(types)) == [
        ("type_mismatch", "metadata.sku"),
        ("type_mismatch", "metadata.gift"),
    ]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=2), inner, max_size=2),
    max_leaves=4,
)


def brute_force_json_type(value: Any) -> str:
    """What JSON Schema would call the value (an infinity or NaN is no JSON number at all)."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "boolean"
    if type(value) is int or (type(value) is float and math.isfinite(value)):
        return "number"
    if type(value) is str:
        return "string"
    return "other"


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES, declared=st.sampled_from(["number", "string", "boolean"]), required=st.booleans())
def test_a_value_breaks_its_declared_type_exactly_when_json_schema_says_so(
    value: Any, declared: str, required: bool
) -> None:
    event_type = EventTypeRecord.model_validate(
        {
            "tenant_id": TENANT,
            "name": "purchase",
            "description": "",
            "points": 0,
            "properties": {"p": {"type": declared, "required": required}},
            "created_at": RECEIVED,
            "updated_at": RECEIVED,
        }
    )
    event = record(metadata={"p": 1}).model_copy(update={"metadata": {"p": value}})
    actual = brute_force_json_type(value)
    expected = []
    if actual == "null":
        expected = [("required_missing", "metadata.p")] if required else []
    elif actual != declared:
        expected = [("type_mismatch", "metadata.p")]
    assert kinds(event, event_type) == expected


# ---------------------------------------------------------------- modes


def test_off_mode_reads_nothing_and_checks_nothing(types: InMemoryEventTypeStore) -> None:
    assert plan_screen("off", types, CatalogCache(30), TENANT) is None
    assert screen_one(None, record(action="teleport")).violations == []
    assert types.batch_get_calls == 0


def test_flag_mode_stores_the_event_with_its_violations(types: InMemoryEventTypeStore) -> None:
    screen = plan_screen("flag", types, CatalogCache(30), TENANT)
    flagged = screen_one(screen, record(metadata={"amount": "50", "gift": "yes"}))
    assert [(v.kind, v.field) for v in flagged.violations] == [
        ("type_mismatch", "metadata.amount"),
        ("type_mismatch", "metadata.gift"),
    ]
    assert flagged.fingerprint == record(metadata={"amount": "50", "gift": "yes"}).fingerprint


def test_block_mode_rejects_with_a_422_naming_each_violation(types: InMemoryEventTypeStore) -> None:
    screen = plan_screen("block", types, CatalogCache(30), TENANT)
    with pytest.raises(ValidationFailed) as caught:
        screen_one(screen, record(metadata={"amount": True, "sku": 7}))
    assert caught.value.status == 422
    assert caught.value.code == "validation_error"
    assert [(d["field"], d["type"]) for d in caught.value.details] == [
        ("metadata.amount", "type_mismatch"),
        ("metadata.sku", "type_mismatch"),
    ]
    with pytest.raises(ValidationFailed) as unplanned:
        screen_one(screen, record(action="teleport"))
    assert [d["type"] for d in unplanned.value.details] == ["unplanned_action"]
    assert screen_one(screen, record(action="login")).violations == []


def every_other_event_violates(count: int) -> list[dict[str, Any]]:
    events = []
    for index in range(count):
        if index % 2 == 0:
            events.append(raw_event(event_id=f"e{index}", action="purchase", metadata={"amount": index}))
        else:
            bad = [
                {"action": "teleport"},
                {"action": "purchase", "metadata": {"sku": "no-amount"}},
                {"action": "purchase", "metadata": {"amount": "50"}},
            ][index % 3]
            events.append(raw_event(event_id=f"e{index}", **bad))
    return events


def run_batch(
    mode: ValidationMode, types: InMemoryEventTypeStore, events: InMemoryEventStore, sent: list[dict[str, Any]]
) -> Any:
    screen = plan_screen(mode, types, CatalogCache(30), TENANT)
    return ingest_batch(events, sent, TENANT, RECEIVED, 8, screen=screen)


def test_block_mode_rejects_exactly_the_250_bad_events_of_a_batch_of_500(types: InMemoryEventTypeStore) -> None:
    # Given a batch of 500 where every other event breaks the plan
    events = InMemoryEventStore()
    sent = every_other_event_violates(500)
    # When it is ingested in block mode
    result = run_batch("block", types, events, sent)
    # Then exactly the odd ones are rejected, each with its violation, and the even ones stored
    assert (result.accepted, result.duplicates, result.rejected) == (250, 0, 250)
    rejected = [r for r in result.results if r.status == "rejected"]
    assert [r.index for r in rejected] == list(range(1, 500, 2))
    expected_kind = {0: "unplanned_action", 1: "required_missing", 2: "type_mismatch"}
    for entry in rejected:
        assert entry.error is not None
        assert entry.error.code == "validation_error"
        assert entry.event_id == f"e{entry.index}"
        assert [detail.type for detail in entry.error.details] == [expected_kind[entry.index % 3]]
    assert sorted(event_id for _, event_id in events.records) == sorted(f"e{i}" for i in range(0, 500, 2))
    # and the catalog was read once for the batch's two actions
    assert (types.batch_get_calls, types.keys_asked) == (1, 2)


def test_flag_mode_stores_all_500_and_marks_the_250(types: InMemoryEventTypeStore) -> None:
    events = InMemoryEventStore()
    result = run_batch("flag", types, events, every_other_event_violates(500))
    assert (result.accepted, result.rejected) == (500, 0)
    flagged = {event_id for (_, event_id), stored in events.records.items() if stored.violations}
    assert flagged == {f"e{i}" for i in range(1, 500, 2)}


def test_a_retry_of_a_flagged_event_is_a_duplicate(types: InMemoryEventTypeStore) -> None:
    events = InMemoryEventStore()
    sent = [raw_event(event_id="x", action="teleport")]
    run_batch("flag", types, events, sent)
    again = run_batch("flag", types, events, sent)
    assert (again.accepted, again.duplicates) == (0, 1)


def test_events_invalid_in_themselves_are_rejected_before_the_plan(types: InMemoryEventTypeStore) -> None:
    events = InMemoryEventStore()
    sent = [raw_event(event_id="a", action="has space"), raw_event(event_id="b", action="login")]
    result = run_batch("block", types, events, sent)
    assert [r.status for r in result.results] == ["rejected", "accepted"]
    assert result.results[0].error is not None
    assert result.results[0].error.details[0].field == "action"
    assert types.keys_asked == 1


# ---------------------------------------------------------------- the cache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_cache_reads_each_action_once_per_ttl_absent_ones_too(types: InMemoryEventTypeStore) -> None:
    clock = Clock()
    cache = CatalogCache(30, clock=clock)
    first = cache.event_types(types, TENANT, {"purchase", "teleport"})
    assert first["purchase"] is not None
    assert first["teleport"] is None
    clock.now += 29.9
    cache.event_types(types, TENANT, {"purchase", "teleport"})
    assert types.batch_get_calls == 1
    # Only the new action is read
    cache.event_types(types, TENANT, {"purchase", "login"})
    assert (types.batch_get_calls, types.keys_asked) == (2, 3)


def test_an_edit_of_the_catalog_applies_once_the_ttl_has_passed(types: InMemoryEventTypeStore) -> None:
    clock = Clock()
    cache = CatalogCache(30, clock=clock)
    screen = plan_screen("block", types, cache, TENANT)
    assert screen is not None
    assert screen_one(screen, record(metadata={"amount": 1})).violations == []
    # When the type now requires another property, and a new type is declared
    catalog.update_event_type(
        types,
        TENANT,
        "purchase",
        EventTypePatch.model_validate({"properties": {"coupon": {"type": "string", "required": True}}}),
    )
    with pytest.raises(ValidationFailed):
        screen_one(screen, record(action="teleport"))
    catalog.create_event_type(types, TENANT, EventTypeIn(name="teleport"))
    # Then within the TTL the old plan holds
    clock.now += 29
    assert screen_one(screen, record(metadata={"amount": 1})).violations == []
    with pytest.raises(ValidationFailed):
        screen_one(screen, record(action="teleport"))
    # And after it the new one
    clock.now += 1
    with pytest.raises(ValidationFailed) as caught:
        screen_one(screen, record(metadata={"amount": 1}))
    assert [d["field"] for d in caught.value.details] == ["metadata.coupon"]
    assert screen_one(screen, record(action="teleport")).violations == []


def test_the_cache_keeps_tenants_apart(types: InMemoryEventTypeStore) -> None:
    cache = CatalogCache(30)
    assert cache.event_types(types, TENANT, {"purchase"})["purchase"] is not None
    assert cache.event_types(types, OTHER_TENANT, {"purchase"})["purchase"] is None


def test_the_cache_is_bounded(types: InMemoryEventTypeStore) -> None:
    cache = CatalogCache(30, max_entries=10)
    cache.event_types(types, TENANT, {f"a{i}" for i in range(25)})
    cache.event_types(types, TENANT, {"purchase"})
    assert len(cache._entries) == 10
    assert cache.event_types(types, TENANT, {"purchase"})["purchase"] is not None
    assert types.batch_get_calls == 2


def test_screen_records_in_off_mode_changes_nothing(types: InMemoryEventTypeStore) -> None:
    event = record(action="teleport")
    assert screen_records([event], "off", {}) == [event]
