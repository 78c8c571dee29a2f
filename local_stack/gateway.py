"""The API Gateway REST API emulation: the template's routes, its Lambda authorizer and its gateway responses.

For each request, as API Gateway does:

1. a body over 10 MB is ``REQUEST_TOO_LARGE``;
2. the resource is matched on the raw (percent-encoded) path, ``{name}`` matching exactly one segment,
   ``{name+}`` the rest; the most specific resource wins (literal segments first), then its method (or
   ``ANY``). No resource or no method is ``MISSING_AUTHENTICATION_TOKEN``;
3. on a route with auth, a missing identity header is ``UNAUTHORIZED``; otherwise the authorizer
   function gets a REQUEST (or TOKEN) event. ``Unauthorized`` raised by it is ``UNAUTHORIZED``, any
   other error ``AUTHORIZER_FAILURE``; its policy is evaluated against the method ARN (an explicit Deny
   wins, no Allow is a deny: ``ACCESS_DENIED``). There is no authorizer cache locally, so a revoked key
   is refused at once. Then the ``after_authorization`` hook runs (the seam for per-tenant rate limits);
4. the route's function gets a REST (version 1.0) proxy event; a function error or timeout is
   ``DEFAULT_5XX``, otherwise its proxy result is the response.

Gateway responses are rendered from the template's ``GatewayResponses``; a type the template does not
customize falls back to its ``DEFAULT_4XX``/``DEFAULT_5XX``, keeping the type's own status code, as in
API Gateway. No answer ever carries a Python stack trace (they go to the log).

Local-only extras, without auth: ``GET /docs`` (Swagger UI, from the ``swagger_ui_bundle`` package) and
``GET /openapi.json`` (the committed document).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import mimetypes
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from local_stack.httpserver import HttpRequest, HttpResponse
from local_stack.lambdas import InvokeResult, result_note
from local_stack.template import ApiSpec, FunctionSpec, GatewayResponseSpec, Route, Template

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024
JSON = "application/json"

# API Gateway's own status code of each response type, and its $context.error.message for some.
DEFAULT_STATUS = {
    "ACCESS_DENIED": 403,
    "API_CONFIGURATION_ERROR": 500,
    "AUTHORIZER_CONFIGURATION_ERROR": 500,
    "AUTHORIZER_FAILURE": 500,
    "BAD_REQUEST_BODY": 400,
    "BAD_REQUEST_PARAMETERS": 400,
    "DEFAULT_4XX": 400,
    "DEFAULT_5XX": 500,
    "EXPIRED_TOKEN": 403,
    "INTEGRATION_FAILURE": 504,
    "INTEGRATION_TIMEOUT": 504,
    "INVALID_API_KEY": 403,
    "INVALID_SIGNATURE": 403,
    "MISSING_AUTHENTICATION_TOKEN": 403,
    "QUOTA_EXCEEDED": 429,
    "REQUEST_TOO_LARGE": 413,
    "RESOURCE_NOT_FOUND": 404,
    "THROTTLED": 429,
    "UNAUTHORIZED": 401,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "WAF_FILTERED": 403,
}
DEFAULT_MESSAGE = {
    "ACCESS_DENIED": "User is not authorized to access this resource",
    "MISSING_AUTHENTICATION_TOKEN": "Missing Authentication Token",
    "QUOTA_EXCEEDED": "Limit Exceeded",
    "REQUEST_TOO_LARGE": "Request Too Long",
    "RESOURCE_NOT_FOUND": "Not Found",
    "THROTTLED": "Too Many Requests",
    "UNAUTHORIZED": "Unauthorized",
}
FUNCTION_ERROR_STATUS = 502  # what API Gateway answers for a Lambda function error, uncustomized


@dataclass(frozen=True)
class Authorization:
    """What an allowed request carries from its authorizer."""

    principal_id: str
    context: dict[str, str]
    """``requestContext.authorizer`` as the integration sees it: values stringified, principalId included."""
    usage_identifier_key: str | None = None
    """The API key of the request's usage plan, when the API's ApiKeySourceType is AUTHORIZER."""


AuthorizationHook = Callable[[Route, Authorization], str | None]
"""Called after a successful authorization (the seam for per-tenant rate limits); returns None to go
on, or a gateway response type (``THROTTLED``, ``QUOTA_EXCEEDED``) to refuse the request."""

Invoker = Callable[[str, Any], InvokeResult]
"""Invokes a function by logical id with an event (``LambdaRuntime.invoke``)."""


class GatewayRejection(Exception):
    """API Gateway answers by itself with one of its gateway responses."""

    def __init__(self, response_type: str, message: str | None = None, status: int | None = None) -> None:
        super().__init__(message or response_type)
        self.response_type = response_type
        self.message = message
        self.status = status


def _integration_failure() -> GatewayRejection:
    """A function error, timeout or malformed proxy result: API Gateway's 502, through DEFAULT_5XX."""
    return GatewayRejection("DEFAULT_5XX", "Internal server error", FUNCTION_ERROR_STATUS)


