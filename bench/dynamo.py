"""DynamoDB on moto for the cost sections: request and item counting, and a fast path for the set-up.

``Recorder`` hooks the product's own client (``tracker.adapters.dynamodb.dynamodb_client()``): ``before-call`` counts
requests per operation, ``after-call`` counts the items read (``Items`` of Query, ``Responses`` of
BatchGetItem, ``Item`` of GetItem) and estimates the read request units they cost on DynamoDB.

``DirectClient`` talks to moto's backend without botocore: only the set-up uses it (loading 100,000s of
events and rolling them up before a measurement), never a measured run.
"""

from __future__ import annotations

import json
import math
import os
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.moto_speedups import by_gsi_hash, moto_module, new_item, project, speedups, stored_items

if TYPE_CHECKING:
    from local_stack.template import Template

READ_UNIT_BYTES = 4096
WRITE_UNIT_BYTES = 1024
FAKE_CREDENTIALS = "testing"


def value_size(value: dict[str, Any]) -> int:  # noqa: PLR0911 - one return per DynamoDB type
    """DynamoDB's size of one attribute value, in bytes (the rules of the developer guide)."""
    kind, content = next(iter(value.items()))
    if kind == "S":
        return len(str(content).encode())
    if kind == "N":
        digits = str(content).lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(content) if isinstance(content, bytes | bytearray) else len(str(content)) * 3 // 4
    if kind in {"BOOL", "NULL"}:
        return 1
    if kind in {"SS", "NS", "BS"}:
        return sum(value_size({kind[0]: member}) for member in content)
    if kind == "L":
        return 3 + sum(1 + value_size(member) for member in content)
    if kind == "M":
        return 3 + sum(1 + len(name.encode()) + value_size(member) for name, member in content.items())
    return len(json.dumps(content))


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


@dataclass
class Counts:
    """What one measured piece of work asked of DynamoDB."""

    requests: Counter[str] = field(default_factory=Counter)
    items_read: Counter[str] = field(default_factory=Counter)
    """Items returned, by operation."""
    keys_requested: int = 0
    """Keys asked for by GetItem and BatchGetItem (found or not: DynamoDB bills both)."""
    read_units: float = 0.0
    write_items: int = 0
    """Items written: each item of a TransactWriteItems, PutItem, UpdateItem, DeleteItem or BatchWriteItem."""
    transactional_write_items: int = 0
    write_units: int = 0
    """Write request units: 1 per KB of each item written (the larger of its old and new size, for a
    PutItem the new one: the rollup's items only grow, a journal's delete costs what its put did),
    2 per KB in a transaction (a ConditionCheck as a write of the item checked)."""
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def total_items_read(self) -> int:
        return sum(self.items_read.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": dict(sorted(self.requests.items())),
            "total_requests": self.total_requests,
            "items_read": dict(sorted(self.items_read.items())),
            "total_items_read": self.total_items_read,
            "keys_requested": self.keys_requested,
            "read_request_units": round(self.read_units, 1),
            "write_items": self.write_items,
            "transactional_write_items": self.transactional_write_items,
            "write_request_units": self.write_units,
            "errors": dict(self.errors),
        }


