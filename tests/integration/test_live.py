"""Live activity on moto: the WebSocket route functions and the broadcaster, invoked in-process.

The broadcaster's posts go through its real boto3 management API client; moto answers them (it
never answers 410 Gone), so the Gone of a stale connection is injected with a botocore hook. Its
input comes from the Events table's real stream (moto's ``get_records``), shaped as Lambda hands
it over by ``local_stack.streams`` and filtered by the template's own event source mapping.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.config import Config

from local_stack.emulator import mark_answered, moto_skips_answered_requests
from local_stack.streams import lambda_record, matches, stream_mappings
from local_stack.template import Template
from local_stack.websocket import websocket_spec
from tracker import live
from tracker.adapters.connections_table import DynamoConnectionStore
from tracker.adapters.management_api import management_client
from tracker.records import ApiKeyRecord, TenantRecord
from tracker.tenants import hash_api_key

from .faults import json_response
from .support import Functions, api_event, sample_event, tenant_context, tenant_store

TENANT_A = "ten_live00000000000a"
TENANT_B = "ten_live00000000000b"


def add_tenant(template: Template, client: Any, tenant_id: str, *, active: bool = True) -> str:
    api_key = f"atk_live_{tenant_id}_secret"
    now = datetime.now(UTC)
    tenant_store(template, client).create_tenant(
        TenantRecord(tenant_id=tenant_id, name=tenant_id, timezone="UTC", active=active, created_at=now),
        ApiKeyRecord(
            key_id=f"key_{tenant_id[-8:]}",
            key_hash=hash_api_key(api_key),
            role="tenant",
            tenant_id=tenant_id,
            created_at=now,
        ),
    )
    return api_key


def ws_event(route: str, connection: str, **fields: Any) -> dict[str, Any]:
    """A WebSocket event of API Gateway (the sample's shape), for another route, connection and content."""
    sample = {"$connect": "ws_connect/connect.json", "$default": "ws_default/subscribe.json"}
    event = copy.deepcopy(sample_event(sample.get(route, "ws_disconnect/disconnect.json")))
    event["requestContext"]["connectionId"] = connection
    event.update(fields)
    return event


def connect(functions: Functions, connection: str, api_key: str | None) -> dict[str, Any]:
    query = None if api_key is None else {"api_key": api_key}
    result: dict[str, Any] = functions.invoke(
        "WsConnectFunction", ws_event("$connect", connection, queryStringParameters=query)
    )
    return result


def send(functions: Functions, connection: str, message: str) -> dict[str, Any]:
    result = functions.invoke("WsDefaultFunction", ws_event("$default", connection, body=message))
    assert result["statusCode"] == 200
    answer: dict[str, Any] = json.loads(result["body"])
    return answer


def connections(template: Template, client: Any) -> DynamoConnectionStore:
    return DynamoConnectionStore(client, template.functions["WsDefaultFunction"].environment["CONNECTIONS_TABLE"])


class ManagementApi:
    """The broadcaster's own management API client, watched: what it posts to whom, and 410 for some."""

    def __init__(self, template: Template) -> None:
        self.client = management_client(
            template.functions["BroadcasterFunction"].environment["WEBSOCKET_MANAGEMENT_URL"]
        )
        self.posted: dict[str, list[dict[str, Any]]] = {}
        self.gone: set[str] = set()
        self.client.meta.events.register("before-call.apigatewaymanagementapi.PostToConnection", self._record)
        self.client.meta.events.register("before-send.apigatewaymanagementapi.PostToConnection", self._answer)

    def _record(self, params: dict[str, Any], **_kwargs: Any) -> None:
        connection = str(params["url_path"]).rsplit("/", 1)[-1]
        if connection not in self.gone:
            self.posted.setdefault(connection, []).append(json.loads(params["body"]))

    def _answer(self, request: AWSPreparedRequest, **_kwargs: Any) -> AWSResponse | None:
        if request.url.rsplit("/", 1)[-1] not in self.gone:
            return None
        mark_answered(request)
        return json_response(request, 410, {"__type": "GoneException", "message": "Gone"})

    def event_ids(self, connection: str) -> list[str]:
        return [message["event"]["event_id"] for message in self.posted.get(connection, [])]

    def close(self) -> None:
        self.client.meta.events.unregister("before-call.apigatewaymanagementapi.PostToConnection", self._record)
        self.client.meta.events.unregister("before-send.apigatewaymanagementapi.PostToConnection", self._answer)


@pytest.fixture
def management(template: Template, functions: Functions, monkeypatch: pytest.MonkeyPatch) -> Iterator[ManagementApi]:
    # The broadcaster's settings (its management URL) as its process would have them.
    for name, value in template.functions["BroadcasterFunction"].environment.items():
        monkeypatch.setenv(name, value)
    watched = ManagementApi(template)
    with moto_skips_answered_requests():
        yield watched
    watched.close()


class EventsStream:
    """The Events table's stream on moto, read as the template's event source mapping reads it."""

    def __init__(self, template: Template, client: Any) -> None:
        (self.mapping,) = [m for m in stream_mappings(template) if m.function == "BroadcasterFunction"]
        self.region = template.region
        # botocore sends stream calls with an ARN to the account's endpoint ({account}.streams-ddb...),
        # which moto's mock does not route: the regional endpoint, as before account endpoints.
        self.streams = boto3.client(
            "dynamodbstreams", region_name=template.region, config=Config(account_id_endpoint_mode="disabled")
        )
        table = client.describe_table(TableName=template.tables[self.mapping.table].name)["Table"]
        self.arn = table["LatestStreamArn"]
        (shard,) = self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        self.iterator = self.streams.get_shard_iterator(
            StreamArn=self.arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]

    def batch(self) -> dict[str, Any]:
        """The records written since the last batch that pass the mapping's filter, in Lambda's shape."""
        answer = self.streams.get_records(ShardIterator=self.iterator)
        self.iterator = answer["NextShardIterator"]
        records = [lambda_record(record, self.arn, self.region) for record in answer["Records"]]
        return {"Records": [r for r in records if any(matches(p, r) for p in self.mapping.filters)]}


def post_event(functions: Functions, tenant_id: str, user_id: str, event_id: str) -> int:
    event = api_event(
        "POST",
        "/v1/events",
        authorizer=tenant_context(tenant_id),
        body={"event_id": event_id, "user_id": user_id, "action": "login"},
    )
    return functions.http(event).status


# ---------------------------------------------------------------- the template


def test_the_websocket_routes_and_the_stream_mapping_come_from_the_template(template: Template) -> None:
    spec = websocket_spec(template)
    assert spec is not None
    assert spec.routes == {
        "$connect": "WsConnectFunction",
        "$default": "WsDefaultFunction",
        "$disconnect": "WsDisconnectFunction",
    }
    assert spec.answering_routes == {"$default"}
    (mapping,) = stream_mappings(template)
    assert (mapping.function, mapping.table, mapping.starting_position) == (
        "BroadcasterFunction",
        "EventsTable",
        "LATEST",
    )
    assert mapping.filters == ({"eventName": ["INSERT"]},)
    assert matches(mapping.filters[0], {"eventName": "INSERT"})
    assert not matches(mapping.filters[0], {"eventName": "MODIFY"})
    assert not matches(mapping.filters[0], {})


# ---------------------------------------------------------------- $connect, $default, $disconnect


def test_a_tenant_key_connects_subscribes_and_disconnects(
    functions: Functions, template: Template, dynamodb: Any
) -> None:
    # Given a tenant, When a client connects with its key and subscribes
    api_key = add_tenant(template, dynamodb, TENANT_A)
    assert connect(functions, "conn-1", api_key) == {"statusCode": 200}
    assert send(functions, "conn-1", '{"action": "subscribe", "user_id": "6"}') == {
        "type": "subscribed",
        "user_id": "6",
    }
    assert send(functions, "conn-1", '{"action": "subscribe"}') == {"type": "subscribed", "user_id": None}
    # Then the tenant's connections show it with both subscriptions
    store = connections(template, dynamodb)
    (connection,) = store.tenant_connections(TENANT_A)
    assert connection.subscriptions == {None, "6"}
    assert store.tenant_connections(TENANT_B) == []
    # When it disconnects, Then nothing of it is left
    assert functions.invoke("WsDisconnectFunction", ws_event("$disconnect", "conn-1")) == {"statusCode": 200}
    table = template.functions["WsDefaultFunction"].environment["CONNECTIONS_TABLE"]
    assert dynamodb.scan(TableName=table)["Items"] == []


@pytest.mark.parametrize(
    ("key", "status"),
    [(None, 401), ("", 401), ("atk_unknown", 401), ("revoked", 401), ("inactive", 403)],
)
def test_a_key_that_may_not_watch_is_refused_at_connect(
    functions: Functions, template: Template, dynamodb: Any, key: str | None, status: int
) -> None:
    if key == "revoked":
        key = add_tenant(template, dynamodb, TENANT_A)
        tenant_store(template, dynamodb).delete_key(TENANT_A, f"key_{TENANT_A[-8:]}")
    elif key == "inactive":
        key = add_tenant(template, dynamodb, TENANT_A, active=False)
    answer = connect(functions, "conn-refused", key)
    assert answer["statusCode"] == status
    assert set(json.loads(answer["body"])["error"]) == {"code", "message", "details"}
    assert connections(template, dynamodb).tenant_of("conn-refused") is None


def test_bad_messages_get_errors_and_the_connection_keeps_working(
    functions: Functions, template: Template, dynamodb: Any
) -> None:
    connect(functions, "conn-1", add_tenant(template, dynamodb, TENANT_A))
    for message in ["not json", "x" * 200_000, "[]", '{"action": "subscribe", "user_id": ""}']:
        assert send(functions, "conn-1", message)["type"] == "error"
    binary = ws_event("$default", "conn-1", body="/w==", isBase64Encoded=True)
    assert json.loads(functions.invoke("WsDefaultFunction", binary)["body"])["error"]["code"] == "bad_request"
    assert send(functions, "conn-1", '{"action": "subscribe"}')["type"] == "subscribed"


def test_the_subscription_bound_holds_on_dynamodb(functions: Functions, template: Template, dynamodb: Any) -> None:
    connect(functions, "conn-1", add_tenant(template, dynamodb, TENANT_A))
    answers = [send(functions, "conn-1", json.dumps({"action": "subscribe", "user_id": f"u{n}"})) for n in range(105)]
    assert [a["type"] for a in answers] == ["subscribed"] * live.MAX_SUBSCRIPTIONS + ["error"] * 5
    assert answers[-1]["error"]["details"][0]["type"] == "too_many_subscriptions"
    assert send(functions, "conn-1", '{"action": "subscribe", "user_id": "u0"}')["type"] == "subscribed"
    (connection,) = connections(template, dynamodb).tenant_connections(TENANT_A)
    assert len(connection.subscriptions) == live.MAX_SUBSCRIPTIONS


# ---------------------------------------------------------------- the broadcaster


def test_each_new_event_reaches_its_tenants_subscribers_once(
    functions: Functions, template: Template, dynamodb: Any, management: ManagementApi
) -> None:
    # Given two tenants sharing user ids, each with a tenant-wide and a user-6 watcher
    stream = EventsStream(template, dynamodb)
    for tenant_id, prefix in ((TENANT_A, "a"), (TENANT_B, "b")):
        connect(functions, f"{prefix}-all", add_tenant(template, dynamodb, tenant_id))
        send(functions, f"{prefix}-all", '{"action": "subscribe"}')
        connect(functions, f"{prefix}-six", f"atk_live_{tenant_id}_secret")
        send(functions, f"{prefix}-six", '{"action": "subscribe", "user_id": "6"}')
    # When events are ingested (one of them retried) and the stream's batch is handed to the broadcaster
    assert post_event(functions, TENANT_A, "6", "a1") == 201
    assert post_event(functions, TENANT_B, "6", "b1") == 201
    assert post_event(functions, TENANT_A, "7", "a2") == 201
    assert post_event(functions, TENANT_A, "6", "a1") == 200  # a retry: a duplicate, no stream record
    batch = stream.batch()
    report = functions.invoke("BroadcasterFunction", batch)
    # Then each watcher got exactly its own tenant's events, once, in the event-out shape
    assert management.event_ids("a-all") == ["a1", "a2"]
    assert management.event_ids("a-six") == ["a1"]
    assert management.event_ids("b-all") == ["b1"]
    assert management.event_ids("b-six") == ["b1"]
    assert set(management.posted["a-six"][0]["event"]) == {
        "event_id",
        "user_id",
        "action",
        "occurred_at",
        "received_at",
        "metadata",
    }
    assert report == {"events": 3, "pushed": 5, "gone": 0, "failed": 0}


def test_the_stream_filter_passes_inserts_only(
    functions: Functions, template: Template, dynamodb: Any, management: ManagementApi
) -> None:
    stream = EventsStream(template, dynamodb)
    connect(functions, "watcher", add_tenant(template, dynamodb, TENANT_A))
    send(functions, "watcher", '{"action": "subscribe"}')
    post_event(functions, TENANT_A, "6", "e1")
    stream.batch()
    # An erasure's deletes and any update are REMOVE and MODIFY records: filtered out
    table = template.tables["EventsTable"].name
    key = {"pk": {"S": f"{TENANT_A}#e1"}}
    dynamodb.update_item(
        TableName=table, Key=key, UpdateExpression="SET note = :n", ExpressionAttributeValues={":n": {"S": "x"}}
    )
    dynamodb.delete_item(TableName=table, Key=key)
    assert stream.batch() == {"Records": []}


def test_a_stale_connection_answering_410_is_forgotten(
    functions: Functions, template: Template, dynamodb: Any, management: ManagementApi
) -> None:
    # Given two watchers, one of which left without a $disconnect (API Gateway answers 410 for it)
    stream = EventsStream(template, dynamodb)
    api_key = add_tenant(template, dynamodb, TENANT_A)
    for connection in ("stale", "alive"):
        connect(functions, connection, api_key)
        send(functions, connection, '{"action": "subscribe"}')
    management.gone.add("stale")
    # When events are broadcast
    post_event(functions, TENANT_A, "6", "e1")
    post_event(functions, TENANT_A, "6", "e2")
    report = functions.invoke("BroadcasterFunction", stream.batch())
    # Then the stale one is removed from the table, and the other received both
    assert report == {"events": 2, "pushed": 2, "gone": 1, "failed": 0}
    store = connections(template, dynamodb)
    assert [c.connection_id for c in store.tenant_connections(TENANT_A)] == ["alive"]
    assert store.tenant_of("stale") is None
    assert management.event_ids("alive") == ["e1", "e2"]
    # And the next batch does not try it again
    post_event(functions, TENANT_A, "6", "e3")
    functions.invoke("BroadcasterFunction", stream.batch())
    assert management.event_ids("alive") == ["e1", "e2", "e3"]


def test_the_sample_stream_event_reaches_a_subscriber_of_the_sample_user(
    functions: Functions, template: Template, dynamodb: Any, management: ManagementApi
) -> None:
    sample = sample_event("broadcaster/stream_insert.json")
    tenant_id = sample["Records"][0]["dynamodb"]["NewImage"]["tenant_id"]["S"]
    connect(functions, "watcher", add_tenant(template, dynamodb, tenant_id))
    assert send(functions, "watcher", sample_event("ws_default/subscribe.json")["body"])["type"] == "subscribed"
    functions.invoke("BroadcasterFunction", sample)
    (message,) = management.posted["watcher"]
    assert message["event"]["user_id"] == "user/42"
    assert message["event"]["metadata"] == {"device": "iPhone", "city": "Kyiv"}
