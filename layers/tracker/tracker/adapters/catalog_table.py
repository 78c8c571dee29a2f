"""The Catalog table: each tenant's event types, one item per type, keyed ``tenant_id`` / ``name``.

A table of its own rather than items in the Tenants table: the functions that read or write the
catalog get IAM rights on it alone, never on the items that hold API keys, and a tenant's catalog
is one key range ordered by name (pages by name, search by reading that range).

Search: ``search_text`` holds the case-folded name and description; a Query over the tenant's range
with ``contains(search_text, :needle)`` filters them. DynamoDB reads (and bills) every item of the
range all the same, 1 MB per page, so one call reads at most ``SEARCH_PAGE_BUDGET`` pages and then
answers what it found with a position to resume from: no catalog, however large, makes a request
outlive API Gateway's 29 s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import ClientError

from tracker.adapters.clients import error_code, translated_errors
from tracker.adapters.dynamodb import Item, attr_s, backoff_delays, dynamodb_client
from tracker.interfaces import (
    DuplicateEventType,
    EventTypeChanges,
    EventTypeSearch,
    TemporarilyUnavailable,
)
from tracker.json_shape import compact_json
from tracker.records import EventTypeRecord, PropertyRule
from tracker.settings import require_settings
from tracker.timefmt import format_utc, parse_utc

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Answer = TypeVar("Answer")
BATCH_GET_LIMIT = 100
SEARCH_PAGE_BUDGET = 16
"""Query pages (1 MB each) one search request reads at most before it answers with a position."""
SEARCH_SEPARATOR = "\x00"
"""Between name and description in ``search_text``: a search cannot hold it (no control characters)."""


def search_text(name: str, description: str) -> str:
    return f"{name.casefold()}{SEARCH_SEPARATOR}{description.casefold()}"


def _properties_json(properties: dict[str, PropertyRule]) -> str:
    return compact_json({key: rule.model_dump(mode="json") for key, rule in properties.items()})


def event_type_to_item(record: EventTypeRecord) -> Item:
    return {
        "tenant_id": attr_s(record.tenant_id),
        "name": attr_s(record.name),
        "description": attr_s(record.description),
        "search_text": attr_s(search_text(record.name, record.description)),
        "points": {"N": str(record.points)},
        # JSON text: one attribute, read back as it was written (keys may hold any character).
        "properties": attr_s(_properties_json(record.properties)),
        "created_at": attr_s(format_utc(record.created_at)),
        "updated_at": attr_s(format_utc(record.updated_at)),
        "version": {"N": str(record.version)},
    }


def event_type_from_item(item: Item) -> EventTypeRecord:
    properties = json.loads(item["properties"]["S"])
    return EventTypeRecord(
        tenant_id=item["tenant_id"]["S"],
        name=item["name"]["S"],
        description=item["description"]["S"],
        points=int(item["points"]["N"]),
        properties={key: PropertyRule.model_validate(rule) for key, rule in properties.items()},
        created_at=parse_utc(item["created_at"]["S"]),
        updated_at=parse_utc(item["updated_at"]["S"]),
        version=int(item.get("version", {"N": "0"})["N"]),
    )


def _unless_condition_fails(write: Callable[[], Answer]) -> Answer | None:
    """The answer of a conditional write, or None when its condition failed."""
    try:
        with translated_errors():
            return write()
    except ClientError as error:
        if error_code(error) == "ConditionalCheckFailedException":
            return None
        raise


class DynamoEventTypeStore:
    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    @staticmethod
    def _key(tenant_id: str, name: str) -> Item:
        return {"tenant_id": attr_s(tenant_id), "name": attr_s(name)}

    def create_event_type(self, record: EventTypeRecord) -> None:
        written = _unless_condition_fails(
            lambda: self._client.put_item(
                TableName=self._table,
                Item=event_type_to_item(record),
                ConditionExpression="attribute_not_exists(#name)",
                ExpressionAttributeNames={"#name": "name"},
            )
        )
        if written is None:
            raise DuplicateEventType(record.name)

    def get_event_type(self, tenant_id: str, name: str) -> EventTypeRecord | None:
        with translated_errors():
            answer = self._client.get_item(TableName=self._table, Key=self._key(tenant_id, name), ConsistentRead=True)
        item = answer.get("Item")
        return event_type_from_item(item) if item else None

    def get_event_types(self, tenant_id: str, names: Collection[str]) -> dict[str, EventTypeRecord]:
        """BatchGetItem, 100 keys a call; keys handed back unprocessed are asked again after a backoff."""
        found: dict[str, EventTypeRecord] = {}
        ordered = sorted(set(names))
        for offset in range(0, len(ordered), BATCH_GET_LIMIT):
            keys = [self._key(tenant_id, name) for name in ordered[offset : offset + BATCH_GET_LIMIT]]
            pending: Any = {self._table: {"Keys": keys}}
            delays = backoff_delays()
            while pending:
                with translated_errors():
                    answer = self._client.batch_get_item(RequestItems=pending)
                for item in answer.get("Responses", {}).get(self._table, []):
                    record = event_type_from_item(item)
                    found[record.name] = record
                pending = answer.get("UnprocessedKeys") or None
                if pending:
                    delay = next(delays, None)
                    if delay is None:
                        raise TemporarilyUnavailable("DynamoDB kept catalog keys unprocessed after every retry.")
                    time.sleep(delay)
        return found

    def update_event_type(self, tenant_id: str, name: str, changes: EventTypeChanges) -> EventTypeRecord | None:
        sets = ["updated_at = :updated_at", "version = if_not_exists(version, :zero) + :one"]
        values: Item = {":updated_at": attr_s(format_utc(changes.updated_at)), ":zero": {"N": "0"}, ":one": {"N": "1"}}
        condition = "attribute_exists(#name)"
        if changes.expected_version is not None:
            condition += " AND version = :expected"
            values[":expected"] = {"N": str(changes.expected_version)}
        if changes.description is not None:
            sets += ["description = :description", "search_text = :search_text"]
            values[":description"] = attr_s(changes.description)
            values[":search_text"] = attr_s(search_text(name, changes.description))
        if changes.points is not None:
            sets.append("points = :points")
            values[":points"] = {"N": str(changes.points)}
        if changes.properties is not None:
            sets.append("properties = :properties")
            values[":properties"] = attr_s(_properties_json(changes.properties))
        answer = _unless_condition_fails(
            lambda: self._client.update_item(
                TableName=self._table,
                Key=self._key(tenant_id, name),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=condition,
                ExpressionAttributeNames={"#name": "name"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        )
        return event_type_from_item(answer["Attributes"]) if answer is not None else None

    def delete_event_type(self, tenant_id: str, name: str) -> bool:
        deleted = _unless_condition_fails(
            lambda: self._client.delete_item(
                TableName=self._table,
                Key=self._key(tenant_id, name),
                ConditionExpression="attribute_exists(#name)",
                ExpressionAttributeNames={"#name": "name"},
            )
        )
        return deleted is not None

    def search_event_types(self, search: EventTypeSearch) -> tuple[list[EventTypeRecord], str | None]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "tenant_id = :tenant",
            "ExpressionAttributeValues": {":tenant": attr_s(search.tenant_id)},
            "ConsistentRead": True,
        }
        if search.needle:
            request["FilterExpression"] = "contains(search_text, :needle)"
            request["ExpressionAttributeValues"][":needle"] = attr_s(search.needle)
        if search.after is not None:
            request["ExclusiveStartKey"] = self._key(search.tenant_id, search.after)
        # One item more than asked tells whether another page follows.
        wanted = search.limit + 1
        items: list[Item] = []
        for _page in range(SEARCH_PAGE_BUDGET):
            if not search.needle:
                request["Limit"] = wanted - len(items)
            with translated_errors():
                page = self._client.query(**request)
            items.extend(page.get("Items", []))
            last_key = page.get("LastEvaluatedKey")
            if len(items) >= wanted or not last_key:
                records = [event_type_from_item(item) for item in items[: search.limit]]
                return records, (records[-1].name if len(items) > search.limit else None)
            request["ExclusiveStartKey"] = last_key
        # The budget is spent: answer what was found, and resume after the last item read.
        return [event_type_from_item(item) for item in items], str(request["ExclusiveStartKey"]["name"]["S"])


class DynamoCatalogReader:
    """The rollup's view of the catalog: a tenant's whole range, one Query (paged), read only."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def tenant_catalog(self, tenant_id: str) -> list[EventTypeRecord]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "tenant_id = :tenant",
            "ExpressionAttributeValues": {":tenant": attr_s(tenant_id)},
            # A change made before the run starts is seen by it.
            "ConsistentRead": True,
        }
        records = []
        while True:
            with translated_errors():
                page = self._client.query(**request)
            records += [event_type_from_item(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return records
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def catalog_reader() -> DynamoCatalogReader:
    return DynamoCatalogReader(dynamodb_client(), require_settings("catalog_table").catalog_table)


def event_type_store() -> DynamoEventTypeStore:
    return DynamoEventTypeStore(dynamodb_client(), require_settings("catalog_table").catalog_table)
