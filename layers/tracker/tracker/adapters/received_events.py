"""The ``by_received_v2`` index of the Events table: what arrived in a period, in one total order.

It projects what the rollup counts: tenant, user, action, ``occurred_at``, and the ``metadata``
and ``violations`` the numeric properties and the tracking plan's statistics need. (It replaced
``by_received``, which projected no metadata: a projection cannot change in place; see
docs/architecture.md for moving a deployed stack from one to the other.)
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from tracker.adapters.clients import translated_errors
from tracker.adapters.dynamodb import Item, attr_s
from tracker.aggregates import ReceivedEvent
from tracker.records import RECEIVED_SHARDS
from tracker.timefmt import format_utc, parse_utc

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

RECEIVED_INDEX = "by_received_v2"


def _metadata(item: Item) -> dict[str, Any] | None:
    """The stored metadata JSON, floats as the exact ``Decimal`` of their text. Text that does not
    parse (ingest never stores such) counts as no metadata rather than halting every tenant's rollup."""
    attribute = item.get("metadata")
    if attribute is None:
        return None
    try:
        value = json.loads(attribute["S"], parse_float=Decimal)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def received_event_from_item(item: Item) -> ReceivedEvent:
    return ReceivedEvent(
        received_key=item["received_key"]["S"],
        tenant_id=item["tenant_id"]["S"],
        user_id=item["user_id"]["S"],
        action=item["action"]["S"],
        occurred_at=parse_utc(item["occurred_at"]["S"]),
        metadata=_metadata(item),
        violations=tuple(entry["M"]["kind"]["S"] for entry in item.get("violations", {}).get("L", [])),
    )


class ReceivedEventsIndex:
    def __init__(self, client: DynamoDBClient, events_table: str) -> None:
        self._client = client
        self._table = events_table

    def received_events(self, start: datetime, end: datetime) -> Iterator[ReceivedEvent]:
        """Events received in ``[start, end)``: the shards of each received hour merged, hour after hour."""
        hour = start.replace(minute=0, second=0, microsecond=0)
        low, high = format_utc(start), format_utc(end)
        while hour < end:
            prefix = format_utc(hour)[:13]
            shards = [self._received_in(f"{prefix}#{shard}", low, high) for shard in range(RECEIVED_SHARDS)]
            yield from heapq.merge(*shards, key=attrgetter("received_key"))
            hour += timedelta(hours=1)

    def _received_in(self, partition: str, low: str, high: str) -> Iterator[ReceivedEvent]:
        # received_key is "{time}#{tenant}#{id}", so BETWEEN low AND high is [low, high).
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": RECEIVED_INDEX,
            "KeyConditionExpression": "received_part = :part AND received_key BETWEEN :low AND :high",
            "ExpressionAttributeValues": {":part": attr_s(partition), ":low": attr_s(low), ":high": attr_s(high)},
        }
        while True:
            with translated_errors():
                page = self._client.query(**request)
            for item in page.get("Items", []):
                yield received_event_from_item(item)
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
