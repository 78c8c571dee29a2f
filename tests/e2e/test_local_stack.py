"""Over HTTP against the local stack, as a new user would drive it after `make run`."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from botocore.config import Config

from local_stack.aws import client
from local_stack.template import load_template
from tests.e2e.conftest import ROOT, Stack, free_port, start_stack, stop_stack

pytestmark = pytest.mark.e2e


def assert_error(reply_body: object, code: str) -> None:
    assert isinstance(reply_body, dict), reply_body
    error = reply_body["error"]
    assert error["code"] == code, reply_body
    assert isinstance(error["message"], str)
    assert isinstance(error["details"], list)


def test_health_needs_no_key(stack: Stack) -> None:
    reply = stack.request("GET", "/v1/health")
    assert (reply.status, reply.body) == (200, {"status": "ok"})


def test_a_tenant_records_and_reads_back_a_users_events(stack: Stack) -> None:
    # Given a tenant made with the admin key
    tenant = stack.new_tenant(timezone="Europe/Kyiv")
    key = tenant["api_key"]
    user = "team/ä b"
    # When it sends one event and a batch, one of them a retry
    first = stack.request(
        "POST",
        "/v1/events",
        {"event_id": "e2e-1", "user_id": user, "action": "login", "occurred_at": "2025-10-10T18:30:00+03:00"},
        key,
    )
    retry = stack.request(
        "POST",
        "/v1/events",
        {"event_id": "e2e-1", "user_id": user, "action": "login", "occurred_at": "2025-10-10T18:30:00+03:00"},
        key,
    )
    batch = stack.request(
        "POST",
        "/v1/events/batch",
        {
            "events": [
                {"event_id": "e2e-2", "user_id": user, "action": "view", "occurred_at": "2025-10-10T16:00:00Z"},
                {"event_id": "e2e-3", "user_id": user, "action": "logout", "occurred_at": "2025-10-10T17:00:00Z"},
                {"user_id": user},
            ]
        },
        key,
    )
    # Then the answers say what was stored
    assert first.status == 201
    assert first.body["status"] == "accepted"
    assert retry.status == 200
    assert retry.body["status"] == "duplicate"
    assert retry.body["received_at"] == first.body["received_at"]
    assert batch.status == 200
    assert (batch.body["accepted"], batch.body["duplicates"], batch.body["rejected"]) == (2, 0, 1)
    assert batch.body["results"][2]["error"]["code"] == "validation_error"
    # And the user's events come back in order, paged, with the user id round-tripped
    path = f"/v1/users/{quote(user, safe='')}/events"
    page = stack.request("GET", f"{path}?from=2025-10-10T00:00:00Z&to=2025-10-11T00:00:00Z&limit=2", key=key)
    assert page.status == 200, page.body
    assert [item["event_id"] for item in page.body["items"]] == ["e2e-1", "e2e-2"]
    assert all(item["user_id"] == user for item in page.body["items"])
    rest = stack.request(
        "GET",
        f"{path}?from=2025-10-10T00:00:00Z&to=2025-10-11T00:00:00Z&limit=2&cursor={page.body['next_cursor']}",
        key=key,
    )
    assert [item["event_id"] for item in rest.body["items"]] == ["e2e-3"]
    assert rest.body["next_cursor"] is None
    # And the first event's occurred_at is given in UTC with milliseconds
    assert page.body["items"][0]["occurred_at"] == "2025-10-10T15:30:00.000Z"


def test_one_tenant_never_sees_another(stack: Stack) -> None:
    alice, bob = stack.new_tenant(), stack.new_tenant()
    stack.request("POST", "/v1/events", {"user_id": "u1", "action": "secret"}, alice["api_key"])
    reply = stack.request("GET", "/v1/users/u1/events", key=bob["api_key"])
    assert reply.status == 200
    assert reply.body["items"] == []
    page = stack.request("GET", "/v1/users/u1/events?limit=1", key=alice["api_key"])
    stack.request("POST", "/v1/events", {"user_id": "u1", "action": "again"}, alice["api_key"])
    cursor = stack.request("GET", "/v1/users/u1/events?limit=1", key=alice["api_key"]).body["next_cursor"]
    assert page.status == 200
    assert cursor
    stolen = stack.request("GET", f"/v1/users/u1/events?limit=1&cursor={cursor}", key=bob["api_key"])
    assert stolen.status == 400
    assert_error(stolen.body, "bad_request")


@pytest.mark.parametrize(
    ("method", "path", "body", "raw", "key_kind", "status", "code"),
    [
        ("POST", "/v1/events", {"user_id": "u", "action": "a"}, None, "none", 401, "unauthorized"),
        ("POST", "/v1/events", {"user_id": "u", "action": "a"}, None, "unknown", 401, "unauthorized"),
        ("GET", "/v1/tenants", None, None, "tenant", 403, "forbidden"),
        ("POST", "/v1/events", {"user_id": "u", "action": "a"}, None, "admin", 403, "forbidden"),
        ("GET", "/v1/nothing-here", None, None, "tenant", 404, "not_found"),
        ("POST", "/v1/events", None, b"{not json", "tenant", 400, "bad_request"),
        ("POST", "/v1/events", ["a list"], None, "tenant", 422, "validation_error"),
        (
            "POST",
            "/v1/events",
            {"user_id": "u", "action": "a", "occurred_at": "2025-10-10T18:30:00"},
            None,
            "tenant",
            422,
            "validation_error",
        ),
        (
            "POST",
            "/v1/events",
            {"user_id": "u", "action": "a", "metadata": {"x": "y" * 34_000}},
            None,
            "tenant",
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/v1/events/batch",
            {"events": [{"user_id": "u", "action": "a"}] * 501},
            None,
            "tenant",
            422,
            "validation_error",
        ),
        ("GET", "/v1/users/u/events?limit=0", None, None, "tenant", 422, "validation_error"),
        ("GET", "/v1/users/u/events?limit=abc", None, None, "tenant", 400, "bad_request"),
        ("GET", "/v1/users/u/events?cursor=bm9wZQ.AAAA", None, None, "tenant", 400, "bad_request"),
    ],
)
def test_bad_requests_get_the_contract_error(
    stack: Stack,
    tenant_key: str,
    method: str,
    path: str,
    body: object,
    raw: bytes | None,
    key_kind: str,
    status: int,
    code: str,
) -> None:
    key = {"none": None, "unknown": "atk_unknown_key", "tenant": tenant_key, "admin": stack.admin_key}[key_kind]
    reply = stack.request(method, path, body, key, raw=raw)
    assert reply.status == status, reply.body
    assert_error(reply.body, code)


@pytest.fixture(scope="module")
def tenant_key(stack: Stack) -> str:
    return str(stack.new_tenant()["api_key"])


def test_an_inactive_tenants_key_is_refused(stack: Stack) -> None:
    tenant = stack.new_tenant()
    stack.request("PATCH", f"/v1/tenants/{tenant['tenant_id']}", {"active": False}, stack.admin_key)
    reply = stack.request("GET", "/v1/users/u/events", key=tenant["api_key"])
    assert reply.status == 403
    assert_error(reply.body, "forbidden")


@pytest.mark.local_only
def test_a_rollup_invoked_through_the_lambda_api_counts_events_at_once(stack: Stack) -> None:
    # Given an event posted a moment ago
    tenant = stack.new_tenant(timezone="Asia/Kolkata")
    key = tenant["api_key"]
    occurred = datetime.now(UTC) - timedelta(minutes=5)
    posted = stack.request(
        "POST", "/v1/events", {"user_id": "stat-user", "action": "buy", "occurred_at": occurred.isoformat()}, key
    )
    assert posted.status == 201
    # When the rollup is invoked with the sample scheduled event, its time set to now
    scheduled = json.loads((ROOT / "events" / "rollup" / "scheduled_event.json").read_text())
    scheduled["time"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    invoked = stack.request(
        "POST", "/2015-03-31/functions/RollupFunction/invocations", scheduled, base=stack.lambda_api
    )
    assert invoked.status == 200, invoked.body
    assert "x-amz-function-error" not in invoked.headers, invoked.body
    # Then the statistics count it right away
    daily = stack.request("GET", "/v1/stats/daily?days=2", key=key)
    assert daily.status == 200, daily.body
    assert daily.body["timezone"] == "Asia/Kolkata"
    assert sum(day["count"] for day in daily.body["items"]) == 1
    top = stack.request("GET", "/v1/stats/top-users?hours=24&limit=3", key=key)
    assert top.body["items"] == [{"user_id": "stat-user", "count": 1}]
    frequency = stack.request("GET", "/v1/stats/frequency", key=key)
    assert frequency.body["items"] == [{"action": "buy", "total": 1}]


@pytest.mark.local_only
def test_swagger_ui_and_the_openapi_document_are_served(stack: Stack) -> None:
    docs = stack.request("GET", "/docs")
    assert docs.status == 200
    document = stack.request("GET", "/openapi.json")
    assert document.status == 200
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert document.body == committed
    assert "/v1/events/batch" in document.body["paths"]


@pytest.mark.local_only
def test_ctrl_c_stops_the_stack_cleanly_while_64_clients_send() -> None:
    # Given a stack that 64 clients keep busy
    running = start_stack()
    key = running.new_tenant()["api_key"]
    sending = threading.Event()
    sending.set()

    def client(index: int) -> None:
        while sending.is_set():
            with contextlib.suppress(OSError):  # refused or reset once the stack stops: expected then
                running.request("POST", "/v1/events", {"user_id": f"u{index}", "action": "login"}, key=key)

    threads = [threading.Thread(target=client, args=(index,), daemon=True) for index in range(64)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(2.0)

        # When Ctrl-C comes
        started = time.monotonic()
        status = stop_stack(running)
        seconds = time.monotonic() - started
    finally:
        sending.clear()
        if running.process.poll() is None:
            running.process.kill()

    # Then it exits with 0, quickly (the figure is printed; under 5 s on an idle machine), without a traceback
    print(f"stopped in {seconds:.1f} s with 64 clients sending")
    assert status == 0
    assert seconds < 30
    assert not [line for line in running.output if "Traceback" in line], "".join(running.output[-40:])


# ---------------------------------------------------------------- strict HTTP, over raw sockets


def raw_exchange(url: str, data: bytes, timeout: float = 10.0) -> tuple[bytes, bool]:
    """Sends ``data`` on a new connection; returns what came back and whether the server closed it."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        connection.sendall(data)
        received = b""
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except TimeoutError:
            return received, False
        except ConnectionResetError:
            pytest.fail(f"the server reset the connection after sending {received[:200]!r}")
    return received, True


