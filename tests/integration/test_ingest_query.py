"""Ingest and query through the real handlers on the real (moto) tables: idempotency, user ids, pages."""

from __future__ import annotations

import itertools
import json
import string
import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from local_stack.template import Template
from tests.fakes import brute_force_user_events
from tracker.ingest_models import MAX_EVENT_BYTES, MAX_METADATA_BYTES, MAX_METADATA_DEPTH
from tracker.json_shape import compact_json, json_depth
from tracker.models import LAST_MILLISECOND

from .support import (
    Functions,
    admin_call,
    api_event,
    assert_error_shape,
    create_tenant,
    event_store,
    patch_tenant,
    tenant_context,
)

TENANT = "ten_ingest0000000001"
OTHER_TENANT = "ten_ingest0000000002"
USER_EVENTS = "/v1/users/{user_id}/events"


def post_event(body: Any, tenant_id: str = TENANT) -> dict[str, Any]:
    return api_event("POST", "/v1/events", authorizer=tenant_context(tenant_id), body=body)


def post_batch(events: list[Any], tenant_id: str = TENANT) -> dict[str, Any]:
    return api_event("POST", "/v1/events/batch", authorizer=tenant_context(tenant_id), body={"events": events})


def get_events(user_id: str, query: dict[str, str] | None = None, tenant_id: str = TENANT) -> dict[str, Any]:
    return api_event(
        "GET", USER_EVENTS, authorizer=tenant_context(tenant_id), path_parameters={"user_id": user_id}, query=query
    )


def items_of_table(dynamodb: Any, template: Template) -> list[dict[str, Any]]:
    table = template.functions["IngestFunction"].environment["EVENTS_TABLE"]
    items: list[dict[str, Any]] = dynamodb.scan(TableName=table)["Items"]
    return items


