"""Delivering one batch of events: retries, per-event results, and what to report.

Events travel as their compact JSON text, serialized once when they are made: the ``event_id`` in it is
the one every retry sends, which is what lets the server store each event once however often it arrives.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from activity_tracker._http import NETWORK_ERRORS, ApiClient, ApiError, Response
from activity_tracker._retry import RETRYABLE_EVENT_CODES, RETRYABLE_STATUSES, Clock, RetryPolicy, parse_retry_after

BATCH_PATH = "/v1/events/batch"
MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 1024 * 1024
MAX_EVENT_BYTES = 32 * 1024
BATCH_ENVELOPE_BYTES = len('{"events":[]}')
SENT_AT_BYTES = len(',"sent_at":"2025-01-01T00:00:00.000Z"')


def rfc3339(moment: datetime) -> str:
    """UTC with a ``Z`` and milliseconds, as the API answers (a naive time is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def batch_body(items: Sequence[str], sent_at: str | None) -> bytes:
    """``{"events": [...]}`` from events already serialized; ``sent_at`` (when given) added to each."""
    if sent_at is not None:
        suffix = f',"sent_at":"{sent_at}"}}'
        items = [item[:-1] + suffix for item in items]
    return ('{"events":[' + ",".join(items) + "]}").encode("utf-8")


@dataclass(frozen=True)
class Rejection:
    """An event the server refused for good (or a batch refused whole with a 4xx): never sent again."""

    index: int
    status: int
    code: str
    message: str
    details: list[Any]


@dataclass
class Delivery:
    """What became of each event of one batch, by its index in the batch."""

    size: int
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    """Indexes still not confirmed when the retry budget ran out (or delivery was stopped)."""
    failure: str | None = None
    """Why the last attempt failed, when some events failed."""
    attempts: int = 0


@dataclass
class _Attempt:
    retry: list[int]
    retry_after: float | None = None
    error: str | None = None


class BatchSender:
    """Sends a batch until every event is accepted, a duplicate or rejected, or the retry budget is spent.

    Retried: network errors, 429 and 5xx answers (waiting at least ``Retry-After``), and the events that a
    200 answer rejected with a retryable code (``unavailable``: not stored). Not retried: other 4xx answers
    (every event of the batch is then rejected with the API's error) and events rejected for what they are.
    """

    def __init__(
        self,
        client: ApiClient,
        policy: RetryPolicy,
        clock: Clock,
        rng: random.Random,
        *,
        compress: bool = True,
        stamp_sent_at: bool = True,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        stopping: Callable[[], bool] = lambda: False,
        on_retry: Callable[[], None] = lambda: None,
    ) -> None:
        self._client = client
        self._policy = policy
        self._clock = clock
        self._rng = rng
        self._compress = compress
        self._stamp_sent_at = stamp_sent_at
        self._now = now
        self._stopping = stopping
        self._on_retry = on_retry

    def deliver(self, items: Sequence[str]) -> Delivery:
        delivery = Delivery(size=len(items))
        deadline = self._clock.monotonic() + self._policy.budget_seconds
        pending = list(range(len(items)))
        while pending:
            delivery.attempts += 1
            attempt = self._attempt([items[index] for index in pending], pending, delivery)
            pending = attempt.retry
            if not pending:
                break
            delay = self._policy.delay(delivery.attempts, attempt.retry_after, self._rng)
            if self._stopping() or self._clock.monotonic() + delay > deadline:
                delivery.failed = pending
                delivery.failure = attempt.error
                break
            self._on_retry()
            self._clock.sleep(delay)
            if self._stopping():
                delivery.failed = pending
                delivery.failure = attempt.error
                break
        return delivery

    def _attempt(self, batch: list[str], indexes: list[int], delivery: Delivery) -> _Attempt:
        body = batch_body(batch, rfc3339(self._now()) if self._stamp_sent_at else None)
        headers = {"content-type": "application/json"}
        if self._compress:
            body = gzip.compress(body, compresslevel=1, mtime=0)
            headers["content-encoding"] = "gzip"
        try:
            response = self._client.send("POST", BATCH_PATH, body, headers)
        except NETWORK_ERRORS as failure:
            return _Attempt(indexes, None, f"network error: {type(failure).__name__}: {failure}")
        if response.status == 200:
            return self._results(response, indexes, delivery)
        error = ApiError.from_response(response)
        if response.status in RETRYABLE_STATUSES:
            return _Attempt(indexes, parse_retry_after(response.headers.get("retry-after")), str(error))
        delivery.rejected += [Rejection(i, error.status, error.code, error.message, error.details) for i in indexes]
        return _Attempt([])

    @staticmethod
    def _results(response: Response, indexes: list[int], delivery: Delivery) -> _Attempt:
        try:
            results = response.json()["results"]
            by_position = {int(result["index"]): result for result in results}
        except (ValueError, TypeError, KeyError):
            return _Attempt(indexes, None, "the batch answer could not be read")
        retry = []
        last_error = None
        for position, index in enumerate(indexes):
            result = by_position.get(position)
            status = result.get("status") if isinstance(result, dict) else None
            if status == "accepted":
                delivery.accepted += 1
            elif status == "duplicate":
                delivery.duplicates += 1
            elif status == "rejected" and isinstance(result, dict):
                found = result.get("error")
                error: dict[str, Any] = found if isinstance(found, dict) else {}
                code = str(error.get("code", "rejected"))
                if code in RETRYABLE_EVENT_CODES:
                    retry.append(index)
                    last_error = f"{error.get('message', '')} ({code})"
                else:
                    delivery.rejected.append(
                        Rejection(index, 200, code, str(error.get("message", "")), list(error.get("details") or []))
                    )
            else:  # no result for this event: whether it was stored is unknown, so it is sent again
                retry.append(index)
                last_error = "the batch answer has no result for an event"
        return _Attempt(retry, None, last_error)
