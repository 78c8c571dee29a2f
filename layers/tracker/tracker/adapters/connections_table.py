"""The Connections table: live WebSocket connections and their subscriptions.

Two items per connection (``pk``, ``sk``):

- ``CONN#{connection_id} / CONN``: its tenant, for the routes that know only the connection id;
- ``TENANT#{tenant_id} / CONN#{connection_id}``: its subscriptions (a string set: ``*`` for every
  user, ``u:{user_id}`` for one), so that one strongly consistent Query of the tenant's partition
  gives the broadcaster every connection of the tenant and what each wants.

Both carry ``expires_at`` (epoch seconds, the table's TTL attribute): a connection whose
``$disconnect`` never came is forgotten once API Gateway has closed it for sure.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from tracker.adapters.clients import error_code, translated_errors
from tracker.adapters.dynamodb import Item, attr_s, batch_write, dynamodb_client
from tracker.interfaces import LiveConnection, TooManySubscriptions
from tracker.settings import require_settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

EVERY_USER = "*"
LOOKUP_SK = "CONN"


def subscription_member(user_id: str | None) -> str:
    return EVERY_USER if user_id is None else f"u:{user_id}"


def subscription_of(member: str) -> str | None:
    return None if member == EVERY_USER else member.removeprefix("u:")


def _lookup_key(connection_id: str) -> Item:
    return {"pk": attr_s(f"CONN#{connection_id}"), "sk": attr_s(LOOKUP_SK)}


def _tenant_key(connection_id: str, tenant_id: str) -> Item:
    return {"pk": attr_s(f"TENANT#{tenant_id}"), "sk": attr_s(f"CONN#{connection_id}")}


def _alive(item: Item, now: float) -> bool:
    return float(item["expires_at"]["N"]) > now


class DynamoConnectionStore:
    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def add_connection(self, connection_id: str, tenant_id: str, expires_at: datetime) -> None:
        common = {"tenant_id": attr_s(tenant_id), "expires_at": {"N": str(int(expires_at.timestamp()))}}
        items = [
            {**_lookup_key(connection_id), **common},
            {**_tenant_key(connection_id, tenant_id), **common, "connection_id": attr_s(connection_id)},
        ]
        batch_write(self._client, self._table, [{"PutRequest": {"Item": item}} for item in items])

    def tenant_of(self, connection_id: str) -> str | None:
        with translated_errors():
            item = self._client.get_item(
                TableName=self._table, Key=_lookup_key(connection_id), ConsistentRead=True
            ).get("Item")
        return item["tenant_id"]["S"] if item and _alive(item, time.time()) else None

    def subscribe(self, connection_id: str, tenant_id: str, user_id: str | None, limit: int) -> None:
        member = subscription_member(user_id)
        try:
            with translated_errors():
                self._client.update_item(
                    TableName=self._table,
                    Key=_tenant_key(connection_id, tenant_id),
                    UpdateExpression="ADD subscriptions :members",
                    ConditionExpression=(
                        "attribute_exists(pk) AND (attribute_not_exists(subscriptions)"
                        " OR size(subscriptions) < :limit OR contains(subscriptions, :member))"
                    ),
                    ExpressionAttributeValues={
                        ":members": {"SS": [member]},
                        ":member": attr_s(member),
                        ":limit": {"N": str(limit)},
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
            if "Item" not in error.response:
                return  # the connection left meanwhile: nothing to subscribe
            raise TooManySubscriptions(connection_id) from None

    def unsubscribe(self, connection_id: str, tenant_id: str, user_id: str | None) -> None:
        try:
            with translated_errors():
                self._client.update_item(
                    TableName=self._table,
                    Key=_tenant_key(connection_id, tenant_id),
                    UpdateExpression="DELETE subscriptions :members",
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeValues={":members": {"SS": [subscription_member(user_id)]}},
                )
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise

    def tenant_connections(self, tenant_id: str) -> list[LiveConnection]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :tenant AND begins_with(sk, :connection)",
            "ExpressionAttributeValues": {":tenant": attr_s(f"TENANT#{tenant_id}"), ":connection": attr_s("CONN#")},
            "ProjectionExpression": "connection_id, subscriptions, expires_at",
            # A subscription acknowledged a moment ago must be seen by the next broadcast.
            "ConsistentRead": True,
        }
        now = time.time()
        found = []
        while True:
            with translated_errors():
                page = self._client.query(**request)
            found += [
                LiveConnection(
                    connection_id=item["connection_id"]["S"],
                    tenant_id=tenant_id,
                    subscriptions=frozenset(subscription_of(member) for member in item["subscriptions"]["SS"]),
                )
                for item in page.get("Items", [])
                if "subscriptions" in item and _alive(item, now)
            ]
            if "LastEvaluatedKey" not in page:
                return found
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def remove_connection(self, connection_id: str, tenant_id: str | None = None) -> None:
        if tenant_id is None:
            with translated_errors():
                item = self._client.get_item(
                    TableName=self._table, Key=_lookup_key(connection_id), ConsistentRead=True
                ).get("Item")
            if item is None:
                return
            tenant_id = item["tenant_id"]["S"]
        keys = [_lookup_key(connection_id), _tenant_key(connection_id, tenant_id)]
        batch_write(self._client, self._table, [{"DeleteRequest": {"Key": key}} for key in keys])


def connection_store() -> DynamoConnectionStore:
    return DynamoConnectionStore(dynamodb_client(), require_settings("connections_table").connections_table)
