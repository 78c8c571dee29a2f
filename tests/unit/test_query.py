"""A user's events in pages: order, ``[from, to)``, action filter, limits and cursors bound to their query."""

from __future__ import annotations

import json
import string
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import InMemoryEventStore, brute_force_user_events
from tracker.cursor import decode_cursor, encode_cursor
from tracker.errors import BadRequest, Unavailable, ValidationFailed
from tracker.event_models import EventOut, EventPage
from tracker.event_reads import OCCURRED_KEY, EventFilter, payload_bytes, query_user_events
from tracker.records import EventRecord

from .support import OTHER_TENANT, RECEIVED, TENANT

T0 = datetime(2025, 10, 10, 8, 0, tzinfo=UTC)
ALL = EventFilter(start=None, end=None, action=None, descending=False, limit=100)


def record(
    event_id: str, minutes: float, action: str = "login", user_id: str = "user-1", tenant_id: str = TENANT
) -> EventRecord:
    return EventRecord(
        tenant_id=tenant_id,
        event_id=event_id,
        user_id=user_id,
        action=action,
        occurred_at=T0 + timedelta(minutes=minutes),
        received_at=RECEIVED,
        metadata={"n": event_id},
        fingerprint=f"fp-{event_id}",
    )


def stored(store: InMemoryEventStore, *records: EventRecord) -> InMemoryEventStore:
    for item in records:
        store.put_new(item)
    return store


def ids(page: EventPage) -> list[str]:
    return [item.event_id for item in page.items]


@pytest.fixture
def day(event_store: InMemoryEventStore) -> InMemoryEventStore:
    """user-1's day: e0..e5 every 10 minutes from 08:00, logins and views; other users and tenants around."""
    return stored(
        event_store,
        record("e3", 30, "view"),
        record("e0", 0),
        record("e5", 50, "view"),
        record("e1", 10, "view"),
        record("e4", 40),
        record("e2", 20),
        record("x1", 5, user_id="user-2"),
        record("x2", 5, tenant_id=OTHER_TENANT),
        record("x3", 5, user_id="user-1/sub"),
    )


def test_events_come_in_time_order_with_their_fields(day: InMemoryEventStore) -> None:
    page = query_user_events(day, TENANT, "user-1", ALL, None)
    assert ids(page) == ["e0", "e1", "e2", "e3", "e4", "e5"]
    assert page.next_cursor is None
    assert page.items[0].model_dump(mode="json") == {
        "event_id": "e0",
        "user_id": "user-1",
        "action": "login",
        "occurred_at": "2025-10-10T08:00:00.000Z",
        "received_at": "2025-10-10T12:00:00.000Z",
        "metadata": {"n": "e0"},
    }


def test_desc_reverses_the_order(day: InMemoryEventStore) -> None:
    page = query_user_events(day, TENANT, "user-1", replace(ALL, descending=True), None)
    assert ids(page) == ["e5", "e4", "e3", "e2", "e1", "e0"]


def test_the_range_is_from_inclusive_to_exclusive(day: InMemoryEventStore) -> None:
    # Given from = e1's time and to = e4's time
    event_filter = replace(ALL, start=T0 + timedelta(minutes=10), end=T0 + timedelta(minutes=40))
    # Then e1 is in and e4 is out
    assert ids(query_user_events(day, TENANT, "user-1", event_filter, None)) == ["e1", "e2", "e3"]


def test_the_action_filter_keeps_one_action(day: InMemoryEventStore) -> None:
    page = query_user_events(day, TENANT, "user-1", replace(ALL, action="view"), None)
    assert ids(page) == ["e1", "e3", "e5"]


def test_another_tenant_sees_nothing_of_a_user_with_the_same_id(day: InMemoryEventStore) -> None:
    assert ids(query_user_events(day, OTHER_TENANT, "user-1", ALL, None)) == ["x2"]


@pytest.mark.parametrize("end_minutes", [0, -1], ids=["from-equals-to", "from-after-to"])
def test_an_empty_or_reversed_range_is_a_422_on_from(day: InMemoryEventStore, end_minutes: int) -> None:
    event_filter = replace(ALL, start=T0, end=T0 + timedelta(minutes=end_minutes))
    with pytest.raises(ValidationFailed) as caught:
        query_user_events(day, TENANT, "user-1", event_filter, None)
    assert caught.value.details[0]["field"] == "from"


def test_pages_follow_each_other_through_the_cursor(day: InMemoryEventStore) -> None:
    # Given a limit of 4
    event_filter = replace(ALL, limit=4)
    # When the first page is read, Then it is full and has a cursor
    first = query_user_events(day, TENANT, "user-1", event_filter, None)
    assert ids(first) == ["e0", "e1", "e2", "e3"]
    assert first.next_cursor is not None
    # And the second page is the rest, the last one
    second = query_user_events(day, TENANT, "user-1", event_filter, first.next_cursor)
    assert ids(second) == ["e4", "e5"]
    assert second.next_cursor is None


