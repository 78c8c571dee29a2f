"""The Profiles table: profiles, the keyed-hash email index, and export records.

``{tenant}#U#{user_id} / PROFILE``
    a profile: its fields as JSON text, ``email_key`` (``{tenant}#{HMAC}``; GSI ``by_email``, keys only,
    so the index holds no profile data), ``version`` for conditional writes.
``{tenant}#X#{export_id} / EXPORT``
    an export and its progress (JSON text), ``version``.
``{tenant}#U#{user_id} / EXPORT#{export_id}``
    the user's exports, found by the erasure with one strongly consistent query.

The table is encrypted with the stack's profile key (``template.yaml``); only the profile, export,
export worker and erase worker functions may read it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from tracker.adapters.clients import error_code, translated_errors
from tracker.adapters.dynamodb import Item, attr_s, dynamodb_client
from tracker.profile_models import ExportRecord, ProfileRecord
from tracker.settings import require_settings
from tracker.timefmt import format_utc, parse_utc

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PROFILE_SK = "PROFILE"
EXPORT_SK = "EXPORT"
EXPORT_POINTER_PREFIX = "EXPORT#"
EMAIL_INDEX = "by_email"


def user_partition(tenant_id: str, user_id: str) -> str:
    return f"{tenant_id}#U#{user_id}"


def export_partition(tenant_id: str, export_id: str) -> str:
    return f"{tenant_id}#X#{export_id}"


def _key(pk: str, sk: str) -> Item:
    return {"pk": attr_s(pk), "sk": attr_s(sk)}


def _is_condition_failure(error: ClientError) -> bool:
    if error_code(error) == "ConditionalCheckFailedException":
        return True
    reasons = error.response.get("CancellationReasons") or []
    return any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons)


def _version_condition(expected_version: int | None) -> dict[str, Any]:
    if expected_version is None:
        return {"ConditionExpression": "attribute_not_exists(pk)"}
    return {
        "ConditionExpression": "version = :expected",
        "ExpressionAttributeValues": {":expected": {"N": str(expected_version)}},
    }


def profile_from_item(item: Item) -> ProfileRecord:
    return ProfileRecord(
        tenant_id=item["tenant_id"]["S"],
        user_id=item["user_id"]["S"],
        fields=json.loads(item["profile"]["S"]),
        created_at=parse_utc(item["created_at"]["S"]),
        updated_at=parse_utc(item["updated_at"]["S"]),
        version=int(item["version"]["N"]),
    )


class DynamoProfileStore:
    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def _put_conditionally(self, item: Item, expected_version: int | None) -> bool:
        try:
            with translated_errors():
                self._client.put_item(TableName=self._table, Item=item, **_version_condition(expected_version))
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def _query_all(self, request: dict[str, Any]) -> list[Item]:
        """Every item of a query, page after page."""
        items: list[Item] = []
        while True:
            with translated_errors():
                answer = self._client.query(**request)
            items += answer.get("Items", [])
            if "LastEvaluatedKey" not in answer:
                return items
            request = {**request, "ExclusiveStartKey": answer["LastEvaluatedKey"]}

    # ------------------------------------------------------------ profiles

    def get_profile(self, tenant_id: str, user_id: str) -> ProfileRecord | None:
        with translated_errors():
            answer = self._client.get_item(
                TableName=self._table, Key=_key(user_partition(tenant_id, user_id), PROFILE_SK), ConsistentRead=True
            )
        item = answer.get("Item")
        return None if item is None else profile_from_item(item)

    def save_profile(self, record: ProfileRecord, email_key: str | None, expected_version: int | None) -> bool:
        item: Item = {
            **_key(user_partition(record.tenant_id, record.user_id), PROFILE_SK),
            "tenant_id": attr_s(record.tenant_id),
            "user_id": attr_s(record.user_id),
            "profile": attr_s(json.dumps(record.fields, ensure_ascii=False, separators=(",", ":"))),
            "version": {"N": str(record.version)},
            "created_at": attr_s(format_utc(record.created_at)),
            "updated_at": attr_s(format_utc(record.updated_at)),
        }
        if email_key is not None:
            item["email_key"] = attr_s(f"{record.tenant_id}#{email_key}")
        return self._put_conditionally(item, expected_version)

    def delete_profile(self, tenant_id: str, user_id: str) -> bool:
        with translated_errors():
            answer = self._client.delete_item(
                TableName=self._table, Key=_key(user_partition(tenant_id, user_id), PROFILE_SK), ReturnValues="ALL_OLD"
            )
        return bool(answer.get("Attributes"))

    def find_by_email_key(self, tenant_id: str, email_key: str) -> list[ProfileRecord]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": EMAIL_INDEX,
            "KeyConditionExpression": "email_key = :key",
            "ExpressionAttributeValues": {":key": attr_s(f"{tenant_id}#{email_key}")},
        }
        partitions = [item["pk"]["S"] for item in self._query_all(request)]
        # The index is eventually consistent: each profile is read again, and the caller checks its email.
        found = []
        for pk in sorted(set(partitions)):
            with translated_errors():
                item = self._client.get_item(TableName=self._table, Key=_key(pk, PROFILE_SK), ConsistentRead=True)
            if "Item" in item:
                found.append(profile_from_item(item["Item"]))
        return found

    # ------------------------------------------------------------ exports

    def create_export(self, record: ExportRecord) -> None:
        pointer = {
            **_key(user_partition(record.tenant_id, record.user_id), EXPORT_POINTER_PREFIX + record.export_id),
            "export_id": attr_s(record.export_id),
        }
        with translated_errors():
            self._client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": self._table, "Item": self._export_item(record)}},
                    {"Put": {"TableName": self._table, "Item": pointer}},
                ]
            )

    @staticmethod
    def _export_item(record: ExportRecord) -> Item:
        return {
            **_key(export_partition(record.tenant_id, record.export_id), EXPORT_SK),
            "export": attr_s(record.model_dump_json()),
            "version": {"N": str(record.version)},
        }

    def get_export(self, tenant_id: str, export_id: str) -> ExportRecord | None:
        with translated_errors():
            answer = self._client.get_item(
                TableName=self._table, Key=_key(export_partition(tenant_id, export_id), EXPORT_SK), ConsistentRead=True
            )
        item = answer.get("Item")
        return None if item is None else ExportRecord.model_validate_json(item["export"]["S"])

    def save_export(self, record: ExportRecord, expected_version: int) -> bool:
        return self._put_conditionally(self._export_item(record), expected_version)

    def user_export_ids(self, tenant_id: str, user_id: str) -> list[str]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": attr_s(user_partition(tenant_id, user_id)),
                ":prefix": attr_s(EXPORT_POINTER_PREFIX),
            },
            "ConsistentRead": True,
        }
        return [item["export_id"]["S"] for item in self._query_all(request)]


def profile_store() -> DynamoProfileStore:
    return DynamoProfileStore(dynamodb_client(), require_settings("profiles_table").profiles_table)