def all_pages(
    functions: Functions, user_id: str, query: dict[str, str], tenant_id: str = TENANT
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        answer = functions.http(get_events(user_id, {**query, **({"cursor": cursor} if cursor else {})}, tenant_id))
        assert answer.status == 200, answer.body
        items += answer.body["items"]
        cursor = answer.body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("paging did not end")


# ---------------------------------------------------------------- idempotency on the real table

EVENT = {
    "event_id": "evt-idem-1",
    "user_id": "user-1",
    "action": "document.delete",
    "occurred_at": "2025-10-10T18:30:00+03:00",
    "metadata": {"document_id": "doc_981", "nested": {"a": [1, 2.5, "x"]}},
}


def test_the_same_event_twice_is_one_item(functions: Functions, template: Template, dynamodb: Any) -> None:
    # Given an event posted once
    first = functions.http(post_event(EVENT))
    assert first.status == 201
    assert first.body["status"] == "accepted"
    # When it is posted again, as a client retry with its own sent_at
    again = functions.http(post_event({**EVENT, "sent_at": datetime.now(UTC).isoformat()}))
    # Then the answer is a 200 duplicate with the first received_at, and the table holds one item
    assert again.status == 200
    assert again.body == {"event_id": "evt-idem-1", "received_at": first.body["received_at"], "status": "duplicate"}
    items = items_of_table(dynamodb, template)
    assert len(items) == 1
    assert items[0]["pk"]["S"] == f"{TENANT}#evt-idem-1"


def test_the_same_id_with_other_content_is_a_409_and_the_item_is_unchanged(
    functions: Functions, template: Template, dynamodb: Any
) -> None:
    assert functions.http(post_event(EVENT)).status == 201
    before = items_of_table(dynamodb, template)
    answer = functions.http(post_event({**EVENT, "metadata": {"document_id": "doc_982"}}))
    assert_error_shape(answer, 409, "conflict")
    assert items_of_table(dynamodb, template) == before


def test_a_batch_resent_is_all_duplicates_and_adds_no_item(
    functions: Functions, template: Template, dynamodb: Any
) -> None:
    events = [{**EVENT, "event_id": f"evt-b{n}"} for n in range(5)]
    first = functions.http(post_batch(events))
    assert (first.body["accepted"], first.body["duplicates"], first.body["rejected"]) == (5, 0, 0)
    again = functions.http(post_batch(events))
    assert (again.body["accepted"], again.body["duplicates"], again.body["rejected"]) == (0, 5, 0)
    assert len(items_of_table(dynamodb, template)) == 5
    # And a single-event retry of a batch event is a duplicate too
    assert functions.http(post_event(events[0])).status == 200


def test_the_same_event_id_in_two_tenants_is_two_events(
    functions: Functions, template: Template, dynamodb: Any
) -> None:
    assert functions.http(post_event(EVENT)).status == 201
    assert functions.http(post_event({**EVENT, "action": "other"}, OTHER_TENANT)).status == 201
    assert len(items_of_table(dynamodb, template)) == 2


def test_a_stored_event_reads_back_as_it_was_sent(functions: Functions) -> None:
    received = functions.http(post_event(EVENT)).body["received_at"]
    (item,) = functions.http(get_events("user-1")).body["items"]
    assert item == {
        "event_id": "evt-idem-1",
        "user_id": "user-1",
        "action": "document.delete",
        "occurred_at": "2025-10-10T15:30:00.000Z",
        "received_at": received,
        "metadata": {"document_id": "doc_981", "nested": {"a": [1, 2.5, "x"]}},
    }


# ---------------------------------------------------------------- user ids that need encoding


@pytest.mark.parametrize(
    "user_id",
    ["a/b c é", "user/42", "Олена Коваль", "50% off+more", "a?b#c&d=e", "😀 emoji", "..", "tab-less\u00a0nbsp"],
)
def test_a_user_id_round_trips_through_ingest_and_query(functions: Functions, user_id: str) -> None:
    # Given events of a user id with characters that must be percent-encoded in a path
    for n in range(3):
        body = {"event_id": f"evt-{n}", "user_id": user_id, "action": "login", "occurred_at": f"2025-10-10T10:0{n}:00Z"}
        assert functions.http(post_event(body)).status == 201
    # And another user whose id is a prefix of it
    assert functions.http(post_event({"event_id": "evt-x", "user_id": user_id[:1], "action": "login"})).status == 201
    # When the user's events are read in pages of two (path percent-encoded, path parameter decoded)
    event = get_events(user_id, {"limit": "2"})
    assert event["path"] == f"/v1/users/{quote(user_id, safe='')}/events"
    items = all_pages(functions, user_id, {"limit": "2"})
    # Then exactly that user's events come back, with the user id intact
    assert [item["event_id"] for item in items] == ["evt-0", "evt-1", "evt-2"]
    assert {item["user_id"] for item in items} == {user_id}


def test_another_tenant_sees_nothing_of_a_user_with_the_same_id(functions: Functions) -> None:
    assert functions.http(post_event(EVENT)).status == 201
    assert functions.http(get_events("user-1", tenant_id=OTHER_TENANT)).body == {"items": [], "next_cursor": None}


# ---------------------------------------------------------------- ranges and order on the real index


def test_the_range_is_half_open_and_order_and_action_apply(functions: Functions) -> None:
    events = [
        {
            "event_id": f"evt-{n}",
            "user_id": "u",
            "action": "view" if n % 2 else "login",
            "occurred_at": f"2025-10-10T10:0{n}:00Z",
        }
        for n in range(6)
    ]
    assert functions.http(post_batch(events)).body["accepted"] == 6
    query = {"from": "2025-10-10T10:01:00Z", "to": "2025-10-10T10:04:00Z"}
    assert [i["event_id"] for i in all_pages(functions, "u", query)] == ["evt-1", "evt-2", "evt-3"]
    assert [i["event_id"] for i in all_pages(functions, "u", {**query, "order": "desc"})] == ["evt-3", "evt-2", "evt-1"]
    assert [i["event_id"] for i in all_pages(functions, "u", {"action": "view", "limit": "1"})] == [
        "evt-1",
        "evt-3",
        "evt-5",
    ]
    # An offset in the query string: 13:01+03:00 is 10:01Z ("+" arrives as a space when not encoded)
    assert [i["event_id"] for i in all_pages(functions, "u", {"from": "2025-10-10T13:04:00 03:00"})] == [
        "evt-4",
        "evt-5",
    ]


def test_from_and_to_with_sub_millisecond_precision_keep_the_range_half_open(functions: Functions) -> None:
    # Given events at 10:00:00.000 and 10:00:00.001
    for n, moment in enumerate(["2025-10-10T10:00:00.000Z", "2025-10-10T10:00:00.001Z"]):
        assert (
            functions.http(
                post_event({"event_id": f"evt-{n}", "user_id": "u", "action": "a", "occurred_at": moment})
            ).status
            == 201
        )
    # When from is 10:00:00.000500 (after the first event) and to is 10:00:00.001500 (after the second)
    items = all_pages(functions, "u", {"from": "2025-10-10T10:00:00.000500Z", "to": "2025-10-10T10:00:00.001500Z"})
    # Then only the second event is in [from, to)
    assert [item["event_id"] for item in items] == ["evt-1"]


def test_a_full_last_page_may_end_with_a_cursor_but_never_loses_or_repeats(functions: Functions) -> None:
    events = [
        {"event_id": f"evt-{n:02d}", "user_id": "u", "action": "a", "occurred_at": "2025-10-10T10:00:00Z"}
        for n in range(10)
    ]
    assert functions.http(post_batch(events)).body["accepted"] == 10
    for limit in ("1", "3", "5", "10", "11"):
        items = all_pages(functions, "u", {"limit": limit})
        assert [item["event_id"] for item in items] == [f"evt-{n:02d}" for n in range(10)], limit


RUNS = itertools.count()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seconds=st.lists(st.integers(0, 20), max_size=25),
    actions=st.lists(st.sampled_from(["login", "view"]), min_size=1, max_size=25),
    start=st.none() | st.integers(0, 21),
    length=st.none() | st.integers(1, 21),
    action=st.none() | st.sampled_from(["login", "view"]),
    descending=st.booleans(),
    limit=st.integers(1, 6),
)
def test_paging_on_the_real_index_yields_the_brute_force_answer(
    functions: Functions,
    template: Template,
    dynamodb: Any,
    seconds: list[int],
    actions: list[str],
    start: int | None,
    length: int | None,
    action: str | None,
    descending: bool,
    limit: int,
) -> None:
    # Given events of one fresh user (one per example: the table outlives the examples), many sharing a time
    run = next(RUNS)
    user_id = f"user {run}"
    t0 = datetime(2025, 10, 10, 10, 0, tzinfo=UTC)
    store = event_store(template, dynamodb)
    from tracker.events import prepare_event

    expected = []
    for index, second in enumerate(seconds):
        occurred = t0 + timedelta(seconds=second)
        raw = {
            "event_id": f"r{run}-e{index:02d}",
            "user_id": user_id,
            "action": actions[index % len(actions)],
            "occurred_at": occurred.isoformat(),
        }
        record = prepare_event(raw, TENANT, datetime.now(UTC))
        assert store.put_new(record) is None
        expected.append(record)
    query: dict[str, str] = {"limit": str(limit), "order": "desc" if descending else "asc"}
    lower = None if start is None else t0 + timedelta(seconds=start)
    upper = None if length is None else (lower or t0) + timedelta(seconds=length)
    if lower is not None:
        query["from"] = lower.isoformat()
    if upper is not None:
        query["to"] = upper.isoformat()
    if action is not None:
        query["action"] = action
    # When the handler pages through them
    seen = [item["event_id"] for item in all_pages(functions, user_id, query)]
    # Then the pages are the brute-force answer
    assert seen == brute_force_user_events(expected, TENANT, user_id, lower, upper, action, descending)


