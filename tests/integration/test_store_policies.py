"""Each function's stores make only the DynamoDB calls its IAM policy in template.yaml allows, and on
the Aggregates table exactly those: the rollup, the statistics and erasure each have a store of
their own. Every store method is driven on moto (a crash and a rerun for the rollup's journals), and
each call is recorded as IAM sees it (the actions inside a TransactWriteItems, the index queried)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime, timedelta
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from moto import mock_aws

from local_stack.aws import create_tables
from local_stack.template import DEFAULT_TEMPLATE, Template, read_yaml
from tests.rollup_fakes import LEASE, Crash, FaultyStore
from tracker import stats
from tracker.adapters.aggregates_table import aggregate_eraser, rollup_aggregates, stats_aggregates
from tracker.adapters.dynamodb import dynamodb_client
from tracker.adapters.events_table import event_store
from tracker.adapters.exports_bucket import export_files
from tracker.adapters.profiles_table import profile_store
from tracker.adapters.tenants_table import erasure_store
from tracker.erasure import erase_user
from tracker.events import ingest_batch
from tracker.exports import UserDataEraser
from tracker.records import ErasureRecord
from tracker.rollup import run_rollup
from tracker.settings import get_settings

TENANT = "ten_policy0000000001"
NOW = datetime(2025, 10, 27, 10, 0, tzinfo=UTC)
TRANSACTION_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
Call = tuple[str, str]
"""An IAM action and the resource it touches: ``("dynamodb:Query", "EventsTable/index/by_received_v2")``."""


def policy_of(function: str) -> set[Call]:
    """The (action, resource) pairs the function's ``Policies`` allow, resources by logical id."""
    resources = read_yaml(DEFAULT_TEMPLATE)["Resources"]
    allowed: set[Call] = set()
    for policy in resources[function]["Properties"]["Policies"]:
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow"
            targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for action in statement["Action"]:
                allowed |= {(action, _resource(target)) for target in targets}
    return allowed


def _resource(target: Any) -> str:
    """A policy's resource by logical id: a table's GetAtt, or the ARN of a table named after the stack."""
    if "Fn::GetAtt" in target:
        return str(target["Fn::GetAtt"][0])
    text = str(target["Fn::Sub"])
    for logical_id, name in _tables_named_after_the_stack().items():
        if text.endswith(f":table/{name}") or f":table/{name}/" in text:
            return logical_id + text.split(f":table/{name}", 1)[1]
    return text.replace("${", "").replace(".Arn}", "")


def _tables_named_after_the_stack() -> dict[str, str]:
    """Tables whose ``TableName`` is a ``${AWS::StackName}-...`` string (their policies name them by it)."""
    resources = read_yaml(DEFAULT_TEMPLATE)["Resources"]
    return {
        logical_id: str(resource["Properties"]["TableName"]["Fn::Sub"])
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::DynamoDB::Table"
        and isinstance(resource["Properties"].get("TableName"), dict)
        and "Fn::Sub" in resource["Properties"]["TableName"]
    }


@contextmanager
def recorded_calls(template: Template) -> Iterator[set[Call]]:
    """Every DynamoDB call made on the functions' client, as IAM actions on logical resources."""
    names = {table.name: logical_id for logical_id, table in template.tables.items()}
    calls: set[Call] = set()

    def record(params: dict[str, Any], model: Any, **_kwargs: Any) -> None:
        operation = model.name
        if operation == "TransactWriteItems":
            for entry in params["TransactItems"]:
                ((kind, body),) = entry.items()
                calls.add((f"dynamodb:{TRANSACTION_ACTIONS[kind]}", names[body["TableName"]]))
        elif operation in ("BatchGetItem", "BatchWriteItem"):
            calls.update((f"dynamodb:{operation}", names[table]) for table in params["RequestItems"])
        else:
            resource = names[params["TableName"]]
            if "IndexName" in params:
                resource += f"/index/{params['IndexName']}"
            calls.add((f"dynamodb:{operation}", resource))

    client = dynamodb_client()
    client.meta.events.register("provide-client-params.dynamodb", record)
    try:
        yield calls
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb", record)


