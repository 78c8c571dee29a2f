"""Fakes for the Python SDK's tests: a clock that only moves when slept on, and an ingest API in memory
whose requests meet scripted fates (network errors before or after storing, statuses, per-event rejections)."""

from __future__ import annotations

import gzip
import json
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from activity_tracker._http import Response


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(status, dict(headers or {}), json.dumps(body).encode())


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return json_response(status, {"error": {"code": code, "message": message, "details": []}}, headers)


@dataclass
class Sent:
    headers: dict[str, str]
    events: list[dict[str, Any]]


@dataclass
class FakeIngestApi:
    """``POST /v1/events/batch`` in memory: each event_id stored once, ``duplicate`` after that.

    ``fates`` are consumed one per request: ``"ok"``; ``"network"`` (raises, nothing stored);
    ``"lost"`` (stored, then the answer is lost: raises); a ``Response`` (returned, nothing stored);
    ``("reject", {index: code})`` (those events rejected with that code, the others stored).
    When ``fates`` is empty, requests are answered ``"ok"``; ``down_until`` refuses connections before then.
    """

    fates: deque[Any] = field(default_factory=deque)
    clock: FakeClock | None = None
    down_until: float = 0.0
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, fates: Iterable[Any]) -> FakeIngestApi:
        self.fates.extend(fates)
        return self

    def send(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]) -> Response:
        assert (method, path) == ("POST", "/v1/events/batch")
        assert body is not None
        raw = gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body
        events = json.loads(raw)["events"]
        with self.lock:
            self.requests.append(Sent(dict(headers), events))
            if self.clock is not None and self.clock.now < self.down_until:
                raise ConnectionRefusedError("connection refused")
            fate = self.fates.popleft() if self.fates else "ok"
        if fate == "network":
            raise ConnectionResetError("connection reset by peer")
        if isinstance(fate, Response):
            return fate
        rejected: dict[int, str] = fate[1] if isinstance(fate, tuple) else {}
        results = []
        for index, event in enumerate(events):
            if index in rejected:
                error = {"code": rejected[index], "message": f"injected {rejected[index]}", "details": []}
                results.append({"index": index, "event_id": event["event_id"], "status": "rejected", "error": error})
                continue
            with self.lock:
                known = event["event_id"] in self.stored
                if not known:
                    self.stored[event["event_id"]] = event
            results.append(
                {"index": index, "event_id": event["event_id"], "status": "duplicate" if known else "accepted"}
            )
        if fate == "lost":
            raise ConnectionResetError("the answer was lost")
        counts = {
            status: sum(r["status"] == status for r in results) for status in ("accepted", "duplicate", "rejected")
        }
        body_out = {"accepted": counts["accepted"], "duplicates": counts["duplicate"], "rejected": counts["rejected"]}
        return json_response(200, {**body_out, "results": results})

    def close(self) -> None:
        pass