class Recorder:
    """Counts what a botocore DynamoDB client asks while the ``with`` block runs (thread-safe)."""

    def __init__(self, client: Any) -> None:
        self._events = client.meta.events
        self._id = f"bench-{uuid.uuid4().hex}"
        self._lock = threading.Lock()
        self.counts = Counts()
        self._sizes: dict[str, int] = {}
        """The size of each item this recorder saw put, by key: what deleting it costs."""

    def __enter__(self) -> Recorder:
        self._events.register("before-call.dynamodb", self._before_call, unique_id=f"{self._id}-before")
        self._events.register("after-call.dynamodb", self._after_call, unique_id=f"{self._id}-after")
        return self

    def __exit__(self, *_: object) -> None:
        self._events.unregister("before-call.dynamodb", unique_id=f"{self._id}-before")
        self._events.unregister("after-call.dynamodb", unique_id=f"{self._id}-after")

    def _before_call(self, model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        body = json.loads(params.get("body") or b"{}")
        context["bench_body"] = body
        operation = model.name
        with self._lock:
            counts = self.counts
            counts.requests[operation] += 1
            if operation == "TransactWriteItems":
                counts.write_items += len(body["TransactItems"])
                counts.transactional_write_items += len(body["TransactItems"])
                for entry in body["TransactItems"]:
                    ((_, request),) = entry.items()
                    counts.write_units += 2 * self._units(request.get("Item") or request["Key"])
            elif operation in {"PutItem", "UpdateItem", "DeleteItem"}:
                counts.write_items += 1
                counts.write_units += self._units(body.get("Item") or body["Key"], deleted=operation == "DeleteItem")
            elif operation == "BatchWriteItem":
                counts.write_items += sum(len(requests) for requests in body["RequestItems"].values())
            elif operation == "GetItem":
                counts.keys_requested += 1
            elif operation == "BatchGetItem":
                counts.keys_requested += sum(len(table["Keys"]) for table in body["RequestItems"].values())

    def _units(self, item: dict[str, Any], deleted: bool = False) -> int:
        key = json.dumps({name: item[name] for name in ("pk", "sk") if name in item}, sort_keys=True)
        size = self._sizes.pop(key, 1) if deleted else self._sizes.setdefault(key, item_size(item))
        if not deleted:
            self._sizes[key] = size = max(size, item_size(item))
        return math.ceil(size / WRITE_UNIT_BYTES)

    def _after_call(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        operation = model.name
        body = context.get("bench_body", {})
        if "Error" in parsed:
            with self._lock:
                self.counts.errors[f"{operation}:{parsed['Error'].get('Code')}"] += 1
            return
        found, units = _reads(operation, body, parsed)
        with self._lock:
            if operation in {"Query", "Scan", "GetItem", "BatchGetItem"}:
                self.counts.items_read[operation] += found
            self.counts.read_units += units


def _reads(operation: str, body: dict[str, Any], parsed: dict[str, Any]) -> tuple[int, float]:
    """Items returned and the read request units DynamoDB would bill for them."""
    if operation in {"Query", "Scan"}:
        items = parsed.get("Items", [])
        factor = 1.0 if body.get("ConsistentRead") else 0.5
        # One read of the items' total size, rounded up to 4 KB; a page with nothing still costs one unit.
        return len(items), max(1, math.ceil(sum(map(item_size, items)) / READ_UNIT_BYTES)) * factor
    if operation == "GetItem":
        item = parsed.get("Item")
        factor = 1.0 if body.get("ConsistentRead") else 0.5
        return (1 if item else 0), (math.ceil(item_size(item) / READ_UNIT_BYTES) if item else 1) * factor
    if operation == "BatchGetItem":
        found = units = 0.0
        for table, request in body["RequestItems"].items():
            items = parsed.get("Responses", {}).get(table, [])
            factor = 1.0 if request.get("ConsistentRead") else 0.5
            # Each key is a GetItem of its own: 4 KB rounding per item; a missing item still costs one unit.
            missing = len(request["Keys"]) - len(items)
            units += (sum(math.ceil(item_size(item) / READ_UNIT_BYTES) for item in items) + missing) * factor
            found += len(items)
        return int(found), units
    return 0, 0.0


class DirectClient:
    """The few calls of a DynamoDB client the stores make, straight on moto's backend: for the set-up only.

    No botocore, no 1 MB pages, no per-item validation; a transaction of more than 100 items is applied
    100 at a time (the set-up rolls up with large chunks, see ``large_commits``). Writes go through moto's
    own transaction code, reads through a key-condition query of this class.
    """

    def __init__(self, region: str) -> None:
        account = os.environ.get("MOTO_ACCOUNT_ID", moto_module("moto.core.models").DEFAULT_ACCOUNT_ID)
        self._backend: Any = moto_module("moto.dynamodb.models").dynamodb_backends[account][region]

    def put_items(self, table: str, items: Iterable[dict[str, Any]]) -> int:
        """Stores new items (ingest's own) as PutItem would, without moto's per-item validation."""
        target = self._backend.get_table(table)
        written = 0
        for attributes in items:
            new_item(target, attributes)
            written += 1
        return written

    def get_item(self, TableName: str, Key: dict[str, Any], **_: Any) -> dict[str, Any]:
        item = self._backend.get_item(TableName, Key)
        return {"Item": item.to_json()["Attributes"]} if item else {}

    def batch_get_item(self, RequestItems: dict[str, Any], **_: Any) -> dict[str, Any]:
        responses: dict[str, list[dict[str, Any]]] = {}
        for table, request in RequestItems.items():
            found = (self._backend.get_item(table, key) for key in request["Keys"])
            responses[table] = [item.to_json()["Attributes"] for item in found if item]
        return {"Responses": responses, "UnprocessedKeys": {}}

    def transact_write_items(self, TransactItems: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        for offset in range(0, len(TransactItems), 100):
            self._backend.transact_write_items(TransactItems[offset : offset + 100])
        return {}

    def query(self, **request: Any) -> dict[str, Any]:
        DynamoType = moto_module("moto.dynamodb.models.dynamo_type").DynamoType
        parse_expression = moto_module("moto.dynamodb.parsing.key_condition_expression").parse_expression

        table, index_name = self._backend.get_table(request["TableName"]), request.get("IndexName")
        hash_conditions, range_conditions, _ = parse_expression(
            key_condition_expression=request["KeyConditionExpression"],
            expression_attribute_values=request.get("ExpressionAttributeValues", {}),
            expression_attribute_names=request.get("ExpressionAttributeNames", {}),
            schema=self._backend.get_schema(table_name=table.name, index_name=index_name),
        )
        ((hash_name, hash_wire),) = hash_conditions
        index = table.get_index(index_name) if index_name else None
        if index is not None:
            candidates = list(by_gsi_hash(table, hash_name).get(DynamoType(hash_wire), []))
            range_name = next((k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"), None)
        else:
            partition = table.items.get(DynamoType(hash_wire))
            candidates = list(partition.values()) if isinstance(partition, dict) else [partition] if partition else []
            range_name = table.range_key_attr
        if range_conditions:
            name, operator, values = range_conditions[-1]
            bounds = [DynamoType(value) for value in values]
            candidates = [
                item for item in candidates if name in item.attrs and item.attrs[name].compare(operator, bounds)
            ]

        def order(item: Any) -> tuple[Any, ...]:
            ranged = item.attrs[range_name].cast_value if range_name else ""
            return (ranged, item.hash_key.cast_value, item.range_key.cast_value if item.range_key else "")

        candidates.sort(key=order, reverse=not request.get("ScanIndexForward", True))
        start = request.get("ExclusiveStartKey")
        if start:
            keys = [table.hash_key_attr, *([table.range_key_attr] if table.range_key_attr else [])]
            wanted = [DynamoType(start[name]) for name in keys]
            position = next(n for n, item in enumerate(candidates) if [item.attrs[k] for k in keys] == wanted)
            candidates = candidates[position + 1 :]
        limit = request.get("Limit")
        page, rest = (candidates[:limit], candidates[limit:]) if limit else (candidates, [])
        answer: dict[str, Any] = {
            "Items": [(project(index, item) if index else item).to_json()["Attributes"] for item in page],
            "Count": len(page),
        }
        if rest and page:
            names = {table.hash_key_attr, table.range_key_attr, *(index.schema_key_attrs if index else [])}
            answer["LastEvaluatedKey"] = {name: page[-1].attrs[name].to_json() for name in names if name}
        return answer

    def scan_items(self, table: str) -> Iterator[dict[str, Any]]:
        """Every item of a table (for checks after a run)."""
        for item in stored_items(self._backend.get_table(table)):
            yield item.to_json()["Attributes"]


@dataclass
class Moto:
    """An in-process moto with the template's tables, the product's client and the set-up's direct client."""

    client: Any
    direct: DirectClient
    speedup_counters: dict[str, int]
    tables: dict[str, str]


@contextmanager
def mocked_aws(template: Template, environment: dict[str, str], *, fast: bool = True) -> Iterator[Moto]:
    """moto's ``mock_aws`` with ``environment`` (a function's variables) set and the product's caches cleared.

    ``fast`` applies every patch of ``bench.moto_speedups`` (same answers, much less CPU); without it only
    the one that skips moto's whole-table backup per transaction item (it matters only for a transaction
    that fails, and the bench treats any failed transaction as a failed run).
    """
    from local_stack.aws import create_tables

    mock_aws = moto_module("moto").mock_aws

    saved = dict(os.environ)
    for variable in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(variable, None)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS,
            "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS,
            "AWS_DEFAULT_REGION": template.region,
            "AWS_REGION": template.region,
            **environment,
        }
    )
    from tracker.adapters.dynamodb import dynamodb_client
    from tracker.settings import get_settings

    try:
        with ExitStack() as stack:
            stack.enter_context(mock_aws())
            plain = speedups(candidates=False, add=False, responses=False)
            counters = stack.enter_context(speedups() if fast else plain)
            dynamodb_client.cache_clear()
            get_settings.cache_clear()
            client = dynamodb_client()
            create_tables(client, template)
            yield Moto(
                client=client,
                direct=DirectClient(template.region),
                speedup_counters=counters,
                tables={logical_id: table.name for logical_id, table in template.tables.items()},
            )
    finally:
        dynamodb_client.cache_clear()
        get_settings.cache_clear()
        os.environ.clear()
        os.environ.update(saved)
