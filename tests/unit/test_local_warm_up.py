"""The local stack's Lambda workers start after it serves: in the background, one function at a time, skipping
a function a request already started, and naming a handler that does not load. Real worker processes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from local_stack.lambdas import LambdaRuntime
from local_stack.template import DEFAULT_TEMPLATE, Template, load_template


@pytest.fixture(scope="module")
def template() -> Template:
    """Three functions of the project's template: the health check, a copy whose handler module does not
    exist, and the tenants function."""
    full = load_template(DEFAULT_TEMPLATE)
    health = full.functions["HealthFunction"]
    broken = replace(health, logical_id="BrokenFunction", name="broken", handler="no_such_module.lambda_handler")
    functions = {
        "HealthFunction": health,
        "BrokenFunction": broken,
        "TenantsFunction": full.functions["TenantsFunction"],
    }
    return replace(full, functions=functions)


@pytest.fixture
def runtime(template: Template) -> Iterator[LambdaRuntime]:
    running = LambdaRuntime(template, {"AWS_DEFAULT_REGION": template.region}, max_workers=1)
    yield running
    running.shutdown()


def warm_up(runtime: LambdaRuntime) -> dict[str, dict[str, Any]]:
    errors: dict[str, dict[str, Any]] = {}
    thread = runtime.warm_up_in_background(errors.__setitem__)
    thread.join(timeout=120)
    assert not thread.is_alive()
    return errors


def test_every_function_gets_a_worker_and_a_handler_that_does_not_load_is_named(runtime: LambdaRuntime) -> None:
    # Given a runtime none of whose functions has a worker yet
    assert not any(runtime._pools[name].used for name in runtime._pools)
    # When the background warm-up has run
    errors = warm_up(runtime)
    # Then each function has a worker, and only the broken one is reported, with Lambda's import error
    assert all(runtime._pools[name].used for name in runtime._pools)
    assert list(errors) == ["BrokenFunction"]
    assert errors["BrokenFunction"]["errorType"] == "Runtime.ImportModuleError"
    assert "no_such_module" in errors["BrokenFunction"]["errorMessage"]
    # And a warmed function answers (with a proxy response; there is no store behind it here)
    event = json.loads((DEFAULT_TEMPLATE.parent / "events" / "health" / "get.json").read_text(encoding="utf-8"))
    health = runtime.invoke("HealthFunction", event)
    assert not health.function_error, health.payload
    assert "statusCode" in health.json()


def test_a_function_a_request_started_is_left_alone(runtime: LambdaRuntime) -> None:
    # Given the broken function was invoked before the warm-up came to it (its worker exists)
    first = runtime.invoke("BrokenFunction", {})
    assert first.function_error
    # When the warm-up runs
    errors = warm_up(runtime)
    # Then it does not start (nor report) that function again
    assert errors == {}


def test_the_warm_up_stops_with_the_runtime(template: Template) -> None:
    # Given a runtime that is shut down while its warm-up runs
    running = LambdaRuntime(template, {"AWS_DEFAULT_REGION": template.region}, max_workers=1)
    reported = threading.Event()
    thread = running.warm_up_in_background(lambda _function, _error: reported.set())
    running.shutdown()
    # Then the warm-up ends soon, and reports nothing about a stack that is stopping
    thread.join(timeout=90)
    assert not thread.is_alive()
    assert not reported.is_set()
