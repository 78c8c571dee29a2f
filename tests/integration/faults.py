"""Fault injection on the functions' own DynamoDB client, through botocore's event hooks.

A ``before-send`` hook that answers for DynamoDB (a throttling or 5xx response) or raises (a
connection error) goes through botocore's real retry logic, which ``Stubber`` would skip; whatever
the hooks let through is answered by moto. An ``after-call`` hook runs once a call has succeeded,
which is where a function can be killed after its write and before its answer.

One trap: botocore emits ``before-send`` to *every* handler and only then takes the first answer.
Ours (registered for ``before-send.dynamodb.<Operation>``) is more specific than moto's (``before-send``)
and runs first, so its answer wins, but moto would still run and apply the request: a "throttled"
write would be stored all the same. ``local_stack.emulator.moto_skips_answered_requests`` (where every
patch of moto is) makes moto pass over the requests a hook answered (marked with ``mark_answered``), as
DynamoDB would never have seen them.

``Ledger`` keeps what the tests injected and what they found lost or counted twice, for the
summary line the module prints at its end.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders
from botocore.exceptions import EndpointConnectionError

from local_stack.emulator import mark_answered

THROTTLING = "throttling"
SERVER_ERROR = "5xx"
CONNECTION_ERROR = "connection_error"
UNPROCESSED_ITEMS = "unprocessed_items"
LAMBDA_TIMEOUT = "lambda_timeout"
CRASH_AFTER_WRITE = "crash_after_write"
ROLLUP_CRASH = "rollup_crash"

STORE_FAULTS = (THROTTLING, SERVER_ERROR, CONNECTION_ERROR)

# What DynamoDB answers when it throttles or fails: status, error code (``__type``), message.
_ERROR_RESPONSES = {
    THROTTLING: (400, "ThrottlingException", "Rate exceeded"),
    SERVER_ERROR: (500, "InternalServerError", "Internal server error"),
}


class Killed(BaseException):
    """The Lambda process died (timeout, out of memory, host lost): nothing in the handler may catch it."""


class _Body:
    """The ``raw`` of an ``AWSResponse``: botocore streams the body from it."""

    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self._content


def json_response(request: AWSPreparedRequest, status: int, body: dict[str, Any]) -> AWSResponse:
    headers = HTTPHeaders()
    headers["Content-Type"] = "application/x-amz-json-1.0"
    headers["x-amzn-RequestId"] = "fault-injection"
    return AWSResponse(request.url, status, headers, _Body(json.dumps(body).encode()))


def failure(kind: str, request: AWSPreparedRequest) -> AWSResponse:
    """DynamoDB's answer when it throttles or fails; a connection error is raised, as urllib3's would be."""
    mark_answered(request)
    if kind == CONNECTION_ERROR:
        raise EndpointConnectionError(endpoint_url=request.url)
    status, code, message = _ERROR_RESPONSES[kind]
    return json_response(request, status, {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message})


def request_body(request: AWSPreparedRequest) -> dict[str, Any]:
    body = request.body
    loaded: dict[str, Any] = json.loads(body if isinstance(body, str | bytes | bytearray) and body else "{}")
    return loaded


class Injector:
    """Hooks on one client: counts every call of each operation and every fault injected, by kind."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.timeline: list[str] = []
        self._lock = threading.Lock()
        self._hooks: list[tuple[str, Callable[..., Any]]] = []

    def _register(self, event_name: str, hook: Callable[..., Any]) -> None:
        self.client.meta.events.register(event_name, hook)
        self._hooks.append((event_name, hook))

    def clear(self) -> None:
        """The store recovers: every hook is removed (the counters stay)."""
        for event_name, hook in self._hooks:
            self.client.meta.events.unregister(event_name, hook)
        self._hooks.clear()

    def note(self, kind: str, count: int = 1) -> None:
        """A fault injected by other means than a hook (a deadline, a crashing store)."""
        with self._lock:
            self.injected[kind] += count

    def _count_call(self, operation: str) -> int:
        with self._lock:
            self.calls[operation] += 1
            self.timeline.append(f"call {operation}")
            return self.calls[operation]

    def fail(
        self,
        operation: str,
        kind: str,
        *,
        first: int | None = None,
        when: Callable[[dict[str, Any]], bool] = lambda _body: True,
    ) -> None:
        """Every attempt of ``operation`` whose request body satisfies ``when`` fails with ``kind``
        (only the first ``first`` such attempts when given); the others go through to moto."""
        matched = [0]

        def before_send(request: AWSPreparedRequest, **_kwargs: Any) -> AWSResponse | None:
            self._count_call(operation)
            if not when(request_body(request)):
                return None
            with self._lock:
                matched[0] += 1
                if first is not None and matched[0] > first:
                    return None
                self.injected[kind] += 1
            return failure(kind, request)

        self._register(f"before-send.dynamodb.{operation}", before_send)

    def fail_transaction(self, kind: str, index: int) -> None:
        """Every attempt of the ``index``-th distinct TransactWriteItems (0-based) fails with ``kind``."""
        seen: list[str] = []

        def before_send(request: AWSPreparedRequest, **_kwargs: Any) -> AWSResponse | None:
            self._count_call("TransactWriteItems")
            body = json.dumps(request_body(request), sort_keys=True)
            with self._lock:
                if body not in seen:
                    seen.append(body)
                if seen.index(body) != index:
                    return None
                self.injected[kind] += 1
            return failure(kind, request)

        self._register("before-send.dynamodb.TransactWriteItems", before_send)

    def unprocessed(self, writer: Any, *, rounds: int | None, keep: int) -> None:
        """BatchWriteItem, for its first ``rounds`` calls (every call when None), writes only the first
        ``keep`` requests of each table (through ``writer``, a client without hooks) and hands the rest
        back as ``UnprocessedItems``, with a 200, as DynamoDB does under load."""

        def before_send(request: AWSPreparedRequest, **_kwargs: Any) -> AWSResponse | None:
            number = self._count_call("BatchWriteItem")
            if rounds is not None and number > rounds:
                return None
            items: dict[str, list[Any]] = request_body(request)["RequestItems"]
            processed = {table: writes[:keep] for table, writes in items.items() if writes[:keep]}
            unprocessed = {table: writes[keep:] for table, writes in items.items() if writes[keep:]}
            if not unprocessed:
                return None
            if processed:
                assert not writer.batch_write_item(RequestItems=processed).get("UnprocessedItems")
            with self._lock:
                self.injected[UNPROCESSED_ITEMS] += 1
            return json_response(mark_answered(request), 200, {"UnprocessedItems": unprocessed})

        self._register("before-send.dynamodb.BatchWriteItem", before_send)

    def after_success(self, operation: str, action: Callable[[int], None]) -> None:
        """``action(n)`` runs after the n-th successful call of ``operation``, before the caller hears of it."""
        done = [0]

        def after_call(http_response: Any, **_kwargs: Any) -> None:
            if http_response.status_code >= 300:
                return
            with self._lock:
                done[0] += 1
                number = done[0]
            action(number)

        self._register(f"after-call.dynamodb.{operation}", after_call)

    def kill_after_write(self, operation: str, writes: int) -> None:
        """The function dies right after its ``writes``-th successful ``operation``, once."""

        def action(number: int) -> None:
            if number == writes:
                self.note(CRASH_AFTER_WRITE)
                raise Killed(f"killed after {operation} #{number} succeeded")

        self.after_success(operation, action)


