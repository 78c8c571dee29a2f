"""The DynamoDB stores: the only module that talks to AWS. Clients are made on first use."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from tracker.aws import client_config
from tracker.models import compact_json
from tracker.records import (
    ApiKeyRecord,
    ErasureRecord,
    EventRecord,
    RateLimitRecord,
    TenantRecord,
    event_pk,
    user_key,
)
from tracker.settings import get_settings
from tracker.storage import DuplicateName, StoreUnavailable, UserEventsQuery
from tracker.timefmt import format_utc, parse_utc

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Item = dict[str, Any]

# Errors that retrying later can cure: they become a 503 with Retry-After, never a 500.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
    }
)


@cache
def dynamodb_client() -> DynamoDBClient:
    """One client per process, with the retry mode and timeouts of the settings."""
    return boto3.client("dynamodb", config=client_config(get_settings().ingest_concurrency + 4))


@contextmanager
def translated_errors() -> Iterator[None]:
    """Turns throttling, 5xx and connection failures (after botocore's retries) into StoreUnavailable."""
    try:
        yield
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in TRANSIENT_ERROR_CODES:
            raise StoreUnavailable(str(error)) from error
        raise
    except BotoCoreError as error:
        raise StoreUnavailable(str(error)) from error


def attr_s(value: str) -> Item:
    return {"S": value}


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


BATCH_WRITE_LIMIT = 25
BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 2.0
BACKOFF_ATTEMPTS = 8


def backoff_delays() -> Iterator[float]:
    """Capped exponential backoff with full jitter, for work DynamoDB hands back unprocessed."""
    for attempt in range(BACKOFF_ATTEMPTS):
        yield random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))  # noqa: S311 - jitter, not a secret  # nosec B311


def batch_write(client: DynamoDBClient, table: str, requests: Sequence[Item]) -> None:
    """BatchWriteItem in groups of 25; unprocessed items are sent again after a backoff, not at once."""
    for offset in range(0, len(requests), BATCH_WRITE_LIMIT):
        pending: Any = {table: list(requests[offset : offset + BATCH_WRITE_LIMIT])}
        delays = backoff_delays()
        while pending:
            with translated_errors():
                pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or None
            if pending:
                delay = next(delays, None)
                if delay is None:
                    raise StoreUnavailable("DynamoDB kept items unprocessed after every retry.")
                time.sleep(delay)


# ---------------------------------------------------------------- events


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
            if _error_code(error) != "ConditionalCheckFailedException":
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
            raise StoreUnavailable(str(error)) from error


# ---------------------------------------------------------------- tenants

TENANT_SK = "TENANT"
ADMIN_OWNER = "ADMIN"


def _tenant_pk(tenant_id: str) -> str:
    return f"TENANT#{tenant_id}"


def _key_owner(tenant_id: str | None) -> str:
    return _tenant_pk(tenant_id) if tenant_id else ADMIN_OWNER


def tenant_to_item(tenant: TenantRecord) -> Item:
    created = format_utc(tenant.created_at)
    item = {
        "pk": attr_s(_tenant_pk(tenant.tenant_id)),
        "sk": attr_s(TENANT_SK),
        "list_pk": attr_s(TENANT_SK),
        "list_sk": attr_s(f"{created}#{tenant.tenant_id}"),
        "tenant_id": attr_s(tenant.tenant_id),
        "name": attr_s(tenant.name),
        "timezone": attr_s(tenant.timezone),
        "active": {"BOOL": tenant.active},
        "created_at": attr_s(created),
    }
    if tenant.rate_limit is not None:
        item["rate"] = {"N": repr(tenant.rate_limit.rate)}
        item["burst"] = {"N": str(tenant.rate_limit.burst)}
    if tenant.usage_key_id and tenant.usage_key:
        item["usage_key_id"] = attr_s(tenant.usage_key_id)
        item["usage_key"] = attr_s(tenant.usage_key)
    return item


