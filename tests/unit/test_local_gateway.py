"""The local API Gateway without sockets: route selection, policy evaluation, gateway responses,
Lambda proxy results and per-tenant token buckets, on the project's own template."""

from __future__ import annotations

import json
from dataclasses import replace
from fnmatch import fnmatchcase
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from local_stack.gateway import (
    ALLOW,
    EXPLICIT_DENY,
    IMPLICIT_DENY,
    Authorization,
    Gateway,
    RouteTable,
    evaluate_policy,
)
from local_stack.httpserver import HttpRequest
from local_stack.lambdas import InvokeResult
from local_stack.rate_limits import TokenBuckets
from local_stack.template import DEFAULT_TEMPLATE, Route, Template, load_template

ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/dev"


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(DEFAULT_TEMPLATE)


def table(template: Template, routes: dict[str, list[tuple[str, str]]]) -> RouteTable:
    """A route table of made-up functions: {function: [(method, path), ...]}."""
    spec = next(iter(template.functions.values()))
    functions = {
        name: replace(spec, logical_id=name, routes=tuple(Route(method, path, auth=False) for method, path in paths))
        for name, paths in routes.items()
    }
    return RouteTable(functions)


# ---------------------------------------------------------------- route selection


@pytest.fixture(scope="module")
def routes(template: Template) -> RouteTable:
    return table(
        template,
        {
            "Literal": [("GET", "/v1/users/me")],
            "Parameter": [("GET", "/v1/users/{user_id}"), ("DELETE", "/v1/users/{user_id}")],
            "Proxy": [("ANY", "/v1/{proxy+}")],
            "Nested": [("GET", "/v1/users/{user_id}/events")],
            "AnyOnly": [("ANY", "/v1/anything")],
            "MethodBeatsAny": [("GET", "/v1/mixed")],
            "AnyOfMixed": [("ANY", "/v1/mixed")],
        },
    )


@pytest.mark.parametrize(
    ("method", "path", "function", "parameters"),
    [
        ("GET", "/v1/users/me", "Literal", {}),  # a literal segment beats a parameter
        ("GET", "/v1/users/u1", "Parameter", {"user_id": "u1"}),  # a parameter beats a greedy path
        ("DELETE", "/v1/users/u1", "Parameter", {"user_id": "u1"}),
        ("GET", "/v1/users/a%2Fb", "Parameter", {"user_id": "a/b"}),  # decoded, still one segment
        ("GET", "/v1/users/u1/events", "Nested", {"user_id": "u1"}),
        ("GET", "/v1/a/b/c", "Proxy", {"proxy": "a/b/c"}),  # {proxy+} takes several segments
        ("PATCH", "/v1/anything", "AnyOnly", {}),
        ("GET", "/v1/mixed", "MethodBeatsAny", {}),  # the method beats ANY on one resource
        ("PUT", "/v1/mixed", "AnyOfMixed", {}),
    ],
)
def test_the_most_specific_resource_then_its_method_is_chosen(
    routes: RouteTable, method: str, path: str, function: str, parameters: dict[str, str]
) -> None:
    match = routes.match(method, path)
    assert match is not None
    assert (match.function_id, match.path_parameters) == (function, parameters)


@pytest.mark.parametrize(
    "path",
    [
        "/v1",  # {proxy+} needs at least one segment
        "/v1/",  # ... and not an empty one
        "/v1/a//b",  # no empty segment inside a greedy path either
        "v1/users/u1",  # not a path
        "/v2/users/u1",
    ],
)
def test_no_route_matches(routes: RouteTable, path: str) -> None:
    assert routes.match("GET", path) is None


def test_the_resource_is_chosen_before_the_method(routes: RouteTable) -> None:
    # /v1/users/{user_id} is more specific than /v1/{proxy+} and has no POST: no route, not the proxy's ANY
    assert routes.match("POST", "/v1/users/u1") is None


def test_a_method_routed_to_two_functions_is_refused(template: Template) -> None:
    with pytest.raises(ValueError, match="routed to two functions"):
        table(template, {"A": [("GET", "/x")], "B": [("GET", "/x")]})


# ---------------------------------------------------------------- policies


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def statement(effect: str, resource: str | list[str], action: str | list[str] = "execute-api:Invoke") -> dict[str, Any]:
    return {"Effect": effect, "Action": action, "Resource": resource}


