"""Handlers invoked in-process on moto: tables and environment from ``template.yaml`` through ``local_stack``."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local_stack.aws import create_tables
from local_stack.template import Template, load_template

from .support import Functions, load_function_module


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


@pytest.fixture(scope="session")
def function_modules(template: Template, aws_environment: None) -> dict[str, ModuleType]:
    return {logical_id: load_function_module(spec) for logical_id, spec in template.functions.items()}


@pytest.fixture
def dynamodb(template: Template, aws_environment: None) -> Iterator[Any]:
    """A fresh moto DynamoDB with every table of the template; the functions' cached client is made anew."""
    from tracker.dynamodb import dynamodb_client
    from tracker.settings import get_settings

    with mock_aws():
        dynamodb_client.cache_clear()
        get_settings.cache_clear()
        client = boto3.client("dynamodb", region_name=template.region)
        create_tables(client, template)
        yield client
        dynamodb_client.cache_clear()
        get_settings.cache_clear()


@pytest.fixture
def functions(template: Template, function_modules: dict[str, ModuleType], dynamodb: Any) -> Functions:
    return Functions(template, function_modules)


@pytest.fixture(autouse=True)
def reset_metrics(function_modules: dict[str, ModuleType]) -> Iterator[None]:
    """Powertools Metrics state is per process: each test starts with no metric and a cold start."""
    from aws_lambda_powertools.metrics.provider import cold_start

    from tracker.http import metrics

    metrics.clear_metrics()
    metrics.clear_default_dimensions()
    cold_start.is_cold_start = True
    yield
    metrics.clear_metrics()
    metrics.clear_default_dimensions()
    cold_start.is_cold_start = True
