"""``Tracker``: ``track()`` returns at once; a background thread sends the events in batches.

The queue is bounded. Batches leave when they reach ``max_batch_size`` events or ``max_batch_bytes``, when
the oldest queued event has waited ``flush_interval`` seconds, or on ``flush()``. At interpreter exit the
tracker flushes for at most ``exit_timeout`` seconds. With ``sync=True`` (Lambda functions, whose
environment freezes between invocations and may never run a background thread again) there is no thread:
events wait in the queue until ``flush()``, or until a full batch is sent by the ``track()`` that filled it.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import random
import threading
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from activity_tracker._delivery import (
    BATCH_ENVELOPE_BYTES,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    SENT_AT_BYTES,
    BatchSender,
    Delivery,
    rfc3339,
)
from activity_tracker._http import ApiClient, Transport
from activity_tracker._retry import Clock, RetryPolicy, SystemClock

logger = logging.getLogger("activity_tracker")

FailureReason = Literal["rejected", "failed", "queue_full", "too_large", "shutdown"]
WhenFull = Literal["drop_newest", "drop_oldest"]


@dataclass(frozen=True)
class Failure:
    """Events that will not be stored, handed to ``on_error``.

    ``reason``: ``rejected`` (the server refused them for what they are: ``code``, ``message`` and ``details``
    are the API's), ``failed`` (not confirmed when the retry budget ran out), ``queue_full`` (dropped by the
    queue-full policy), ``too_large`` (over the server's 32 KiB per event, never queued), ``shutdown``
    (still queued when ``shutdown()`` or the exit deadline passed).
    """

    reason: FailureReason
    events: list[dict[str, Any]]
    message: str
    code: str | None = None
    status: int | None = None
    details: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class TrackerStats:
    tracked: int
    """Events queued by ``track()``."""
    accepted: int
    duplicates: int
    """Events the server already had: a retry of a request whose answer was lost. Stored once."""
    rejected: int
    failed: int
    dropped_queue_full: int
    dropped_too_large: int
    dropped_at_shutdown: int
    requests: int
    retries: int
    queued: int


@dataclass
class _Queued:
    seq: int
    item: str
    size: int
    enqueued_at: float


class _WakeableClock:
    """The system clock, whose sleeps end early when the tracker gives up at shutdown."""

    def __init__(self, abandon: threading.Event) -> None:
        self._abandon = abandon
        self._system = SystemClock()

    def monotonic(self) -> float:
        return self._system.monotonic()

    def sleep(self, seconds: float) -> None:
        self._abandon.wait(seconds)


def _shutdown_at_exit(reference: weakref.ReferenceType[Tracker]) -> None:
    tracker = reference()
    if tracker is not None:
        tracker.shutdown(timeout=tracker.exit_timeout)


class Tracker:
    """Sends activity events to the tracker's API in the background.

    >>> tracker = Tracker(api_key="atk_...", endpoint="https://api.example.com")
    >>> tracker.track("6", "document.delete", metadata={"device": "iPhone"})

    ``when_full`` says what happens when ``max_queue_size`` events wait already: ``drop_newest`` (default:
    the event being tracked is dropped) or ``drop_oldest`` (the oldest queued event makes room). Either way
    the dropped event is counted in ``stats()`` and passed to ``on_error``. ``track()`` raises only
    ``TypeError``/``ValueError`` for arguments of the wrong type (a bug in the caller), never for delivery.
    """

    def __init__(
        self,
        api_key: str,
        endpoint: str,
        *,
        on_error: Callable[[Failure], None] | None = None,
        max_queue_size: int = 10_000,
        when_full: WhenFull = "drop_newest",
        max_batch_size: int = MAX_BATCH_EVENTS,
        max_batch_bytes: int = MAX_BATCH_BYTES - 1024,
        flush_interval: float = 1.0,
        retry: RetryPolicy | None = None,
        gzip: bool = True,
        sync: bool = False,
        exit_timeout: float = 5.0,
        timeout: float = 30.0,
        transport: Transport | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not 1 <= max_batch_size <= MAX_BATCH_EVENTS:
            raise ValueError(f"max_batch_size must be 1 to {MAX_BATCH_EVENTS}")
        if not MAX_EVENT_BYTES + BATCH_ENVELOPE_BYTES <= max_batch_bytes <= MAX_BATCH_BYTES:
            raise ValueError(f"max_batch_bytes must be {MAX_EVENT_BYTES + BATCH_ENVELOPE_BYTES} to {MAX_BATCH_BYTES}")
        if max_queue_size < 1:
            raise ValueError("max_queue_size must be at least 1")
        if when_full not in ("drop_newest", "drop_oldest"):
            raise ValueError("when_full must be 'drop_newest' or 'drop_oldest'")
        self.exit_timeout = exit_timeout
        self._on_error = on_error
        self._max_queue_size = max_queue_size
        self._when_full = when_full
        self._max_batch_size = max_batch_size
        self._max_batch_bytes = max_batch_bytes
        self._flush_interval = flush_interval
        self._sync = sync
        self._client = ApiClient(endpoint, api_key, timeout=timeout, transport=transport)
        self._abandon = threading.Event()
        self._clock: Clock = clock or _WakeableClock(self._abandon)
        self._sender = BatchSender(
            self._client,
            retry or RetryPolicy(),
            self._clock,
            rng or random.Random(),  # noqa: S311 - jitter, not security
            compress=gzip,
            stopping=self._abandon.is_set,
            on_retry=self._count_retry,
        )
        self._condition = threading.Condition()
        self._queue: deque[_Queued] = deque()
        self._queued_bytes = 0
        self._last_seq = 0
        self._in_flight_from: int | None = None
        self._flush_through = 0
        self._closed = False
        self._counts: dict[str, int] = dict.fromkeys(
            (
                "tracked",
                "accepted",
                "duplicates",
                "rejected",
                "failed",
                "dropped_queue_full",
                "dropped_too_large",
                "dropped_at_shutdown",
                "requests",
                "retries",
            ),
            0,
        )
        self._send_lock = threading.Lock()  # sync mode: one batch on the wire at a time, in order
        self._worker: threading.Thread | None = None
        if not sync:
            self._worker = threading.Thread(target=self._run, name="activity-tracker", daemon=True)
            self._worker.start()
        # A callback of its own (holding the tracker weakly), so that shutdown() unregisters only this one.
        self._exit_callback = functools.partial(_shutdown_at_exit, weakref.ref(self))
        atexit.register(self._exit_callback)

    # ------------------------------------------------------------------ the caller's side

    def track(
        self,
        user_id: str,
        action: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        occurred_at: datetime | str | None = None,
        event_id: str | None = None,
    ) -> bool:
        """Queues one event; True if queued. ``event_id`` (made here when absent) is kept across retries."""
        if not isinstance(user_id, str) or not isinstance(action, str):
            raise TypeError("user_id and action must be strings")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise TypeError("metadata must be a mapping (a JSON object)")
        if isinstance(occurred_at, datetime):
            when = rfc3339(occurred_at)
        elif isinstance(occurred_at, str):
            when = occurred_at
        elif occurred_at is None:
            when = rfc3339(datetime.now(UTC))
        else:
            raise TypeError("occurred_at must be a datetime or an RFC 3339 string")
        event: dict[str, Any] = {"event_id": event_id or str(uuid.uuid4()), "user_id": user_id, "action": action}
        event["occurred_at"] = when
        if metadata is not None:
            event["metadata"] = dict(metadata)
        # Serialized now: later changes to ``metadata`` by the caller cannot change what is sent.
        item = json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        size = len(item.encode("utf-8", errors="surrogatepass")) + SENT_AT_BYTES
        if size > MAX_EVENT_BYTES:
            self._count("dropped_too_large")
            self._report(
                Failure(
                    "too_large",
                    [event],
                    f"An event is at most {MAX_EVENT_BYTES} bytes; this one is {size}.",
                    "payload_too_large",
                )
            )
            return False
        return self._enqueue(item, size)

    def _enqueue(self, item: str, size: int) -> bool:
        dropped: _Queued | None = None
        full_batch = False
        with self._condition:
            if self._closed:
                self._counts["dropped_at_shutdown"] += 1
                closed_item: str | None = item
            else:
                closed_item = None
                if len(self._queue) >= self._max_queue_size:
                    self._counts["dropped_queue_full"] += 1
                    if self._when_full == "drop_newest":
                        dropped = _Queued(0, item, size, 0.0)
                    else:
                        dropped = self._queue.popleft()
                        self._queued_bytes -= dropped.size
                if dropped is None or self._when_full == "drop_oldest":
                    self._last_seq += 1
                    self._queue.append(_Queued(self._last_seq, item, size, self._clock.monotonic()))
                    self._queued_bytes += size
                    self._counts["tracked"] += 1
                    full_batch = self._batch_ready()
                    # The worker sleeps while the queue is empty: the first event starts its interval.
                    if full_batch or len(self._queue) == 1:
                        self._condition.notify_all()
        if closed_item is not None:
            self._report(Failure("shutdown", [json.loads(closed_item)], "The tracker is shut down."))
            return False
        if dropped is not None:
            self._report(
                Failure(
                    "queue_full",
                    [json.loads(dropped.item)],
                    f"The queue holds {self._max_queue_size} events already ({self._when_full}).",
                )
            )
        if self._sync and full_batch:
            self._send_ready_batches(everything=False)
        return dropped is None or self._when_full == "drop_oldest"

    def flush(self, timeout: float | None = None) -> bool:
        """Sends everything queued so far; True when it was all delivered (or reported) within ``timeout``."""
        if self._sync:
            self._send_ready_batches(everything=True)
            return True
        with self._condition:
            target = self._last_seq
            self._flush_through = max(self._flush_through, target)
            self._condition.notify_all()
            return self._condition.wait_for(lambda: self._done_through() >= target, timeout)

    def shutdown(self, timeout: float | None = 10.0) -> bool:
        """Stops accepting events, sends what is queued for at most ``timeout`` seconds, then drops the rest.

        True when nothing was left unsent. Called at interpreter exit with ``exit_timeout``.
        """
        atexit.unregister(self._exit_callback)
        with self._condition:
            already = self._closed
            self._closed = True
            self._condition.notify_all()
        if already and self._worker is None:
            return not self._queue
        delivered = self.flush(timeout)
        if not delivered:
            self._abandon.set()  # stops retry waits: what is not confirmed now is reported as failed
        if self._worker is not None:
            self._worker.join(timeout=None if delivered else 5.0)
            self._worker = None
        left = self._drain()
        if left:
            self._counts["dropped_at_shutdown"] += len(left)
            self._report(Failure("shutdown", [json.loads(q.item) for q in left], "Still queued at shutdown."))
        self._client.close()
        return delivered and not left

    def stats(self) -> TrackerStats:
        with self._condition:
            return TrackerStats(**self._counts, queued=len(self._queue))

    # ------------------------------------------------------------------ the sending side

    def _batch_ready(self) -> bool:
        return len(self._queue) >= self._max_batch_size or self._queued_bytes >= self._max_batch_bytes

    def _done_through(self) -> int:
        """Every event up to this sequence number has been delivered, rejected, failed or dropped."""
        if self._in_flight_from is not None:
            return self._in_flight_from - 1
        if self._queue:
            return self._queue[0].seq - 1
        return self._last_seq

    def _take_batch(self) -> list[_Queued]:
        batch: list[_Queued] = []
        size = BATCH_ENVELOPE_BYTES
        while self._queue and len(batch) < self._max_batch_size:
            if batch and size + self._queue[0].size + 1 > self._max_batch_bytes:
                break
            queued = self._queue.popleft()
            self._queued_bytes -= queued.size
            size += queued.size + 1
            batch.append(queued)
        if batch:
            self._in_flight_from = batch[0].seq
        return batch

    def _drain(self) -> list[_Queued]:
        with self._condition:
            left = list(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
            self._condition.notify_all()
            return left

    def _wait_for_batch(self) -> list[_Queued] | None:
        """Under the lock: the next batch once it is due; None when shut down with nothing left."""
        while True:
            if not self._queue:
                if self._closed:
                    return None
                self._condition.wait()
                continue
            if self._closed or self._batch_ready() or self._flush_through >= self._queue[0].seq:
                return self._take_batch()
            waited = self._clock.monotonic() - self._queue[0].enqueued_at
            if waited >= self._flush_interval:
                return self._take_batch()
            self._condition.wait(self._flush_interval - waited)

    def _run(self) -> None:
        while not self._abandon.is_set():
            with self._condition:
                batch = self._wait_for_batch()
            if batch is None:
                return
            self._deliver(batch)

    def _send_ready_batches(self, *, everything: bool) -> None:
        with self._send_lock:
            while True:
                with self._condition:
                    if not self._queue or not (everything or self._batch_ready()):
                        return
                    batch = self._take_batch()
                self._deliver(batch)

    def _deliver(self, batch: list[_Queued]) -> None:
        try:
            delivery = self._sender.deliver([queued.item for queued in batch])
        except Exception as error:  # a bug must not kill the worker: the batch is reported, the rest goes on
            logger.exception("activity_tracker: delivering a batch failed")
            delivery = Delivery(size=len(batch), failed=list(range(len(batch))), failure=repr(error))
        with self._condition:
            for name, value in (
                ("accepted", delivery.accepted),
                ("duplicates", delivery.duplicates),
                ("rejected", len(delivery.rejected)),
                ("failed", len(delivery.failed)),
                ("requests", delivery.attempts),
            ):
                self._counts[name] += value
            self._in_flight_from = None
            self._condition.notify_all()
        for rejection in delivery.rejected:
            self._report(
                Failure(
                    "rejected",
                    [json.loads(batch[rejection.index].item)],
                    rejection.message,
                    rejection.code,
                    rejection.status,
                    rejection.details,
                )
            )
        if delivery.failed:
            self._report(
                Failure(
                    "failed",
                    [json.loads(batch[index].item) for index in delivery.failed],
                    f"Not confirmed within the retry budget: {delivery.failure}",
                )
            )

    def _count(self, name: str, value: int = 1) -> None:
        with self._condition:
            self._counts[name] += value

    def _count_retry(self) -> None:
        self._count("retries")

    def _report(self, failure: Failure) -> None:
        if self._on_error is None:
            logger.warning("activity_tracker: %d event(s) %s: %s", len(failure.events), failure.reason, failure.message)
            return
        try:
            self._on_error(failure)
        except Exception:
            logger.exception("activity_tracker: the on_error callback raised")
