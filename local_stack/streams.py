"""DynamoDB stream event source mappings, as Lambda runs them, on the embedded moto.

moto keeps a table's stream records (``describe_stream``, ``get_shard_iterator``, ``get_records``)
but runs no function on them without Docker. Here a thread per mapping of the template (a
function's ``Type: DynamoDB`` event) polls the stream's shards, keeps the records the mapping's
``FilterCriteria`` lets through, and invokes the function with them in Lambda's stream-event shape:
up to ``BatchSize`` records, after ``MaximumBatchingWindowInSeconds`` at most, a failed batch
retried ``MaximumRetryAttempts`` times and then skipped, as Lambda does.

What moto's streams lack and this makes up for: moto keeps every shard iterator it hands out
(each ``get_records`` answer makes a new one) for the life of the process, so the poller forgets
the ones it has used in moto's own backend (moto runs in this process); moto numbers a record
``len(records) + start`` without a lock, so two concurrent writes to a table can get the same
sequence number, and the next iterator (after the highest number read) then hands the second one
out again: the poller drops a record whose ``eventID`` it has just read (Lambda never hands the same
record twice but on a retry); moto has one shard per table that never closes, so shards are read
once at start and not rediscovered.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from local_stack.aws import client
from local_stack.lambdas import InvokeResult
from local_stack.template import FUNCTION_TYPES, Template, TemplateError

logger = logging.getLogger(__name__)

BUSY_POLL_SECONDS = 0.05
IDLE_POLL_SECONDS = 0.1
MAX_RECORDS_PER_READ = 1000  # GetRecords' own limit
REMEMBERED_RECORDS = 10_000  # eventIDs kept to drop a record moto hands out twice


@dataclass(frozen=True)
class StreamMapping:
    function: str
    """Logical id of the function."""
    table: str
    """Logical id of the table whose stream it reads."""
    batch_size: int
    window_seconds: float
    starting_position: str
    max_retries: int
    filters: tuple[dict[str, Any], ...]


def stream_mappings(template: Template) -> list[StreamMapping]:
    """Every ``Type: DynamoDB`` event of the template's functions on a table of the template."""
    resolver = template.resolver()
    resources = resolver.resources
    mappings = []
    for logical_id, resource in resources.items():
        if resource.get("Type") not in FUNCTION_TYPES or logical_id not in template.functions:
            continue
        for name, event in ((resource.get("Properties") or {}).get("Events") or {}).items():
            if event.get("Type") != "DynamoDB":
                continue
            properties = event.get("Properties") or {}
            stream = properties.get("Stream")
            target = stream.get("Fn::GetAtt") if isinstance(stream, dict) else None
            if not target or target[0] not in template.tables or target[1] != "StreamArn":
                raise TemplateError(f"{logical_id}.{name}: the local stack reads streams of its own tables only")
            resolved = resolver.resolve({key: value for key, value in properties.items() if key != "Stream"})
            filters = tuple(
                json.loads(item["Pattern"]) for item in (resolved.get("FilterCriteria") or {}).get("Filters", [])
            )
            for pattern in filters:
                _check_pattern(pattern, f"{logical_id}.{name}")
            mappings.append(
                StreamMapping(
                    function=logical_id,
                    table=target[0],
                    batch_size=int(resolved.get("BatchSize", 100)),
                    window_seconds=float(resolved.get("MaximumBatchingWindowInSeconds", 0)),
                    starting_position=str(resolved.get("StartingPosition", "LATEST")),
                    max_retries=int(resolved.get("MaximumRetryAttempts", -1)),
                    filters=filters,
                )
            )
    return mappings


def _check_pattern(pattern: Any, where: str) -> None:
    """Only exact-value filters (lists of strings, numbers, booleans or null) are supported locally."""
    if not isinstance(pattern, dict):
        raise TemplateError(f"{where}: a filter pattern must be a JSON object")
    for value in pattern.values():
        if isinstance(value, dict):
            _check_pattern(value, where)
        elif not isinstance(value, list) or any(isinstance(item, dict | list) for item in value):
            raise TemplateError(f"{where}: only exact-value filter patterns are supported by the local stack")