def tenant_from_item(item: Item) -> TenantRecord:
    rate_limit = None
    if "rate" in item:
        rate_limit = RateLimitRecord(rate=float(item["rate"]["N"]), burst=int(item["burst"]["N"]))
    return TenantRecord(
        tenant_id=item["tenant_id"]["S"],
        name=item["name"]["S"],
        timezone=item["timezone"]["S"],
        active=item["active"]["BOOL"],
        created_at=parse_utc(item["created_at"]["S"]),
        rate_limit=rate_limit,
        usage_key_id=item["usage_key_id"]["S"] if "usage_key_id" in item else None,
        usage_key=item["usage_key"]["S"] if "usage_key" in item else None,
    )


def _key_items(key: ApiKeyRecord) -> tuple[Item, Item]:
    """The owner's record of the key, and the authorizer's lookup by hash."""
    common = {
        "key_id": attr_s(key.key_id),
        "key_hash": attr_s(key.key_hash),
        "role": attr_s(key.role),
        "created_at": attr_s(format_utc(key.created_at)),
    }
    if key.tenant_id:
        common["tenant_id"] = attr_s(key.tenant_id)
    owner = {"pk": attr_s(_key_owner(key.tenant_id)), "sk": attr_s(f"KEY#{key.key_id}"), **common}
    lookup = {"pk": attr_s(f"APIKEY#{key.key_hash}"), "sk": attr_s("APIKEY"), **common}
    return owner, lookup


def key_from_item(item: Item) -> ApiKeyRecord:
    tenant = item.get("tenant_id")
    return ApiKeyRecord(
        key_id=item["key_id"]["S"],
        key_hash=item["key_hash"]["S"],
        role=item["role"]["S"],
        tenant_id=tenant["S"] if tenant else None,
        created_at=parse_utc(item["created_at"]["S"]),
    )


def _put_new(table: str, item: Item) -> Item:
    return {"Put": {"TableName": table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}


class DynamoTenantStore:
    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def _key(self, pk: str, sk: str) -> Item:
        return {"pk": attr_s(pk), "sk": attr_s(sk)}

    def _get(self, pk: str, sk: str) -> Item | None:
        with translated_errors():
            answer = self._client.get_item(TableName=self._table, Key=self._key(pk, sk), ConsistentRead=True)
        return answer.get("Item")

    def create_tenant(self, tenant: TenantRecord, key: ApiKeyRecord) -> None:
        name_item = {
            "pk": attr_s(f"TENANT_NAME#{tenant.name.casefold()}"),
            "sk": attr_s("TENANT_NAME"),
            "tenant_id": attr_s(tenant.tenant_id),
        }
        writes = [_put_new(self._table, name_item), _put_new(self._table, tenant_to_item(tenant))]
        writes += [_put_new(self._table, item) for item in _key_items(key)]
        try:
            with translated_errors():
                self._client.transact_write_items(TransactItems=writes)  # type: ignore[arg-type]
        except ClientError as error:
            reasons = error.response.get("CancellationReasons", [])
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                raise DuplicateName(tenant.name) from error
            raise

    def get_tenant(self, tenant_id: str) -> TenantRecord | None:
        item = self._get(_tenant_pk(tenant_id), TENANT_SK)
        return tenant_from_item(item) if item else None

    def list_tenants(self, limit: int, after: str | None) -> tuple[list[TenantRecord], str | None]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "tenant_list",
            "KeyConditionExpression": "list_pk = :list",
            "ExpressionAttributeValues": {":list": attr_s(TENANT_SK)},
            # One more than asked tells whether another page follows (DynamoDB's own
            # LastEvaluatedKey also comes with a full last page, then an empty one).
            "Limit": limit + 1,
        }
        if after is not None:
            tenant_id = after.rsplit("#", 1)[1]
            request["ExclusiveStartKey"] = {
                "list_pk": attr_s(TENANT_SK),
                "list_sk": attr_s(after),
                **self._key(_tenant_pk(tenant_id), TENANT_SK),
            }
        with translated_errors():
            page = self._client.query(**request)
        items = page.get("Items", [])
        tenants = [tenant_from_item(item) for item in items[:limit]]
        return tenants, (items[limit - 1]["list_sk"]["S"] if len(items) > limit else None)

    def save_tenant(self, tenant: TenantRecord) -> None:
        with translated_errors():
            self._client.put_item(
                TableName=self._table, Item=tenant_to_item(tenant), ConditionExpression="attribute_exists(pk)"
            )

    def add_key(self, key: ApiKeyRecord) -> None:
        with translated_errors():
            self._client.transact_write_items(
                TransactItems=[_put_new(self._table, item) for item in _key_items(key)]  # type: ignore[misc]
            )

    def get_key_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        item = self._get(f"APIKEY#{key_hash}", "APIKEY")
        return key_from_item(item) if item else None

    def delete_key(self, owner_tenant_id: str | None, key_id: str) -> bool:
        owner_item = self._get(_key_owner(owner_tenant_id), f"KEY#{key_id}")
        if owner_item is None:
            return False
        key = key_from_item(owner_item)
        deletes = [
            {"Delete": {"TableName": self._table, "Key": self._key(_key_owner(owner_tenant_id), f"KEY#{key_id}")}},
            {"Delete": {"TableName": self._table, "Key": self._key(f"APIKEY#{key.key_hash}", "APIKEY")}},
        ]
        with translated_errors():
            self._client.transact_write_items(TransactItems=deletes)  # type: ignore[arg-type]
        return True


