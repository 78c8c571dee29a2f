"""A threaded HTTP proxy in front of the local stack that misbehaves on ``POST /v1/events/batch``.

Each batch request meets one fate, drawn with a seeded random: passed through; answered 429 with
``Retry-After`` or 503 without reaching the stack; the connection dropped half way through the request
body (nothing reached the stack); or forwarded and then the connection dropped, or a 503 returned, in
place of the stack's answer (the events were stored, and the client cannot know). Every other request is
passed through. Used by the SDK's e2e test (a few thousand events) and by ``make bench`` (100,000).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import random
import socket
import socketserver
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FATES: dict[str, float] = {
    "pass": 0.55,
    "429_before": 0.09,
    "503_before": 0.09,
    "drop_mid_request": 0.09,
    "drop_after_forwarding": 0.09,
    "503_after_forwarding": 0.09,
}
HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "host", "proxy-connection"})


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "details": []}}).encode()


@dataclass
class FaultProxy:
    upstream_port: int
    seed: int = 17
    fates: dict[str, float] = field(default_factory=lambda: dict(FATES))
    retry_after: str = "1"
    delay_seconds: float = 0.0
    """Added before forwarding each batch: makes an import slow enough to interrupt."""
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)  # noqa: S311 - a reproducible fault plan
        self._lock = threading.Lock()
        self._server: socketserver.ThreadingTCPServer | None = None

    def fate(self, method: str, path: str) -> str:
        if method != "POST" or not path.startswith("/v1/events/batch"):
            return "pass"
        with self._lock:
            chosen = self._random.choices(list(self.fates), weights=list(self.fates.values()))[0]
            self.counts[chosen] += 1
            return chosen

    def start(self, port: int = 0) -> int:
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                proxy.serve_connection(self.rfile, self.connection)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", port), Handler)
        threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True).start()
        return int(self._server.server_address[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def serve_connection(self, reader: Any, connection: socket.socket) -> None:
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=300)
        try:
            while self._serve_request(reader, connection, upstream):
                pass
        except (OSError, http.client.HTTPException):
            pass
        finally:
            upstream.close()

    def _serve_request(self, reader: Any, connection: socket.socket, upstream: http.client.HTTPConnection) -> bool:
        """One request of a keep-alive connection; False when the connection is to be closed."""
        request_line = reader.readline(65536).decode("latin-1").strip()
        if not request_line:
            return False
        method, path, _ = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        while (line := reader.readline(65536).decode("latin-1").strip()) != "":
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        fate = self.fate(method, path)
        if fate == "drop_mid_request":
            reader.read(length // 2)
            connection.shutdown(socket.SHUT_RDWR)
            return False
        body = reader.read(length) if length else None
        if fate in {"429_before", "503_before"}:
            status = 429 if fate == "429_before" else 503
            code = "throttled" if status == 429 else "unavailable"
            self._respond(
                connection, status, {"retry-after": self.retry_after}, _error_body(code, f"injected {status}")
            )
            return True
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        forwarded = {name: value for name, value in headers.items() if name not in HOP_HEADERS}
        upstream.request(method, path, body=body, headers=forwarded)
        answer = upstream.getresponse()
        payload = answer.read()
        if fate == "drop_after_forwarding":
            connection.shutdown(socket.SHUT_RDWR)
            return False
        if fate == "503_after_forwarding":
            self._respond(connection, 503, {"retry-after": self.retry_after}, _error_body("unavailable", "injected"))
            return True
        kept = {name.lower(): value for name, value in answer.getheaders() if name.lower() not in HOP_HEADERS}
        kept.pop("content-length", None)
        self._respond(connection, answer.status, kept, payload)
        return True

    @staticmethod
    def _respond(connection: socket.socket, status: int, headers: dict[str, str], body: bytes) -> None:
        lines = [f"HTTP/1.1 {status} {http.client.responses.get(status, 'Status')}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines += [f"content-length: {len(body)}", "connection: keep-alive", "", ""]
        connection.sendall("\r\n".join(lines).encode("latin-1") + body)


# ------------------------------------------------------------------------------ the exactly-once scenario


def read_back(request: Callable[[str], Any], users: list[str]) -> Counter[str]:
    """How many times each ``metadata.seq`` is stored, over every event of ``users`` (paged).

    ``request`` returns None when a page could not be read (the store busy): the page is asked again,
    smaller (a busy store times out on large pages).
    """
    from urllib.parse import quote

    seen: Counter[str] = Counter()
    for user in users:
        cursor, limit, failures = None, 250, 0
        while True:
            path = f"/v1/users/{quote(user, safe='')}/events?limit={limit}" + (
                f"&cursor={quote(cursor)}" if cursor else ""
            )
            page = request(path)
            if page is None:
                failures += 1
                if failures > 200:
                    raise RuntimeError(f"could not read {path}")
                limit = max(25, limit // 2)
                time.sleep(1)
                continue
            for item in page["items"]:
                seen[str(item["metadata"]["seq"])] += 1
            cursor = page.get("next_cursor")
            if not cursor:
                break
    return seen


@dataclass
class ExactlyOnce:
    events: int
    threads: int
    seconds: float
    stored: int
    stored_twice: int
    missing: int
    tracker: dict[str, int]
    faults: dict[str, int]
    failures: list[str]

    @property
    def ok(self) -> bool:
        return self.stored == self.events and not self.stored_twice and not self.missing and not self.failures

    def summary(self) -> dict[str, Any]:
        return {**self.__dict__, "ok": self.ok}


def exactly_once(
    api: str, key: str, events: int, *, threads: int = 8, users: int = 50, batch_size: int = 500, seed: int = 17
) -> ExactlyOnce:
    """``events`` tracked from ``threads`` threads through one Tracker behind a FaultProxy; then read back."""
    from activity_tracker import RetryPolicy, Tracker

    upstream_port = int(api.rsplit(":", 1)[1])
    proxy = FaultProxy(upstream_port, seed=seed)
    port = proxy.start()
    failures: list[str] = []
    tracker = Tracker(
        key,
        f"http://127.0.0.1:{port}",
        on_error=lambda failure: failures.append(f"{failure.reason}: {failure.message}"[:300]),
        max_queue_size=events,
        max_batch_size=batch_size,
        flush_interval=0.2,
        retry=RetryPolicy(base_seconds=0.05, cap_seconds=2.0, budget_seconds=300.0),
        timeout=120.0,
    )
    run = f"{seed}-{time.time_ns()}"
    per_thread = events // threads
    user_ids = [f"sdk-{run}-{index}" for index in range(users)]

    def send(thread: int) -> None:
        for index in range(per_thread):
            sequence = thread * per_thread + index
            tracker.track(user_ids[sequence % users], "sdk.fault_test", metadata={"seq": sequence, "thread": thread})

    started = time.monotonic()
    workers = [threading.Thread(target=send, args=(thread,)) for thread in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    delivered = tracker.shutdown(timeout=600)
    seconds = time.monotonic() - started
    proxy.stop()
    if not delivered:
        failures.append("shutdown: not everything was delivered")

    import urllib.request

    def get(path: str) -> Any:
        request = urllib.request.Request(f"{api}{path}", headers={"x-api-key": key})  # noqa: S310 - local URL
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310
                return json.loads(answer.read())
        except OSError:  # 429/503 (HTTPError is an OSError) or a timeout: read_back asks again
            return None

    seen = read_back(get, user_ids)
    total = per_thread * threads
    stats = tracker.stats()
    return ExactlyOnce(
        events=total,
        threads=threads,
        seconds=round(seconds, 1),
        stored=sum(seen.values()),
        stored_twice=sum(1 for count in seen.values() if count > 1),
        missing=sum(1 for sequence in range(total) if str(sequence) not in seen),
        tracker=dataclasses.asdict(stats),
        faults=dict(proxy.counts),
        failures=failures[:10],
    )
