"""Section 5: what the tracking plan adds to a batch of 500 events, and a catalog search over 5,000 event types.

In-process on moto (``mock_aws``, the template's tables), through the real handlers (``functions/ingest/app.py``
and ``functions/event_types/app.py``, environment from the template), with the product's DynamoDB client
counted by ``bench.dynamo.Recorder``.

- Validation: one tenant with a catalog of 20 event types (3 declared properties each). Batches of 500
  events over those 20 actions (every 10th event breaks the plan: a string where a number is declared)
  are posted to ``POST /v1/events/batch`` with the authorizer context's ``validation`` set to ``off``,
  ``flag`` and ``block``; ``block`` twice: with the ingest environment's catalog cache warm (a batch
  before read it) and cold (cleared before each batch, as after a new execution environment or once
  ``CATALOG_CACHE_SECONDS`` ran out). Each batch has fresh event ids. Reported per mode: the median time
  of a batch over the rounds and the DynamoDB requests per batch. The modes run interleaved, round by
  round, so that the machine's load falls on each alike. Also the check alone: ``screen_records`` over
  the 500 prepared events (no I/O), median of many rounds.
- Search: 5,000 event types in one tenant (names ``type-0000`` ..., descriptions of ~70 characters,
  3 properties each, ~450 bytes an item) plus 500 of another tenant; ``GET /v1/event-types`` with a
  search that matches nothing (the whole catalog is read), one that matches 1 type in 100, and none
  (the first page of 50). Reported: the median time of a call, Query requests, items read, read units.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bench.common import function, load_function_module, log, median, quiet_stdout
from bench.dynamo import Recorder, item_size, mocked_aws

if TYPE_CHECKING:
    from types import ModuleType

    from local_stack.template import FunctionSpec, Template

TENANT = "ten_benchcatalog0001"
OTHER_TENANT = "ten_benchcatalog0002"
BATCH = 500
ACTIONS = [f"action.{index:02d}" for index in range(20)]
MODES = ("off", "flag", "block (cache warm)", "block (cache cold)")
CATALOG_SIZE = 5_000
SEARCHES = {"no match (reads all)": "no such text", "1 in 100 match": "checkout", "no search (first page)": ""}
SEARCH_ROUNDS = 5
CHECK_ROUNDS = 50


def _proxy_event(method: str, resource: str, *, query: dict[str, str] | None, body: Any, validation: str) -> Any:
    return {
        "resource": resource,
        "path": resource,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json", "x-api-key": "bench-key"},
        "multiValueHeaders": {"Content-Type": ["application/json"], "x-api-key": ["bench-key"]},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {name: [value] for name, value in (query or {}).items()} or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/dev{resource}",
            "stage": "dev",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "127.0.0.1", "userAgent": "bench"},
            "authorizer": {
                "tenant_id": TENANT,
                "role": "tenant",
                "key_id": "key_bench",
                "timezone": "UTC",
                "validation": validation,
                "principalId": "key_bench",
            },
        },
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


def _batch(round_id: str) -> list[dict[str, Any]]:
    events = []
    for index in range(BATCH):
        amount: Any = "50" if index % 10 == 9 else index
        events.append(
            {
                "event_id": f"{round_id}-{index:03d}",
                "user_id": f"user-{index % 50}",
                "action": ACTIONS[index % len(ACTIONS)],
                "metadata": {"amount": amount, "sku": f"SKU-{index % 7}", "gift": index % 2 == 0},
            }
        )
    return events


def _event_type_item(tenant: str, index: int, now: datetime) -> dict[str, Any]:
    from tracker.adapters.catalog_table import event_type_to_item
    from tracker.records import EventTypeRecord, PropertyRule

    topic = "Checkout" if index % 100 == 0 else "Browse"
    record = EventTypeRecord(
        tenant_id=tenant,
        name=f"type-{index:04d}",
        description=f"{topic} step {index}: what a user does on screen {index % 40} of the bench app",
        points=index % 50,
        properties={
            "amount": PropertyRule(type="number", required=True),
            "sku": PropertyRule(type="string"),
            "gift": PropertyRule(type="boolean"),
        },
        created_at=now,
        updated_at=now,
    )
    return event_type_to_item(record)


class Invoker:
    def __init__(self, spec: FunctionSpec, environment: dict[str, str], name: str) -> None:
        from local_stack.lambdas import WorkerSetup

        self.module: ModuleType = load_function_module(spec, name)
        self.handler = getattr(self.module, spec.handler_function)
        self.setup = WorkerSetup.of(spec, dict(environment))

    def __call__(self, event: Any) -> tuple[dict[str, Any], float]:
        from local_stack.lambdas import LambdaContext

        context = LambdaContext(self.setup, str(uuid.uuid4()), "bench")
        with quiet_stdout():
            started = time.perf_counter()
            answer: dict[str, Any] = self.handler(event, context)
            elapsed = time.perf_counter() - started
        return answer, elapsed


def _validation(ingest: Invoker, client: Any, rounds: int) -> dict[str, Any]:
    from tracker.events import prepare_event
    from tracker.tracking_plan import CatalogCache, screen_records

    cache: Any = ingest.module.CATALOG
    timings: dict[str, list[float]] = {mode: [] for mode in MODES}
    requests: dict[str, dict[str, int]] = {}
    outcomes: dict[str, dict[str, int]] = {}
    # One batch first: the environment's imports and its catalog cache are warm
    ingest(_proxy_event("POST", "/v1/events/batch", query=None, body={"events": _batch("warm")}, validation="flag"))
    for round_index in range(rounds):
        for mode in MODES:
            validation = mode.split(" ")[0]
            if mode.endswith("cold)"):
                cache.clear()
            event = _proxy_event(
                "POST",
                "/v1/events/batch",
                query=None,
                body={"events": _batch(f"r{round_index}-{validation}-{mode[-5:-1]}")},
                validation=validation,
            )
            with Recorder(client) as recorder:
                answer, elapsed = ingest(event)
            body = json.loads(answer["body"])
            if answer["statusCode"] != 200:
                raise RuntimeError(f"{mode}: {answer['statusCode']} {body}")
            timings[mode].append(elapsed)
            requests[mode] = dict(recorder.counts.requests)
            outcomes[mode] = {name: body[name] for name in ("accepted", "duplicates", "rejected")}
    # The check alone, on the 500 prepared events and the catalog in memory
    received = datetime.now(UTC)
    records = [prepare_event(raw, TENANT, received) for raw in _batch("cpu")]
    catalog = CatalogCache(3600)
    from tracker.adapters.catalog_table import event_type_store

    event_types = catalog.event_types(event_type_store(), TENANT, ACTIONS)
    lookups = []
    for _ in range(CHECK_ROUNDS // 5):
        started = time.perf_counter()
        CatalogCache(0).event_types(event_type_store(), TENANT, ACTIONS)
        lookups.append(time.perf_counter() - started)
    check_seconds = {}
    for mode in ("flag", "block"):
        samples = []
        for _ in range(CHECK_ROUNDS):
            started = time.perf_counter()
            screen_records(records, mode, event_types)  # type: ignore[arg-type]
            samples.append(time.perf_counter() - started)
        check_seconds[mode] = median(samples)
    off = median(timings["off"])
    return {
        "batch_size": BATCH,
        "actions": ACTIONS,
        "rounds": rounds,
        "modes": {
            mode: {
                "median_ms": round(median(timings[mode]) * 1000, 1),
                "added_ms_vs_off": round((median(timings[mode]) - off) * 1000, 1),
                "requests_per_batch": requests[mode],
                "outcome": outcomes[mode],
            }
            for mode in MODES
        },
        "check_only_ms": {mode: round(seconds * 1000, 2) for mode, seconds in check_seconds.items()},
        "cold_catalog_read_ms": round(median(lookups) * 1000, 1),
        "outcomes_ok": outcomes["off"]["accepted"] == BATCH
        and outcomes["flag"]["accepted"] == BATCH
        and outcomes["block (cache warm)"] == {"accepted": 450, "duplicates": 0, "rejected": 50},
    }


class ScannedItems:
    """Sums ``ScannedCount`` of the Query answers: a filtered Query is billed on the items it read, not returned."""

    def __init__(self, client: Any) -> None:
        self._events = client.meta.events
        self.count = 0

    def _after_call(self, parsed: dict[str, Any], **_: Any) -> None:
        self.count += int(parsed.get("ScannedCount", 0))

    def __enter__(self) -> ScannedItems:
        self._events.register("after-call.dynamodb.Query", self._after_call, unique_id="bench-scanned")
        return self

    def __exit__(self, *_: object) -> None:
        self._events.unregister("after-call.dynamodb.Query", unique_id="bench-scanned")


def _search(event_types: Invoker, client: Any, expected: dict[str, int], item_bytes: int) -> dict[str, Any]:
    results = {}
    for label, text in SEARCHES.items():
        query = {"limit": "50", **({"search": text} if text else {})}
        samples = []
        counts: Any = None
        items: list[Any] = []
        for _ in range(SEARCH_ROUNDS):
            event = _proxy_event("GET", "/v1/event-types", query=query, body=None, validation="off")
            with Recorder(client) as recorder, ScannedItems(client) as scanned:
                answer, elapsed = event_types(event)
            if answer["statusCode"] != 200:
                raise RuntimeError(f"search {label}: {answer['statusCode']} {answer['body']}")
            samples.append(elapsed)
            counts = recorder.counts
            items = json.loads(answer["body"])["items"]
        results[label] = {
            "search": text,
            "median_ms": round(median(samples) * 1000, 1),
            "max_ms": round(max(samples) * 1000, 1),
            "items_answered": len(items),
            "items_scanned": scanned.count,
            # Strongly consistent Query: 1 unit per 4 KB of the items read, filtered out or not.
            "billed_read_units": math.ceil(scanned.count * item_bytes / 4096),
            "answer_matches_data": len(items) == expected[label],
            **counts.as_dict(),
        }
    return results


def run(template: Template, *, rounds: int) -> dict[str, Any]:
    ingest_spec = function(template, "IngestFunction")
    types_spec = function(template, "EventTypesFunction")
    environment = {**ingest_spec.environment, **types_spec.environment, "POWERTOOLS_TRACE_DISABLED": "true"}
    with mocked_aws(template, environment, fast=False) as moto:
        now = datetime.now(UTC)
        catalog_table = moto.tables["CatalogTable"]
        ingest = Invoker(ingest_spec, environment, "bench_ingest_app")
        event_types = Invoker(types_spec, environment, "bench_event_types_app")
        for action in ACTIONS:
            body = {
                "name": action,
                "properties": {
                    "amount": {"type": "number", "required": True},
                    "sku": {"type": "string"},
                    "gift": {"type": "boolean"},
                },
            }
            answer, _ = event_types(_proxy_event("POST", "/v1/event-types", query=None, body=body, validation="off"))
            if answer["statusCode"] != 201:
                raise RuntimeError(f"creating {action}: {answer}")
        log(f"catalog: {rounds} rounds of batches of {BATCH} in {len(MODES)} modes")
        validation = _validation(ingest, moto.client, rounds)
        log(f"catalog: writing {CATALOG_SIZE:,} event types")
        moto.direct.put_items(catalog_table, (_event_type_item(TENANT, index, now) for index in range(CATALOG_SIZE)))
        moto.direct.put_items(catalog_table, (_event_type_item(OTHER_TENANT, index, now) for index in range(500)))
        expected = {
            "no match (reads all)": 0,
            "1 in 100 match": CATALOG_SIZE // 100,
            "no search (first page)": 50,
        }
        item_bytes = item_size(_event_type_item(TENANT, 1234, now))
        search = _search(event_types, moto.client, expected, item_bytes)
    return {
        "validation": validation,
        "search": {"catalog_size": CATALOG_SIZE + len(ACTIONS), "item_bytes": item_bytes, "calls": search},
    }