def test_a_page_that_ends_exactly_at_the_last_event_has_no_cursor(day: InMemoryEventStore) -> None:
    page = query_user_events(day, TENANT, "user-1", replace(ALL, limit=6), None)
    assert len(page.items) == 6
    assert page.next_cursor is None


def test_a_user_without_events_is_an_empty_last_page(day: InMemoryEventStore) -> None:
    assert query_user_events(day, TENANT, "nobody", ALL, None) == EventPage(items=[], next_cursor=None)


def test_a_store_that_is_down_is_a_503(event_store: InMemoryEventStore) -> None:
    event_store.down = True
    with pytest.raises(Unavailable):
        query_user_events(event_store, TENANT, "user-1", ALL, None)


# ---------------------------------------------------------------- cursors bound to their query


@pytest.mark.parametrize(
    ("tenant_id", "user_id", "change"),
    [
        (OTHER_TENANT, "user-1", {}),
        (TENANT, "user-2", {}),
        (TENANT, "user-1", {"start": T0}),
        (TENANT, "user-1", {"end": T0 + timedelta(hours=1)}),
        (TENANT, "user-1", {"action": "login"}),
        (TENANT, "user-1", {"descending": True}),
    ],
    ids=["other-tenant", "other-user", "other-from", "other-to", "other-action", "other-order"],
)
def test_a_cursor_from_another_tenant_user_or_query_is_a_400(
    day: InMemoryEventStore, tenant_id: str, user_id: str, change: dict[str, object]
) -> None:
    # Given a cursor of user-1's first page of two
    cursor = query_user_events(day, TENANT, "user-1", replace(ALL, limit=2), None).next_cursor
    assert cursor is not None
    # When it is used with another tenant, user or filter
    # Then it is a 400 bad_request
    with pytest.raises(BadRequest) as caught:
        query_user_events(day, tenant_id, user_id, replace(ALL, limit=2, **change), cursor)  # type: ignore[arg-type]
    assert caught.value.status == 400


def test_a_cursor_may_be_used_with_another_limit(day: InMemoryEventStore) -> None:
    cursor = query_user_events(day, TENANT, "user-1", replace(ALL, limit=2), None).next_cursor
    assert ids(query_user_events(day, TENANT, "user-1", replace(ALL, limit=3), cursor)) == ["e2", "e3", "e4"]


BINDING = ("user-events", TENANT, "user-1", None, None, None, "asc")
# Positions of several lengths, so that every padding case of base64 is covered.
POSITIONS = ["2025-10-10T08:00:00.000Z#e", "2025-10-10T08:00:00.000Z#e1", "2025-10-10T08:00:00.000Z#e12"]
CURSOR_CHARACTERS = string.ascii_letters + string.digits + "-_.=+/ "


def test_cursors_round_trip() -> None:
    for position in POSITIONS:
        assert decode_cursor(encode_cursor(position, BINDING), BINDING, OCCURRED_KEY) == position


@pytest.mark.parametrize("position", POSITIONS)
def test_a_cursor_edited_by_one_byte_is_a_400(position: str) -> None:
    # Given a valid cursor
    cursor = encode_cursor(position, BINDING)
    # When any one of its characters is replaced by any other
    accepted = []
    for index, original in enumerate(cursor):
        for replacement in CURSOR_CHARACTERS:
            if replacement == original:
                continue
            edited = cursor[:index] + replacement + cursor[index + 1 :]
            try:
                decode_cursor(edited, BINDING, OCCURRED_KEY)
            except BadRequest:
                continue
            accepted.append(f"{index}:{original}->{replacement}")
    # Then no edited cursor is accepted
    assert accepted == [], f"edited cursors accepted: {accepted[:10]} ({len(accepted)} in all)"


@pytest.mark.parametrize(
    "cursor",
    ["x", ".", "abc.def", "!!!.???", "é.é", "%%%", "a" * 1024, "MjAy.", ".znUIGU1gTLvcVfkYpYm5jA"],
    ids=["one-char", "dot", "short", "symbols", "non-ascii", "percent", "long", "no-digest", "no-position"],
)
def test_a_garbage_cursor_is_a_400(day: InMemoryEventStore, cursor: str) -> None:
    with pytest.raises(BadRequest):
        query_user_events(day, TENANT, "user-1", ALL, cursor)


# ---------------------------------------------------------------- paging equals brute force

USERS = ["u1", "u2"]
ACTIONS = ["login", "view", "buy"]
EVENTS = st.lists(
    st.tuples(
        st.sampled_from(USERS),
        st.sampled_from(ACTIONS),
        st.integers(0, 40),  # seconds after T0: many events share a time
        st.sampled_from([TENANT, OTHER_TENANT]),
    ),
    max_size=40,
)
BOUNDS = st.none() | st.integers(-1, 42).map(lambda seconds: T0 + timedelta(seconds=seconds))


