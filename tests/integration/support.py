"""The integration tests' view of the functions: loaded from ``functions/``, configured from ``template.yaml``.

Each function module is imported once under a name of its own (``function_ingestfunction``) and invoked
through its real ``lambda_handler``, with the environment and the Lambda context the template gives that
function (``tests.support``): settings are read afresh on every invocation, as in a Lambda process of its own.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

from local_stack.template import Template
from tests.support import function_environment, lambda_context
from tracker.adapters.events_table import DynamoEventStore
from tracker.adapters.tenants_table import DynamoErasureStore, DynamoTenantStore
from tracker.records import ErasureRecord

REPO = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPO / "events"
API_ARN = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
STAGE = "dev"


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: Any
    raw: dict[str, Any]

    @property
    def error_code(self) -> str:
        return str(self.body["error"]["code"])


class Functions:
    """Invokes the template's functions in-process."""

    def __init__(self, template: Template, modules: dict[str, ModuleType]) -> None:
        self.template = template
        self.modules = modules

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        spec = self.template.functions[logical_id]
        with function_environment(spec):
            handler = getattr(self.modules[logical_id], spec.handler_function)
            return handler(copy.deepcopy(event), lambda_context(spec))

    def function_for(self, event: dict[str, Any]) -> str:
        """The logical id of the function the template routes this event to."""
        if event.get("type") in {"REQUEST", "TOKEN"}:
            assert self.template.api is not None
            assert self.template.api.authorizer_function is not None
            return self.template.api.authorizer_function
        route_key = (event.get("requestContext") or {}).get("routeKey")
        if route_key is not None and "httpMethod" not in event:
            return websocket_function(self.template, route_key)
        if "httpMethod" not in event:
            return self._non_http_function(event)
        for logical_id, spec in self.template.functions.items():
            for route in spec.routes:
                if route.method == event["httpMethod"] and route.path == event["resource"]:
                    return logical_id
        raise LookupError(f"No function of the template serves {event['httpMethod']} {event['resource']}")

    def _non_http_function(self, event: dict[str, Any]) -> str:
        if "Records" in event:
            return "BroadcasterFunction"  # the only function fed by a stream
        if "erasure_id" in event:
            return "EraseWorkerFunction"  # the asynchronous invocation the erasure function makes
        if "export_id" in event:
            return "ExportWorkerFunction"  # the asynchronous invocation the exports function makes
        # A scheduled event (an EventBridge rule's, or a Scheduler's input): the scheduled function.
        (scheduled,) = [logical_id for logical_id, spec in self.template.functions.items() if spec.schedules]
        return scheduled

    def http(self, event: dict[str, Any], logical_id: str | None = None) -> HttpAnswer:
        """Invokes the function of an API Gateway proxy event (or the one named); the answer, its body parsed."""
        result = self.invoke(logical_id or self.function_for(event), event)
        assert isinstance(result, dict), result
        assert set(result) >= {"statusCode", "body"}, result
        body_text = result.get("body")
        # API Gateway merges both header maps of a proxy result.
        headers = {str(name).lower(): str(value) for name, value in (result.get("headers") or {}).items()}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[str(name).lower()] = ", ".join(str(value) for value in values)
        is_json = "json" in headers.get("content-type", "application/json")
        body = (json.loads(body_text) if is_json else body_text) if body_text else None
        return HttpAnswer(status=int(result["statusCode"]), headers=headers, body=body, raw=result)


def websocket_function(template: Template, route_key: str) -> str:
    """The function behind a route of the template's WebSocket API."""
    from local_stack.websocket import websocket_spec

    spec = websocket_spec(template)
    assert spec is not None
    return spec.routes[route_key]


def event_store(template: Template, client: Any) -> DynamoEventStore:
    """The events table's store, named as the template names it for the ingest function."""
    return DynamoEventStore(client, template.functions["IngestFunction"].environment["EVENTS_TABLE"])


def tenant_store(template: Template, client: Any) -> DynamoTenantStore:
    """The tenants table's store, named as the template names it for the tenants function."""
    return DynamoTenantStore(client, template.functions["TenantsFunction"].environment["TENANTS_TABLE"])


def create_pending_erasure(
    template: Template, client: Any, tenant_id: str, erasure_id: str, user_id: str, now: datetime
) -> None:
    """An erasure record as ``DELETE /v1/users/{user_id}`` writes it, before its worker runs."""
    store = DynamoErasureStore(client, template.functions["ErasureFunction"].environment["TENANTS_TABLE"])
    record = ErasureRecord(
        tenant_id=tenant_id,
        erasure_id=erasure_id,
        user_id=user_id,
        status="pending",
        deleted_events=0,
        created_at=now,
        updated_at=now,
    )
    store.create_erasure(record)


def tenant_context(tenant_id: str, key_id: str = "key_test00000000001") -> dict[str, Any]:
    return {"tenant_id": tenant_id, "role": "tenant", "key_id": key_id, "timezone": "UTC", "principalId": key_id}


