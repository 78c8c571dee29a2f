"""When to send again: jittered exponential backoff, ``Retry-After``, and a total time budget."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Codes of a batch's per-event rejections that mean "nothing was stored, send it again" (the server's
# ingest rejects an event as ``unavailable`` when the store throttled it or the request ran out of time).
RETRYABLE_EVENT_CODES = frozenset({"unavailable", "throttled"})


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """Full-jitter exponential backoff (``uniform(0, min(cap, base * 2**attempt))``), at least ``Retry-After``.

    ``budget_seconds`` bounds the whole delivery of one batch, first attempt included: a wait that would
    end past it is not started, and the batch is reported as failed instead.
    """

    base_seconds: float = 0.2
    cap_seconds: float = 20.0
    budget_seconds: float = 120.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (1 for the first retry)."""
        backoff = rng.uniform(0, min(self.cap_seconds, self.base_seconds * 2 ** min(attempt, 30)))
        if retry_after is None:
            return backoff
        # The server's figure is a minimum; a little jitter on top keeps many clients from coming back at once.
        return retry_after + rng.uniform(0, self.base_seconds)


def parse_retry_after(value: str | None, now_epoch: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now_epoch is None else now_epoch))
