"""Makes moto's in-process DynamoDB fast enough for 100,000s of events, without changing any answer.

moto 5 answers a Query by sorting and filtering *every* item of the table (GSIs included) and deep-copying
its answer, deep-copies the whole table once per item of a TransactWriteItems (to roll back on failure),
runs every UpdateExpression through a slow generic parser and validator, and serializes every response by
walking the service model. At the bench's sizes that is hours of CPU. Narrow patches, applied only inside
``speedups()``:

1. Query candidates: the items of the queried partition only (base table: the partition's dict; GSI: a
   per-table index by GSI hash key, rebuilt after any write to that table). moto's own query code then
   sorts, pages (1 MB) and filters them as before; it no longer deep-copies the items it answers with
   (nothing mutates them), and an index projects top-level attributes by name instead of through a JSON
   round trip.
2. TransactWriteItems: no whole-table backup. A failed transaction is then *not* rolled back, so the
   bench counts cancelled transactions and treats any as a failed run.
3. ``ADD #n :v, ...`` on numbers without a condition (the rollup's aggregate deltas): applied directly
   (without moto's 405 KB item-size check, which the bench's small aggregates never approach); any other
   update goes through moto as usual.
4. DynamoDB data-plane responses (Query, GetItem, BatchGetItem, writes) serialized with ``json.dumps``
   instead of moto's shape-walking serializer: the same JSON (anything ``json`` cannot encode, such as a
   datetime, still goes through moto's serializer).

``bench.rollup_cost.speedups_check`` runs a small rollup with and without them and compares every count and
every aggregate item.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import re
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_ADD_NUMBERS = re.compile(r"ADD (#\w+ :\w+(?:, #\w+ :\w+)*)")
_FAST_RESPONSES = frozenset(
    {"Query", "GetItem", "BatchGetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
)
_local = threading.local()
_lock = threading.Lock()
_versions: dict[int, int] = defaultdict(int)
"""Write count per moto table (by id): a GSI index built at another count is stale."""
_gsi_index: dict[tuple[int, str], tuple[int, dict[Any, list[Any]]]] = {}


def moto_module(name: str) -> Any:
    """A moto module, untyped: the bench reaches into moto's internals on purpose."""
    return importlib.import_module(name)


def touched(table: Any) -> None:
    """Tells the GSI indexes that ``table`` changed (for code that writes to moto's tables directly)."""
    _versions[id(table)] += 1


def stored_items(table: Any) -> list[Any]:
    """Every item of a moto table, in no particular order (moto's ``all_items`` sorts them all)."""
    partitions = table.items.values()
    return [item for part in partitions for item in part.values()] if table.range_key_attr else list(partitions)


def by_gsi_hash(table: Any, attribute: str) -> dict[Any, list[Any]]:
    """The table's items by their value of ``attribute`` (a GSI's hash key), rebuilt after writes."""
    key = (id(table), attribute)
    with _lock:
        cached = _gsi_index.get(key)
        if cached is None or cached[0] != _versions[id(table)]:
            buckets: dict[Any, list[Any]] = defaultdict(list)
            for item in stored_items(table):
                value = item.attrs.get(attribute)
                if value is not None:
                    buckets[value].append(item)
            cached = (_versions[id(table)], buckets)
            _gsi_index[key] = cached
    return cached[1]


def new_item(table: Any, attributes: dict[str, Any]) -> Any:
    """Stores an item of wire-format ``attributes`` as moto's PutItem would, without its validation."""
    types = moto_module("moto.dynamodb.models.dynamo_type")
    DynamoType, Item, LimitedSizeDict = types.DynamoType, types.Item, types.LimitedSizeDict

    item = Item.__new__(Item)
    item.attrs = LimitedSizeDict.__new__(LimitedSizeDict)
    dict.update(item.attrs, {name: DynamoType(value) for name, value in attributes.items()})
    item.hash_key = item.attrs[table.hash_key_attr]
    item.range_key = item.attrs[table.range_key_attr] if table.range_key_attr else None
    if table.range_key_attr:
        table.items[item.hash_key][item.range_key] = item
    else:
        table.items[item.hash_key] = item
    touched(table)
    return item


def project(index: Any, item: Any) -> Any:
    """An index's view of an item (KEYS_ONLY or INCLUDE by top-level names; ALL: the item itself)."""
    types = moto_module("moto.dynamodb.models.dynamo_type")
    Item, LimitedSizeDict = types.Item, types.LimitedSizeDict

    kind = (index.projection or {}).get("ProjectionType")
    if kind not in {"KEYS_ONLY", "INCLUDE"}:
        return item
    names = [*index.table_key_attrs, *index.schema_key_attrs]
    if kind == "INCLUDE":
        names += index.projection.get("NonKeyAttributes", [])
    projected = Item.__new__(Item)
    projected.hash_key, projected.range_key = item.hash_key, item.range_key
    projected.attrs = LimitedSizeDict.__new__(LimitedSizeDict)
    dict.update(projected.attrs, {name: item.attrs[name] for name in names if name in item.attrs})
    return projected


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_none(member) for key, member in value.items() if member is not None}
    if isinstance(value, list):
        return [_without_none(member) for member in value]
    return value


class _CopyShim:
    """Stands in for the ``copy`` module inside a moto module; ``keep(value)`` says what not to deep-copy."""

    def __init__(self, keep: Any) -> None:
        self._keep = keep

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        kept = self._keep(value)
        return kept if kept is not None else copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


