"""Section 5: live activity (WebSocket) under load, through the local stack.

``CLIENTS`` WebSocket clients connect to the local stack with one tenant's key; client ``i`` subscribes
to user ``u{i}``. Events are then ingested at ``RATE`` events per second for ``SECONDS`` (batches of
``RATE / 10`` every 100 ms, over 4 keep-alive connections), spread over the subscribed users and as
many again that nobody watches. The stream poller of the local stack hands the new items to the real
broadcaster, which posts them through its boto3 management API client to the local WebSocket server.

Checked: every client receives exactly the accepted events of its user (same count, same ids, no
duplicate), and nothing else. Measured: the broadcast lag of each delivered event, from its
``received_at`` (stamped by the ingest function) to its arrival at the client, p50/p99/max. Then the
stack is stopped with every client still connected: how long it takes, and how the clients were closed.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.common import log, median, percentile
from bench.ingest import Client, local_stack

BATCHES_PER_SECOND = 10
SENDERS = 4
DRAIN_SECONDS = 30.0
SUBSCRIBE_ATTEMPTS = 3
QUERY_ATTEMPTS = 10


class Watcher:
    """One WebSocket client subscribed to one user: what it received, and when."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.event_ids: list[str] = []
        self.lags_ms: list[float] = []
        """From the event's ``received_at`` to its arrival."""
        self.arrivals: dict[str, float] = {}
        self.others: list[str] = []
        self.close_code: int | None = None
        self.subscribe_failures: list[str] = []
        self.subscribed = False
        self.connection: ClientConnection | None = None

    async def run(self, url: str) -> None:
        async with connect(url, max_size=2**20, open_timeout=60, close_timeout=5) as connection:
            self.connection = connection
            for _attempt in range(SUBSCRIBE_ATTEMPTS):  # a loaded machine may time a function out: ask again
                await connection.send(json.dumps({"action": "subscribe", "user_id": self.user_id}))
                answer = await self._answer(connection)
                if answer == {"type": "subscribed", "user_id": self.user_id}:
                    break
                self.subscribe_failures.append(str(answer)[:200])
            else:
                raise RuntimeError(f"subscribe answered {answer}")
            self.subscribed = True
            try:
                async for message in connection:
                    body = json.loads(message)
                    if body.get("type") != "event":
                        self.others.append(str(message)[:200])
                        continue
                    self._record(body["event"])
            except ConnectionClosed:
                pass
            self.close_code = connection.close_code

    async def _answer(self, connection: ClientConnection) -> dict[str, Any]:
        """The next message that is not an event (events of a subscription that timed out yet was applied
        count as deliveries)."""
        while True:
            body: dict[str, Any] = json.loads(await connection.recv())
            if body.get("type") != "event":
                return body
            self._record(body["event"])

    def _record(self, event: dict[str, Any]) -> None:
        arrived = time.time()
        self.event_ids.append(event["event_id"])
        self.arrivals[event["event_id"]] = arrived
        received = datetime.fromisoformat(event["received_at"].replace("Z", "+00:00")).timestamp()
        self.lags_ms.append((arrived - received) * 1000)
        if event["user_id"] != self.user_id:
            self.others.append(f"event of {event['user_id']}")