@dataclass
class _Trace:
    """What the access log says of a request: the route, the function that served it, an error."""

    route: str | None = None
    function: str | None = None
    note: str | None = None


# ---------------------------------------------------------------- routes


@dataclass(frozen=True)
class RouteMatch:
    function_id: str
    route: Route
    path_parameters: dict[str, str]


class RouteTable:
    """The template's routes, matched the way API Gateway selects a resource and then a method."""

    def __init__(self, functions: Mapping[str, FunctionSpec]) -> None:
        self._resources: dict[str, dict[str, tuple[str, Route]]] = {}
        for spec in functions.values():
            for route in spec.routes:
                methods = self._resources.setdefault(route.path, {})
                if route.method in methods:
                    raise ValueError(f"{route.method} {route.path} is routed to two functions")
                methods[route.method] = (spec.logical_id, route)

    def match(self, method: str, raw_path: str) -> RouteMatch | None:
        if not raw_path.startswith("/"):
            return None
        segments = raw_path[1:].split("/")
        best: tuple[tuple[int, ...], str, dict[str, str]] | None = None
        for resource_path in self._resources:
            matched = _match_segments(resource_path[1:].split("/"), segments)
            if matched is not None and (best is None or matched[0] < best[0]):
                best = (matched[0], resource_path, matched[1])
        if best is None:
            return None
        methods = self._resources[best[1]]
        found = methods.get(method.upper()) or methods.get("ANY")
        return None if found is None else RouteMatch(found[0], found[1], best[2])


def _match_segments(pattern: list[str], segments: list[str]) -> tuple[tuple[int, ...], dict[str, str]] | None:
    """(specificity, decoded path parameters) when the raw segments match; lower specificity wins."""
    rank: list[int] = []
    parameters: dict[str, str] = {}
    for index, part in enumerate(pattern):
        if part.startswith("{") and part.endswith("+}"):
            rest = segments[index:]
            if not rest or not all(rest):
                return None
            parameters[part[1:-2]] = unquote("/".join(rest))
            return (*rank, 2), parameters
        if index >= len(segments):
            return None
        if part.startswith("{") and part.endswith("}"):
            if not segments[index]:
                return None
            parameters[part[1:-1]] = unquote(segments[index])
            rank.append(1)
        elif part == segments[index]:
            rank.append(0)
        else:
            return None
    return (tuple(rank), parameters) if len(pattern) == len(segments) else None


# ---------------------------------------------------------------- authorizer policies

ALLOW, EXPLICIT_DENY, IMPLICIT_DENY = "Allow", "ExplicitDeny", "ImplicitDeny"


