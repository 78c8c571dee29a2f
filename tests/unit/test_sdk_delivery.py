"""The SDK's delivery of one batch: retries, backoff, Retry-After, the budget, per-event results, gzip.

Driven through ``Tracker(sync=True)`` (no thread) on a fake clock and a fake ingest API: no sockets.
"""

from __future__ import annotations

import gzip
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activity_tracker import Failure, RetryPolicy, Tracker
from activity_tracker._http import Response
from activity_tracker._retry import parse_retry_after

from .sdk_support import FakeClock, FakeIngestApi, error_response, json_response

POLICY = RetryPolicy(base_seconds=0.5, cap_seconds=8.0, budget_seconds=60.0)


def sync_tracker(
    api: FakeIngestApi, clock: FakeClock, failures: list[Failure] | None = None, **options: Any
) -> Tracker:
    api.clock = clock
    return Tracker(
        "atk_test",
        "http://tracker.invalid",
        sync=True,
        transport=api,
        clock=clock,
        rng=random.Random(1),  # noqa: S311 - reproducible jitter
        on_error=(failures.append if failures is not None else None),
        **{"retry": POLICY, **options},
    )


def track_many(tracker: Tracker, count: int, **metadata: Any) -> None:
    for index in range(count):
        assert tracker.track(f"user-{index % 7}", "view", metadata={"n": index, **metadata})


def test_events_are_sent_in_batches_of_at_most_500() -> None:
    # Given 1,234 events tracked
    api, clock = FakeIngestApi(), FakeClock()
    tracker = sync_tracker(api, clock)
    track_many(tracker, 1234)
    # When flushed
    tracker.flush()
    # Then they left as 500 + 500 + 234, each stored once
    assert [len(sent.events) for sent in api.requests] == [500, 500, 234]
    assert len(api.stored) == 1234
    assert tracker.stats().accepted == 1234


def test_batches_stay_under_the_servers_body_limit_and_are_gzipped() -> None:
    # Given events of about 30 KiB each (under the 32 KiB per event)
    api, clock = FakeIngestApi(), FakeClock()
    tracker = sync_tracker(api, clock)
    track_many(tracker, 100, blob="x" * 30_000)
    tracker.flush()
    # Then every request body, once inflated, is under 1 MiB, and was sent gzip-compressed
    assert len(api.stored) == 100
    for sent in api.requests:
        assert sent.headers["content-encoding"] == "gzip"
        assert len(json.dumps({"events": sent.events}, separators=(",", ":")).encode()) < 1024 * 1024
    # 34 such events fit under 1 MiB, 35 do not: the batches are as full as the limit allows
    assert [len(sent.events) for sent in api.requests] == [34, 34, 32]


def test_an_event_over_32_kib_is_refused_at_once_and_reported() -> None:
    api, clock, failures = FakeIngestApi(), FakeClock(), []
    tracker = sync_tracker(api, clock, failures)
    # When an event of 40 KiB is tracked
    queued = tracker.track("6", "upload", metadata={"blob": "y" * 40_000})
    tracker.flush()
    # Then it is not queued, nothing is sent, and on_error says why
    assert not queued
    assert api.requests == []
    assert [(f.reason, f.code) for f in failures] == [("too_large", "payload_too_large")]
    assert tracker.stats().dropped_too_large == 1


def test_a_lost_answer_is_retried_with_the_same_event_ids_and_nothing_is_stored_twice() -> None:
    # Given the first answer is lost after the events were stored
    api, clock = FakeIngestApi().script(["lost"]), FakeClock()
    tracker = sync_tracker(api, clock)
    track_many(tracker, 10)
    tracker.flush()
    # Then the retry carried the same event ids, and the server called them duplicates
    first, retry = api.requests
    assert [e["event_id"] for e in first.events] == [e["event_id"] for e in retry.events]
    assert len(api.stored) == 10
    stats = tracker.stats()
    assert (stats.accepted, stats.duplicates, stats.retries) == (0, 10, 1)


