"""Handlers invoked in-process on moto: tables and environment from ``template.yaml`` through ``local_stack``."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local_stack.aws import create_tables
from local_stack.emulator import transactions_without_table_copies
from local_stack.resources import create_resources
from local_stack.template import Template, load_template
from tests.support import load_function_module

from .support import Functions


@pytest.fixture(scope="session")
def template() -> Template:
    return load_template()


@pytest.fixture(scope="session")
def aws_environment(template: Template) -> Iterator[None]:
    """Fake credentials, the template's region, no real endpoint, no X-Ray; what every function shares.

    Set before the function modules are imported: Powertools reads its settings when its objects are made.
    """
    shared = set.intersection(*(set(spec.environment.items()) for spec in template.functions.values()))
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE", "AWS_CONFIG_FILE"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_DEFAULT_REGION", template.region)
        patch.setenv("AWS_REGION", template.region)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_SESSION_TOKEN", "testing")
        patch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
        for name, value in sorted(shared):
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="session", autouse=True)
def fast_moto_transactions() -> Iterator[None]:
    """moto's TransactWriteItems without a copy of every table per item (a rollup's commit of 100 items
    would copy a table 100 times): the local stack's own patch (``local_stack.emulator``)."""
    with transactions_without_table_copies():
        yield


@pytest.fixture(scope="session")
def function_modules(template: Template, aws_environment: None) -> dict[str, ModuleType]:
    return {logical_id: load_function_module(spec) for logical_id, spec in template.functions.items()}


@pytest.fixture(scope="session")
def boto_session(template: Template, aws_environment: None) -> Iterator[boto3.Session]:
    """One boto3 session for the tests' own clients (making a client on a fresh session costs ~100 ms).

    The functions' cached DynamoDB client, too, lives as long as the session, as in a warm Lambda
    process; moto intercepts the calls of clients made before ``mock_aws`` starts all the same.
    """
    from tracker.adapters.dynamodb import dynamodb_client
    from tracker.adapters.signing_keys import secretsmanager_client, signing_keys
    from tracker.settings import get_settings

    yield boto3.Session(region_name=template.region)
    for cached in (dynamodb_client, secretsmanager_client, signing_keys, get_settings):
        cached.cache_clear()


def create_default_usage_plan(apigateway: Any, template: Template) -> None:
    """The usage plan SAM makes for the API (``Auth.UsagePlan``), named as the tenants function is told."""
    apigateway.create_usage_plan(
        name=template.functions["TenantsFunction"].environment["USAGE_PLAN_NAME"],
        throttle={
            "rateLimit": float(template.parameters["DefaultRateLimit"]),
            "burstLimit": int(template.parameters["DefaultBurstLimit"]),
        },
    )


@pytest.fixture
def dynamodb(template: Template, boto_session: boto3.Session) -> Iterator[Any]:
    """A fresh moto AWS: every table, key, secret and bucket of the template (created by ``local_stack``)
    and the default usage plan."""
    from tracker.adapters.signing_keys import signing_keys

    signing_keys.cache_clear()  # its versions belong to the previous test's secret
    with mock_aws():
        client = boto_session.client("dynamodb")
        create_tables(client, template)
        create_default_usage_plan(boto_session.client("apigateway"), template)
        create_resources(boto_session.client, template)
        yield client


@pytest.fixture
def functions(template: Template, function_modules: dict[str, ModuleType], dynamodb: Any) -> Functions:
    return Functions(template, function_modules)


@pytest.fixture(autouse=True)
def reset_metrics(function_modules: dict[str, ModuleType]) -> Iterator[None]:
    """Powertools Metrics state is per process: each test starts with no metric and a cold start."""
    from aws_lambda_powertools.metrics.provider import cold_start

    from tracker.rest import metrics

    metrics.clear_metrics()
    metrics.clear_default_dimensions()
    cold_start.is_cold_start = True
    yield
    metrics.clear_metrics()
    metrics.clear_default_dimensions()
    cold_start.is_cold_start = True
