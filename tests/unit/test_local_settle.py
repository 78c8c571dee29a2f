"""The local runtime's settle: a rollup starts only after the invocations begun before it have
returned, so that an ingest that took its ``received_at`` is written before the rollup reads
(the cloud's ``ROLLUP_SETTLE_SECONDS``, exact instead of timed)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from local_stack.lambdas import InFlight


@contextmanager
def held(in_flight: InFlight, timeout: float = 30.0) -> Iterator[threading.Event]:
    """An invocation running in a thread until the yielded event is set."""
    started, release = threading.Event(), threading.Event()

    def invocation() -> None:
        with in_flight.running(timeout):
            started.set()
            release.wait(10)

    thread = threading.Thread(target=invocation)
    thread.start()
    started.wait(5)
    try:
        yield release
    finally:
        release.set()
        thread.join(5)


def in_background(work: Callable[[], None]) -> threading.Event:
    """Runs ``work`` in a thread; the returned event is set once it returns."""
    done = threading.Event()

    def run() -> None:
        work()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done


def test_a_rollup_waits_for_the_invocations_begun_before_it() -> None:
    # Given an ingest in flight
    in_flight = InFlight()
    with held(in_flight) as ingest_returns:
        # When a rollup asks to start
        settled = in_background(in_flight.settle)
        # Then it waits while the ingest runs, and starts as soon as it returns
        assert not settled.wait(0.3)
        ingest_returns.set()
        assert settled.wait(5)


def test_a_rollup_does_not_wait_for_invocations_begun_after_it() -> None:
    # Given an ingest in flight and a rollup waiting for it
    in_flight = InFlight()
    with held(in_flight) as first_returns:
        settled = in_background(in_flight.settle)
        # When another ingest begins after the rollup asked, and the first one returns
        with held(in_flight):
            first_returns.set()
            # Then the rollup starts while the later ingest still runs (it takes a later received_at)
            assert settled.wait(5)


def test_a_rollup_waits_no_longer_than_the_deadline_of_a_stuck_invocation() -> None:
    # Given an invocation that never returns within its 0.2 s deadline
    in_flight = InFlight()
    with held(in_flight, timeout=0.2):
        # When a rollup asks to start, then it starts once that deadline has passed
        started = time.monotonic()
        in_flight.settle()
        assert 0.1 <= time.monotonic() - started < 5


def test_with_nothing_in_flight_a_rollup_starts_at_once() -> None:
    started = time.monotonic()
    InFlight().settle()
    assert time.monotonic() - started < 0.1
