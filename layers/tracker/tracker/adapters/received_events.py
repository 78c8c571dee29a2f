"""The ``by_received`` index of the Events table: what arrived in a period, in one total order."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from tracker.adapters.clients import translated_errors
from tracker.adapters.dynamodb import attr_s
from tracker.aggregates import ReceivedEvent
from tracker.records import RECEIVED_SHARDS
from tracker.timefmt import format_utc, parse_utc

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


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
            "IndexName": "by_received",
            "KeyConditionExpression": "received_part = :part AND received_key BETWEEN :low AND :high",
            "ExpressionAttributeValues": {":part": attr_s(partition), ":low": attr_s(low), ":high": attr_s(high)},
        }
        while True:
            with translated_errors():
                page = self._client.query(**request)
            for item in page.get("Items", []):
                yield ReceivedEvent(
                    received_key=item["received_key"]["S"],
                    tenant_id=item["tenant_id"]["S"],
                    user_id=item["user_id"]["S"],
                    action=item["action"]["S"],
                    occurred_at=parse_utc(item["occurred_at"]["S"]),
                )
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
