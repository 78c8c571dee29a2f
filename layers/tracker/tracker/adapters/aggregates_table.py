"""The Aggregates table, one store per job, each making only the calls its function's IAM policy
allows (checked by ``tests/integration/test_store_policies.py``):

- ``DynamoRollupAggregates`` (RollupFunction): the progress record (GetItem, PutItem), journals
  (TransactWriteItems of Put + ConditionCheck, Query, DeleteItem), aggregates (BatchGetItem,
  conditional PutItem);
- ``DynamoStatsAggregates`` (StatsFunction): the progress record and aggregates, read only (GetItem, Query);
- ``DynamoAggregateEraser`` (EraseWorkerFunction): the progress record (GetItem, PutItem), the
  user's partition (Query) and tombstones (conditional PutItem).

An aggregate item is ``pk``, ``sk``, ``c`` and ``p`` (committed and pending counters as compact
JSON: an ``int`` as a JSON integer, a ``Decimal`` as a JSON string of its exact decimal text, so
that both read back exactly as they were), ``t`` (the token that wrote it), ``b`` (the token ``c``
is the value of) and ``n`` (how many parts its value has, on part 0 when more than one).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from tracker.adapters.clients import error_code, translated_errors
from tracker.adapters.dynamodb import Item, attr_s, backoff_delays, dynamodb_client
from tracker.adapters.received_events import ReceivedEventsIndex
from tracker.aggregates import AggregateKey, Counters, StoredAggregate, user_partition
from tracker.interfaces import Lag, Progress, RollupConflict, TemporarilyUnavailable
from tracker.settings import require_settings
from tracker.timefmt import format_utc, parse_utc

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ROLLUP_PARTITION = "ROLLUP"
PROGRESS_KEY = {"pk": attr_s(ROLLUP_PARTITION), "sk": attr_s("PROGRESS")}
BATCH_GET_LIMIT = 100
PARALLEL_REQUESTS = 8
JOURNAL_KEYS_PER_ITEM = 1_000
"""1,000 keys of at most ~270 bytes each: under 300 KB per journal item."""
NEWER_ONLY = "attribute_not_exists(pk) OR t < :t"


def _n(value: int) -> Item:
    return {"N": str(value)}


def _key(key: AggregateKey) -> Item:
    return {"pk": attr_s(key[0]), "sk": attr_s(key[1])}


def _json(value: Any) -> Item:
    return attr_s(json.dumps(value, separators=(",", ":"), sort_keys=True))


def _decimal_text(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"A counter is an int or a Decimal, not {type(value).__name__}.")


def _counters_json(value: Counters) -> Item:
    return attr_s(json.dumps(value, separators=(",", ":"), sort_keys=True, default=_decimal_text))


def _counters(attribute: Item | None) -> Counters:
    if not attribute:
        return {}
    return {name: Decimal(n) if isinstance(n, str) else int(n) for name, n in json.loads(attribute["S"]).items()}


# ---------------------------------------------------------------- items


def aggregate_to_item(aggregate: StoredAggregate) -> Item:
    item = {
        **_key(aggregate.key),
        "c": _counters_json(aggregate.committed),
        "p": _counters_json(aggregate.pending),
        "t": _n(aggregate.tag),
        "b": _n(aggregate.base),
    }
    if aggregate.parts > 1:
        item["n"] = _n(aggregate.parts)
    return item


def aggregate_from_item(item: Item) -> StoredAggregate:
    return StoredAggregate(
        key=(item["pk"]["S"], item["sk"]["S"]),
        committed=_counters(item.get("c")),
        pending=_counters(item.get("p")),
        tag=int(item["t"]["N"]),
        base=int(item["b"]["N"]),
        parts=int(item["n"]["N"]) if "n" in item else 1,
    )


def progress_to_item(progress: Progress) -> Item:
    item = {
        **PROGRESS_KEY,
        "token": _n(progress.token),
        "fence": _n(progress.fence),
        "dirty": _json(list(progress.dirty)),
        "lagging": _json(
            {
                tenant: [lag.token, format_utc(lag.as_of) if lag.as_of else None, list(lag.dirty)]
                for tenant, lag in progress.lagging.items()
            }
        ),
    }
    if progress.as_of is not None:
        item["as_of"] = attr_s(format_utc(progress.as_of))
    if progress.lease_until is not None:
        item["lease_until"] = attr_s(format_utc(progress.lease_until))
    return item


def progress_from_item(item: Item) -> Progress:
    lagging = json.loads(item["lagging"]["S"])
    return Progress(
        as_of=parse_utc(item["as_of"]["S"]) if "as_of" in item else None,
        token=int(item["token"]["N"]),
        fence=int(item["fence"]["N"]),
        lease_until=parse_utc(item["lease_until"]["S"]) if "lease_until" in item else None,
        dirty=tuple(json.loads(item["dirty"]["S"])),
        lagging={
            tenant: Lag(token, parse_utc(as_of) if as_of else None, tuple(dirty))
            for tenant, (token, as_of, dirty) in lagging.items()
        },
    )


class _Table:
    """What the stores share: the client, the table, the progress record, paged queries."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def load_progress(self) -> Progress:
        with translated_errors():
            answer = self._client.get_item(TableName=self._table, Key=PROGRESS_KEY, ConsistentRead=True)
        item = answer.get("Item")
        return progress_from_item(item) if item else Progress(as_of=None, token=0, fence=0, lease_until=None)

    def replace_progress(self, progress: Progress, expected_fence: int) -> bool:
        if expected_fence == 0:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "fence = :fence",
                "ExpressionAttributeValues": {":fence": _n(expected_fence)},
            }
        try:
            with translated_errors():
                self._client.put_item(TableName=self._table, Item=progress_to_item(progress), **condition)
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _query(self, request: dict[str, Any]) -> Iterator[Item]:
        while True:
            with translated_errors():
                page = self._client.query(**request)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            request = {**request, "ExclusiveStartKey": page["LastEvaluatedKey"]}

    def _partition(
        self, partition: str, low: str | None = None, high: str | None = None, **extra: Any
    ) -> Iterator[Item]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": attr_s(partition)},
            **extra,
        }
        if low is not None and high is not None:
            request["KeyConditionExpression"] += " AND sk BETWEEN :low AND :high"
            request["ExpressionAttributeValues"].update({":low": attr_s(low), ":high": attr_s(high)})
        return self._query(request)

    def _put_newer(self, aggregate: StoredAggregate) -> bool:
        """Writes the item unless a token at least as high wrote it; False then."""
        try:
            with translated_errors():
                self._client.put_item(
                    TableName=self._table,
                    Item=aggregate_to_item(aggregate),
                    ConditionExpression=NEWER_ONLY,
                    ExpressionAttributeValues={":t": _n(aggregate.tag)},
                )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True


