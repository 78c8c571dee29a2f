"""The field rules of one event (api.md, "Events"), through ``prepare_event``.

Each test: Given a raw event as a client sends it, When it is prepared at ``RECEIVED``,
Then it becomes a record or the contract's error (422 naming the field, or 413).
"""

from __future__ import annotations

import json
import math
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tracker.errors import ApiError, PayloadTooLarge, ValidationFailed
from tracker.events import prepare_event
from tracker.ingest_models import MAX_EVENT_BYTES, MAX_METADATA_BYTES, MAX_METADATA_DEPTH
from tracker.json_shape import json_depth
from tracker.records import EventRecord
from tracker.timefmt import format_utc

from .support import RECEIVED, TENANT, raw_event

ID_CHARACTERS = "ABCXYZabcxyz0189._:-"


def prepare(raw: Any) -> EventRecord:
    return prepare_event(raw, TENANT, RECEIVED)


def rejected_fields(raw: Any) -> set[str]:
    with pytest.raises(ValidationFailed) as caught:
        prepare(raw)
    assert caught.value.status == 422
    assert caught.value.code == "validation_error"
    return {detail["field"] for detail in caught.value.details}


# ---------------------------------------------------------------- a valid event


def test_a_minimal_event_gets_a_uuid_and_the_time_received() -> None:
    # Given an event with only the required fields
    raw = {"user_id": "user-1", "action": "login"}
    # When it is prepared
    record = prepare(raw)
    # Then the server made its id and took the time received as occurred_at
    assert uuid.UUID(record.event_id)
    assert record.occurred_at == RECEIVED
    assert record.received_at == RECEIVED
    assert record.metadata is None
    assert record.tenant_id == TENANT


def test_two_events_without_an_id_get_different_ids() -> None:
    raw = {"user_id": "user-1", "action": "login"}
    assert prepare(raw).event_id != prepare(raw).event_id


def test_a_full_event_keeps_its_fields_and_occurred_at_is_utc_milliseconds() -> None:
    # Given an event with an offset and microseconds
    raw = raw_event(occurred_at="2025-10-10T14:30:00.123456+03:00", metadata={"device": "iPhone", "n": [1, 2.5]})
    # When it is prepared
    record = prepare(raw)
    # Then occurred_at is the same instant in UTC, at millisecond precision
    assert record.occurred_at == datetime(2025, 10, 10, 11, 30, 0, 123000, tzinfo=UTC)
    assert format_utc(record.occurred_at) == "2025-10-10T11:30:00.123Z"
    assert (record.event_id, record.user_id, record.action) == ("evt-1", "user-1", "login")
    assert record.metadata == {"device": "iPhone", "n": [1, 2.5]}


def test_unknown_fields_are_ignored() -> None:
    record = prepare(raw_event(context={"ip": "203.0.113.1"}, tenant_id="ten_someone_else"))
    assert record.tenant_id == TENANT


# ---------------------------------------------------------------- event_id and action


@pytest.mark.parametrize(
    "event_id",
    ["a", "A-Z.a_z:0-9", "x" * 128, ID_CHARACTERS, "550e8400-e29b-41d4-a716-446655440000"],
    ids=["one-char", "all-kinds", "128-chars", "alphabet", "uuid"],
)
def test_event_id_of_allowed_characters_and_length_is_accepted(event_id: str) -> None:
    assert prepare(raw_event(event_id=event_id)).event_id == event_id


@pytest.mark.parametrize(
    "event_id",
    ["", "x" * 129, "has space", "a#b", "a/b", "é", "a\n", "a+b", "a@b", 42, True, ["evt-1"]],
    ids=["empty", "129-chars", "space", "hash", "slash", "non-ascii", "newline", "plus", "at", "int", "bool", "list"],
)
def test_event_id_outside_the_pattern_is_a_422_on_event_id(event_id: Any) -> None:
    assert rejected_fields(raw_event(event_id=event_id)) == {"event_id"}