@settings(max_examples=50, deadline=None)
@given(
    events=EVENTS,
    start=BOUNDS,
    end=BOUNDS,
    action=st.none() | st.sampled_from(ACTIONS),
    descending=st.booleans(),
    limits=st.lists(st.integers(1, 7), min_size=1, max_size=10),
)
def test_paging_through_any_query_yields_the_brute_force_answer(
    events: list[tuple[str, str, int, str]],
    start: datetime | None,
    end: datetime | None,
    action: str | None,
    descending: bool,
    limits: list[int],
) -> None:
    # Given any events of two users in two tenants
    store = InMemoryEventStore()
    records = [
        EventRecord(
            tenant_id=tenant_id,
            event_id=f"evt-{index:03d}",
            user_id=user_id,
            action=event_action,
            occurred_at=T0 + timedelta(seconds=seconds),
            received_at=RECEIVED,
            metadata=None,
            fingerprint=str(index),
        )
        for index, (user_id, event_action, seconds, tenant_id) in enumerate(events)
    ]
    stored(store, *records)
    if start is not None and end is not None and start >= end:
        start, end = end, start + timedelta(seconds=1)
    # When u1's events are read page by page, with a different limit on every page
    seen: list[str] = []
    cursor: str | None = None
    for page_number in range(len(records) + 2):
        limit = limits[page_number % len(limits)]
        event_filter = EventFilter(start=start, end=end, action=action, descending=descending, limit=limit)
        page = query_user_events(store, TENANT, "u1", event_filter, cursor)
        assert len(page.items) <= limit
        if cursor is not None:
            assert page.items, "a cursor led to an empty page"
        seen += ids(page)
        if page.next_cursor is None:
            break
        # A page with a cursor is full (and, checked above, more follow it)
        assert len(page.items) == limit
        cursor = page.next_cursor
    else:
        pytest.fail("paging did not end")
    # Then the pages together are the brute-force answer: filtered, ordered by time then id, each once
    assert seen == brute_force_user_events(records, TENANT, "u1", start, end, action, descending)


# ---------------------------------------------------------------- pages that fit a Lambda response


def large_record(event_id: str, minutes: float, text: str) -> EventRecord:
    return record(event_id, minutes).model_copy(update={"metadata": {"blob": text}})


@pytest.mark.parametrize("text", ["x" * 16_000, "\U0001f600" * 4_000, '"\\' * 5_000], ids=["ascii", "emoji", "quotes"])
def test_a_page_is_cut_at_its_byte_budget_and_its_cursor_leads_to_the_rest(text: str) -> None:
    # Given 40 events with large metadata (emoji and quotes grow when escaped, twice, in a Lambda response)
    store = stored(InMemoryEventStore(), *(large_record(f"evt-{n:02d}", n, text) for n in range(40)))
    budget = 400_000
    # When pages of up to 1000 are read under a budget
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = query_user_events(store, TENANT, "user-1", replace(ALL, limit=1000), cursor, budget=budget)
        pages += 1
        # Then each page's items fit the budget as the runtime writes them
        assert sum(payload_bytes(item) for item in page.items) <= budget
        assert page.items
        seen += ids(page)
        cursor = page.next_cursor
        if cursor is None:
            break
    # And together the pages hold every event once, in order
    assert seen == [f"evt-{n:02d}" for n in range(40)]
    assert pages > 1


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.text(st.characters(exclude_categories=["Cs"]))


@settings(max_examples=300, deadline=None)
@given(
    metadata=st.dictionaries(
        st.text(st.characters(exclude_categories=["Cs"])),
        st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner)),
        max_size=4,
    ),
    user_id=st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=20),
)
def test_the_payload_count_is_what_a_lambda_response_holds(metadata: dict[str, object], user_id: str) -> None:
    # Given any item (any Unicode: DEL, controls, quotes, backslashes, emoji; any integer)
    item = EventOut(event_id="e", user_id=user_id, action="a", occurred_at=T0, received_at=T0, metadata=metadata)
    # Then its count is exactly its bytes as the resolver, then the Lambda runtime, write it
    body = json.dumps(item.model_dump(mode="json"), separators=(",", ":"))  # the resolver: ASCII JSON
    assert payload_bytes(item) == len(json.dumps(body)) - 2 + 1  # the runtime: a string in JSON; plus a comma


def test_the_default_budget_keeps_1000_of_the_largest_events_under_6_mb() -> None:
    store = stored(InMemoryEventStore(), *(large_record(f"evt-{n:04d}", n, "\U0001f600" * 4_000) for n in range(200)))
    page = query_user_events(store, TENANT, "user-1", replace(ALL, limit=1000), None)
    assert page.next_cursor is not None
    body = EventPage.model_validate(page).model_dump_json()
    assert len(json.dumps({"statusCode": 200, "body": json.dumps(json.loads(body))})) < 6 * 1024 * 1024
    assert store.query_calls <= 2  # read in chunks of 100, not all 200 at once past the budget


def test_small_events_take_few_reads_of_the_store() -> None:
    # Given 1000 small events, When a page of 1000 is read
    store = stored(InMemoryEventStore(), *(record(f"evt-{n:04d}", n / 100) for n in range(1000)))
    page = query_user_events(store, TENANT, "user-1", replace(ALL, limit=1000), None)
    # Then it holds them all, read in two chunks: 100 first, then the rest the budget has room for
    assert len(page.items) == 1000
    assert page.next_cursor is None
    assert store.query_calls == 2
