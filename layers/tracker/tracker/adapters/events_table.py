"""The Events table: idempotent puts, a user's events by time, and their deletion."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from tracker.adapters.clients import error_code, translated_errors
from tracker.adapters.dynamodb import Item, attr_s, batch_write, dynamodb_client
from tracker.interfaces import TemporarilyUnavailable, UserEventsQuery
from tracker.json_shape import compact_json
from tracker.records import EventRecord, Violation, event_pk, user_key
from tracker.settings import require_settings
from tracker.timefmt import format_utc, parse_utc

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def event_to_item(record: EventRecord) -> Item:
    item = {
        "pk": attr_s(record.pk),
        "user_key": attr_s(record.user_key),
        "occurred_key": attr_s(record.occurred_key),
        "received_part": attr_s(record.received_part),
        "received_key": attr_s(record.received_key),
        "tenant_id": attr_s(record.tenant_id),
        "event_id": attr_s(record.event_id),
        "user_id": attr_s(record.user_id),
        "action": attr_s(record.action),
        "occurred_at": attr_s(format_utc(record.occurred_at)),
        "received_at": attr_s(format_utc(record.received_at)),
        "fingerprint": attr_s(record.fingerprint),
    }
    if record.metadata is not None:
        # Stored as JSON text: DynamoDB has no floats, NaN or arbitrary precision numbers.
        item["metadata"] = attr_s(compact_json(record.metadata))
    if record.violations:
        # What the event broke of its tenant's tracking plan (flag mode), for the rollup to count.
        item["violations"] = {
            "L": [{"M": {"kind": attr_s(v.kind), "field": attr_s(v.field)}} for v in record.violations]
        }
    return item


def event_from_item(item: Item) -> EventRecord:
    metadata = item.get("metadata")
    return EventRecord(
        tenant_id=item["tenant_id"]["S"],
        event_id=item["event_id"]["S"],
        user_id=item["user_id"]["S"],
        action=item["action"]["S"],
        occurred_at=parse_utc(item["occurred_at"]["S"]),
        received_at=parse_utc(item["received_at"]["S"]),
        metadata=json.loads(metadata["S"]) if metadata else None,
        fingerprint=item["fingerprint"]["S"],
        violations=[
            Violation(kind=entry["M"]["kind"]["S"], field=entry["M"]["field"]["S"])
            for entry in item.get("violations", {}).get("L", [])
        ],
    )


class DynamoEventStore:
    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def put_new(self, record: EventRecord) -> EventRecord | None:
        try:
            with translated_errors():
                self._client.put_item(
                    TableName=self._table,
                    Item=event_to_item(record),
                    ConditionExpression="attribute_not_exists(pk)",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
            return event_from_item(error.response["Item"])  # type: ignore[typeddict-item]
        return None

    def query_user_events(self, query: UserEventsQuery) -> tuple[list[EventRecord], bool]:
        partition = user_key(query.tenant_id, query.user_id)
        # occurred_key is "{time}#{event_id}", so BETWEEN start AND end is [start, end).
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "by_user_time",
            "KeyConditionExpression": "user_key = :user AND occurred_key BETWEEN :start AND :end",
            "ExpressionAttributeValues": {
                ":user": attr_s(partition),
                ":start": attr_s(format_utc(query.start) if query.start else "0"),
                ":end": attr_s(format_utc(query.end) if query.end else "9"),
            },
            "ScanIndexForward": not query.descending,
        }
        if query.action is not None:
            request["FilterExpression"] = "#action = :action"
            request["ExpressionAttributeNames"] = {"#action": "action"}
            request["ExpressionAttributeValues"][":action"] = attr_s(query.action)
        if query.after is not None:
            event_id = query.after.split("#", 1)[1]
            request["ExclusiveStartKey"] = {
                "user_key": attr_s(partition),
                "occurred_key": attr_s(query.after),
                "pk": attr_s(event_pk(query.tenant_id, event_id)),
            }
        # One item more than asked tells whether another page follows.
        wanted = query.limit + 1
        items: list[Item] = []
        while True:
            if query.action is None:
                request["Limit"] = wanted - len(items)
            with translated_errors():
                page = self._client.query(**request)
            items.extend(page.get("Items", []))
            last_key = page.get("LastEvaluatedKey")
            if len(items) >= wanted or not last_key:
                break
            request["ExclusiveStartKey"] = last_key
        return [event_from_item(item) for item in items[: query.limit]], len(items) > query.limit

    def user_event_pages(self, tenant_id: str, user_id: str) -> Iterator[list[str]]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "by_user_time",
            "KeyConditionExpression": "user_key = :user",
            "ExpressionAttributeValues": {":user": attr_s(user_key(tenant_id, user_id))},
            "ProjectionExpression": "pk",
        }
        while True:
            with translated_errors():
                page = self._client.query(**request)
            keys = [item["pk"]["S"] for item in page.get("Items", [])]
            if keys:
                yield keys
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def delete_events(self, keys: list[str]) -> None:
        batch_write(self._client, self._table, [{"DeleteRequest": {"Key": {"pk": attr_s(key)}}} for key in keys])

    def ping(self) -> None:
        try:
            with translated_errors():
                self._client.describe_table(TableName=self._table)
        except ClientError as error:  # a missing table or a denied call: unhealthy all the same
            raise TemporarilyUnavailable(str(error)) from error


def event_store() -> DynamoEventStore:
    return DynamoEventStore(dynamodb_client(), require_settings("events_table").events_table)