MALFORMED_REQUESTS = {
    "bare CR in a header value": b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-A: one\rInjected: two\r\n\r\n",
    "bare LF ending a header line": b"GET /v1/health HTTP/1.1\r\nHost: x\nX-A: one\r\n\r\n",
    "a header line without a colon": (
        b"POST /v1/health HTTP/1.1\r\nHost: x\r\nno colon here\r\nContent-Length: 28\r\n\r\n"
        b"GET /v1/health HTTP/1.1\r\n\r\n"
    ),
    "an obsolete folded header": b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n",
    "two different Content-Length": (
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
    ),
    "a Content-Length list that disagrees": b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 3\r\n\r\n{}",
    "a signed Content-Length": b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n{}",
    "a hexadecimal Content-Length": b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 0x2\r\n\r\n{}",
    "Content-Length and Transfer-Encoding": (
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\n\r\n"
    ),
    "a Transfer-Encoding other than chunked": (
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    ),
    "a chunk size that is not hexadecimal": (
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
    ),
    "a request line with two spaces": b"GET  /v1/health HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", MALFORMED_REQUESTS.values(), ids=MALFORMED_REQUESTS.keys())
def test_a_malformed_request_gets_a_400_and_the_connection_closes(stack: Stack, request_bytes: bytes) -> None:
    # When a request breaks HTTP/1.1's framing or header syntax
    received, closed = raw_exchange(stack.api, request_bytes)

    # Then one 400 comes back, in the contract's error shape, and the server closes the connection
    assert received.startswith(b"HTTP/1.1 400 "), received[:200]
    assert received.count(b"HTTP/1.1 ") == 1, received
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert "error" in json.loads(body)
    assert closed