# ---------------------------------------------------------------- the rollup's store


def _journal_prefix(token: int) -> str:
    return f"JOURNAL#{token:012d}#"


class DynamoRollupAggregates(_Table):
    """The rollup's store: the ``by_received_v2`` index of the Events table and the Aggregates table."""

    def __init__(self, client: DynamoDBClient, table: str, received: ReceivedEventsIndex) -> None:
        super().__init__(client, table)
        self._received = received

    def received_events(self, start: datetime, end: datetime) -> Iterator[Any]:
        return self._received.received_events(start, end)

    def write_journal(self, token: int, keys: Sequence[AggregateKey]) -> None:
        """Each journal item in a transaction with a check that the fence is still ``token``."""
        for number, offset in enumerate(range(0, max(len(keys), 1), JOURNAL_KEYS_PER_ITEM)):
            chunk = [list(key) for key in keys[offset : offset + JOURNAL_KEYS_PER_ITEM]]
            journal = {"pk": attr_s(ROLLUP_PARTITION), "sk": attr_s(f"{_journal_prefix(token)}{number:06d}")}
            check = {
                "ConditionCheck": {
                    "TableName": self._table,
                    "Key": PROGRESS_KEY,
                    "ConditionExpression": "fence = :fence",
                    "ExpressionAttributeValues": {":fence": _n(token)},
                }
            }
            put = {"Put": {"TableName": self._table, "Item": {**journal, "keys": _json(chunk)}}}
            try:
                with translated_errors():
                    self._client.transact_write_items(TransactItems=[check, put])  # type: ignore[list-item]
            except ClientError as error:
                if error_code(error) == "TransactionCanceledException":
                    raise RollupConflict("The fence moved before the journal was written.") from error
                raise

    def read_journal(self, token: int) -> list[AggregateKey]:
        request = {
            "TableName": self._table,
            "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": attr_s(ROLLUP_PARTITION), ":prefix": attr_s(_journal_prefix(token))},
        }
        return [(pk, sk) for item in self._query(request) for pk, sk in json.loads(item["keys"]["S"])]

    def delete_journals(self, tokens: Iterable[int]) -> None:
        for token in tokens:
            request = {
                "TableName": self._table,
                "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                "ExpressionAttributeValues": {
                    ":pk": attr_s(ROLLUP_PARTITION),
                    ":prefix": attr_s(_journal_prefix(token)),
                },
                "ProjectionExpression": "pk, sk",
            }
            for item in list(self._query(request)):
                with translated_errors():
                    self._client.delete_item(TableName=self._table, Key={"pk": item["pk"], "sk": item["sk"]})

    def load_aggregates(self, keys: Iterable[AggregateKey]) -> dict[AggregateKey, StoredAggregate]:
        wanted = sorted(set(keys))
        found: dict[AggregateKey, StoredAggregate] = {}
        for offset in range(0, len(wanted), BATCH_GET_LIMIT):
            request: Any = {
                self._table: {
                    "Keys": [_key(key) for key in wanted[offset : offset + BATCH_GET_LIMIT]],
                    "ConsistentRead": True,
                }
            }
            delays = backoff_delays()
            while request:
                with translated_errors():
                    answer = self._client.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table, []):
                    aggregate = aggregate_from_item(item)
                    found[aggregate.key] = aggregate
                request = answer.get("UnprocessedKeys") or None
                if request:
                    delay = next(delays, None)
                    if delay is None:
                        raise TemporarilyUnavailable("DynamoDB kept keys unprocessed after every retry.")
                    time.sleep(delay)
        return found

    def write_aggregates(self, items: Sequence[StoredAggregate]) -> dict[AggregateKey, Exception]:
        def write(aggregate: StoredAggregate) -> Exception | None:
            try:
                if not self._put_newer(aggregate):
                    return RollupConflict(f"{aggregate.key} was written by a higher token.")
            except (ClientError, TemporarilyUnavailable) as error:
                return error
            return None

        with ThreadPoolExecutor(max_workers=PARALLEL_REQUESTS) as pool:
            outcomes = list(pool.map(write, items))
        return {item.key: error for item, error in zip(items, outcomes, strict=True) if error is not None}