@pytest.mark.parametrize("action", ["l", "x" * 64, "document.delete", "page:view", "A_B-c.d:e"])
def test_action_of_allowed_characters_and_length_is_accepted(action: str) -> None:
    assert prepare(raw_event(action=action)).action == action


@pytest.mark.parametrize(
    "action",
    ["", "x" * 65, "log in", "a#b", "é", "a/b", 1],
    ids=["empty", "65-chars", "space", "hash", "non-ascii", "slash", "int"],
)
def test_action_outside_the_pattern_is_a_422_on_action(action: Any) -> None:
    assert rejected_fields(raw_event(action=action)) == {"action"}


# ---------------------------------------------------------------- user_id


@pytest.mark.parametrize(
    "user_id",
    ["u", "a/b", "John Smith", "é" * 128, "😀" * 128, "用户" * 64, "#x#", "a\u2028b", "x" * 128],
    ids=["one-char", "slash", "space", "128-e-acute", "128-emoji", "128-cjk", "hashes", "line-separator", "128-ascii"],
)
def test_user_id_of_1_to_128_characters_without_control_characters_is_accepted(user_id: str) -> None:
    assert prepare(raw_event(user_id=user_id)).user_id == user_id


@pytest.mark.parametrize(
    "user_id",
    ["", "x" * 129, "é" * 129, "a\x00b", "a\nb", "a\tb", "a\x7fb", "a\x85b", "\x1b[31m", 42, None],
    ids=["empty", "129-ascii", "129-e-acute", "nul", "newline", "tab", "del", "nel", "escape", "int", "missing"],
)
def test_user_id_missing_too_long_or_with_control_characters_is_a_422_on_user_id(user_id: Any) -> None:
    assert rejected_fields(raw_event(user_id=user_id)) == {"user_id"}


def test_missing_user_id_and_action_are_both_listed() -> None:
    assert rejected_fields({"event_id": "evt-1"}) == {"user_id", "action"}


@pytest.mark.parametrize(
    "raw", [[], ["user-1"], "event", 42, None, True], ids=["list", "list1", "str", "int", "null", "bool"]
)
def test_an_event_that_is_not_an_object_is_a_422(raw: Any) -> None:
    with pytest.raises(ValidationFailed):
        prepare(raw)


# ---------------------------------------------------------------- occurred_at


@pytest.mark.parametrize(
    "occurred_at",
    ["2025-10-10T11:00:00", "2025-10-10", "yesterday", "", "2025-13-01T00:00:00Z"],
    ids=["no-offset", "date-only", "words", "empty", "month-13"],
)
def test_occurred_at_that_is_not_an_rfc3339_time_with_offset_is_a_422(occurred_at: str) -> None:
    assert rejected_fields(raw_event(occurred_at=occurred_at)) == {"occurred_at"}