def test_a_chunked_body_and_keep_alive_are_served(stack: Stack) -> None:
    # Given a tenant
    key = stack.new_tenant()["api_key"].encode()
    body = json.dumps({"user_id": "chunky", "action": "login"}).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:5], body[5:])) + b"0\r\n\r\n"
    head = b"POST /v1/events HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\ncontent-type: application/json\r\n" % key

    # When it sends an event with a chunked body, then a health check on the same connection, and closes
    received, closed = raw_exchange(
        stack.api,
        head
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + chunked
        + b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )

    # Then both are answered, in order
    assert received.startswith(b"HTTP/1.1 201 "), received[:300]
    assert received.count(b"HTTP/1.1 200 ") == 1
    assert closed


def test_no_secret_is_written_to_the_terminal_or_a_log(stack: Stack) -> None:
    # Given a tenant
    key = stack.new_tenant()["api_key"]
    secret = "s3cr3t-" + secrets.token_hex(8)

    # When its key and a secret go in the query string, the Authorization header and the key header
    stack.request(
        "GET",
        f"/v1/users/u1/events?api_key={secret}&limit=1",
        key=key,
        headers={"Authorization": f"Bearer {secret}"},
    )
    stack.request("GET", f"/v1/nowhere?api_key={secret}", headers={"x-api-key": secret})
    time.sleep(1.0)  # the function logs are followed every 0.2 s

    # Then neither the stack's output nor any function log holds them
    port = stack.api.rsplit(":", 1)[1]
    logs = [
        path.read_text(errors="replace") for path in (ROOT / ".local-stack" / f"port-{port}" / "logs").glob("*.log")
    ]
    assert logs, "no function log file"
    for text in ["".join(stack.output), *logs]:
        assert secret not in text
        assert key not in text
    assert any("GET    /v1/users/u1/events " in line for line in stack.output), stack.output[-5:]