def _ingest(
    port: int, key: str, rate: int, seconds: int, users: int, *, answered: dict[str, float]
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Posts ``rate`` events a second for ``seconds``; the accepted event ids of each user, and the pacing.

    ``answered`` gets the time each accepted event's ingest answer arrived.
    """
    per_batch = max(1, rate // BATCHES_PER_SECOND)
    total_batches = seconds * BATCHES_PER_SECOND
    accepted: dict[str, list[str]] = defaultdict(list)
    lock = threading.Lock()
    problems: list[str] = []
    started = time.perf_counter()

    def send(sender: int) -> None:
        client = Client(port)
        try:
            for number in range(sender, total_batches, SENDERS):
                delay = started + number / BATCHES_PER_SECOND - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                events = [
                    {
                        "event_id": f"live-{number:05d}-{index:03d}",
                        "user_id": f"u{(number * per_batch + index) % users}",
                        "action": "view",
                    }
                    for index in range(per_batch)
                ]
                status, body, _headers = client.request("POST", "/v1/events/batch", key, {"events": events})
                answer_time = time.time()
                if status != 200:
                    with lock:
                        problems.append(f"{status}: {json.dumps(body)[:200]}")
                    continue
                with lock:
                    for result in body["results"]:
                        # A duplicate here is a batch resent after its answer was lost: stored all the same.
                        if result["status"] in {"accepted", "duplicate"}:
                            accepted[events[result["index"]]["user_id"]].append(result["event_id"])
                            answered[result["event_id"]] = answer_time
                        else:
                            problems.append(f"{result['status']}: {json.dumps(result)[:200]}")
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=SENDERS) as pool:
        list(pool.map(send, range(SENDERS)))
    elapsed = time.perf_counter() - started
    sent = sum(len(ids) for ids in accepted.values())
    return accepted, {
        "seconds": round(elapsed, 1),
        "events_accepted": sent,
        "events_per_second": round(sent / elapsed, 1),
        "problems": problems[:5],
        "problem_count": len(problems),
    }


def _stored(stack: Any, key: str, users: list[str]) -> dict[str, list[str]]:
    """Each user's stored event ids, through the query API."""
    client = Client(stack.port)
    try:
        stored = {}
        for user in users:
            ids: list[str] = []
            path = f"/v1/users/{user}/events?limit=1000"
            while path:
                for _attempt in range(QUERY_ATTEMPTS):  # the store may be busy with the broadcast's backlog
                    status, page, headers = client.request("GET", path, key)
                    if status not in {429, 503}:
                        break
                    time.sleep(float(headers.get("retry-after", "1")))
                if status != 200:
                    raise RuntimeError(f"GET {path} answered {status}: {page}")
                ids += [item["event_id"] for item in page["items"]]
                cursor = page["next_cursor"]
                path = f"/v1/users/{user}/events?limit=1000&cursor={quote(cursor, safe='')}" if cursor else ""
            stored[user] = ids
        return stored
    finally:
        client.close()


async def _load(stack: Any, clients: int, rate: int, seconds: int) -> dict[str, Any]:
    admin = Client(stack.port)
    status, tenant, _ = admin.request("POST", "/v1/tenants", stack.admin_key, {"name": f"Live bench {time.time()}"})
    admin.close()
    if status != 201:
        raise RuntimeError(f"creating the tenant answered {status}: {tenant}")
    url = f"ws://127.0.0.1:{stack.ports['WS_PORT']}/?api_key={tenant['api_key']}"
    watchers = [Watcher(f"u{index}") for index in range(clients)]
    started = time.perf_counter()
    tasks = [asyncio.create_task(watcher.run(url)) for watcher in watchers]
    while sum(watcher.subscribed for watcher in watchers) < clients:
        failed = [task for task in tasks if task.done()]
        if failed:
            failed[0].result()
        await asyncio.sleep(0.05)
    connect_seconds = time.perf_counter() - started
    log(f"live: {clients} clients connected and subscribed in {connect_seconds:.1f} s; ingesting")
    # Half the users are watched, half not: the broadcaster must leave those out.
    answered: dict[str, float] = {}
    _accepted, ingest = await asyncio.to_thread(
        _ingest, stack.port, tenant["api_key"], rate, seconds, clients * 2, answered=answered
    )
    # What must arrive is what was stored after the subscriptions: the accepted events, and any an
    # overloaded ingest answered "unavailable" for although its write went through.
    expected = await asyncio.to_thread(_stored, stack, tenant["api_key"], [watcher.user_id for watcher in watchers])
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline and any(
        len(watcher.event_ids) < len(expected[watcher.user_id]) for watcher in watchers
    ):
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # anything extra (a duplicate) would arrive now
    return {
        "watchers": watchers,
        "expected": expected,
        "answered": answered,
        "ingest": ingest,
        "connect_seconds": connect_seconds,
        "tasks": tasks,
    }


def run(clients: int, rate: int, seconds: int) -> dict[str, Any]:
    loop = asyncio.new_event_loop()
    try:
        with local_stack() as stack:
            outcome = loop.run_until_complete(_load(stack, clients, rate, seconds))
            log("live: stopping the local stack with every client connected")
        # The stack is stopped: each client's task ends with the close the server sent.
        loop.run_until_complete(asyncio.wait(outcome["tasks"], timeout=30))
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
    watchers: list[Watcher] = outcome["watchers"]
    expected: dict[str, list[str]] = outcome["expected"]
    exact = [
        watcher.user_id
        for watcher in watchers
        if Counter(watcher.event_ids) == Counter(expected[watcher.user_id]) and not watcher.others
    ]
    lags = [lag for watcher in watchers for lag in watcher.lags_ms]
    answered: dict[str, float] = outcome["answered"]
    # Negative when the push beat the ingest answer back to the client.
    after_answer = [
        (arrived - answered[event_id]) * 1000
        for watcher in watchers
        for event_id, arrived in watcher.arrivals.items()
        if event_id in answered
    ]
    delivered = sum(len(watcher.event_ids) for watcher in watchers)
    return {
        "clients": clients,
        "target_events_per_second": rate,
        "target_seconds": seconds,
        "connect_and_subscribe_seconds": round(outcome["connect_seconds"], 1),
        "ingest": outcome["ingest"],
        "messages_expected": sum(len(ids) for ids in expected.values()),
        "messages_delivered": delivered,
        "duplicates": sum(len(w.event_ids) - len(set(w.event_ids)) for w in watchers),
        "foreign_messages": sum(len(w.others) for w in watchers),
        "clients_exact": len(exact),
        "all_exact": len(exact) == clients,
        "lag_ms": {
            "p50": round(median(lags), 1) if lags else None,
            "p99": round(percentile(lags, 0.99), 1) if lags else None,
            "max": round(max(lags), 1) if lags else None,
        },
        "within_2s": round(sum(lag <= 2000 for lag in lags) / len(lags), 4) if lags else None,
        "after_answer_ms": {
            "p50": round(median(after_answer), 1) if after_answer else None,
            "p99": round(percentile(after_answer, 0.99), 1) if after_answer else None,
        },
        "within_2s_of_answer": (
            round(sum(lag <= 2000 for lag in after_answer) / len(after_answer), 4) if after_answer else None
        ),
        "stop": stack.stop,
        "close_codes": dict(Counter(str(w.close_code) for w in watchers)),
        "subscribe_retries": sum(len(w.subscribe_failures) for w in watchers),
    }
