"""Erasure of a user over HTTP: more events than one DynamoDB page, another tenant's same user untouched."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import boto3
import pytest

from local_stack.template import load_template
from tests.e2e.conftest import Stack, rfc3339, run_rollup, send
from tracker.records import user_key

pytestmark = [pytest.mark.e2e, pytest.mark.local_only]  # seeds the local emulation directly

USER = "gdpr/user é"
BYSTANDER = "bystander"
ERASED_EVENTS = 3000
OTHER_TENANT_EVENTS = 25
BATCH = 500
METADATA = {"note": "x" * 380, "plan": "pro"}  # about 400 bytes serialized
ERASURE_TIMEOUT_SECONDS = 120
SPREAD_MINUTES = 180


def ingest(stack: Stack, key: str, events: list[dict[str, Any]]) -> None:
    """Every event stored, in batches of 500; events a batch refused as unavailable are sent again."""
    for offset in range(0, len(events), BATCH):
        pending = events[offset : offset + BATCH]
        for _ in range(5):
            reply = send(stack, "POST", "/v1/events/batch", {"events": pending}, key)
            assert reply.status == 200, reply.body
            refused = [result for result in reply.body["results"] if result["status"] == "rejected"]
            assert all(result["error"]["code"] == "unavailable" for result in refused), refused
            if not refused:
                break
            pending = [pending[result["index"]] for result in refused]
        else:
            pytest.fail(f"{len(pending)} events were never stored")


def events_of(user: str, count: int, now: datetime, prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{prefix}-{index:05d}",
            "user_id": user,
            "action": ("login", "view", "buy")[index % 3],
            "occurred_at": rfc3339(now - timedelta(minutes=index % SPREAD_MINUTES, milliseconds=index)),
            "metadata": {**METADATA, "n": index},
        }
        for index in range(count)
    ]


def user_path(user: str, route: str, **query: str) -> str:
    return f"/v1/users/{quote(user, safe='')}/{route}" + (f"?{urlencode(query)}" if query else "")


def count_events(stack: Stack, key: str, user: str) -> int:
    total, cursor = 0, None
    while True:
        query = {"limit": "250", **({"cursor": cursor} if cursor else {})}
        reply = send(stack, "GET", user_path(user, "events", **query), key=key)
        assert reply.status == 200, reply.body
        total += len(reply.body["items"])
        cursor = reply.body["next_cursor"]
        if cursor is None:
            return total


def activity_total(stack: Stack, key: str, user: str, since: datetime) -> int:
    window = {"period": "1h", "from": rfc3339(since), "to": rfc3339(datetime.now(UTC) + timedelta(hours=1))}
    reply = send(stack, "GET", user_path(user, "activity", **window), key=key)
    assert reply.status == 200, reply.body
    return sum(int(item["count"]) for item in reply.body["items"])


def top_users(stack: Stack, key: str) -> dict[str, int]:
    reply = send(stack, "GET", "/v1/stats/top-users?hours=24&limit=100", key=key)
    assert reply.status == 200, reply.body
    return {item["user_id"]: item["count"] for item in reply.body["items"]}


def dynamodb_pages(stack: Stack, tenant_id: str, user: str) -> int:
    """How many Query pages the user's events take in the emulated DynamoDB (what the worker pages through)."""
    template = load_template()
    client = boto3.client(
        "dynamodb",
        endpoint_url=stack.aws,
        region_name=template.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    pages = client.get_paginator("query").paginate(
        TableName=template.tables["EventsTable"].name,
        IndexName="by_user_time",
        KeyConditionExpression="user_key = :user",
        ExpressionAttributeValues={":user": {"S": user_key(tenant_id, user)}},
        ProjectionExpression="pk",
    )
    return sum(1 for _ in pages)


@dataclass
class Erasable:
    stack: Stack
    tenant: dict[str, Any]
    other: dict[str, Any]
    since: datetime

    @property
    def key(self) -> str:
        return str(self.tenant["api_key"])

    @property
    def other_key(self) -> str:
        return str(self.other["api_key"])


@pytest.fixture(scope="module")
def erasable(stack: Stack) -> Erasable:
    """A tenant whose user has more events than one DynamoDB page, and another tenant with a same-named user."""
    tenant, other = stack.new_tenant(), stack.new_tenant()
    # Everything received so far is counted, so that the next rollup reads only these events
    run_rollup(stack, datetime.now(UTC))
    now = datetime.now(UTC).replace(microsecond=0)
    started = time.monotonic()
    ingest(stack, tenant["api_key"], events_of(USER, ERASED_EVENTS, now, "big"))
    ingest(stack, tenant["api_key"], events_of(BYSTANDER, 7, now, "by"))
    ingest(stack, other["api_key"], events_of(USER, OTHER_TENANT_EVENTS, now, "big"))
    print(f"\nerasure: ingested {ERASED_EVENTS + 7 + OTHER_TENANT_EVENTS} events in {time.monotonic() - started:.1f} s")
    run_rollup(stack, datetime.now(UTC))
    return Erasable(stack, tenant, other, now - timedelta(minutes=SPREAD_MINUTES + 60))


def test_an_erased_user_is_gone_from_every_query_and_statistic_and_only_in_its_tenant(erasable: Erasable) -> None:
    stack, key, other_key = erasable.stack, erasable.key, erasable.other_key
    # Given the user's events stored and counted, in both tenants
    assert count_events(stack, key, USER) == ERASED_EVENTS
    assert activity_total(stack, key, USER, erasable.since) == ERASED_EVENTS
    assert top_users(stack, key).get(USER) == ERASED_EVENTS
    assert top_users(stack, other_key).get(USER) == OTHER_TENANT_EVENTS
    pages = dynamodb_pages(stack, str(erasable.tenant["tenant_id"]), USER)
    assert pages > 1, "the user's events fit in one DynamoDB page: the erasure would not page"
    # When the user is erased
    started = time.monotonic()
    accepted = send(stack, "DELETE", f"/v1/users/{quote(USER, safe='')}", key=key)
    assert accepted.status == 202, accepted.body
    assert accepted.body["status"] == "pending", accepted.body
    erasure_id = accepted.body["erasure_id"]
    deadline = started + ERASURE_TIMEOUT_SECONDS
    while True:
        progress = send(stack, "GET", f"/v1/erasures/{erasure_id}", key=key)
        assert progress.status == 200, progress.body
        assert progress.body["status"] in {"pending", "running", "completed"}, progress.body
        if progress.body["status"] == "completed":
            break
        assert time.monotonic() < deadline, f"not completed after {ERASURE_TIMEOUT_SECONDS} s: {progress.body}"
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    print(f"\nerasure: {progress.body['deleted_events']} events ({pages} DynamoDB pages) erased in {elapsed:.1f} s")
    # Then the erasure says what it did
    assert progress.body["erasure_id"] == erasure_id
    assert progress.body["user_id"] == USER
    assert progress.body["deleted_events"] == ERASED_EVENTS
    # And the user is gone from the events, the activity and the top users, also after another rollup
    for attempt in ("after the erasure", "after another rollup"):
        if attempt == "after another rollup":
            run_rollup(stack, datetime.now(UTC))
        empty = send(stack, "GET", user_path(USER, "events"), key=key)
        assert (empty.status, empty.body["items"], empty.body["next_cursor"]) == (200, [], None), attempt
        assert activity_total(stack, key, USER, erasable.since) == 0, attempt
        ranked = top_users(stack, key)
        assert USER not in ranked, attempt
        assert ranked.get(BYSTANDER) == 7, attempt
        # And the other tenant's user of the same name still has everything
        assert count_events(stack, other_key, USER) == OTHER_TENANT_EVENTS, attempt
        assert activity_total(stack, other_key, USER, erasable.since) == OTHER_TENANT_EVENTS, attempt
        assert top_users(stack, other_key).get(USER) == OTHER_TENANT_EVENTS, attempt
    assert count_events(stack, key, BYSTANDER) == 7


def test_an_erasure_id_of_another_tenant_is_not_found(erasable: Erasable) -> None:
    stack = erasable.stack
    # Given an erasure of the first tenant
    accepted = send(stack, "DELETE", "/v1/users/someone-else", key=erasable.key)
    assert accepted.status == 202, accepted.body
    erasure_id = accepted.body["erasure_id"]
    assert send(stack, "GET", f"/v1/erasures/{erasure_id}", key=erasable.key).status == 200
    # When the other tenant asks for it, or for an id that never existed
    for asked in (erasure_id, "era_00000000000000000000"):
        reply = send(stack, "GET", f"/v1/erasures/{asked}", key=erasable.other_key)
        # Then it is not found, in the contract's error shape, and says nothing of the erasure
        assert reply.status == 404, reply.body
        assert reply.body["error"]["code"] == "not_found", reply.body
        assert "someone-else" not in str(reply.body)