# ---------------------------------------------------------------- tenants on the real table


def test_a_duplicate_tenant_name_in_another_case_is_a_409(functions: Functions) -> None:
    create_tenant(functions, "Shop A")
    answer = admin_call(functions, "POST", "/v1/tenants", body={"name": "SHOP a"})
    assert_error_shape(answer, 409, "conflict")


def test_a_created_tenant_shows_once_with_its_fields_and_never_a_key(functions: Functions) -> None:
    created = create_tenant(functions, "Shop A")
    assert set(created) >= {"tenant_id", "name", "timezone", "active", "created_at", "key_id", "api_key"}
    assert created["timezone"] == "UTC"
    assert created["active"] is True
    assert created["created_at"].endswith("Z")
    listed = admin_call(functions, "GET", "/v1/tenants").body
    assert [item["tenant_id"] for item in listed["items"]] == [created["tenant_id"]]
    assert "api_key" not in json.dumps(listed)
    assert "key_id" not in json.dumps(listed)


def test_listing_tenants_in_pages_ends_with_a_null_cursor_on_the_last_page(functions: Functions) -> None:
    # Given four tenants
    ids = [create_tenant(functions, f"Shop {n}")["tenant_id"] for n in range(4)]
    # When they are listed two by two
    seen, cursor, pages = [], None, []
    for _ in range(10):
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = admin_call(functions, "GET", "/v1/tenants", query=query).body
        pages.append(len(page["items"]))
        seen += [item["tenant_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Then every tenant shows once, and the page holding the last one has a null next_cursor
    assert sorted(seen) == sorted(ids)
    assert pages == [2, 2]


def test_a_rate_limit_patch_round_trips_and_null_restores_the_default(functions: Functions) -> None:
    created = create_tenant(functions, "Shop A")

    def patch(body: dict[str, Any]) -> dict[str, Any]:
        answer = patch_tenant(functions, created["tenant_id"], body)
        assert answer.status == 200, answer.body
        result: dict[str, Any] = answer.body
        return result

    assert patch({"rate_limit": {"rate": 5, "burst": 10}})["rate_limit"] == {"rate": 5, "burst": 10}
    assert patch({"active": False})["rate_limit"] == {"rate": 5, "burst": 10}
    restored = patch({"rate_limit": None})
    assert restored.get("rate_limit") is None
    assert restored["active"] is False


# ---------------------------------------------------------------- whatever is accepted can be read back

JSON_NUMBERS = (
    st.integers(-(10**20), 10**20)
    | st.integers(min_value=10**300, max_value=10**4000)  # past every float, up to Python's digit limit
    | st.floats(allow_nan=False, allow_infinity=False)  # -0.0, 5e-324, 1.7976931348623157e308
    | st.sampled_from([0, -0.0, 2**53 + 1, -(2**63), 2**64, 1e308, 5e-324])
)
# Any Unicode text a JSON document can hold (no lone surrogates): NUL, controls, RTL marks, emoji.
JSON_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
JSON_LEAVES = st.none() | st.booleans() | JSON_NUMBERS | JSON_TEXT
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(JSON_TEXT, inner, max_size=4),
    max_leaves=20,
)
USER_IDS = st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=128)