def matches(pattern: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """Whether a record passes an exact-value event filter pattern (every key, one of its values)."""
    for key, wanted in pattern.items():
        value = record.get(key)
        if isinstance(wanted, dict):
            if not isinstance(value, dict) or not matches(wanted, value):
                return False
        elif value not in wanted:
            return False
    return True


def lambda_record(record: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A GetRecords record (as boto3 parses it) in the shape Lambda hands a function."""
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = created.timestamp()
    return {**record, "awsRegion": region, "dynamodb": dynamodb, "eventSourceARN": stream_arn}


class StreamPoller:
    """Runs the template's stream mappings until ``stop()``."""

    def __init__(
        self, template: Template, endpoint: str, invoke: Callable[[str, Any], InvokeResult], forget_iterators: bool
    ) -> None:
        self._template = template
        self._endpoint = endpoint
        self._invoke = invoke
        self._forget_iterators = forget_iterators
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.mappings = stream_mappings(template)

    def start(self) -> None:
        """Reads each stream's shard iterators now, so that records written from here on are seen."""
        for mapping in self.mappings:
            reader = _ShardReader(self._template, self._endpoint, mapping, self._forget_iterators)
            thread = threading.Thread(target=self._run, args=(mapping, reader), name=f"stream-{mapping.function}")
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _run(self, mapping: StreamMapping, reader: _ShardReader) -> None:
        pending: list[dict[str, Any]] = []
        first_seen = 0.0
        while not self._stop.is_set():
            try:
                fresh = [
                    record
                    for record in reader.read()
                    if not mapping.filters or any(matches(pattern, record) for pattern in mapping.filters)
                ]
            except Exception:  # the emulation stopping, say: keep polling until told to stop
                logger.exception("Reading the stream of %s failed", mapping.table)
                self._stop.wait(1)
                continue
            if fresh and not pending:
                first_seen = time.monotonic()
            pending += fresh
            while pending and (
                len(pending) >= mapping.batch_size or time.monotonic() - first_seen >= mapping.window_seconds
            ):
                batch, pending = pending[: mapping.batch_size], pending[mapping.batch_size :]
                self._deliver(mapping, batch)
                first_seen = time.monotonic()
            self._stop.wait(BUSY_POLL_SECONDS if fresh else IDLE_POLL_SECONDS)

    def _deliver(self, mapping: StreamMapping, batch: list[dict[str, Any]]) -> None:
        attempt = 0
        while not self._stop.is_set():
            result = self._invoke(mapping.function, {"Records": batch})
            if not result.function_error:
                return
            attempt += 1
            if 0 <= mapping.max_retries < attempt:
                logger.warning(
                    "%s failed on a batch of %d records %d times; skipped: %.300s",
                    mapping.function,
                    len(batch),
                    attempt,
                    result.payload,
                )
                return
            self._stop.wait(min(attempt, 5))


class _ShardReader:
    """The open shards of one table's stream, read from where the last read stopped."""

    def __init__(self, template: Template, endpoint: str, mapping: StreamMapping, forget_iterators: bool) -> None:
        self._region = template.region
        self._streams = client("dynamodbstreams", endpoint, template.region)
        table_name = template.tables[mapping.table].name
        description = client("dynamodb", endpoint, template.region).describe_table(TableName=table_name)
        self.stream_arn = str(description["Table"]["LatestStreamArn"])
        shards = self._streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        self._iterators: dict[str, str] = {
            shard["ShardId"]: self._streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard["ShardId"], ShardIteratorType=mapping.starting_position
            )["ShardIterator"]
            for shard in shards
        }
        self._forget = _forget_moto_iterator if forget_iterators else (lambda _iterator: None)
        self._recent: deque[str] = deque(maxlen=REMEMBERED_RECORDS)
        self._recent_ids: set[str] = set()

    def read(self) -> list[dict[str, Any]]:
        records = []
        for shard_id, iterator in list(self._iterators.items()):
            answer = self._streams.get_records(ShardIterator=iterator, Limit=MAX_RECORDS_PER_READ)
            self._forget(iterator)
            self._iterators[shard_id] = answer["NextShardIterator"]
            records += [
                lambda_record(record, self.stream_arn, self._region)
                for record in answer["Records"]
                if self._first_time(record["eventID"])
            ]
        return records

    def _first_time(self, event_id: str) -> bool:
        if event_id in self._recent_ids:
            return False
        if len(self._recent) == self._recent.maxlen:
            self._recent_ids.discard(self._recent[0])
        self._recent.append(event_id)
        self._recent_ids.add(event_id)
        return True


def _forget_moto_iterator(iterator: str) -> None:
    """Drops a used shard iterator from moto's backend, which otherwise keeps every one for ever."""
    from moto.dynamodbstreams.models import dynamodbstreams_backends  # noqa: PLC0415 - moto runs in this process

    for account in list(dynamodbstreams_backends.values()):
        for backend in list(account.values()):
            backend.shard_iterators.pop(iterator, None)