# ---------------------------------------------------------------- erasures


def _erasure_key(tenant_id: str, erasure_id: str) -> Item:
    return {"pk": attr_s(_tenant_pk(tenant_id)), "sk": attr_s(f"ERASURE#{erasure_id}")}


class DynamoErasureStore:
    """Erasure requests, kept with their tenant: another tenant's erasure id finds nothing."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def create_erasure(self, record: ErasureRecord) -> None:
        item = {
            **_erasure_key(record.tenant_id, record.erasure_id),
            "tenant_id": attr_s(record.tenant_id),
            "erasure_id": attr_s(record.erasure_id),
            "user_id": attr_s(record.user_id),
            "status": attr_s(record.status),
            "deleted_events": {"N": str(record.deleted_events)},
            "created_at": attr_s(format_utc(record.created_at)),
            "updated_at": attr_s(format_utc(record.updated_at)),
        }
        with translated_errors():
            self._client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")

    def get_erasure(self, tenant_id: str, erasure_id: str) -> ErasureRecord | None:
        with translated_errors():
            answer = self._client.get_item(
                TableName=self._table, Key=_erasure_key(tenant_id, erasure_id), ConsistentRead=True
            )
        item = answer.get("Item")
        if item is None:
            return None
        return ErasureRecord(
            tenant_id=item["tenant_id"]["S"],
            erasure_id=item["erasure_id"]["S"],
            user_id=item["user_id"]["S"],
            status=item["status"]["S"],
            deleted_events=int(item["deleted_events"]["N"]),
            created_at=parse_utc(item["created_at"]["S"]),
            updated_at=parse_utc(item["updated_at"]["S"]),
        )

    def set_erasure_status(
        self, tenant_id: str, erasure_id: str, status: Literal["running", "completed", "failed"], now: datetime
    ) -> None:
        with translated_errors():
            self._client.update_item(
                TableName=self._table,
                Key=_erasure_key(tenant_id, erasure_id),
                UpdateExpression="SET #status = :status, updated_at = :now",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":status": attr_s(status), ":now": attr_s(format_utc(now))},
            )

    def add_deleted_events(self, tenant_id: str, erasure_id: str, count: int) -> None:
        with translated_errors():
            self._client.update_item(
                TableName=self._table,
                Key=_erasure_key(tenant_id, erasure_id),
                UpdateExpression="ADD deleted_events :count",
                ExpressionAttributeValues={":count": {"N": str(count)}},
            )


def erasure_store() -> DynamoErasureStore:
    return DynamoErasureStore(dynamodb_client(), get_settings().tenants_table)


def event_store() -> DynamoEventStore:
    return DynamoEventStore(dynamodb_client(), get_settings().events_table)


def tenant_store() -> DynamoTenantStore:
    return DynamoTenantStore(dynamodb_client(), get_settings().tenants_table)
