"""Per-tenant rate limits as API Gateway applies a usage plan's throttle: a token bucket per key.

Each usage key (the authorizer's ``usageIdentifierKey``) has a bucket of ``burst`` tokens that
refills at ``rate`` per second; a request takes one or is refused with the ``THROTTLED`` gateway
response. The numbers are the ones the authorizer passes in its context (the tenant's override,
or the defaults), which are those of the tenant's usage plan in the cloud; without them, the
template's default usage plan. A route that requires an API key and gets none from the
authorizer is refused as API Gateway refuses it (``INVALID_API_KEY``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from local_stack.gateway import Authorization
from local_stack.template import Route, Template


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    def __init__(self, default_rate: float, default_burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._default_rate = default_rate
        self._default_burst = default_burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_template(cls, template: Template, clock: Callable[[], float] = time.monotonic) -> TokenBuckets:
        plan = template.api.usage_plan if template.api else None
        throttle = (plan.throttle if plan else None) or {}
        # Without a usage plan API Gateway applies only its account-level limits: effectively none here.
        return cls(float(throttle.get("rateLimit", 10_000)), int(throttle.get("burstLimit", 5_000)), clock)

    def __call__(self, route: Route, authorization: Authorization) -> str | None:
        if not route.api_key_required:
            return None
        key = authorization.usage_identifier_key
        if key is None:
            return "INVALID_API_KEY"
        rate = float(authorization.context.get("rate", self._default_rate))
        burst = int(float(authorization.context.get("burst", self._default_burst)))
        with self._lock:
            now = self._clock()
            bucket = self._buckets.setdefault(key, _Bucket(tokens=burst, updated=now))
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens < 1:
                return "THROTTLED"
            bucket.tokens -= 1
        return None