@contextmanager
def speedups(  # noqa: PLR0915 - one patch set, restored as a whole
    *, candidates: bool = True, table_copy: bool = True, add: bool = True, responses: bool = True
) -> Iterator[dict[str, int]]:
    """Applies the patches (each can be left out); yields ``cancelled_transactions``, which must stay 0."""
    backend_module = moto_module("moto.dynamodb.models")
    table_module = moto_module("moto.dynamodb.models.table")
    types = moto_module("moto.dynamodb.models.dynamo_type")
    BaseJSONSerializer = moto_module("moto.core.serialize").BaseJSONSerializer
    DynamoDBBackend, Table, SecondaryIndex = (
        backend_module.DynamoDBBackend,
        table_module.Table,
        table_module.SecondaryIndex,
    )
    DynamoType, Item = types.DynamoType, types.Item

    counters = {"cancelled_transactions": 0}
    originals: dict[str, Any] = {
        "all_items": Table.all_items,
        "query": Table.query,
        "put_item": Table.put_item,
        "delete_item": Table.delete_item,
        "project": SecondaryIndex.project,
        "update_item": DynamoDBBackend.update_item,
        "transact": DynamoDBBackend.transact_write_items,
        "serialize": BaseJSONSerializer._serialize_result,
        "backend_copy": backend_module.copy,
        "table_copy": table_module.copy,
    }
    query_signature = inspect.signature(Table.query)

    def all_items(self: Any) -> Any:
        chosen = getattr(_local, "candidates", None)
        return chosen if chosen is not None else originals["all_items"](self)

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        arguments = query_signature.bind(self, *args, **kwargs).arguments
        hash_key, index_name = arguments.get("hash_key"), arguments.get("index_name")
        conditions = arguments.get("hash_key_conditions") or []
        chosen = None
        if index_name is None:
            partition = self.items.get(hash_key) if hash_key is not None else None
            chosen = list(partition.values()) if isinstance(partition, dict) else None
        elif len(conditions) == 1:
            attribute, value = conditions[0]
            chosen = list(by_gsi_hash(self, attribute).get(value, []))
        _local.candidates = chosen
        try:
            return originals["query"](self, *args, **kwargs)
        finally:
            _local.candidates = None

    def put_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        touched(self)
        return originals["put_item"](self, *args, **kwargs)

    def delete_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        touched(self)
        return originals["delete_item"](self, *args, **kwargs)

    def update_item(  # noqa: PLR0917 - moto's signature
        self: Any,
        table_name: str,
        key: dict[str, dict[str, Any]],
        update_expression: str,
        expression_attribute_names: dict[str, Any],
        expression_attribute_values: dict[str, Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        table = self.get_table(table_name)
        touched(table)
        match = _ADD_NUMBERS.fullmatch(update_expression or "")
        plain = not args and not any(kwargs.values())
        if not (add and match and plain and table.range_key_attr):
            return originals["update_item"](
                self,
                table_name,
                key,
                update_expression,
                expression_attribute_names,
                expression_attribute_values,
                *args,
                **kwargs,
            )
        hash_value, range_value = DynamoType(key[table.hash_key_attr]), DynamoType(key[table.range_key_attr])
        item = table.get_item(hash_value, range_value) or new_item(table, dict(key))
        for pair in match.group(1).split(", "):
            name_ref, value_ref = pair.split(" ")
            name, value = expression_attribute_names[name_ref], expression_attribute_values[value_ref]["N"]
            current = item.attrs.get(name)
            total = int(value) + (int(current.value) if current is not None else 0)
            dict.__setitem__(item.attrs, name, DynamoType({"N": str(total)}))
        return item

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        try:
            originals["transact"](self, transact_items)
        except Exception as error:
            if type(error).__name__ == "TransactionCanceledException":
                counters["cancelled_transactions"] += 1
            raise

    def serialize_result(self: Any, resp: Any, result: Any) -> Any:
        operation = self.operation_model
        if operation.service_model.service_name == "dynamodb" and operation.name in _FAST_RESPONSES:
            try:
                resp["body"] = json.dumps(_without_none(result))
            except TypeError:
                return originals["serialize"](self, resp, result)
            resp["headers"]["Content-Type"] = self._get_protocol_specific_content_type()
            return resp
        return originals["serialize"](self, resp, result)

    def keep_answer(value: Any) -> Any:
        is_answer = isinstance(value, list) and all(isinstance(member, Item) for member in value)
        return list(value) if is_answer else None

    if candidates:
        Table.all_items = all_items
        Table.query = query
        Table.put_item = put_item
        Table.delete_item = delete_item
        SecondaryIndex.project = project
        table_module.copy = _CopyShim(keep_answer)
    if candidates or add:
        DynamoDBBackend.update_item = update_item
    if table_copy:
        backend_module.copy = _CopyShim(lambda value: value if isinstance(value, Table) else None)
    if responses:
        BaseJSONSerializer._serialize_result = serialize_result
    DynamoDBBackend.transact_write_items = transact_write_items
    try:
        yield counters
    finally:
        Table.all_items = originals["all_items"]
        Table.query = originals["query"]
        Table.put_item = originals["put_item"]
        Table.delete_item = originals["delete_item"]
        SecondaryIndex.project = originals["project"]
        DynamoDBBackend.update_item = originals["update_item"]
        DynamoDBBackend.transact_write_items = originals["transact"]
        BaseJSONSerializer._serialize_result = originals["serialize"]
        backend_module.copy = originals["backend_copy"]
        table_module.copy = originals["table_copy"]