def nest(value: Any, depth: int) -> dict[str, Any]:
    """``value`` wrapped in objects and arrays to ``depth`` levels in all (``value``'s own included)."""
    levels = depth - json_depth(value)
    for level in range(levels):
        value = [value] if level % 2 else {"k": value}
    return value if isinstance(value, dict) else {"k": value}


def padded(metadata: dict[str, Any], size: int) -> dict[str, Any]:
    """``metadata`` with a ``pad`` string that makes it ``size`` bytes serialized, when it can."""
    base = len(compact_json({**metadata, "pad": ""}).encode())
    return {**metadata, "pad": "p" * max(0, size - base)}


@st.composite
def events_at_the_limits(draw: st.DrawFn) -> dict[str, Any]:
    """An event near one of the limits (or none): metadata depth, metadata size, event size, ids."""
    value = draw(JSON_VALUES)
    limit = draw(st.sampled_from(["depth", "metadata-bytes", "event-bytes", "ids", "free"]))
    metadata: Any = value if isinstance(value, dict) else {"v": value}
    user_id = unicodedata.normalize("NFC", draw(USER_IDS))[:128]
    event_id = draw(st.text(ID_ALPHABET, min_size=1, max_size=128))
    if limit == "depth":
        metadata = nest(value, draw(st.integers(MAX_METADATA_DEPTH - 2, MAX_METADATA_DEPTH + 2)))
    elif limit == "metadata-bytes":
        metadata = padded(metadata, draw(st.integers(MAX_METADATA_BYTES - 2, MAX_METADATA_BYTES + 2)))
    elif limit == "event-bytes":
        # Unknown fields count in the event's size; they are not stored.
        padding = draw(st.integers(MAX_EVENT_BYTES - MAX_METADATA_BYTES - 600, MAX_EVENT_BYTES))
        metadata = padded(metadata, min(MAX_METADATA_BYTES, padding))
        return {"user_id": user_id, "action": "limits", "event_id": event_id, "metadata": metadata, "x": "x" * padding}
    elif limit == "ids":
        user_id = draw(st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=127, max_size=130))
        event_id = draw(st.text(ID_ALPHABET, min_size=127, max_size=130))
    return {
        "user_id": user_id,
        "action": draw(st.text(ID_ALPHABET, min_size=1, max_size=65)),
        "event_id": event_id,
        "metadata": metadata,
    }