# ---------------------------------------------------------------- the statistics' store


class DynamoStatsAggregates(_Table):
    """What the statistics read: the progress record and aggregates, with strongly consistent reads."""

    def read_partition(self, partition: str, low: str | None = None, high: str | None = None) -> list[StoredAggregate]:
        return [aggregate_from_item(item) for item in self._partition(partition, low, high)]

    def read_partitions(self, partitions: Iterable[str]) -> list[StoredAggregate]:
        with ThreadPoolExecutor(max_workers=PARALLEL_REQUESTS) as pool:
            return [item for items in pool.map(self.read_partition, list(partitions)) for item in items]


# ---------------------------------------------------------------- erasure's store


class DynamoAggregateEraser(_Table):
    """What erasure does to aggregates: fence the rollup, list and empty a user's items."""

    def user_items(self, tenant_id: str, user_id: str) -> list[AggregateKey]:
        items = self._partition(user_partition(tenant_id, user_id), ProjectionExpression="pk, sk")
        return [(item["pk"]["S"], item["sk"]["S"]) for item in items]

    def tombstone(self, keys: Sequence[AggregateKey], token: int) -> None:
        # A refused write means a run with a higher token wrote the item: new data, after the erasure.
        for key in keys:
            self._put_newer(StoredAggregate(key, {}, {}, tag=token, base=0))


# ---------------------------------------------------------------- factories


def rollup_aggregates() -> DynamoRollupAggregates:
    settings = require_settings("aggregates_table", "events_table")
    client = dynamodb_client()
    return DynamoRollupAggregates(client, settings.aggregates_table, ReceivedEventsIndex(client, settings.events_table))


def stats_aggregates() -> DynamoStatsAggregates:
    return DynamoStatsAggregates(dynamodb_client(), require_settings("aggregates_table").aggregates_table)


def aggregate_eraser() -> DynamoAggregateEraser:
    return DynamoAggregateEraser(dynamodb_client(), require_settings("aggregates_table").aggregates_table)
