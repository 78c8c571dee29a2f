"""The SDK's Tracker: the background thread, flush triggers, the bounded queue, shutdown and exit.

The transport is a fake ingest API in memory (no sockets); the threads and waits are real but short.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from activity_tracker import Failure, RetryPolicy, Tracker

from .sdk_support import FakeIngestApi

ROOT = Path(__file__).resolve().parents[2]


def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


class BlockingApi(FakeIngestApi):
    """Holds every request until ``release`` is set (a server that hangs)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def send(self, method: str, path: str, body: bytes | None, headers: Any) -> Any:
        self.release.wait()
        return super().send(method, path, body, headers)


class DownApi(FakeIngestApi):
    def send(self, *_request: Any) -> Any:
        raise ConnectionRefusedError("connection refused")


def tracker_for(api: FakeIngestApi, failures: list[Failure] | None = None, **options: Any) -> Tracker:
    return Tracker(
        "atk_test",
        "http://tracker.invalid",
        transport=api,
        on_error=failures.append if failures is not None else None,
        **options,
    )


def test_a_partial_batch_leaves_after_the_flush_interval_without_a_flush() -> None:
    api = FakeIngestApi()
    tracker = tracker_for(api, flush_interval=0.05)
    for index in range(3):
        tracker.track("6", "view", metadata={"n": index})
    assert eventually(lambda: len(api.stored) == 3)
    assert len(api.requests) == 1
    tracker.shutdown()


def test_a_full_batch_leaves_at_once_and_flush_sends_the_rest() -> None:
    # Given batches of 10 and an interval of an hour
    api = FakeIngestApi()
    tracker = tracker_for(api, max_batch_size=10, flush_interval=3600)
    for index in range(25):
        tracker.track("6", "view", metadata={"n": index})
    # Then two full batches leave by themselves, and the last five wait for flush()
    assert eventually(lambda: len(api.stored) == 20)
    assert len(api.stored) == 20
    assert tracker.flush(timeout=10)
    assert len(api.stored) == 25
    assert [len(sent.events) for sent in api.requests] == [10, 10, 5]
    tracker.shutdown()


def test_track_returns_at_once_while_the_server_hangs() -> None:
    # Given a server that does not answer
    api = BlockingApi()
    tracker = tracker_for(api, max_batch_size=100)
    # When 2,000 events are tracked, then they all return (none waits for the network)
    assert all(tracker.track("6", "view", metadata={"n": index}) for index in range(2000))
    assert tracker.stats().tracked == 2000
    assert not tracker.flush(timeout=0.05)
    # And once the server answers, everything is delivered
    api.release.set()
    assert tracker.flush(timeout=10)
    assert len(api.stored) == 2000
    tracker.shutdown()


@pytest.mark.parametrize(("policy", "kept"), [("drop_newest", range(5)), ("drop_oldest", range(3, 8))])
def test_a_full_queue_drops_by_its_policy_counts_and_reports(policy: Any, kept: range) -> None:
    # Given a queue of 5 (sync mode: nothing leaves before flush), and 8 events tracked
    api, failures = FakeIngestApi(), []
    tracker = tracker_for(api, failures, sync=True, max_queue_size=5, when_full=policy)
    results = [tracker.track("6", "view", metadata={"n": index}) for index in range(8)]
    tracker.flush()
    # Then the newest (or the oldest) three were dropped, counted, and reported
    assert sorted(event["metadata"]["n"] for event in api.stored.values()) == list(kept)
    assert tracker.stats().dropped_queue_full == 3
    assert [failure.reason for failure in failures] == ["queue_full"] * 3
    assert results == ([True] * 5 + [False] * 3 if policy == "drop_newest" else [True] * 8)


def test_shutdown_gives_up_at_its_deadline_and_reports_what_was_not_sent() -> None:
    # Given a server that is down and a long retry budget
    api, failures = DownApi(), []
    tracker = tracker_for(api, failures, retry=RetryPolicy(base_seconds=0.01, cap_seconds=0.05, budget_seconds=600))
    for index in range(30):
        tracker.track("6", "view", metadata={"n": index})
    # When shut down with a deadline of half a second
    started = time.monotonic()
    delivered = tracker.shutdown(timeout=0.5)
    # Then it returned soon after the deadline, and every event is reported as failed or dropped at shutdown
    assert not delivered
    assert time.monotonic() - started < 8
    stats = tracker.stats()
    assert stats.failed + stats.dropped_at_shutdown == 30
    assert sum(len(failure.events) for failure in failures) == 30
    assert {failure.reason for failure in failures} <= {"failed", "shutdown"}
    # And an event tracked afterwards is refused and reported
    assert not tracker.track("6", "late")
    assert failures[-1].reason == "shutdown"


def test_an_on_error_callback_that_raises_does_not_stop_the_tracker() -> None:
    api = FakeIngestApi().script([("reject", {0: "validation_error"})])

    def explode(_failure: Failure) -> None:
        raise RuntimeError("bug in the app's callback")

    tracker = Tracker("atk_test", "http://tracker.invalid", transport=api, on_error=explode, flush_interval=0.01)
    tracker.track("6", "bad")
    assert tracker.flush(timeout=5)
    tracker.track("6", "good")
    assert tracker.flush(timeout=5)
    assert [event["action"] for event in api.stored.values()] == ["good"]
    tracker.shutdown()


def test_the_queue_is_flushed_at_interpreter_exit(tmp_path: Path) -> None:
    # Given a program that tracks 3 events with a flush interval of an hour and simply ends
    sent = tmp_path / "sent.json"
    program = textwrap.dedent(
        f"""
        import json, sys
        sys.path[:0] = [{str(ROOT / "clients/python/src")!r}, {str(ROOT)!r}]
        from activity_tracker import Tracker
        from tests.unit.sdk_support import FakeIngestApi

        class Recording(FakeIngestApi):
            def send(self, *args):
                answer = super().send(*args)
                with open({str(sent)!r}, "w") as out:
                    json.dump(list(self.stored), out)
                return answer

        tracker = Tracker("atk_test", "http://tracker.invalid", transport=Recording(), flush_interval=3600)
        for n in range(3):
            tracker.track("6", "view", metadata={{"n": n}})
        """
    )
    # When it exits
    subprocess.run([sys.executable, "-c", program], check=True, timeout=60)  # noqa: S603 - our own program
    # Then the three events were sent on the way out
    assert len(json.loads(sent.read_text())) == 3


def test_sync_mode_sends_in_the_callers_thread_on_flush() -> None:
    api = FakeIngestApi()
    tracker = tracker_for(api, sync=True)
    tracker.track("6", "view")
    assert api.requests == []
    tracker.flush()
    assert len(api.stored) == 1
    assert threading.active_count() >= 1
    assert tracker.shutdown()
