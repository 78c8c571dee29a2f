"""A small HTTP/1.1 client on the standard library: one keep-alive connection per thread (or a new
connection per request, ``keep_alive=False``), retries.

Retries follow the contract: a 429 or a 503 is sent again after its ``Retry-After`` (capped), and
a connection error (refused, reset, timed out, a half-read answer) is sent again on a new
connection, always with the same body, so the same ``event_id`` values: the server's idempotency
is what makes that safe, and what the load test checks.
"""

from __future__ import annotations

import http.client
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

RETRYABLE_STATUSES = frozenset({429, 503})
# Refused, reset, timed out (all OSError), or an answer cut short (HTTPException).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)
# What a retry waits when the server gave no usable Retry-After (a contract violation, also recorded).
DEFAULT_RETRY_AFTER_SECONDS = 1.0


@dataclass
class Answer:
    """One HTTP answer: status, lower-cased headers, the parsed JSON body (or the text)."""

    status: int
    headers: dict[str, str]
    body: Any
    seconds: float


@dataclass
class Attempt:
    """What one try of a request gave: a status, or ``conn:<exception>`` for a connection error."""

    kind: str
    outcome: str
    seconds: float


@dataclass
class Outcome:
    """The last answer of a request after its retries (None when it never got one), and every try."""

    answer: Answer | None
    attempts: list[Attempt] = field(default_factory=list)
    contract_violations: list[str] = field(default_factory=list)


def error_shape_problem(status: int, body: Any) -> str | None:
    """Why an error answer breaks ``{"error": {"code", "message", "details"}}``, or None when it does not."""
    if status < 400:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(error, dict):
        return f"{status}: the body is not the error shape: {str(body)[:200]!r}"
    if not {"code", "message", "details"} <= set(error):
        return f"{status}: the error lacks {sorted({'code', 'message', 'details'} - set(error))}: {str(body)[:200]!r}"
    if not isinstance(error["code"], str) or not isinstance(error["message"], str):
        return f"{status}: code and message must be strings: {str(body)[:200]!r}"
    if not isinstance(error["details"], list):
        return f"{status}: details must be a list: {str(body)[:200]!r}"
    return None


def retry_after_seconds(headers: dict[str, str]) -> float | None:
    """The ``Retry-After`` delay in seconds (the delta-seconds form), or None when absent or unreadable."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


class Client:
    """Requests to one base URL over one keep-alive connection; not thread-safe (one per thread)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        max_retry_after: float = 5.0,
        give_up_after: float = 120.0,
        rng: random.Random | None = None,
        on_attempt: Callable[[Attempt], None] | None = None,
        keep_alive: bool = True,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.max_retry_after = max_retry_after
        self.give_up_after = give_up_after
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.on_attempt = on_attempt
        self.keep_alive = keep_alive
        self._connection: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            factory = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self._connection = factory(self.host, self.port, timeout=self.timeout)
        return self._connection

    def once(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Answer:
        """One try; a connection error is raised (and the connection dropped)."""
        payload = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        sent = {"accept": "application/json", **(headers or {})}
        if payload is not None:
            sent["content-type"] = "application/json"
        if self.api_key is not None:
            sent.setdefault("x-api-key", self.api_key)
        if not self.keep_alive:
            sent["connection"] = "close"
        started = time.perf_counter()
        try:
            connection = self._connect()
            connection.request(method, self.prefix + path, body=payload, headers=sent)
            response = connection.getresponse()
            raw = response.read()
            reply_headers = {name.lower(): value for name, value in response.getheaders()}
            if response.will_close or not self.keep_alive:
                self.close()
        except BaseException:
            self.close()
            raise
        seconds = time.perf_counter() - started
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return Answer(response.status, reply_headers, parsed, seconds)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        kind: str = "other",
        headers: dict[str, str] | None = None,
        deadline: float | None = None,
    ) -> Outcome:
        """Sends until an answer that is not 429/503 (or ``deadline``, a ``time.monotonic()`` value)."""
        outcome = Outcome(answer=None)
        give_up = deadline if deadline is not None else time.monotonic() + self.give_up_after
        connection_failures = 0
        while True:
            started = time.perf_counter()
            try:
                answer = self.once(method, path, body, headers)
            except CONNECTION_ERRORS as error:
                attempt = Attempt(kind, f"conn:{type(error).__name__}", time.perf_counter() - started)
                self._record(outcome, attempt)
                connection_failures += 1
                if time.monotonic() >= give_up:
                    outcome.contract_violations.append(f"{method} {path}: gave up after {error!r}")
                    return outcome
                # Back off a little more each time: 50 ms, 100 ms, ... up to 2 s, with jitter.
                time.sleep(min(2.0, 0.05 * 2 ** min(connection_failures, 6)) * (0.5 + self.rng.random()))
                continue
            self._record(outcome, Attempt(kind, str(answer.status), answer.seconds))
            outcome.answer = answer
            problem = error_shape_problem(answer.status, answer.body)
            if problem is not None:
                outcome.contract_violations.append(f"{method} {path} -> {problem}")
            if answer.status not in RETRYABLE_STATUSES:
                return outcome
            delay = retry_after_seconds(answer.headers)
            if delay is None:
                outcome.contract_violations.append(f"{method} {path} -> {answer.status} without a usable Retry-After")
                delay = DEFAULT_RETRY_AFTER_SECONDS
            if time.monotonic() + min(delay, self.max_retry_after) >= give_up:
                return outcome
            # Honour Retry-After, capped; a little jitter so that the clients do not come back in step.
            time.sleep(max(0.05, min(delay, self.max_retry_after)) * (0.9 + 0.2 * self.rng.random()))

    def _record(self, outcome: Outcome, attempt: Attempt) -> None:
        outcome.attempts.append(attempt)
        if self.on_attempt is not None:
            self.on_attempt(attempt)