@dataclass
class Ledger:
    """What the fault tests injected and survived, and what they found lost or counted twice."""

    injections: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    double_counted: int = 0
    tests_passed: int = 0
    tests_failed: int = 0

    def stored_once(self, sent: Iterable[str], stored: Iterable[str]) -> tuple[set[str], dict[str, int]]:
        """The ids sent but not stored, and the ids stored more than once (by how many times)."""
        sent_ids, counts = set(sent), Counter(stored)
        missing = sent_ids - counts.keys()
        repeated = {event_id: n for event_id, n in counts.items() if n > 1}
        self.lost += len(missing)
        self.double_counted += sum(n - 1 for n in repeated.values())
        return missing, repeated

    def counted_once(self, expected: int, counted: int) -> int:
        """``counted - expected``: what a statistic over-counted (positive) or lost (negative)."""
        self.lost += max(0, expected - counted)
        self.double_counted += max(0, counted - expected)
        return counted - expected

    def close_test(self, injectors: Iterable[Injector], passed: bool) -> None:
        if passed:
            self.tests_passed += 1
            for injector in injectors:
                self.injections.update(injector.injected)
        else:
            self.tests_failed += 1

    def summary(self) -> str:
        kinds = sorted(kind for kind, n in self.injections.items() if n)
        line = (
            f"faults: {len(kinds)} kinds x {sum(self.injections.values())} injections survived, "
            f"{self.lost} lost, {self.double_counted} double counted"
        )
        detail = ", ".join(f"{kind}={self.injections[kind]}" for kind in kinds)
        failed = f"; {self.tests_failed} failing tests not counted" if self.tests_failed else ""
        return f"{line} ({detail}; {self.tests_passed} tests{failed})"


LEDGER = Ledger()