@pytest.mark.parametrize(
    ("document", "decision"),
    [
        (policy(statement("Allow", f"{ARN}/GET/v1/events")), ALLOW),
        (policy(statement("Allow", f"{ARN}/*")), ALLOW),  # * crosses "/"
        (policy(statement("Allow", f"{ARN}/???/v1/events")), ALLOW),
        (policy(statement("Allow", f"{ARN}/POST/*")), IMPLICIT_DENY),
        (policy(statement("Allow", f"{ARN}/get/v1/events")), IMPLICIT_DENY),  # resources are case-sensitive
        (policy(statement("Allow", f"{ARN}/*", "Execute-API:invoke")), ALLOW),  # actions are not
        (policy(statement("Allow", f"{ARN}/*", "execute-api:*")), ALLOW),
        (policy(statement("Allow", f"{ARN}/*", "s3:GetObject")), IMPLICIT_DENY),
        (policy(statement("Allow", f"{ARN}/*"), statement("Deny", f"{ARN}/GET/*")), EXPLICIT_DENY),
        (policy(statement("Deny", f"{ARN}/GET/*"), statement("Allow", f"{ARN}/*")), EXPLICIT_DENY),
        (policy(statement("Allow", [f"{ARN}/POST/*", f"{ARN}/GET/*"])), ALLOW),
        ({"Statement": statement("Allow", f"{ARN}/*")}, ALLOW),  # one statement, not in a list
        (policy(), IMPLICIT_DENY),
    ],
)
def test_a_policy_is_evaluated_as_api_gateway_does(document: dict[str, Any], decision: str) -> None:
    assert evaluate_policy(document, f"{ARN}/GET/v1/events") == decision


@pytest.mark.parametrize("statements", ["Allow", 3, ["Allow"]])
def test_a_malformed_statement_is_an_error(statements: Any) -> None:
    with pytest.raises(ValueError, match="Statement"):
        evaluate_policy({"Statement": statements}, f"{ARN}/GET/v1/events")


@given(
    pattern=st.text(alphabet="ab/*?", max_size=8),
    path=st.text(alphabet="ab/", max_size=8),
)
def test_resource_wildcards_match_as_shell_patterns_without_classes(pattern: str, path: str) -> None:
    # Brute force: fnmatchcase has the same * and ? (and no [ in this alphabet)
    document = policy(statement("Allow", pattern))
    assert (evaluate_policy(document, path) == ALLOW) == fnmatchcase(path, pattern)


# ---------------------------------------------------------------- gateway responses and proxy results


class FakeFunctions:
    """The Lambda side: the authorizer's answer and the route function's result, chosen by the test."""

    def __init__(
        self, result: Any, function_error: bool = False, principal: str = "ten_1", refuse: bool = False
    ) -> None:
        self.result, self.function_error, self.principal, self.refuse = result, function_error, principal, refuse
        self.events: list[tuple[str, Any]] = []

    def __call__(self, function_id: str, event: Any) -> InvokeResult:
        self.events.append((function_id, event))
        if event.get("type") in {"REQUEST", "TOKEN"} and self.refuse:
            # What a Lambda authorizer raises for a missing or bad credential
            return InvokeResult(json.dumps({"errorMessage": "Unauthorized"}), function_error=True)
        if event.get("type") in {"REQUEST", "TOKEN"}:
            answer = {
                "principalId": self.principal,
                "policyDocument": policy(statement("Allow", event["methodArn"].rsplit("/", 3)[0] + "/*")),
                "context": {"tenant_id": self.principal, "active": True},
                "usageIdentifierKey": "usage-key",
            }
            return InvokeResult(json.dumps(answer))
        return InvokeResult(json.dumps(self.result), function_error=self.function_error)


def gateway(template: Template, functions: FakeFunctions) -> Gateway:
    return Gateway(template, functions)


def get(path: str, key: str | None = "atk_x", body: bytes = b"") -> HttpRequest:
    headers = [("Host", "localhost")] + ([("x-api-key", key)] if key else [])
    return HttpRequest("GET", path, headers, body)


def integration_failure_status(template: Template) -> int:
    """API Gateway's 502 for a function error, unless the template's DEFAULT_5XX sets its own status."""
    default = template.api.gateway_responses.get("DEFAULT_5XX")  # type: ignore[union-attr]
    return default.status if default and default.status else 502


def error_code(body: bytes) -> str:
    return str(json.loads(body)["error"]["code"])


def test_an_authorizers_unauthorized_is_the_templates_unauthorized_response(template: Template) -> None:
    answer = gateway(template, FakeFunctions({}, refuse=True)).handle(get("/v1/users/u1/events", key=None))
    assert (answer.status, error_code(answer.body)) == (401, "unauthorized")
    assert ("x-amzn-ErrorType", "UNAUTHORIZED") in answer.headers


def test_an_unknown_route_is_the_templates_not_found(template: Template) -> None:
    answer = gateway(template, FakeFunctions({})).handle(get("/v1/nowhere"))
    assert (answer.status, error_code(answer.body)) == (404, "not_found")


def test_a_type_the_template_does_not_customize_is_rendered_by_its_default(template: Template) -> None:
    responses = template.api.gateway_responses  # type: ignore[union-attr]
    assert "INTEGRATION_TIMEOUT" not in responses
    answer = gateway(template, FakeFunctions({})).gateway_response("INTEGRATION_TIMEOUT", "rid", None)
    default = responses["DEFAULT_5XX"]
    assert answer.status == (default.status or 504)
    assert answer.body.decode() == default.template
    assert ("x-amzn-ErrorType", "INTEGRATION_TIMEOUT") in answer.headers


def test_a_throttled_request_carries_the_templates_retry_after(template: Template) -> None:
    answer = gateway(template, FakeFunctions({})).gateway_response("THROTTLED", "rid", None)
    assert answer.status == 429
    assert ("Retry-After", "1") in answer.headers


