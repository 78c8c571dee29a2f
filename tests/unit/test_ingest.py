"""Idempotent ingest: fingerprints, duplicates, 409 conflicts and batch results, on the in-memory store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import InMemoryEventStore
from tracker.errors import Conflict, Unavailable
from tracker.events import ingest_batch, prepare_event, store_event
from tracker.ingest_models import MAX_EVENT_BYTES, BatchResult

from .support import OTHER_TENANT, RECEIVED, TENANT, raw_event

LATER = RECEIVED + timedelta(minutes=3)


def batch(
    store: InMemoryEventStore, events: list[Any], received_at: datetime = RECEIVED, concurrency: int = 4
) -> BatchResult:
    return ingest_batch(store, events, TENANT, received_at, concurrency)


# ---------------------------------------------------------------- fingerprint


def test_a_retry_with_another_sent_at_is_the_same_event() -> None:
    # Given the same event sent twice: the retry carries a new sent_at and arrives later
    first = prepare_event(raw_event(sent_at="2025-10-10T11:59:59Z"), TENANT, RECEIVED)
    retry = prepare_event(raw_event(sent_at="2025-10-10T12:02:58Z"), TENANT, LATER)
    # Then both have the same fingerprint
    assert first.fingerprint == retry.fingerprint


def test_the_fingerprint_ignores_key_order_and_the_offset_an_instant_is_written_in() -> None:
    first = prepare_event(raw_event(occurred_at="2025-10-10T11:00:00Z", metadata={"a": 1, "b": 2}), TENANT, RECEIVED)
    second = prepare_event(raw_event(occurred_at="2025-10-10T14:00:00+03:00", metadata={"b": 2, "a": 1}), TENANT, LATER)
    assert first.fingerprint == second.fingerprint


@pytest.mark.parametrize(
    "change",
    [
        {"user_id": "user-2"},
        {"action": "logout"},
        {"occurred_at": "2025-10-10T11:00:01Z"},
        {"occurred_at": None},
        {"metadata": {"a": 1}},
    ],
    ids=["user", "action", "occurred_at", "no-occurred_at", "metadata"],
)
def test_other_content_has_another_fingerprint(change: dict[str, Any]) -> None:
    first = prepare_event(raw_event(), TENANT, RECEIVED)
    other = prepare_event(raw_event(**change), TENANT, RECEIVED)
    assert first.fingerprint != other.fingerprint


# ---------------------------------------------------------------- one event


def test_a_new_event_is_accepted(event_store: InMemoryEventStore) -> None:
    record = prepare_event(raw_event(), TENANT, RECEIVED)
    stored = store_event(event_store, record)
    assert stored.status == "accepted"
    assert stored.to_status().model_dump(mode="json") == {
        "event_id": "evt-1",
        "received_at": "2025-10-10T12:00:00.000Z",
        "status": "accepted",
    }
    assert list(event_store.records) == [(TENANT, "evt-1")]


def test_the_same_event_again_is_a_duplicate_with_the_first_received_at(event_store: InMemoryEventStore) -> None:
    # Given an event stored at RECEIVED
    store_event(event_store, prepare_event(raw_event(sent_at="2025-10-10T12:00:00Z"), TENANT, RECEIVED))
    # When a retry of it arrives three minutes later with a new sent_at
    again = store_event(event_store, prepare_event(raw_event(sent_at="2025-10-10T12:03:00Z"), TENANT, LATER))
    # Then it is a duplicate that reports the first received_at, and one record is stored
    assert again.status == "duplicate"
    assert again.record.received_at == RECEIVED
    assert len(event_store.records) == 1


def test_the_same_id_with_other_content_is_a_conflict(event_store: InMemoryEventStore) -> None:
    store_event(event_store, prepare_event(raw_event(), TENANT, RECEIVED))
    with pytest.raises(Conflict) as caught:
        store_event(event_store, prepare_event(raw_event(action="logout"), TENANT, LATER))
    assert caught.value.status == 409
    assert caught.value.code == "conflict"
    # And the stored event is unchanged
    assert event_store.records[(TENANT, "evt-1")].action == "login"


def test_event_ids_are_per_tenant(event_store: InMemoryEventStore) -> None:
    # Given tenant A's event evt-1
    store_event(event_store, prepare_event(raw_event(), TENANT, RECEIVED))
    # When tenant B sends another evt-1
    stored = store_event(event_store, prepare_event(raw_event(action="logout"), OTHER_TENANT, LATER))
    # Then it is B's own new event
    assert stored.status == "accepted"
    assert len(event_store.records) == 2


def test_a_store_that_is_down_is_a_503(event_store: InMemoryEventStore) -> None:
    event_store.down = True
    with pytest.raises(Unavailable) as caught:
        store_event(event_store, prepare_event(raw_event(), TENANT, RECEIVED))
    assert caught.value.status == 503
    assert caught.value.headers == {"Retry-After": "1"}


# ---------------------------------------------------------------- batches


def test_a_batch_gives_one_result_per_event_in_order(event_store: InMemoryEventStore) -> None:
    # Given five events, the third one bad
    events = [raw_event(event_id=f"evt-{n}") for n in range(5)]
    events[2] = raw_event(event_id="evt-2", action="log in")
    # When they are ingested as a batch
    result = batch(event_store, events)
    # Then the results follow the order of the batch, and only the bad one is rejected
    assert [r.index for r in result.results] == [0, 1, 2, 3, 4]
    assert [r.status for r in result.results] == ["accepted", "accepted", "rejected", "accepted", "accepted"]
    assert [r.event_id for r in result.results] == ["evt-0", "evt-1", None, "evt-3", "evt-4"]
    assert (result.accepted, result.duplicates, result.rejected) == (4, 0, 1)
    assert sorted(event_id for _, event_id in event_store.records) == ["evt-0", "evt-1", "evt-3", "evt-4"]


def test_a_rejected_event_carries_its_error_in_the_contract_shape(event_store: InMemoryEventStore) -> None:
    result = batch(event_store, [raw_event(user_id=None, action="a b")])
    (only,) = result.results
    assert only.status == "rejected"
    assert only.error is not None
    error = only.error.model_dump()
    assert error["code"] == "validation_error"
    assert {detail["field"] for detail in error["details"]} == {"user_id", "action"}
    assert set(error) == {"code", "message", "details"}


def test_duplicates_within_one_batch_are_stored_once(event_store: InMemoryEventStore) -> None:
    # Given a batch that holds the same event twice (a client that resent it inside the batch)
    result = batch(event_store, [raw_event(), raw_event(event_id="evt-2"), raw_event(sent_at="2025-10-10T12:00:00Z")])
    # Then the first copy is accepted, the second is a duplicate, and it is written once
    assert [r.status for r in result.results] == ["accepted", "accepted", "duplicate"]
    assert [r.event_id for r in result.results] == ["evt-1", "evt-2", "evt-1"]
    assert (result.accepted, result.duplicates, result.rejected) == (2, 1, 0)
    assert event_store.put_calls == 2


def test_the_same_id_with_other_content_within_one_batch_rejects_the_second(event_store: InMemoryEventStore) -> None:
    result = batch(event_store, [raw_event(), raw_event(action="logout")])
    assert [r.status for r in result.results] == ["accepted", "rejected"]
    assert result.results[1].error is not None
    assert result.results[1].error.code == "conflict"
    assert result.results[1].event_id == "evt-1"
    assert event_store.records[(TENANT, "evt-1")].action == "login"


def test_a_batch_retry_is_all_duplicates(event_store: InMemoryEventStore) -> None:
    events = [raw_event(event_id=f"evt-{n}") for n in range(3)]
    batch(event_store, events)
    again = batch(event_store, events, received_at=LATER)
    assert [r.status for r in again.results] == ["duplicate"] * 3
    assert (again.accepted, again.duplicates, again.rejected) == (0, 3, 0)
    assert len(event_store.records) == 3


def test_a_stored_event_with_other_content_in_a_batch_is_a_conflict_for_that_event_only(
    event_store: InMemoryEventStore,
) -> None:
    batch(event_store, [raw_event()])
    result = batch(event_store, [raw_event(metadata={"changed": True}), raw_event(event_id="evt-2")], received_at=LATER)
    assert [r.status for r in result.results] == ["rejected", "accepted"]
    assert result.results[0].error is not None
    assert result.results[0].error.code == "conflict"


def test_an_event_over_32_kib_in_a_batch_is_rejected_alone(event_store: InMemoryEventStore) -> None:
    result = batch(event_store, [raw_event(padding="x" * MAX_EVENT_BYTES), raw_event(event_id="evt-2")])
    assert [r.status for r in result.results] == ["rejected", "accepted"]
    assert result.results[0].error is not None
    assert result.results[0].error.code == "payload_too_large"


def test_an_event_the_store_cannot_take_is_rejected_with_unavailable(event_store: InMemoryEventStore) -> None:
    # Given a store that throttles the write of evt-2 (after its retries)
    event_store.fail_put = lambda record: record.event_id == "evt-2"
    # When a batch holds evt-1, evt-2 and a copy of evt-2
    result = batch(event_store, [raw_event(), raw_event(event_id="evt-2"), raw_event(event_id="evt-2")])
    # Then only the evt-2 entries are rejected, with the store's 503 error, and the client may resend them
    assert [r.status for r in result.results] == ["accepted", "rejected", "rejected"]
    assert {r.error.code for r in result.results if r.error} == {"unavailable"}


def test_a_batch_of_only_bad_events_stores_nothing(event_store: InMemoryEventStore) -> None:
    result = batch(event_store, [{"x": 1}, "event", None, [1]])
    assert (result.accepted, result.duplicates, result.rejected) == (0, 0, 4)
    assert event_store.put_calls == 0


def test_events_of_a_batch_without_ids_are_all_new(event_store: InMemoryEventStore) -> None:
    result = batch(event_store, [raw_event(event_id=None)] * 3)
    assert [r.status for r in result.results] == ["accepted"] * 3
    assert len({r.event_id for r in result.results}) == 3


@settings(max_examples=50, deadline=None)
@given(
    plan=st.lists(
        st.tuples(
            st.sampled_from(["evt-a", "evt-b", "evt-c", "evt-d"]), st.sampled_from(["login", "logout", "bad id"])
        ),
        min_size=1,
        max_size=12,
    ),
    concurrency=st.integers(1, 8),
)
def test_batch_outcomes_match_a_sequential_model(plan: list[tuple[str, str]], concurrency: int) -> None:
    # Given any batch of events drawn from a few ids and actions (some invalid)
    store = InMemoryEventStore()
    events = [raw_event(event_id=event_id, action=action) for event_id, action in plan]
    # When it is ingested with any concurrency
    result = batch(store, events, concurrency=concurrency)
    # Then each outcome is what storing the events one by one, in order, gives
    first_action: dict[str, str] = {}
    expected = []
    for event_id, action in plan:
        if action == "bad id":
            expected.append("rejected")
        elif event_id not in first_action:
            first_action[event_id] = action
            expected.append("accepted")
        else:
            expected.append("duplicate" if first_action[event_id] == action else "rejected")
    assert [r.status for r in result.results] == expected
    assert {event_id: record.action for (_, event_id), record in store.records.items()} == first_action
    assert result.accepted + result.duplicates + result.rejected == len(plan)


def test_received_at_of_a_batch_is_one_instant() -> None:
    store = InMemoryEventStore()
    moment = datetime(2025, 10, 10, 12, 0, 0, 123000, tzinfo=UTC)
    batch(store, [raw_event(event_id=f"evt-{n}", occurred_at=None) for n in range(3)], received_at=moment)
    assert {record.received_at for record in store.records.values()} == {moment}
    assert {record.occurred_at for record in store.records.values()} == {moment}