def test_metrics_are_read_back_from_the_emulators_cloudwatch(stack: Stack) -> None:
    # Given a tenant that sends a batch of three events and one bad event
    key = stack.new_tenant()["api_key"]
    events = [{"user_id": "metric-user", "action": "view"} for _ in range(3)]
    assert stack.request("POST", "/v1/events/batch", {"events": events}, key=key).status == 200
    assert stack.request("POST", "/v1/events", {"user_id": ""}, key=key).status == 422

    # When CloudWatch is asked, as on AWS
    cloudwatch = client("cloudwatch", stack.aws)

    def total(namespace: str, name: str, dimensions: list[dict[str, str]]) -> float:
        answer = cloudwatch.get_metric_statistics(
            Namespace=namespace,
            MetricName=name,
            Dimensions=dimensions,
            StartTime=datetime.now(UTC) - timedelta(hours=1),
            EndTime=datetime.now(UTC) + timedelta(minutes=1),
            Period=3600,
            Statistics=["Sum"],
        )
        return sum(point["Sum"] for point in answer["Datapoints"])

    deadline = time.monotonic() + 10
    route = [
        {"Name": "ApiName", "Value": "activity-tracker-local"},
        {"Name": "Method", "Value": "POST"},
        {"Name": "Resource", "Value": "/v1/events"},
        {"Name": "Stage", "Value": load_template(ROOT / "template.yaml").api.stage},  # type: ignore[union-attr]
    ]
    while True:
        accepted = total("ActivityTracker", "EventsAccepted", [{"Name": "service", "Value": "activity-tracker"}])
        errors = total("AWS/ApiGateway", "4XXError", route)
        if (accepted >= 3 and errors >= 1) or time.monotonic() > deadline:
            break
        time.sleep(0.5)

    # Then the functions' EMF metrics and API Gateway's request metrics are there
    assert accepted >= 3
    assert errors >= 1
    units = cloudwatch.list_metrics(Namespace="ActivityTracker", MetricName="EventsAccepted")["Metrics"]
    assert units, "EventsAccepted is not listed"