@pytest.mark.parametrize(
    "occurred_at",
    ["1970-01-01T00:00:00Z", "1999-12-31T23:59:59.999Z", "2000-01-01T00:30:00+01:00"],
    ids=["epoch", "last-ms-of-1999", "2000-local-but-1999-utc"],
)
def test_occurred_at_before_2000_is_a_422_too_early(occurred_at: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        prepare(raw_event(occurred_at=occurred_at))
    assert caught.value.details == [
        {"field": "occurred_at", "message": "must not be before 2000-01-01T00:00:00Z", "type": "too_early"}
    ]


def test_occurred_at_on_the_first_instant_of_2000_is_accepted() -> None:
    assert prepare(raw_event(occurred_at="2000-01-01T00:00:00Z")).occurred_at == datetime(2000, 1, 1, tzinfo=UTC)


def test_occurred_at_exactly_one_hour_after_received_is_accepted() -> None:
    occurred = RECEIVED + timedelta(hours=1)
    assert prepare(raw_event(occurred_at=format_utc(occurred))).occurred_at == occurred


@pytest.mark.parametrize("ahead", [timedelta(hours=1, milliseconds=1), timedelta(hours=2), timedelta(days=365)])
def test_occurred_at_more_than_one_hour_after_received_is_a_422_too_late(ahead: timedelta) -> None:
    with pytest.raises(ValidationFailed) as caught:
        prepare(raw_event(occurred_at=format_utc(RECEIVED + ahead)))
    assert [detail["type"] for detail in caught.value.details] == ["too_late"]
    assert caught.value.details[0]["field"] == "occurred_at"


@pytest.mark.parametrize(
    "fields",
    [
        {"occurred_at": "0001-01-01T00:00:00+01:00"},
        {"occurred_at": "9999-12-31T23:59:59-01:00"},
        {"occurred_at": "9999-12-31T23:00:00Z", "sent_at": "2000-01-01T00:00:00Z"},
        {"occurred_at": "2025-10-10T11:00:00Z", "sent_at": "0001-01-01T00:00:00+01:00"},
    ],
    ids=["year-1-with-offset", "year-9999-with-offset", "skew-past-year-9999", "sent-at-year-1-with-offset"],
)
def test_times_at_the_edge_of_the_calendar_are_a_422_not_a_crash(fields: dict[str, str]) -> None:
    # Given times that parse but whose UTC value or skew correction leaves Python's calendar
    # When the event is prepared
    # Then it is refused like any other time out of bounds (a 422), not an OverflowError (a 500)
    with pytest.raises(ValidationFailed):
        prepare(raw_event(**fields))


# ---------------------------------------------------------------- sent_at: clock-skew correction


@pytest.mark.parametrize(
    ("occurred_at", "sent_at", "expected"),
    [
        # The client's clock is 5 minutes behind: everything it says happened 5 minutes later.
        ("2025-10-10T11:50:00Z", "2025-10-10T11:55:00Z", datetime(2025, 10, 10, 11, 55, tzinfo=UTC)),
        # The client's clock is 10 minutes ahead.
        ("2025-10-10T12:05:00Z", "2025-10-10T12:10:00Z", datetime(2025, 10, 10, 11, 55, tzinfo=UTC)),
        # Offsets are instants: the same skew written in another zone.
        ("2025-10-10T14:50:00+03:00", "2025-10-10T14:55:00+03:00", datetime(2025, 10, 10, 11, 55, tzinfo=UTC)),
        # No skew.
        ("2025-10-10T11:00:00Z", "2025-10-10T12:00:00Z", datetime(2025, 10, 10, 11, 0, tzinfo=UTC)),
    ],
    ids=["client-behind", "client-ahead", "offsets", "no-skew"],
)
def test_sent_at_corrects_occurred_at_by_the_clock_skew(occurred_at: str, sent_at: str, expected: datetime) -> None:
    # Given an event whose client clock read sent_at when the server's read RECEIVED
    # When it is prepared
    record = prepare(raw_event(occurred_at=occurred_at, sent_at=sent_at))
    # Then occurred_at moved by received_at - sent_at
    assert record.occurred_at == expected


def test_sent_at_without_occurred_at_leaves_the_time_received() -> None:
    record = prepare(raw_event(occurred_at=None, sent_at="2025-10-10T09:00:00Z"))
    assert record.occurred_at == RECEIVED


def test_the_bounds_apply_to_the_corrected_time() -> None:
    # Given a client clock two hours ahead: its occurred_at looks 1.5 h in the future
    raw = raw_event(occurred_at="2025-10-10T13:30:00Z", sent_at="2025-10-10T14:00:00Z")
    # When it is prepared, Then the corrected time (30 minutes ago) is accepted
    assert prepare(raw).occurred_at == datetime(2025, 10, 10, 11, 30, tzinfo=UTC)
    # And a correction that lands before 2000 (a client clock one second ahead) is refused
    assert rejected_fields(raw_event(occurred_at="2000-01-01T00:00:00Z", sent_at="2025-10-10T12:00:01Z")) == {
        "occurred_at"
    }


def test_sent_at_without_an_offset_is_a_422() -> None:
    assert rejected_fields(raw_event(sent_at="2025-10-10T12:00:00")) == {"sent_at"}


# ---------------------------------------------------------------- metadata and sizes


def metadata_of_size(size: int) -> dict[str, str]:
    """An object whose compact serialization is ``size`` bytes: ``{"k":"xxx..."}``."""
    overhead = len(json.dumps({"k": ""}, separators=(",", ":")))
    return {"k": "x" * (size - overhead)}


def test_metadata_of_16_kib_is_accepted() -> None:
    metadata = metadata_of_size(MAX_METADATA_BYTES)
    assert prepare(raw_event(metadata=metadata)).metadata == metadata


def test_metadata_over_16_kib_is_a_422_on_metadata() -> None:
    assert rejected_fields(raw_event(metadata=metadata_of_size(MAX_METADATA_BYTES + 1))) == {"metadata"}


def test_metadata_size_counts_utf8_bytes() -> None:
    # Given 8,193 two-byte characters: 8,193 characters but over 16 KiB of UTF-8
    assert rejected_fields(raw_event(metadata={"k": "é" * 8193})) == {"metadata"}


@pytest.mark.parametrize("metadata", [[1, 2], "text", 3, True], ids=["list", "str", "int", "bool"])
def test_metadata_that_is_not_an_object_is_a_422(metadata: Any) -> None:
    assert rejected_fields(raw_event(metadata=metadata)) == {"metadata"}


def test_an_event_over_32_kib_is_payload_too_large() -> None:
    # Given an event over 32 KiB (its unknown fields count too)
    raw = raw_event(padding="x" * MAX_EVENT_BYTES)
    # When it is prepared, Then it is a 413
    with pytest.raises(PayloadTooLarge) as caught:
        prepare(raw)
    assert caught.value.status == 413
    assert caught.value.code == "payload_too_large"


def test_an_event_of_exactly_32_kib_is_not_too_large() -> None:
    base = raw_event()
    overhead = len(json.dumps({**base, "padding": ""}, separators=(",", ":")).encode())
    raw = {**base, "padding": "x" * (MAX_EVENT_BYTES - overhead)}
    assert prepare(raw).event_id == "evt-1"


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("where", ["metadata", "unknown-field"])
def test_nan_and_infinity_anywhere_are_a_422(number: float, where: str) -> None:
    raw = raw_event(metadata={"value": number}) if where == "metadata" else raw_event(score=number)
    with pytest.raises(ValidationFailed):
        prepare(raw)


# ---------------------------------------------------------------- anything at all


def json_values(strings: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | strings
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(strings, children, max_size=4),
        max_leaves=12,
    )


def rfc3339(moment: datetime) -> str:
    return moment.isoformat()


OFFSETS = st.just(UTC) | st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
TIMES = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=OFFSETS).map(
    rfc3339
)
# Any text, including lone surrogates (JSON's "\\ud800" decodes to one).
TEXT = st.text(max_size=20) | st.text(st.characters(categories=["Cs", "Ll", "Cc"]), max_size=5)
FIELD_VALUES = {
    "event_id": st.text(ID_CHARACTERS, max_size=130) | json_values(TEXT),
    "user_id": TEXT | st.text(min_size=127, max_size=130) | json_values(TEXT),
    "action": st.text(ID_CHARACTERS, max_size=66) | json_values(TEXT),
    "occurred_at": TIMES | json_values(TEXT),
    "sent_at": TIMES | json_values(TEXT),
    "metadata": json_values(TEXT),
}
EVENT_LIKE = st.fixed_dictionaries({}, optional=FIELD_VALUES)


