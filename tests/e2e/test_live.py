"""Live activity over a real WebSocket, against the local stack (``ws://127.0.0.1:WS_PORT``).

Events are ingested over HTTP; the local stack's stream poller hands the Events table's new items
to the real broadcaster, which posts them through its boto3 management API client to the local
WebSocket server. Arrival is awaited with a generous timeout (the machine may be loaded); the lag
itself is a figure of ``make bench``, not a test.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import boto3
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus
from websockets.uri import parse_uri

from local_stack import websocket as local_websocket
from local_stack.httpserver import HttpRequest
from local_stack.lambdas import InvokeResult
from local_stack.websocket import LocalWebSocketApi, ManagementApi, WebSocketSpec

from .conftest import Stack

pytestmark = pytest.mark.e2e

ARRIVAL_TIMEOUT = 30.0
"""Seconds to wait for a push on a loaded machine (the contract's 2 s is measured by make bench)."""
QUIET_SECONDS = 3.0
"""How long nothing more must arrive."""


def run(coroutine: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coroutine())


def url(stack: Stack, api_key: str) -> str:
    return f"{stack.ws}/?api_key={api_key}"


async def subscribe(connection: ClientConnection, user_id: str | None = None) -> None:
    message: dict[str, Any] = {"action": "subscribe"}
    if user_id is not None:
        message["user_id"] = user_id
    await connection.send(json.dumps(message))
    assert json.loads(await connection.recv()) == {"type": "subscribed", "user_id": user_id}


async def events_received(connection: ClientConnection, count: int) -> list[dict[str, Any]]:
    """``count`` pushed events, then proof that nothing else follows."""
    received = []
    deadline = time.monotonic() + ARRIVAL_TIMEOUT
    while len(received) < count:
        message = json.loads(await asyncio.wait_for(connection.recv(), deadline - time.monotonic()))
        assert message["type"] == "event", message
        received.append(message["event"])
    try:
        extra = await asyncio.wait_for(connection.recv(), QUIET_SECONDS)
    except TimeoutError:
        return received
    pytest.fail(f"one message too many: {extra!r}")


def post_events(stack: Stack, api_key: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    reply = stack.request("POST", "/v1/events/batch", {"events": events}, api_key)
    assert reply.status == 200, reply.body
    return dict(reply.body)


def test_subscribed_events_arrive_once_in_the_event_out_shape(stack: Stack) -> None:
    tenant = stack.new_tenant()
    key = tenant["api_key"]

    async def scenario() -> None:
        async with connect(url(stack, key)) as everyone, connect(url(stack, key)) as six:
            # Given one client watching the tenant and one watching user 6
            await subscribe(everyone)
            await subscribe(six, "6")
            # When events of users 6 and 7 are stored, and the first one is sent again (a retry)
            first = {"event_id": "live-1", "user_id": "6", "action": "login", "metadata": {"plan": "pro"}}
            answer = post_events(stack, key, [first, {"event_id": "live-2", "user_id": "7", "action": "view"}])
            assert answer["accepted"] == 2
            assert post_events(stack, key, [first])["duplicates"] == 1
            # Then each receives its events once (a batch is stored concurrently: in any order), as the query
            # API shows them
            assert sorted(event["event_id"] for event in await events_received(everyone, 2)) == ["live-1", "live-2"]
            (pushed,) = await events_received(six, 1)
            stored = stack.request("GET", "/v1/users/6/events", key=key).body["items"]
            assert [pushed] == stored

    run(scenario)


def test_another_tenants_events_never_arrive(stack: Stack) -> None:
    # Given two tenants whose users and event ids are the same
    mine, theirs = stack.new_tenant(), stack.new_tenant()

    async def scenario() -> None:
        async with connect(url(stack, mine["api_key"])) as watcher:
            await subscribe(watcher)
            await subscribe(watcher, "6")
            # When the watcher asks for the other tenant's events by any means the protocol has
            for attempt in (
                {"action": "subscribe", "tenant_id": theirs["tenant_id"]},
                {"action": "subscribe", "user_id": f"{theirs['tenant_id']}#6"},
            ):
                await watcher.send(json.dumps(attempt))
                await watcher.recv()
            # And both tenants store events of user 6 with the same ids
            same = [{"event_id": f"shared-{n}", "user_id": "6", "action": "login"} for n in range(3)]
            post_events(stack, theirs["api_key"], same)
            post_events(stack, mine["api_key"], same[:1])
            # Then only its own tenant's one arrives
            (event,) = await events_received(watcher, 1)
            assert event["event_id"] == "shared-0"

    run(scenario)


def refused_status(address: str) -> tuple[int, dict[str, Any]]:
    async def attempt() -> tuple[int, dict[str, Any]]:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(address):
                pass
        response = refused.value.response
        return response.status_code, json.loads(bytes(response.body))

    result: tuple[int, dict[str, Any]] = run(attempt)
    return result


def test_keys_that_may_not_watch_are_refused_at_connect(stack: Stack) -> None:
    tenant = stack.new_tenant()
    second = stack.request("POST", f"/v1/tenants/{tenant['tenant_id']}/keys", {}, stack.admin_key).body
    revoked = stack.request("DELETE", f"/v1/tenants/{tenant['tenant_id']}/keys/{second['key_id']}", key=stack.admin_key)
    assert revoked.status == 204
    inactive = stack.new_tenant()
    assert (
        stack.request("PATCH", f"/v1/tenants/{inactive['tenant_id']}", {"active": False}, stack.admin_key).status == 200
    )
    for address, status in [
        (f"{stack.ws}/", 401),
        (url(stack, ""), 401),
        (url(stack, "atk_not_a_key"), 401),
        (url(stack, second["api_key"]), 401),
        (url(stack, stack.admin_key), 403),
        (url(stack, inactive["api_key"]), 403),
    ]:
        answered, body = refused_status(address)
        assert answered == status, address
        assert set(body["error"]) == {"code", "message", "details"}


def test_bad_messages_get_an_error_and_the_connection_stays_open(stack: Stack) -> None:
    key = stack.new_tenant()["api_key"]

    async def scenario() -> None:
        async with connect(url(stack, key)) as connection:
            for message in ["not json", "x" * 200_000, "[]", '{"action": "subscribe", "user_id": ""}', b"\xff\x00"]:
                await connection.send(message)
                answer = json.loads(await connection.recv())
                assert answer["type"] == "error", message
                assert set(answer["error"]) == {"code", "message", "details"}
            # 1,000 subscriptions asked at once: the first 100 are granted, the rest refused, in order
            for user in range(1000):
                await connection.send(json.dumps({"action": "subscribe", "user_id": f"u{user}"}))
            answers = [json.loads(await connection.recv()) for _ in range(1000)]
            assert [answer["type"] for answer in answers] == ["subscribed"] * 100 + ["error"] * 900
            assert answers[-1]["error"]["details"][0]["type"] == "too_many_subscriptions"
            # Still open and working
            await connection.send('{"action": "unsubscribe", "user_id": "u0"}')
            assert json.loads(await connection.recv()) == {"type": "unsubscribed", "user_id": "u0"}
            await subscribe(connection)

    run(scenario)


def connection_items(stack: Stack) -> list[dict[str, Any]]:
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=stack.aws,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    items: list[dict[str, Any]] = dynamodb.scan(TableName="activity-tracker-local-ConnectionsTable")["Items"]
    return items


@pytest.mark.local_only  # reads the local emulation's connections table
def test_a_client_that_leaves_is_forgotten(stack: Stack) -> None:
    tenant = stack.new_tenant()

    async def scenario() -> None:
        async with connect(url(stack, tenant["api_key"])) as connection:
            await subscribe(connection)
            assert any(item["tenant_id"]["S"] == tenant["tenant_id"] for item in connection_items(stack))

    run(scenario)
    deadline = time.monotonic() + ARRIVAL_TIMEOUT
    while any(item["tenant_id"]["S"] == tenant["tenant_id"] for item in connection_items(stack)):
        assert time.monotonic() < deadline, "the connection's items are still there"
        time.sleep(0.2)


def test_ten_clients_each_receive_exactly_their_users_events(stack: Stack) -> None:
    key = stack.new_tenant()["api_key"]

    async def scenario() -> None:
        clients = [await connect(url(stack, key)) for _ in range(10)]
        try:
            for number, client in enumerate(clients):
                await subscribe(client, f"u{number}")
            # 200 events over 20 users: half of them watched
            events = [{"event_id": f"load-{n:03d}", "user_id": f"u{n % 20}", "action": "view"} for n in range(200)]
            for offset in range(0, 200, 50):
                post_events(stack, key, events[offset : offset + 50])
            for number, client in enumerate(clients):
                expected = [event["event_id"] for event in events if event["user_id"] == f"u{number}"]
                assert sorted(event["event_id"] for event in await events_received(client, 10)) == expected
        finally:
            for client in clients:
                await client.close()

    run(scenario)


# ---------------------------------------------------------------- the local server's own bounds


@pytest.mark.local_only  # the local WebSocket server's own buffer
def test_a_client_that_never_reads_is_dropped_with_bounded_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the local WebSocket server (with a small outbox and write buffer)
    monkeypatch.setattr(local_websocket, "OUTBOX_LIMIT", 50)
    monkeypatch.setattr(local_websocket, "WRITE_LIMIT_BYTES", 16 * 1024)
    connected: list[str] = []

    def invoke(function: str, event: dict[str, Any]) -> InvokeResult:
        if function == "Connect":
            connected.append(event["requestContext"]["connectionId"])
        return InvokeResult(json.dumps({"statusCode": 200}))

    spec = WebSocketSpec("WebSocketApi", "local", "dev", {"$connect": "Connect"}, frozenset())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = LocalWebSocketApi(spec, invoke, "127.0.0.1", port)
    server.start()
    management = ManagementApi(server)
    # And a client that completes the handshake (websockets' own sans-I/O client) and never reads again
    client = socket.socket()
    try:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(("127.0.0.1", port))
        protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/"))
        protocol.send_request(protocol.connect())
        client.sendall(b"".join(protocol.data_to_send()))
        while not protocol.events_received():
            protocol.receive_data(client.recv(4096))
        (connection,) = connected
        # When 1 KB messages are posted to it without end
        statuses = []
        for _ in range(20_000):
            answer = management.handle(HttpRequest("POST", f"/dev/@connections/{connection}", [], b"x" * 1024))
            statuses.append(answer.status)
            if answer.status != 200:
                break
        # Then, once the outbox, the write buffer and the sockets' buffers are full, it is dropped and Gone
        assert statuses[-1] == 410, f"{len(statuses)} messages were all taken"
        assert server.connections == 0
        assert management.handle(HttpRequest("GET", f"/dev/@connections/{connection}", [])).status == 410
    finally:
        client.close()
        server.stop()