@pytest.fixture
def tables(template: Template, aws_environment: None) -> Iterator[None]:
    environment = {name: value for spec in template.functions.values() for name, value in spec.environment.items()}
    with mock_aws(), mock.patch.dict(os.environ, environment):
        get_settings.cache_clear()
        dynamodb_client.cache_clear()
        create_tables(dynamodb_client(), template)
        events = [
            {"event_id": f"e{i}", "user_id": f"u{i % 3}", "action": "login", "occurred_at": "2025-10-27T09:00:00Z"}
            for i in range(12)
        ]
        assert ingest_batch(event_store(), events, TENANT, NOW - timedelta(minutes=5), concurrency=1).accepted == 12
        yield
        get_settings.cache_clear()
        dynamodb_client.cache_clear()


def _rollup(now: datetime, store: Any) -> None:
    from tracker.adapters.catalog_table import catalog_reader
    from tracker.adapters.tenants_table import tenant_store

    def zone_of(tenant_id: str) -> ZoneInfo:
        tenant = tenant_store().get_tenant(tenant_id)
        return ZoneInfo(tenant.timezone if tenant else "UTC")

    run_rollup(
        store,
        zone_of,
        now=now,
        settle=timedelta(0),
        initial_lookback=timedelta(hours=1),
        lease_for=LEASE,
        wall_clock=lambda: now,
        max_events_per_part=5,
        catalog=catalog_reader(),
    )


def _rollup_job() -> None:
    """A run that dies half way, and the run after its lease that cleans what it left."""

    def die(number: int, _what: str) -> None:
        if number == 4:
            raise Crash("killed")

    with suppress(Crash):
        _rollup(NOW, FaultyStore(rollup_aggregates(), die))
    _rollup(NOW + LEASE + timedelta(seconds=1), rollup_aggregates())


def _stats_job() -> None:
    store, clock = stats_aggregates(), stats.TenantClock(TENANT, ZoneInfo("UTC"), NOW)
    days = stats.date_range(clock, date(2025, 10, 26), date(2025, 10, 27))
    stats.user_activity(store, clock, "u1", period="1h", start=NOW - timedelta(days=1), end=NOW)
    stats.daily(store, clock, 7)
    stats.top_users(store, clock, 48, 10)
    stats.trend(store, clock, days)
    stats.frequency(store, clock, days, None)
    stats.action_daily(store, clock, days, "login")


def _request_erasure() -> None:
    """What the ErasureFunction does before the worker runs."""
    record = ErasureRecord(
        tenant_id=TENANT,
        erasure_id="era_policy",
        user_id="u1",
        status="pending",
        deleted_events=0,
        created_at=NOW,
        updated_at=NOW,
    )
    erasure_store().create_erasure(record)


def _erasure_job() -> None:
    profiles = UserDataEraser(profile_store(), profile_store(), export_files())  # as the erase worker builds it
    erase_user(erasure_store(), event_store(), aggregate_eraser(), TENANT, "era_policy", profiles=profiles)


JOBS: dict[str, Callable[[], None]] = {
    "RollupFunction": _rollup_job,
    "StatsFunction": _stats_job,
    "EraseWorkerFunction": _erasure_job,
}


@pytest.mark.parametrize("function", list(JOBS))
def test_a_functions_store_calls_only_what_its_policy_allows_and_on_aggregates_exactly_that(
    template: Template, tables: None, function: str
) -> None:
    # Given counted events (the rollup's own job counts them), and an erasure requested
    if function != "RollupFunction":
        _rollup(NOW, rollup_aggregates())
    _request_erasure()
    # When the function's job runs through its stores
    with recorded_calls(template) as calls:
        JOBS[function]()
    # Then every call is allowed by its policy, and on the Aggregates table the policy allows no more
    allowed = policy_of(function)
    assert calls <= allowed, f"{function} calls what its policy does not allow: {sorted(calls - allowed)}"
    on_aggregates = {call for call in allowed if call[1] == "AggregatesTable"}
    assert {call for call in calls if call[1] == "AggregatesTable"} == on_aggregates