def admin_context(key_id: str = "key_testadmin000001") -> dict[str, Any]:
    return {"tenant_id": "", "role": "admin", "key_id": key_id, "timezone": "UTC", "principalId": key_id}


def api_event(
    method: str,
    resource: str,
    *,
    authorizer: dict[str, Any] | None,
    path_parameters: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    body: Any = None,
    raw_body: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """An API Gateway REST proxy event (v1.0), as API Gateway hands it to the function.

    ``path`` is percent-encoded, as the client sent it; ``pathParameters`` are decoded.
    """
    path = resource
    for name, value in (path_parameters or {}).items():
        path = path.replace("{" + name + "}", quote(value, safe=""))
    text = raw_body if raw_body is not None else (None if body is None else json.dumps(body, ensure_ascii=False))
    headers = {"Content-Type": "application/json", "Host": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"}
    request_id = request_id or str(uuid.uuid4())
    context: dict[str, Any] = {
        "resourcePath": resource,
        "httpMethod": method,
        "path": f"/{STAGE}{path}",
        "accountId": "123456789012",
        "stage": STAGE,
        "requestId": request_id,
        "requestTimeEpoch": 1760121005000,
        "identity": {"sourceIp": "203.0.113.10", "userAgent": "pytest"},
        "apiId": "a1b2c3d4e5",
    }
    if authorizer is not None:
        context["authorizer"] = authorizer
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {name: [value] for name, value in query.items()} if query else None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": context,
        "body": text,
        "isBase64Encoded": False,
    }


def with_request(
    event: dict[str, Any], query: dict[str, str] | None, path_parameters: dict[str, str]
) -> dict[str, Any]:
    """A copy of a proxy event (a sample's) with this query (when given) and these path parameters
    (merged), its ``path`` percent-encoded again from its ``resource``, as API Gateway would send it."""
    event = copy.deepcopy(event)
    if query is not None:
        event["queryStringParameters"] = query or None
        event["multiValueQueryStringParameters"] = {name: [value] for name, value in query.items()} or None
    if path_parameters:
        event["pathParameters"] = {**(event["pathParameters"] or {}), **path_parameters}
        path = event["resource"]
        for name, value in event["pathParameters"].items():
            path = path.replace("{" + name + "}", quote(value, safe=""))
        event["path"] = path
        event["requestContext"]["path"] = f"/{STAGE}{path}"
    return event


def admin_call(
    functions: Functions,
    method: str,
    resource: str,
    *,
    body: Any = None,
    raw_body: str | None = None,
    query: dict[str, str] | None = None,
    **path_parameters: str,
) -> HttpAnswer:
    """An admin's request (the authorizer's admin context) to the function of ``resource``."""
    event = api_event(
        method,
        resource,
        authorizer=admin_context(),
        path_parameters=path_parameters or None,
        query=query,
        body=body,
        raw_body=raw_body,
    )
    return functions.http(event)


def create_tenant(functions: Functions, name: str = "Shop A", **fields: Any) -> dict[str, Any]:
    """A tenant made through the tenants function: its id, first key id and API key."""
    answer = admin_call(functions, "POST", "/v1/tenants", body={"name": name, **fields})
    assert answer.status == 201, answer.body
    return dict(answer.body)


def patch_tenant(functions: Functions, tenant_id: str, body: Any) -> HttpAnswer:
    return admin_call(functions, "PATCH", "/v1/tenants/{tenant_id}", tenant_id=tenant_id, body=body)


def revoke_key(functions: Functions, tenant_id: str, key_id: str) -> HttpAnswer:
    return admin_call(functions, "DELETE", "/v1/tenants/{tenant_id}/keys/{key_id}", tenant_id=tenant_id, key_id=key_id)


def authorizer_event(api_key: str | None, method: str = "POST", path: str = "/v1/events") -> dict[str, Any]:
    headers = {"Host": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"}
    if api_key is not None:
        headers["x-api-key"] = api_key
    return {
        "type": "REQUEST",
        "methodArn": f"{API_ARN}/{STAGE}/{method}{path}",
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": {},
        "pathParameters": {},
        "stageVariables": {},
        "requestContext": {"requestId": str(uuid.uuid4()), "stage": STAGE, "httpMethod": method, "path": path},
    }


def sample_event(name: str) -> dict[str, Any]:
    """``events/<name>``, parsed."""
    loaded: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
    return loaded


def assert_error_shape(answer: HttpAnswer, status: int, code: str) -> None:
    """The contract's one error shape, with this status and code, as JSON."""
    assert answer.status == status, answer.body
    assert answer.headers.get("content-type", "").startswith("application/json")
    assert isinstance(answer.body, dict)
    assert set(answer.body) == {"error"}, answer.body
    error = answer.body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["details"], list)