def test_the_emulator_never_answers_a_500_to_concurrent_transactions_writes_and_queries(stack: Stack) -> None:
    # Given a table of the emulator and a client that does not retry (a 500 would surface at once)
    dynamodb = client("dynamodb", stack.aws, config=Config(retries={"total_max_attempts": 1}))
    table = "activity-tracker-local-AggregatesTable"
    run = secrets.token_hex(4)

    def transactions(worker: int) -> None:
        for round_ in range(15):
            dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": table,
                            "Key": {"pk": {"S": f"race-{run}"}, "sk": {"S": f"{worker}-{n}"}},
                            "UpdateExpression": "ADD #c :one",
                            "ExpressionAttributeNames": {"#c": "count"},
                            "ExpressionAttributeValues": {":one": {"N": "1"}},
                        }
                    }
                    for n in range(25)
                ]
            )
            dynamodb.put_item(TableName=table, Item={"pk": {"S": f"race-{run}"}, "sk": {"S": f"p-{worker}-{round_}"}})
            dynamodb.query(
                TableName=table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"race-{run}"}},
            )

    # When eight clients transact, write and query the same partition at once
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(transactions, range(8)))  # a 500 raises ClientError here

    # Then every transaction counted once
    items = dynamodb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :counted)",
        ExpressionAttributeValues={":pk": {"S": f"race-{run}"}, ":counted": {"S": "0-"}},
    )["Items"]
    assert sorted(int(item["count"]["N"]) for item in items) == [15] * 25
    assert not [line for line in stack.output if "AWS emulation answered 5" in line]


def test_a_failed_transaction_leaves_every_item_as_it_was(stack: Stack) -> None:
    # Given an item of the emulator
    dynamodb = client("dynamodb", stack.aws)
    table = "activity-tracker-local-AggregatesTable"
    pk = {"S": "rollback-" + secrets.token_hex(4)}
    dynamodb.put_item(TableName=table, Item={"pk": pk, "sk": {"S": "a"}, "n": {"N": "1"}})

    # When a transaction updates one, creates another, and fails its last condition (an item that is not there)
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": table,
                        "Key": {"pk": pk, "sk": {"S": "a"}},
                        "UpdateExpression": "SET n = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}},
                    }
                },
                {"Put": {"TableName": table, "Item": {"pk": pk, "sk": {"S": "b"}}}},
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": {"pk": pk, "sk": {"S": "c"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )

    # Then nothing of it was applied
    items = dynamodb.query(TableName=table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": pk})[
        "Items"
    ]
    assert items == [{"pk": pk, "sk": {"S": "a"}, "n": {"N": "1"}}]


def test_a_port_in_use_is_named_with_its_variable() -> None:
    # Given a port some other program listens on
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]

        # When the stack is asked to serve its API there
        finished = subprocess.run(
            [sys.executable, "-m", "local_stack", "run"],
            cwd=ROOT,
            env={**os.environ, "PORT": str(port), "LAMBDA_PORT": str(free_port()), "AWS_PORT": str(free_port())},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    # Then it stops at once with a message that names the port and the variable to change
    assert finished.returncode != 0
    assert f"Port {port}" in finished.stderr
    assert "set PORT to another port" in finished.stderr
    assert "Traceback" not in finished.stderr