@pytest.mark.parametrize(
    "result",
    [
        {"body": "{}"},  # no statusCode
        {"statusCode": "abc", "body": "{}"},
        {"statusCode": True, "body": "{}"},
        {"statusCode": 600, "body": "{}"},
        {"statusCode": 200, "body": "not base64!", "isBase64Encoded": True},
        ["not", "an", "object"],
        "text",
    ],
)
def test_a_malformed_proxy_result_is_an_integration_failure(template: Template, result: Any) -> None:
    answer = gateway(template, FakeFunctions(result)).handle(get("/v1/health", key=None))
    assert answer.status == integration_failure_status(template)
    assert ("x-amzn-ErrorType", "DEFAULT_5XX") in answer.headers
    assert answer.served_by == "HealthFunction"


def test_a_function_error_is_an_integration_failure_with_the_error_in_the_access_log_only(
    template: Template,
) -> None:
    failure = {"errorType": "KeyError", "errorMessage": "'boom'", "stackTrace": ["secret frame"]}
    answer = gateway(template, FakeFunctions(failure, function_error=True)).handle(get("/v1/health", key=None))
    assert answer.status == integration_failure_status(template)
    assert b"boom" not in answer.body
    assert b"frame" not in answer.body
    assert answer.note == "KeyError: 'boom'"


def test_a_proxy_result_becomes_the_response(template: Template) -> None:
    result = {
        "statusCode": "201",
        "headers": {"X-One": "a", "X-Both": "from headers"},
        "multiValueHeaders": {"X-Both": ["m1", "m2"]},
        "body": "aGk=",
        "isBase64Encoded": True,
    }
    answer = gateway(template, FakeFunctions(result)).handle(get("/v1/health", key=None))
    assert answer.status == 201
    assert answer.body == b"hi"
    assert ("X-One", "a") in answer.headers
    assert [value for name, value in answer.headers if name == "X-Both"] == ["m1", "m2"]
    assert (answer.route, answer.served_by) == ("/v1/health", "HealthFunction")


def test_the_authorizers_context_reaches_the_function_stringified(template: Template) -> None:
    functions = FakeFunctions({"statusCode": 200, "body": "{}"})
    answer = gateway(template, functions).handle(get("/v1/users/u%201/events"))
    assert answer.status == 200
    function_id, event = functions.events[-1]
    assert function_id == "QueryFunction"
    assert event["pathParameters"] == {"user_id": "u 1"}
    assert event["requestContext"]["authorizer"] == {"tenant_id": "ten_1", "active": "true", "principalId": "ten_1"}


def test_a_body_over_the_limit_is_request_too_large(template: Template) -> None:
    request = replace(get("/v1/health", key=None), too_large=True)
    answer = gateway(template, FakeFunctions({})).handle(request)
    assert (answer.status, error_code(answer.body)) == (413, "payload_too_large")


# ---------------------------------------------------------------- token buckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


METERED = Route("POST", "/v1/events", auth=True, api_key_required=True)


def allowed(key: str, rate: float = 2, burst: int = 3) -> Authorization:
    return Authorization("p", {"rate": str(rate), "burst": str(burst)}, usage_identifier_key=key)


def test_a_burst_is_served_then_refused_until_tokens_refill() -> None:
    clock = Clock()
    buckets = TokenBuckets(default_rate=100, default_burst=100, clock=clock)
    assert [buckets(METERED, allowed("k")) for _ in range(4)] == [None, None, None, "THROTTLED"]
    clock.now += 0.49  # 0.98 of a token at 2/s
    assert buckets(METERED, allowed("k")) == "THROTTLED"
    clock.now += 0.02
    assert buckets(METERED, allowed("k")) is None
    clock.now += 60  # never more than the burst
    assert [buckets(METERED, allowed("k")) for _ in range(4)] == [None, None, None, "THROTTLED"]


def test_each_key_has_its_own_bucket_and_unmetered_routes_are_free() -> None:
    buckets = TokenBuckets(default_rate=1, default_burst=1, clock=Clock())
    assert buckets(METERED, allowed("a", burst=1)) is None
    assert buckets(METERED, allowed("a", burst=1)) == "THROTTLED"
    assert buckets(METERED, allowed("b", burst=1)) is None
    assert buckets(replace(METERED, api_key_required=False), allowed("a", burst=1)) is None


def test_a_metered_route_without_a_usage_key_is_an_invalid_api_key() -> None:
    buckets = TokenBuckets(default_rate=1, default_burst=1, clock=Clock())
    assert buckets(METERED, Authorization("p", {}, usage_identifier_key=None)) == "INVALID_API_KEY"


def test_without_the_authorizers_numbers_the_template_default_applies(template: Template) -> None:
    buckets = TokenBuckets.from_template(template, clock=Clock())
    plan = template.api.usage_plan  # type: ignore[union-attr]
    burst = int((plan.throttle if plan else {}).get("burstLimit", 5_000))  # type: ignore[union-attr]
    answers = [buckets(METERED, Authorization("p", {}, usage_identifier_key="k")) for _ in range(burst + 1)]
    assert answers.count(None) == burst
    assert answers[-1] == "THROTTLED"