def test_retry_after_is_honoured_on_429_and_503() -> None:
    api = FakeIngestApi().script(
        [
            error_response(429, "throttled", "slow down", {"retry-after": "7"}),
            error_response(503, "unavailable", "busy", {"retry-after": "3"}),
        ]
    )
    clock = FakeClock()
    tracker = sync_tracker(api, clock)
    track_many(tracker, 3)
    tracker.flush()
    # Then it waited at least 7 s, then at least 3 s (plus a little jitter), and delivered
    assert len(clock.sleeps) == 2
    assert 7 <= clock.sleeps[0] <= 7 + POLICY.base_seconds
    assert 3 <= clock.sleeps[1] <= 3 + POLICY.base_seconds
    assert len(api.stored) == 3


def test_network_errors_back_off_exponentially_with_jitter() -> None:
    api, clock = FakeIngestApi().script(["network"] * 6), FakeClock()
    tracker = sync_tracker(api, clock)
    track_many(tracker, 1)
    tracker.flush()
    # Then retry n waited somewhere in [0, min(cap, base * 2**n)]
    assert len(clock.sleeps) == 6
    for attempt, slept in enumerate(clock.sleeps, start=1):
        assert 0 <= slept <= min(POLICY.cap_seconds, POLICY.base_seconds * 2**attempt)
    assert len(api.stored) == 1


@pytest.mark.parametrize(
    ("answer", "events"),
    [
        *((error_response(status, "unavailable", "down"), 2) for status in (500, 502, 503, 504)),
        (json_response(200, {"unexpected": True}), 3),
    ],
    ids=["500", "502", "503", "504", "unreadable-200"],
)
def test_5xx_and_unreadable_200_answers_are_retried_safely(answer: Response, events: int) -> None:
    # Given a server whose first answer is a 5xx or a 200 the SDK cannot read
    api, clock = FakeIngestApi().script([answer]), FakeClock()
    tracker = sync_tracker(api, clock)
    # When events are sent
    track_many(tracker, events)
    tracker.flush()
    # Then the batch is sent once more, and every event is stored once
    assert len(api.requests) == 2
    assert len(api.stored) == events


def test_the_retry_budget_bounds_the_time_spent_and_the_events_are_reported_failed() -> None:
    # Given a server that always answers 503
    api = FakeIngestApi().script([error_response(503, "unavailable", "down")] * 1000)
    clock, failures = FakeClock(), []
    tracker = sync_tracker(api, clock, failures)
    track_many(tracker, 5)
    tracker.flush()
    # Then it gave up within the budget, and said so once with the five events
    assert clock.now <= POLICY.budget_seconds
    assert len(api.requests) > 3
    assert [(f.reason, len(f.events)) for f in failures] == [("failed", 5)]
    assert "down" in failures[0].message
    assert tracker.stats().failed == 5


def test_a_server_down_for_the_first_30_seconds_is_waited_for() -> None:
    api, clock = FakeIngestApi(down_until=30.0), FakeClock()
    tracker = sync_tracker(api, clock)
    track_many(tracker, 20)
    tracker.flush()
    assert clock.now >= 30
    assert len(api.stored) == 20
    assert tracker.stats().failed == 0


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "bad_request"),
        (401, "unauthorized"),
        (403, "forbidden"),
        (413, "payload_too_large"),
        (422, "validation_error"),
    ],
)
def test_other_4xx_answers_are_not_retried_and_every_event_is_reported_with_the_apis_message(
    status: int, code: str
) -> None:
    api = FakeIngestApi().script([error_response(status, code, "the API's own words")])
    clock, failures = FakeClock(), []
    tracker = sync_tracker(api, clock, failures)
    track_many(tracker, 4)
    tracker.flush()
    assert len(api.requests) == 1
    assert clock.sleeps == []
    assert [(f.reason, f.status, f.code, f.message) for f in failures] == [
        ("rejected", status, code, "the API's own words")
    ] * 4
    assert tracker.stats().rejected == 4