@settings(max_examples=50, deadline=None)
@given(raw=json_values(TEXT) | EVENT_LIKE)
@example(raw={"user_id": "u", "action": "a", "occurred_at": "0001-01-01T00:00:00+01:00"})
@example(
    raw={"user_id": "u", "action": "a", "occurred_at": "9999-12-31T23:00:00+00:00", "sent_at": "2000-01-01T00:00:00Z"}
)
@example(raw={"user_id": "u\ud800", "action": "a"})
@example(raw={"user_id": "u", "action": "a", "metadata": {"x": [[[[[]]]]]}})
def test_any_json_value_becomes_a_record_or_an_api_error(raw: Any) -> None:
    # Given any JSON value a client could send as an event
    # When it is prepared
    outcome = prepare_or_refuse(raw)
    if isinstance(outcome, ApiError):
        # Then it is refused with one of the contract's event errors
        assert outcome.status in {413, 422}
        assert set(outcome.body()["error"]) == {"code", "message", "details"}
    else:
        # Or it is a valid record inside the bounds
        assert datetime(2000, 1, 1, tzinfo=UTC) <= outcome.occurred_at <= RECEIVED + timedelta(hours=1)
        assert outcome.received_at == RECEIVED


def prepare_or_refuse(raw: Any) -> EventRecord | ApiError:
    """The record, or the ApiError; any other exception propagates (and fails the test)."""
    try:
        return prepare(raw)
    except ApiError as error:
        return error


