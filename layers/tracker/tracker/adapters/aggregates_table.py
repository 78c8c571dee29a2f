"""The aggregates in DynamoDB: what the rollup reads and commits, and what statistics read."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from tracker.adapters.clients import translated_errors
from tracker.adapters.dynamodb import Item, attr_s, dynamodb_client
from tracker.aggregates import (
    ACTION_PREFIX,
    AggregateKey,
    Chunk,
    ReceivedEvent,
    UserDayActions,
    action_counts,
    hour_users_partition,
    user_partition,
)
from tracker.interfaces import AggregateItem, Progress, RollupConflict
from tracker.records import RECEIVED_SHARDS
from tracker.rollup import MAX_ITEMS_PER_COMMIT
from tracker.settings import require_settings
from tracker.timefmt import format_utc, parse_utc

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PROGRESS_KEY = {"pk": attr_s("ROLLUP"), "sk": attr_s("PROGRESS")}
BATCH_GET_LIMIT = 100
PARALLEL_READS = 8


def _n(value: int) -> Item:
    return {"N": str(value)}


def _key(key: AggregateKey) -> Item:
    return {"pk": attr_s(key[0]), "sk": attr_s(key[1])}


def _numbers(item: Item) -> Iterator[tuple[str, int]]:
    for name, value in item.items():
        if "N" in value:
            yield name, int(value["N"])


def progress_from_item(item: Item) -> Progress:
    return Progress(
        as_of=parse_utc(item["as_of"]["S"]) if "as_of" in item else None,
        position=item["position"]["S"] if "position" in item else None,
        partial=item.get("partial", {}).get("BOOL", False),
        version=int(item["version"]["N"]),
    )


def _update_delta(table: str, key: AggregateKey, count: int, users: int, actions: dict[str, int]) -> Item:
    names = {"#count": "count"}
    values = {":count": _n(count)}
    additions = ["#count :count"]
    if users:
        names["#users"] = "users"
        values[":users"] = _n(users)
        additions.append("#users :users")
    for index, (action, amount) in enumerate(sorted(actions.items())):
        names[f"#a{index}"] = f"{ACTION_PREFIX}{action}"
        values[f":a{index}"] = _n(amount)
        additions.append(f"#a{index} :a{index}")
    return {
        "Update": {
            "TableName": table,
            "Key": _key(key),
            "UpdateExpression": "ADD " + ", ".join(additions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
    }


class DynamoAggregateStore:
    def __init__(self, client: DynamoDBClient, aggregates_table: str, events_table: str) -> None:
        self._client = client
        self._table = aggregates_table
        self._events_table = events_table

    # ------------------------------------------------------------ shared

    def load_progress(self) -> Progress | None:
        with translated_errors():
            answer = self._client.get_item(TableName=self._table, Key=PROGRESS_KEY, ConsistentRead=True)
        item = answer.get("Item")
        return progress_from_item(item) if item else None

    def _query(self, request: dict[str, Any]) -> Iterator[Item]:
        while True:
            with translated_errors():
                page = self._client.query(**request)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            request = {**request, "ExclusiveStartKey": page["LastEvaluatedKey"]}

    # ------------------------------------------------------------ rollup

    def received_events(self, start: datetime, end: datetime) -> Iterator[ReceivedEvent]:
        """Merges the shards of each received hour, hour after hour: one total order."""
        hour = start.replace(minute=0, second=0, microsecond=0)
        low, high = format_utc(start), format_utc(end)
        while hour < end:
            prefix = format_utc(hour)[:13]
            shards = [self._received_in(f"{prefix}#{shard}", low, high) for shard in range(RECEIVED_SHARDS)]
            yield from heapq.merge(*shards, key=attrgetter("received_key"))
            hour += timedelta(hours=1)

    def _received_in(self, partition: str, low: str, high: str) -> Iterator[ReceivedEvent]:
        # received_key is "{time}#{tenant}#{id}", so BETWEEN low AND high is [low, high).
        request = {
            "TableName": self._events_table,
            "IndexName": "by_received",
            "KeyConditionExpression": "received_part = :part AND received_key BETWEEN :low AND :high",
            "ExpressionAttributeValues": {":part": attr_s(partition), ":low": attr_s(low), ":high": attr_s(high)},
        }
        for item in self._query(request):
            yield ReceivedEvent(
                received_key=item["received_key"]["S"],
                tenant_id=item["tenant_id"]["S"],
                user_id=item["user_id"]["S"],
                action=item["action"]["S"],
                occurred_at=parse_utc(item["occurred_at"]["S"]),
            )

    def load_user_days(self, keys: Iterable[AggregateKey]) -> dict[AggregateKey, UserDayActions]:
        wanted = list(keys)
        found: dict[AggregateKey, UserDayActions] = dict.fromkeys(wanted)
        for offset in range(0, len(wanted), BATCH_GET_LIMIT):
            request: Any = {
                self._table: {
                    "Keys": [_key(key) for key in wanted[offset : offset + BATCH_GET_LIMIT]],
                    "ConsistentRead": True,
                }
            }
            while request:
                with translated_errors():
                    answer = self._client.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table, []):
                    actions = action_counts(_numbers(item))
                    found[(item["pk"]["S"], item["sk"]["S"])] = frozenset(name for name, n in actions.items() if n > 0)
                request = answer.get("UnprocessedKeys") or None
        return found

    def commit(self, chunk: Chunk, progress: Progress, expected_version: int | None) -> None:
        if progress.as_of is None:
            raise ValueError("A rollup commit always moves as_of.")
        writes = [
            _update_delta(self._table, key, delta.count, delta.users, dict(delta.actions))
            for key, delta in chunk.deltas.items()
        ]
        values: dict[str, Any] = {
            ":as_of": attr_s(format_utc(progress.as_of)),
            ":partial": {"BOOL": progress.partial},
            ":version": _n(progress.version),
        }
        condition = "attribute_not_exists(pk)"
        if expected_version is not None:
            condition = "#version = :expected"
            values[":expected"] = _n(expected_version)
        assignments = "SET #as_of = :as_of, #partial = :partial, #version = :version"
        if progress.position is None:
            update = f"{assignments} REMOVE #position"
        else:
            update = f"{assignments}, #position = :position"
            values[":position"] = attr_s(progress.position)
        writes.append(
            {
                "Update": {
                    "TableName": self._table,
                    "Key": PROGRESS_KEY,
                    "UpdateExpression": update,
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": {
                        "#as_of": "as_of",
                        "#partial": "partial",
                        "#version": "version",
                        "#position": "position",
                    },
                    "ExpressionAttributeValues": values,
                }
            }
        )
        try:
            with translated_errors():
                self._client.transact_write_items(TransactItems=writes)  # type: ignore[arg-type]
        except ClientError as error:
            reasons = error.response.get("CancellationReasons", [])
            if reasons and reasons[-1].get("Code") == "ConditionalCheckFailed":
                raise RollupConflict("Another rollup committed first.") from error
            raise

    # ------------------------------------------------------------ erasure

    def delete_user_aggregates(self, tenant_id: str, user_id: str) -> int:
        """Deletes the user's partition and their entries in the hourly top-user lists.

        Each transaction also bumps the rollup's version, so a rollup that read the user's
        events before they were deleted fails its next commit instead of writing them back.
        """
        partition = user_partition(tenant_id, user_id)
        keys: list[AggregateKey] = []
        for item in self.read_partition(partition):
            keys.append((partition, item.sort_key))
            if item.sort_key.startswith("H#"):
                keys.append((hour_users_partition(tenant_id, parse_utc(item.sort_key[2:])), user_id))
        bump = {
            "Update": {
                "TableName": self._table,
                "Key": PROGRESS_KEY,
                "UpdateExpression": "SET #version = if_not_exists(#version, :zero) + :one",
                "ExpressionAttributeNames": {"#version": "version"},
                "ExpressionAttributeValues": {":zero": _n(0), ":one": _n(1)},
            }
        }
        for offset in range(0, max(len(keys), 1), MAX_ITEMS_PER_COMMIT):
            deletes = [
                {"Delete": {"TableName": self._table, "Key": _key(key)}}
                for key in keys[offset : offset + MAX_ITEMS_PER_COMMIT]
            ]
            with translated_errors():
                self._client.transact_write_items(TransactItems=[*deletes, bump])  # type: ignore[list-item]
        return len(keys)

    # ------------------------------------------------------------ statistics

    def read_partition(self, partition: str, low: str | None = None, high: str | None = None) -> list[AggregateItem]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": attr_s(partition)},
        }
        if low is not None and high is not None:
            request["KeyConditionExpression"] += " AND sk BETWEEN :low AND :high"
            request["ExpressionAttributeValues"].update({":low": attr_s(low), ":high": attr_s(high)})
        return [_aggregate_item(item) for item in self._query(request)]

    def read_partitions(self, partitions: Iterable[str]) -> dict[str, list[AggregateItem]]:
        names = list(partitions)
        with ThreadPoolExecutor(max_workers=PARALLEL_READS) as pool:
            return dict(zip(names, pool.map(self.read_partition, names), strict=True))


def _aggregate_item(item: Item) -> AggregateItem:
    numbers = dict(_numbers(item))
    return AggregateItem(
        sort_key=item["sk"]["S"],
        count=numbers.get("count", 0),
        users=numbers.get("users", 0),
        actions=action_counts(numbers.items()),
    )


def aggregate_store() -> DynamoAggregateStore:
    settings = require_settings("aggregates_table")
    return DynamoAggregateStore(dynamodb_client(), settings.aggregates_table, settings.events_table)