ID_ALPHABET = string.ascii_letters + string.digits + "._:-"


def within_limits(body: dict[str, Any]) -> bool:
    """The contract's limits, computed apart from the code under test."""
    metadata = body["metadata"]
    return (
        json_depth(metadata) <= MAX_METADATA_DEPTH
        and len(compact_json(metadata).encode()) <= MAX_METADATA_BYTES
        and len(compact_json(body).encode()) <= MAX_EVENT_BYTES
        and len(unicodedata.normalize("NFC", body["user_id"])) <= 128
        and len(body["event_id"]) <= 128
        and len(body["action"]) <= 64
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=events_at_the_limits())
def test_every_accepted_event_reads_back_through_the_query_route(functions: Functions, body: dict[str, Any]) -> None:
    # Given an event at or around a limit, with any JSON in its metadata (its id unique to the example)
    body = {**body, "event_id": f"r{next(RUNS)}.{body['event_id']}"}
    # When it is posted
    answer = functions.http(post_event(body))
    # Then it is accepted exactly when it is within the contract's limits, and refused with a 4xx otherwise
    assert answer.status in {201, 413, 422}, answer.body
    assert (answer.status == 201) == within_limits(body), answer.body
    event(f"status {answer.status}")
    if answer.status != 201:
        return
    # And once accepted, the query route serves it back, as it was sent
    user_id = unicodedata.normalize("NFC", body["user_id"])
    page = functions.http(get_events(user_id, {"limit": "1000"}))
    assert page.status == 200, page.body
    (item,) = [item for item in page.body["items"] if item["event_id"] == body["event_id"]]
    assert item["metadata"] == json.loads(json.dumps(body["metadata"]))
    assert item["user_id"] == user_id


# ---------------------------------------------------------------- time parameters: never a 500, [from, to) exact

TIME_ZONES = ["UTC", "Pacific/Kiritimati", "Etc/GMT+12", "Europe/Kyiv", "Asia/Kolkata", "Australia/Lord_Howe"]
OFFSETS = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda minutes: timezone(timedelta(minutes=minutes)))
EDGES = [
    datetime(2000, 1, 1, tzinfo=UTC),
    datetime(2026, 11, 1, tzinfo=UTC),
    datetime(2026, 3, 29, 1, tzinfo=UTC),
    datetime.now(UTC).replace(microsecond=0),
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
]
DELTAS = st.sampled_from([0, 1, 999, 1000, 1001, 86_400_000_000]).map(lambda us: timedelta(microseconds=us))
INSTANTS = (
    st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30), timezones=st.just(UTC))
    | st.datetimes(datetime(1999, 12, 30), datetime(2000, 1, 2), timezones=st.just(UTC))
    | st.builds(
        lambda edge, delta, sign: edge + sign * delta, st.sampled_from(EDGES[:-1]), DELTAS, st.sampled_from([-1, 1])
    )
    | st.sampled_from(EDGES)
)