# ---------------------------------------------------------------- hostile round two: shapes, types, names


def nested(depth: int) -> dict[str, Any]:
    """A metadata object ``depth`` levels deep (the object itself is level 1)."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize("depth", [1, 2, MAX_METADATA_DEPTH])
def test_metadata_up_to_32_levels_is_accepted(depth: int) -> None:
    assert prepare(raw_event(metadata=nested(depth))).metadata == nested(depth)


@pytest.mark.parametrize("depth", [MAX_METADATA_DEPTH + 1, 255, 600])
def test_metadata_deeper_than_32_levels_is_a_422(depth: int) -> None:
    # Given metadata nested past the limit (255 levels was accepted, then no read could serve it)
    # Then it is refused at ingest, naming metadata
    assert rejected_fields(raw_event(metadata=nested(depth))) == {"metadata"}


def test_an_array_counts_as_a_level() -> None:
    deep_list: Any = 1
    for _ in range(MAX_METADATA_DEPTH - 1):
        deep_list = [deep_list]
    # 31 arrays in the object: 32 levels; one more array: 33
    assert prepare(raw_event(metadata={"x": deep_list})).metadata is not None
    assert rejected_fields(raw_event(metadata={"x": [deep_list]})) == {"metadata"}


@settings(deadline=None)
@given(st.recursive(st.none() | st.integers(), lambda inner: st.lists(inner, max_size=2), max_leaves=40))
def test_json_depth_counts_every_nested_container(value: Any) -> None:
    def brute_force(item: Any) -> int:
        if isinstance(item, list):
            return 1 + max((brute_force(child) for child in item), default=0)
        return 0

    assert json_depth({"v": value}) == 1 + brute_force(value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("occurred_at", 1760121005),
        ("occurred_at", "1760121005"),
        ("occurred_at", "2025-10-10T11:00Z"),
        ("occurred_at", "2025-10-10"),
        ("sent_at", 1760121005.5),
        ("user_id", 6),
        ("action", True),
        ("event_id", 1),
        ("metadata", "{}"),
    ],
)
def test_no_value_of_another_json_type_is_converted(field: str, value: Any) -> None:
    # Given a field sent as another JSON type (a number for a time, a string of digits for a time, ...)
    # Then it is a 422 naming that field, not a conversion
    assert rejected_fields(raw_event(**{field: value})) == {field}


def test_user_ids_are_nfc_normalized_so_one_name_is_one_user() -> None:
    # Given the same name spelled composed (NFC) and decomposed (NFD)
    composed, decomposed = "Zoë", unicodedata.normalize("NFD", "Zoë")
    assert composed != decomposed
    # Then both are the same user, stored in NFC
    assert prepare(raw_event(user_id=composed)).user_id == composed
    assert prepare(raw_event(user_id=decomposed)).user_id == composed


def test_the_user_id_length_is_counted_after_normalization() -> None:
    decomposed = unicodedata.normalize("NFD", "é") * 128  # 256 code points, 128 once composed
    assert prepare(raw_event(user_id=decomposed)).user_id == "é" * 128
    assert rejected_fields(raw_event(user_id="é" * 129)) == {"user_id"}
