"""tracker.aggregates, the statistics of the catalog: points, numeric properties and violations, and
their exact numbers (merged, split into parts, stored as JSON and read back)."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.support import received_event
from tracker.adapters.aggregates_table import aggregate_from_item, aggregate_to_item
from tracker.adapters.received_events import received_event_from_item
from tracker.aggregates import (
    EXACT,
    MAX_FIELDS_PER_PART,
    MAX_PART_BYTES,
    Aggregate,
    PropertyStats,
    ReceivedEvent,
    Scoring,
    StoredAggregate,
    Tally,
    assemble,
    buckets,
    day_users_value,
    lifetime_key,
    logical_key,
    merge,
    part_key,
    property_number,
    split,
)

TENANT = "ten_num0000000000001"
KYIV = ZoneInfo("Europe/Kyiv")
RECEIVED = "2025-06-15T05:00:00.000Z"
DECLARED = datetime(2025, 6, 15, 5, 0, tzinfo=UTC)


def event(
    action: str = "purchase",
    metadata: dict[str, object] | None = None,
    violations: tuple[str, ...] = (),
    received: str = RECEIVED,
    event_id: str = "e1",
) -> ReceivedEvent:
    return received_event(
        TENANT, action=action, received=received, event_id=event_id, metadata=metadata, violations=violations
    )


def parsed(text: str) -> dict[str, object]:
    """Metadata as the rollup reads it from the index: JSON floats as their exact Decimal."""
    value: dict[str, object] = json.loads(text, parse_float=Decimal)
    return value


# ---------------------------------------------------------------- what an event adds


def test_points_go_to_the_user_hour_day_and_lifetime_and_the_day_by_local_hour() -> None:
    # Given a purchase worth 10 points and a login worth 1, in the same local hour
    tally = Tally()
    purchase, login = event(event_id="e1"), event(action="login", event_id="e2")
    where = buckets(purchase, KYIV)
    # When both are added with their scorings
    tally.add(purchase, where, Scoring(points=10))
    tally.add(login, buckets(login, KYIV), Scoring(points=1))
    # Then points are counted by action in the user-hour, the user-day (and by hour) and the lifetime item
    assert tally.deltas[where.user_hour] == {"count": 2, "a:purchase": 1, "a:login": 1, "p:purchase": 10, "p:login": 1}
    hour_points = "ph:" + where.hour.removeprefix("h:")
    assert tally.deltas[where.user_day] == {
        "count": 2,
        "a:purchase": 1,
        "a:login": 1,
        where.hour: 2,
        "p:purchase": 10,
        "p:login": 1,
        hour_points: 11,
    }
    assert where.lifetime == lifetime_key(TENANT, "u1") == (f"{TENANT}#U#u1", "P")
    assert tally.deltas[where.lifetime] == {"count": 2, "a:purchase": 1, "a:login": 1, "p:purchase": 10, "p:login": 1}
    # And the tenant-wide items hold no points
    assert tally.deltas[where.tenant_day] == {"count": 2}


def test_an_event_earning_no_points_writes_no_points_counter() -> None:
    tally = Tally()
    unknown = event(action="unknown")
    where = buckets(unknown, KYIV)
    tally.add(unknown, where)
    tally.add(unknown, where, Scoring(points=0))
    assert not [name for key in tally.deltas for name in tally.deltas[key] if name.startswith(("p:", "ph:"))]
    assert tally.deltas[where.lifetime] == {"count": 2, "a:unknown": 2}


def test_number_properties_are_counted_exactly_in_the_action_day() -> None:
    # Given amount and quantity declared number, three purchases with ints, decimals, zero and negatives
    scoring = Scoring(points=0, numbers={"amount": DECLARED, "quantity": DECLARED})
    metadatas = [
        parsed('{"amount": 0.1, "quantity": 2}'),
        parsed('{"amount": 0.2, "quantity": -3, "note": "x"}'),
        parsed('{"amount": -0.0, "quantity": 0}'),
    ]
    tally = Tally()
    for index, metadata in enumerate(metadatas):
        tally.add(event(metadata=metadata, event_id=f"e{index}"), buckets(event(), KYIV), scoring)
    # Then the action-day holds count, exact sum, min and max of each
    action_day = tally.deltas[buckets(event(), KYIV).action_day]
    assert action_day == {
        "count": 3,
        "n:amount": 3,
        "s:amount": Decimal("0.3"),
        "mn:amount": Decimal("0.0"),
        "mx:amount": Decimal("0.2"),
        "n:quantity": 3,
        "s:quantity": -1,
        "mn:quantity": -3,
        "mx:quantity": 2,
    }
    assert str(action_day["mn:amount"]) == "0.0", "-0.0 is counted as 0.0"
    stats = Aggregate("p", "s", merge(action_day)).property_stats("amount")
    assert stats == PropertyStats(count=3, sum=Decimal("0.3"), min=Decimal("0.0"), max=Decimal("0.2"))


@pytest.mark.parametrize(
    "text",
    ['"50"', "true", "false", "null", '{"a": 1}', "[1]", str(10**309), str(-(10**309))],
)
def test_a_value_that_is_not_a_number_is_not_counted(text: str) -> None:
    # Given a declared number property holding something that is not a JSON number in range
    scoring = Scoring(numbers={"amount": DECLARED})
    # Then the event counts, but not in the property
    assert scoring.numbers_of(event(metadata=parsed(f'{{"amount": {text}}}'))) == {}


def test_a_property_counts_events_received_from_its_declaration_on() -> None:
    scoring = Scoring(numbers={"amount": DECLARED})
    before = event(metadata={"amount": 5}, received="2025-06-15T04:59:59.999Z")
    at = event(metadata={"amount": 5}, received="2025-06-15T05:00:00.000Z")
    assert scoring.numbers_of(before) == {}
    assert scoring.numbers_of(at) == {"amount": 5}
    assert scoring.numbers_of(event(metadata=None)) == {}
    assert scoring.numbers_of(event(metadata={"other": 5})) == {}


def test_violations_count_events_by_kind_in_the_action_day() -> None:
    tally = Tally()
    flagged = event(violations=("type_mismatch", "type_mismatch", "required_missing"))
    tally.add(flagged, buckets(flagged, KYIV))
    tally.add(event(violations=("type_mismatch",), event_id="e2"), buckets(flagged, KYIV))
    value = tally.deltas[buckets(flagged, KYIV).action_day]
    assert Aggregate("p", "s", value).violations == {"type_mismatch": 2, "required_missing": 1}


def test_the_top_users_twin_copies_the_days_points_by_hour_and_in_total() -> None:
    user_day = {"count": 3, "a:login": 3, "h:60": 2, "h:120": 1, "p:login": 3, "p:buy": 20, "ph:60": 2, "ph:120": 21}
    twin = day_users_value(user_day)
    assert twin == {"count": 3, "h:60": 2, "h:120": 1, "ph:60": 2, "ph:120": 21, "points": 23}
    assert day_users_value({"count": 1, "h:0": 1}) == {"count": 1, "h:0": 1}
    assert Aggregate("p", "u1", twin).points == Aggregate("p", "D#x", user_day).points == 23
    assert Aggregate("p", "u1", twin).hour_points == {60: 2, 120: 21}
    assert Aggregate("p", "u1", twin).hours == {60: 2, 120: 1}
    assert Aggregate("p", "D#x", user_day).points_by_action == {"login": 3, "buy": 20}


# ---------------------------------------------------------------- merging numbers


def test_minimum_and_maximum_merge_as_such_and_keep_zero() -> None:
    merged = merge(
        {"count": 1, "n:x": 1, "s:x": 0, "mn:x": 0, "mx:x": 0},
        {"count": -1, "n:x": 1, "s:x": -5, "mn:x": -5, "mx:x": -5},
        {"n:x": 1, "s:x": 5, "mn:x": Decimal("-5.5"), "mx:x": 5},
    )
    assert merged == {"n:x": 3, "mn:x": Decimal("-5.5"), "mx:x": 5}, "additive zeros go, min and max stay"
    assert merge({"mn:x": 0, "mx:x": 0}) == {"mn:x": 0, "mx:x": 0}


def test_decimal_sums_are_exact_across_the_whole_range_of_doubles() -> None:
    tiny, huge = Decimal(repr(5e-324)), Decimal(repr(1.7976931348623157e308))
    total = merge({"s:x": huge}, {"s:x": tiny}, {"s:x": Decimal("0.1")}, {"s:x": -huge})
    assert total["s:x"] == EXACT.add(Decimal("0.1"), tiny)
    assert str(total["s:x"]) == "0." + "1".ljust(323, "0") + "5"
    assert merge(*({"s:x": Decimal("0.1")} for _ in range(10)))["s:x"] == Decimal("1.0")
    assert EXACT.prec >= 700


doubles = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.one_of(doubles, st.integers(min_value=-(10**20), max_value=10**20)), min_size=1))
def test_a_property_is_the_exact_sum_min_and_max_of_the_stored_decimal_texts(values: list[float | int]) -> None:
    # Given events carrying those values, stored as JSON text and read back with Decimal floats
    stored = [parsed(json.dumps({"x": value}))["x"] for value in values]
    scoring = Scoring(numbers={"x": DECLARED})
    tally = Tally()
    for index, value in enumerate(stored):
        tally.add(event(metadata={"x": value}, event_id=f"e{index}"), buckets(event(), KYIV), scoring)
    # Then the action-day's statistics equal the brute force over the exact decimal values
    exact = [Decimal(str(v)) if isinstance(v, Decimal) else Decimal(v) for v in stored]
    stats = Aggregate("p", "s", merge(tally.deltas[buckets(event(), KYIV).action_day])).property_stats("x")
    assert stats is not None
    assert stats.count == len(values)
    assert stats.sum == functools.reduce(EXACT.add, exact, Decimal(0))
    assert stats.min == min(exact)
    assert stats.max == max(exact)


# ---------------------------------------------------------------- parts and storage

names = st.text(min_size=1, max_size=128)
numbers = st.one_of(
    st.integers(min_value=-(10**15), max_value=10**15).filter(bool),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(bool),
)


@settings(max_examples=150, deadline=None)
@given(
    properties=st.dictionaries(names, st.tuples(numbers, numbers, numbers), min_size=1, max_size=120),
    long_sum=st.booleans(),
)
def test_an_action_day_with_many_properties_splits_into_parts_stored_and_put_together_exactly(
    properties: dict[str, tuple[Decimal | int, Decimal | int, Decimal | int]], long_sum: bool
) -> None:
    # Given an action-day with many properties (long Unicode names, exact sums hundreds of digits long)
    value: dict[str, Decimal | int] = {"count": 7, "users": 2}
    for name, (sum_, low, high) in properties.items():
        total = EXACT.add(Decimal("1e300"), Decimal("1e-300")) if long_sum else sum_
        value.update({f"n:{name}": 3, f"s:{name}": total, f"mn:{name}": min(low, high), f"mx:{name}": max(low, high)})
    # When it is split into parts, each stored as an item and read back
    key = (f"{TENANT}#A", "2025-06-15#purchase")
    parts = split(value)
    items = [
        aggregate_from_item(aggregate_to_item(StoredAggregate(part_key(key, n), part, part, 3, 2, parts=len(parts))))
        for n, part in enumerate(parts)
    ]
    # Then every part is within its bounds, and the value read back is exactly the one written
    assert all(len(part) <= MAX_FIELDS_PER_PART for part in parts)
    assert all(len(json.dumps(item.pending, default=str)) <= MAX_PART_BYTES + 2 for item in items)
    assert all(len(json.dumps(aggregate_to_item(item))) < 70_000 for item in items)
    (read,) = assemble(items, 3) or []
    assert (read.partition, read.sort_key) == key
    assert read.value == value
    assert all(type(read.value[name]) is type(number) for name, number in value.items()), "ints stay ints"
    assert {name: str(n) for name, n in read.value.items()} == {name: str(n) for name, n in value.items()}


def test_a_decimal_is_stored_as_its_exact_text_and_an_int_as_a_json_integer() -> None:
    item = aggregate_to_item(StoredAggregate(("p", "s"), {}, {"n:x": 2, "s:x": Decimal("1E+2"), "mn:x": 0}, 1, 0))
    assert json.loads(item["p"]["S"]) == {"mn:x": 0, "n:x": 2, "s:x": "1E+2"}
    assert aggregate_from_item(item).pending == {"n:x": 2, "s:x": Decimal("1E+2"), "mn:x": 0}


def test_property_number_takes_json_numbers_in_the_range_of_doubles() -> None:
    assert property_number(3) == 3
    assert property_number(Decimal("-0.0")) == 0
    assert property_number(Decimal("NaN")) is None
    assert property_number(Decimal("Infinity")) is None
    assert property_number(True) is None
    assert property_number(10**308) == 10**308
    assert property_number(2 * 10**308) is None


def test_the_index_item_is_read_with_exact_metadata_and_the_kinds_of_its_violations() -> None:
    # Given an event as ingest stores it in flag mode, with a float, a large integer and a nested value
    item = {
        "received_key": {"S": f"{RECEIVED}#{TENANT}#e1"},
        "tenant_id": {"S": TENANT},
        "user_id": {"S": "u1"},
        "action": {"S": "purchase"},
        "occurred_at": {"S": "2025-06-15T04:47:00.000Z"},
        "metadata": {"S": '{"amount":0.1,"big":123456789012345678901234567890,"nested":{"x":1.5}}'},
        "violations": {"L": [{"M": {"kind": {"S": "type_mismatch"}, "field": {"S": "metadata.qty"}}}]},
    }
    # When the rollup reads it from the index
    event = received_event_from_item(item)
    # Then floats are the exact decimals of their text, integers stay integers, violations are their kinds
    assert event.metadata == {
        "amount": Decimal("0.1"),
        "big": 123456789012345678901234567890,
        "nested": {"x": Decimal("1.5")},
    }
    assert event.violations == ("type_mismatch",)
    # And metadata that is not a JSON object, or no JSON at all, is no metadata
    assert received_event_from_item({**item, "metadata": {"S": "[1]"}}).metadata is None
    assert received_event_from_item({**item, "metadata": {"S": "1" * 5_000}}).metadata is None
    assert received_event_from_item({key: v for key, v in item.items() if key != "metadata"}).metadata is None


def test_parts_are_put_together_in_every_partition_but_the_top_users_twins() -> None:
    assert logical_key((f"{TENANT}#A", "2025-06-15#purchase~2")) == (f"{TENANT}#A", "2025-06-15#purchase")
    assert logical_key((f"{TENANT}#U#a#b~c", "P~1")) == (f"{TENANT}#U#a#b~c", "P")
    assert logical_key((f"{TENANT}#DU#2025-06-15", "user~1")) == (f"{TENANT}#DU#2025-06-15", "user~1")
    assert logical_key(("ROLLUP", "PROGRESS")) == ("ROLLUP", "PROGRESS")
