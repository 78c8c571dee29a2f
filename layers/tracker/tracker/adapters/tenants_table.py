"""The Tenants table: tenants, their API keys (by owner and by hash), and erasure requests."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from tracker.adapters.clients import translated_errors
from tracker.adapters.dynamodb import Item, attr_s, dynamodb_client
from tracker.interfaces import DuplicateName
from tracker.records import ApiKeyRecord, ErasureRecord, RateLimitRecord, TenantRecord
from tracker.settings import require_settings
from tracker.timefmt import format_utc, parse_utc

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

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
        "validation": attr_s(tenant.validation),
    }
    if tenant.rate_limit is not None:
        item["rate"] = {"N": repr(tenant.rate_limit.rate)}
        item["burst"] = {"N": str(tenant.rate_limit.burst)}
    if tenant.usage_key_id and tenant.usage_key:
        item["usage_key_id"] = attr_s(tenant.usage_key_id)
        item["usage_key"] = attr_s(tenant.usage_key)
    if tenant.allowed_origins:
        item["allowed_origins"] = {"L": [attr_s(origin) for origin in tenant.allowed_origins]}
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
        allowed_origins=[origin["S"] for origin in item.get("allowed_origins", {}).get("L", [])],
        validation=item["validation"]["S"] if "validation" in item else "off",
    )


def _origin_key(origin: str, tenant_id: str) -> Item:
    """The preflight's lookup: which tenants allow an origin (a browser's preflight carries no key)."""
    return {"pk": attr_s(f"ORIGIN#{origin}"), "sk": attr_s(_tenant_pk(tenant_id))}


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

    def save_tenant_origins(self, tenant: TenantRecord, previous: list[str]) -> None:
        """Saves the tenant and, in the same transaction, the origin lookup items that changed."""
        writes: list[Item] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": tenant_to_item(tenant),
                    "ConditionExpression": "attribute_exists(pk)",
                }
            }
        ]
        writes += [
            {"Delete": {"TableName": self._table, "Key": _origin_key(origin, tenant.tenant_id)}}
            for origin in set(previous) - set(tenant.allowed_origins)
        ]
        writes += [
            {"Put": {"TableName": self._table, "Item": _origin_key(origin, tenant.tenant_id)}}
            for origin in set(tenant.allowed_origins) - set(previous)
        ]
        with translated_errors():
            self._client.transact_write_items(TransactItems=writes)  # type: ignore[arg-type]

    def origin_allowed(self, origin: str) -> bool:
        with translated_errors():
            answer = self._client.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": attr_s(f"ORIGIN#{origin}")},
                Limit=1,
            )
        return bool(answer.get("Items"))

    def get_key(self, owner_tenant_id: str | None, key_id: str) -> ApiKeyRecord | None:
        item = self._get(_key_owner(owner_tenant_id), f"KEY#{key_id}")
        return key_from_item(item) if item else None

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
            deleted_profiles=int(item.get("deleted_profiles", {"N": "0"})["N"]),
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
        self._add(tenant_id, erasure_id, "deleted_events", count)

    def add_deleted_profiles(self, tenant_id: str, erasure_id: str, count: int) -> None:
        self._add(tenant_id, erasure_id, "deleted_profiles", count)

    def _add(self, tenant_id: str, erasure_id: str, counter: str, count: int) -> None:
        with translated_errors():
            self._client.update_item(
                TableName=self._table,
                Key=_erasure_key(tenant_id, erasure_id),
                UpdateExpression=f"ADD {counter} :count",
                ExpressionAttributeValues={":count": {"N": str(count)}},
            )


def erasure_store() -> DynamoErasureStore:
    return DynamoErasureStore(dynamodb_client(), require_settings("tenants_table").tenants_table)


def tenant_store() -> DynamoTenantStore:
    return DynamoTenantStore(dynamodb_client(), require_settings("tenants_table").tenants_table)