def test_rejected_events_are_reported_and_never_resent_but_unavailable_ones_are() -> None:
    # Given a batch of 5 where event 1 is invalid and event 3 was not stored (the store was busy)
    api = FakeIngestApi().script([("reject", {1: "validation_error", 3: "unavailable"})])
    clock, failures = FakeClock(), []
    tracker = sync_tracker(api, clock, failures)
    track_many(tracker, 5)
    tracker.flush()
    # Then only event 3 was sent again, and event 1 was reported
    first, second = api.requests
    assert [e["event_id"] for e in second.events] == [first.events[3]["event_id"]]
    assert [(f.reason, f.code, f.events[0]["metadata"]["n"]) for f in failures] == [("rejected", "validation_error", 1)]
    assert len(api.stored) == 4
    stats = tracker.stats()
    assert (stats.accepted, stats.rejected, stats.failed) == (4, 1, 0)


def test_each_event_carries_its_occurred_at_and_a_sent_at_for_clock_skew() -> None:
    api, clock = FakeIngestApi(), FakeClock()
    tracker = sync_tracker(api, clock)
    when = datetime(2025, 10, 14, 18, 30, tzinfo=UTC) + timedelta(milliseconds=1.5)
    tracker.track("6", "document.delete", occurred_at=when, metadata={"device": "iPhone"})
    tracker.flush()
    (event,) = api.requests[0].events
    assert event["occurred_at"] == "2025-10-14T18:30:00.001Z"
    assert event["sent_at"].endswith("Z")
    assert event["metadata"] == {"device": "iPhone"}


def test_track_rejects_arguments_of_the_wrong_type() -> None:
    tracker = sync_tracker(FakeIngestApi(), FakeClock())
    with pytest.raises(TypeError):
        tracker.track(6, "login")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        tracker.track("6", "login", metadata=["not", "an", "object"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), (" 2.5 ", 2.5), ("-3", 0.0), ("soon", None), (None, None), ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0)],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(header: str | None, seconds: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after(header, now_epoch=now) == seconds


FATES = st.one_of(
    st.sampled_from(["ok", "network", "lost"]),
    st.sampled_from([429, 500, 503]).map(
        lambda status: error_response(status, "unavailable", "x", {"retry-after": "1"})
    ),
    st.dictionaries(st.integers(0, 40), st.just("unavailable"), max_size=5).map(lambda chosen: ("reject", chosen)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fates=st.lists(FATES, max_size=25), count=st.integers(1, 1200))
def test_whatever_the_faults_every_event_is_stored_exactly_once_and_accounted_for(fates: list[Any], count: int) -> None:
    # Given any sequence of faults that ends (then the server answers), and a budget long enough to outlast it
    api, clock = FakeIngestApi().script(fates), FakeClock()
    tracker = sync_tracker(api, clock, retry=RetryPolicy(base_seconds=0.1, cap_seconds=2, budget_seconds=3600))
    for index in range(count):
        tracker.track(f"u{index % 3}", "view", metadata={"n": index})
    tracker.flush()
    # Then every event is stored once, and each was confirmed once: accepted or duplicate
    assert sorted(event["metadata"]["n"] for event in api.stored.values()) == list(range(count))
    stats = tracker.stats()
    assert stats.accepted + stats.duplicates == count
    assert (stats.rejected, stats.failed) == (0, 0)


def test_the_request_body_is_valid_gzip_of_the_batch() -> None:
    bodies: list[bytes] = []

    class Recording(FakeIngestApi):
        def send(self, method: str, path: str, body: bytes | None, headers: Any) -> Any:
            bodies.append(body or b"")
            return super().send(method, path, body, headers)

    tracker = sync_tracker(Recording(), FakeClock())
    track_many(tracker, 3)
    tracker.flush()
    assert len(json.loads(gzip.decompress(bodies[0]))["events"]) == 3