def rfc3339(moment: datetime, offset: timezone, digits: int) -> str:
    """``moment`` written in RFC 3339 at an offset (past the calendar's ends: the UTC spelling),
    with ``digits`` fraction digits (0-6, so that the text is exactly the instant)."""
    try:
        local = moment.astimezone(offset)
    except OverflowError:
        local = moment
    text = f"{local.year:04d}-{local.month:02d}-{local.day:02d}T{local.hour:02d}:{local.minute:02d}:{local.second:02d}"
    if digits:
        text += "." + f"{local.microsecond:06d}"[:digits]
    suffix = local.strftime("%z")
    return f"{text}{'Z' if suffix == '+0000' else suffix[:3] + ':' + suffix[3:]}"


def last_millisecond_up(moment: datetime) -> datetime:
    """The first whole millisecond at or after ``moment`` (or the last one of year 9999)."""
    whole = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    if whole == moment:
        return moment
    return whole if whole == LAST_MILLISECOND else whole + timedelta(milliseconds=1)


def instant_of(text: str) -> datetime | None:
    """The oracle's reading of an RFC 3339 text: the instant, or None past year 9999 in UTC."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except OverflowError:
        return None


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start=INSTANTS,
    delta=DELTAS | st.timedeltas(timedelta(0), timedelta(days=400)),
    offsets=st.tuples(OFFSETS, OFFSETS),
    digits=st.tuples(st.integers(0, 6), st.integers(0, 6)),
)
def test_from_to_filtering_matches_brute_force_at_every_edge(
    functions: Functions,
    start: datetime,
    delta: timedelta,
    offsets: tuple[timezone, timezone],
    digits: tuple[int, int],
) -> None:
    # Given events of a fresh user a millisecond around both ends of a range (where they can be stored)
    run = next(RUNS)
    user_id = f"edges {run}"
    try:
        end = start + delta
    except OverflowError:
        end = datetime.max.replace(tzinfo=UTC)
    latest = datetime.now(UTC) + timedelta(minutes=30)
    stored = []
    near = [edge + timedelta(milliseconds=shift) for edge in (start, end) for shift in (-1, 0, 1) if edge < latest]
    for index, moment in enumerate(near):
        at = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        if datetime(2000, 1, 1, tzinfo=UTC) <= at <= latest:
            event_id = f"edges-{run}-{index}"
            body = {"event_id": event_id, "user_id": user_id, "action": "a", "occurred_at": at.isoformat()}
            assert functions.http(post_event(body)).status in {200, 201}
            stored.append((at, event_id))
    # When the events of [from, to) are asked for, written at any offset and precision
    texts = rfc3339(start, offsets[0], digits[0]), rfc3339(end, offsets[1], digits[1])
    answer = functions.http(get_events(user_id, {"from": texts[0], "to": texts[1], "limit": "1000"}))
    # Then: outside the years 2000 to 9999, or a range holding no whole millisecond (no stored time
    # can lie in it), a 422; otherwise exactly the brute-force answer
    low, high = (instant_of(text) for text in texts)
    bound = datetime(2000, 1, 1, tzinfo=UTC)
    if (
        low is None
        or high is None
        or low < bound
        or high < bound
        or last_millisecond_up(low) >= last_millisecond_up(high)
    ):
        assert_error_shape(answer, 422, "validation_error")
        return
    assert answer.status == 200, (texts, answer.body)
    expected = sorted({event_id for moment, event_id in stored if low <= moment < high})
    assert sorted(item["event_id"] for item in answer.body["items"]) == expected, texts
    assert all(len(item["occurred_at"]) == len("2025-10-10T18:30:00.000Z") for item in answer.body["items"])


TIME_ROUTES = [
    ("GET", USER_EVENTS, {"user_id": "u"}, {}),
    ("GET", "/v1/users/{user_id}/activity", {"user_id": "u"}, {"period": "1h"}),
    ("GET", "/v1/users/{user_id}/activity", {"user_id": "u"}, {"period": "1d"}),
    ("GET", "/v1/stats/trend", None, {}),
    ("GET", "/v1/stats/frequency", None, {}),
    ("GET", "/v1/stats/actions/{action}/daily", {"action": "login"}, {}),
]
TIME_TEXTS = (
    st.builds(rfc3339, INSTANTS, OFFSETS, st.integers(0, 6))
    | st.dates().map(lambda day: f"{day.year:04d}-{day.month:02d}-{day.day:02d}")
    | st.builds(
        lambda day, digits: f"{day}T00:00:00.{digits}Z",
        st.dates(date(2000, 1, 1)),
        st.text("0123456789", min_size=1, max_size=12),
    )
    | st.text(max_size=30)
    | st.sampled_from(["9999-12-31", "9999-12-30", "2000-01-01", "0001-01-01", "0900-01-01T00:00:00Z", "-0001-01-01"])
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(TIME_ROUTES),
    start=st.none() | TIME_TEXTS,
    end=st.none() | TIME_TEXTS,
    zone=st.sampled_from(TIME_ZONES),
)
def test_no_time_parameter_of_any_route_is_a_500(
    functions: Functions,
    route: tuple[str, str, dict[str, str] | None, dict[str, str]],
    start: str | None,
    end: str | None,
    zone: str,
) -> None:
    method, resource, parameters, query = route
    sent = {**query, **({"from": start} if start is not None else {}), **({"to": end} if end is not None else {})}
    context = {**tenant_context(TENANT), "timezone": zone}
    answer = functions.http(api_event(method, resource, authorizer=context, path_parameters=parameters, query=sent))
    assert answer.status in {200, 400, 422}, (sent, zone, answer.body)
    if answer.status != 200:
        assert_error_shape(answer, answer.status, "validation_error" if answer.status == 422 else "bad_request")
    else:
        times = [
            value
            for item in answer.body.get("items", [])
            for key, value in item.items()
            if key in {"start", "end", "occurred_at"}
        ]
        assert all(len(value) == len("2025-10-10T18:30:00.000Z") for value in times), times


def test_a_page_of_large_events_fits_a_lambda_response(functions: Functions, template: Template, dynamodb: Any) -> None:
    # Given 120 events whose metadata is 16 KB of emoji (about 56 KB each once escaped twice)
    store = event_store(template, dynamodb)
    from tracker.events import prepare_event

    metadata = {"blob": "\U0001f600" * 4_000}
    for n in range(120):
        raw = {
            "event_id": f"big-{n:03d}",
            "user_id": "big",
            "action": "a",
            "occurred_at": f"2025-10-10T10:{n // 60:02d}:{n % 60:02d}Z",
            "metadata": metadata,
        }
        assert store.put_new(prepare_event(raw, TENANT, datetime.now(UTC))) is None
    # When a page of 1000 is asked for
    result = functions.invoke("QueryFunction", get_events("big", {"limit": "1000"}))
    # Then the function's whole answer, as the Lambda runtime writes it, is under 6 MB
    assert len(json.dumps(result)) < 6 * 1024 * 1024
    first = json.loads(result["body"])
    assert 0 < len(first["items"]) < 120
    assert first["next_cursor"]
    # And the cursor leads to the rest, every event once
    rest = all_pages(functions, "big", {"limit": "1000", "cursor": first["next_cursor"]})
    assert [item["event_id"] for item in first["items"] + rest] == [f"big-{n:03d}" for n in range(120)]