@lru_cache(maxsize=4096)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """An IAM pattern: ``*`` matches any characters ("/" included), ``?`` any one."""
    regex = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.compile(regex, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _strings(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [item for item in values if isinstance(item, str)]


def evaluate_policy(policy: Mapping[str, Any], method_arn: str) -> str:
    """ALLOW, EXPLICIT_DENY or IMPLICIT_DENY for invoking ``method_arn``, as API Gateway evaluates it."""
    statements = policy.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not all(isinstance(statement, dict) for statement in statements):
        raise ValueError("policyDocument.Statement must be a statement or a list of statements")
    allowed = False
    for statement in statements:
        actions = _strings(statement.get("Action"))
        if not any(_wildcard(action, ignore_case=True).fullmatch("execute-api:Invoke") for action in actions):
            continue
        resources = _strings(statement.get("Resource"))
        if not any(_wildcard(resource, ignore_case=False).fullmatch(method_arn) for resource in resources):
            continue
        if statement.get("Effect") == "Deny":
            return EXPLICIT_DENY
        allowed = allowed or statement.get("Effect") == "Allow"
    return ALLOW if allowed else IMPLICIT_DENY


def authorization(output: Any) -> Authorization:
    """An allowed authorizer's answer as API Gateway takes it (context values stringified).

    Raises GatewayRejection(AUTHORIZER_CONFIGURATION_ERROR) for an answer API Gateway refuses.
    """
    if (
        not isinstance(output, dict)
        or "principalId" not in output
        or not isinstance(output.get("policyDocument"), dict)
    ):
        raise GatewayRejection(
            "AUTHORIZER_CONFIGURATION_ERROR", "The authorizer must return principalId and policyDocument"
        )
    context = output.get("context") or {}
    if not isinstance(context, dict):
        raise GatewayRejection("AUTHORIZER_CONFIGURATION_ERROR", "The authorizer's context must be an object")
    converted: dict[str, str] = {}
    for key, value in context.items():
        if isinstance(value, bool):
            converted[key] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            converted[key] = str(value)
        elif value is not None:
            raise GatewayRejection(
                "AUTHORIZER_CONFIGURATION_ERROR", f"context.{key}: only strings, numbers and booleans are allowed"
            )
    principal_id = str(output["principalId"])
    usage_key = output.get("usageIdentifierKey")
    return Authorization(
        principal_id=principal_id,
        context={**converted, "principalId": principal_id},
        usage_identifier_key=None if usage_key is None else str(usage_key),
    )


# ---------------------------------------------------------------- the gateway


class Gateway:
    """The REST API of a template; ``handle`` turns one HTTP request into the API Gateway answer."""

    def __init__(
        self,
        template: Template,
        invoke: Invoker,
        openapi_document: Path | None = None,
        after_authorization: AuthorizationHook | None = None,
    ) -> None:
        if template.api is None:
            raise ValueError("The template has no REST API")
        self.template = template
        self.api: ApiSpec = template.api
        self.routes = RouteTable(template.functions)
        self.invoke = invoke
        self.openapi_document = openapi_document
        self.after_authorization = after_authorization

    # ------------------------------------------------------------ entry points

    def handle(self, request: HttpRequest) -> HttpResponse:
        request_id = str(uuid.uuid4())
        trace = _Trace()
        try:
            response = self._handle(request, request_id, trace)
        except GatewayRejection as rejection:
            response = self.gateway_response(
                rejection.response_type, request_id, request, message=rejection.message, status=rejection.status
            )
        except Exception as error:
            logger.exception("Gateway error on %s %s", request.method, request.path)
            trace.note = f"{type(error).__name__}: {error}"
            response = self.gateway_response("DEFAULT_5XX", request_id, request)
        response.served_by, response.route, response.note = trace.function, trace.route, trace.note
        return response

    def protocol_error(self, status: int, message: str) -> HttpResponse:
        response_type = "MISSING_AUTHENTICATION_TOKEN" if status == 501 else "DEFAULT_4XX"
        return self.gateway_response(response_type, str(uuid.uuid4()), None, message=message, status=status)

    # ------------------------------------------------------------ one request

    def _handle(self, request: HttpRequest, request_id: str, trace: _Trace) -> HttpResponse:
        if request.too_large:
            raise GatewayRejection("REQUEST_TOO_LARGE")
        match = self.routes.match(request.method, request.path)
        if match is None:
            local = self._local_route(request)
            if local is None:
                raise GatewayRejection("MISSING_AUTHENTICATION_TOKEN")
            return local
        trace.route = match.route.path
        request_fields = self._request_fields(request, match, request_id)
        authorizer_context: dict[str, str] | None = None
        if match.route.auth:
            allowed = self._authorize(request, request_fields, trace)
            refusal = self.after_authorization(match.route, allowed) if self.after_authorization else None
            if refusal is not None:
                raise GatewayRejection(refusal)
            authorizer_context = allowed.context
        trace.function = match.function_id
        result = self.invoke(match.function_id, self._proxy_event(request, request_fields, authorizer_context))
        if result.function_error:
            trace.note = result_note(result)
            raise _integration_failure()
        return self._proxy_response(result.json(), request_id)

    def _request_fields(self, request: HttpRequest, match: RouteMatch, request_id: str) -> dict[str, Any]:
        """What the REQUEST authorizer event and the proxy event share."""
        headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        sent = {name.lower() for name, _ in request.headers}
        forwarded = [("X-Forwarded-For", request.source_ip), ("X-Forwarded-Proto", "http")]
        for name, value in [*request.headers, *(item for item in forwarded if item[0].lower() not in sent)]:
            headers[name] = value
            multi_headers.setdefault(name, []).append(value)
        query: dict[str, str] = {}
        multi_query: dict[str, list[str]] = {}
        for name, value in parse_qsl(request.query, keep_blank_values=True):
            query[name] = value
            multi_query.setdefault(name, []).append(value)
        now = time.time()
        route = match.route
        request_context = {
            "resourceId": hashlib.sha256(route.path.encode()).hexdigest()[:6],
            "resourcePath": route.path,
            "httpMethod": request.method,
            "extendedRequestId": request_id,
            "requestTime": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{self.api.stage}{request.path}",
            "accountId": self.template.account_id,
            "protocol": "HTTP/1.1",
            "stage": self.api.stage,
            "domainPrefix": self.api.api_id,
            "requestTimeEpoch": int(now * 1000),
            "requestId": request_id,
            "identity": {"sourceIp": request.source_ip, "userAgent": request.header("User-Agent")},
            "domainName": request.header("Host") or "127.0.0.1",
            "apiId": self.api.api_id,
        }
        return {
            "resource": route.path,
            "path": request.path,
            "httpMethod": request.method,
            "headers": headers or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": match.path_parameters or None,
            "stageVariables": None,
            "requestContext": request_context,
        }

    def method_arn(self, method: str, raw_path: str) -> str:
        api, template = self.api, self.template
        return (
            f"arn:{template.partition}:execute-api:{template.region}:{template.account_id}:"
            f"{api.api_id}/{api.stage}/{method}/{raw_path.lstrip('/')}"
        )

    def _authorize(self, request: HttpRequest, request_fields: dict[str, Any], trace: _Trace) -> Authorization:
        """The authorization of an allowed request; raises GatewayRejection otherwise."""
        api = self.api
        if api.authorizer_function is None:  # pragma: no cover - a route has auth only when there is an authorizer
            raise GatewayRejection("AUTHORIZER_CONFIGURATION_ERROR")
        identity = request.header(api.identity_header) if api.identity_header else None
        if api.identity_header and not identity:
            raise GatewayRejection("UNAUTHORIZED")
        # The contract: one key per request; two different values (any letter case of the name) are a 401.
        names = {api.identity_header.lower()} if api.identity_header else set()
        if len({value for name, value in request.headers if name.lower() in names}) > 1:
            raise GatewayRejection("UNAUTHORIZED")
        method_arn = self.method_arn(request.method, request.path)
        if api.authorizer_type == "TOKEN":
            event: dict[str, Any] = {"type": "TOKEN", "authorizationToken": identity, "methodArn": method_arn}
        else:
            event = {"type": "REQUEST", "methodArn": method_arn, **request_fields}
        result = self.invoke(api.authorizer_function, event)
        output = result.json()
        if result.function_error:
            if isinstance(output, dict) and output.get("errorMessage") == "Unauthorized":
                raise GatewayRejection("UNAUTHORIZED")
            trace.function, trace.note = api.authorizer_function, result_note(result)
            raise GatewayRejection("AUTHORIZER_FAILURE")
        try:
            allowed = authorization(output)
            decision = evaluate_policy(output["policyDocument"], method_arn)
        except (GatewayRejection, ValueError) as error:
            logger.error("The authorizer's answer is not valid for API Gateway: %s", error)  # noqa: TRY400 - no trace needed
            raise GatewayRejection("AUTHORIZER_CONFIGURATION_ERROR") from error
        if decision == EXPLICIT_DENY:
            raise GatewayRejection(
                "ACCESS_DENIED", "User is not authorized to access this resource with an explicit deny"
            )
        if decision == IMPLICIT_DENY:
            raise GatewayRejection("ACCESS_DENIED")
        return allowed

    @staticmethod
    def _proxy_event(
        request: HttpRequest, request_fields: dict[str, Any], authorizer_context: dict[str, str] | None
    ) -> dict[str, Any]:
        body: str | None = None
        is_base64 = False
        if request.body:
            try:
                body = request.body.decode("utf-8")
            except UnicodeDecodeError:
                body, is_base64 = base64.b64encode(request.body).decode("ascii"), True
        event = dict(request_fields)
        if authorizer_context is not None:
            event["requestContext"] = {**request_fields["requestContext"], "authorizer": authorizer_context}
        return {**event, "body": body, "isBase64Encoded": is_base64}

    def _proxy_response(self, output: Any, request_id: str) -> HttpResponse:
        """The HTTP response of a Lambda proxy result; a malformed one is a 502, as in API Gateway."""
        status = output.get("statusCode") if isinstance(output, dict) else None
        if isinstance(status, str) and status.isdigit():
            status = int(status)
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            logger.error("Malformed Lambda proxy response: %.300r", output)
            raise _integration_failure()
        multi_headers = output.get("multiValueHeaders") or {}
        headers = [
            (str(name), str(value))
            for name, value in (output.get("headers") or {}).items()
            if name.lower() not in {key.lower() for key in multi_headers}
        ]
        headers += [(str(name), str(value)) for name, values in multi_headers.items() for value in values]
        body = output.get("body")
        try:
            payload = b"" if body is None else str(body).encode()
            if output.get("isBase64Encoded"):
                payload = base64.b64decode(payload, validate=True)
        except binascii.Error as error:
            logger.error("The Lambda proxy response's body is not base64: %s", error)  # noqa: TRY400
            raise _integration_failure() from error
        return HttpResponse(status, _with_defaults(headers, request_id, has_body=bool(payload)), payload)

    # ------------------------------------------------------------ gateway responses

    def gateway_response(
        self,
        response_type: str,
        request_id: str,
        request: HttpRequest | None,
        message: str | None = None,
        status: int | None = None,
    ) -> HttpResponse:
        """A gateway response of the template (or of its DEFAULT_4XX/5XX), as API Gateway renders it."""
        default_status = status or DEFAULT_STATUS.get(response_type, 500)
        responses = self.api.gateway_responses
        spec: GatewayResponseSpec | None = responses.get(response_type)
        if spec is None:
            spec = responses.get("DEFAULT_5XX" if default_status >= 500 else "DEFAULT_4XX")
        message = message or DEFAULT_MESSAGE.get(response_type, "Internal server error")
        template = spec.template if spec and spec.template else '{"message": $context.error.messageString}'
        body = (
            template.replace("$context.error.messageString", json.dumps(message))
            .replace("$context.error.message", message)
            .replace("$context.error.responseType", response_type)
            .replace("$context.requestId", request_id)
        )
        headers: list[tuple[str, str]] = []
        for name, value in (spec.headers if spec else {}).items():
            if value.startswith("method.request.header."):
                found = request.header(value.removeprefix("method.request.header.")) if request else None
                if found is not None:
                    headers.append((name, found))
            elif not value.startswith(("method.", "context.", "stageVariables.")):
                headers.append((name, value))
        headers.append(("x-amzn-ErrorType", response_type))
        return HttpResponse(
            spec.status if spec and spec.status else default_status,
            _with_defaults(headers, request_id, has_body=True),
            body.encode(),
        )

    # ------------------------------------------------------------ local-only routes

    def _local_route(self, request: HttpRequest) -> HttpResponse | None:
        if request.method not in {"GET", "HEAD"}:
            return None
        path = request.path
        if path in {"/docs", "/docs/"}:
            return HttpResponse(200, [("Content-Type", "text/html; charset=utf-8")], _swagger_page().encode())
        if path.startswith("/docs/"):
            return _swagger_asset(path.removeprefix("/docs/"))
        if path == "/openapi.json":
            if self.openapi_document is None or not self.openapi_document.is_file():
                raise GatewayRejection("RESOURCE_NOT_FOUND", "No OpenAPI document: run python -m local_stack openapi")
            return HttpResponse(200, [("Content-Type", JSON)], self.openapi_document.read_bytes())
        return None


def _with_defaults(headers: list[tuple[str, str]], request_id: str, has_body: bool) -> list[tuple[str, str]]:
    """Content-Type application/json unless set (or there is no body, as for a 204), and API
    Gateway's request id header."""
    names = {name.lower() for name, _ in headers}
    defaults = [("Content-Type", JSON)] if has_body and "content-type" not in names else []
    return [*headers, *defaults, ("x-amzn-RequestId", request_id)]


def _swagger_page() -> str:
    return """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>API documentation</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: "StandaloneLayout",
    });
  </script>
</body>
</html>
"""


def _swagger_asset(name: str) -> HttpResponse | None:
    """A static file of the swagger_ui_bundle package (its own directory only)."""
    from swagger_ui_bundle import swagger_ui_path  # noqa: PLC0415 - only when someone opens /docs

    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    asset = Path(str(swagger_ui_path)) / name
    if not asset.is_file():
        return None
    content_type = mimetypes.guess_type(name)[0] or ("application/json" if name.endswith(".map") else "text/plain")
    return HttpResponse(200, [("Content-Type", content_type)], asset.read_bytes())
