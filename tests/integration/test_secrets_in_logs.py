"""API keys never appear in logs, metrics, traces or error messages: not the key, not its hash.

Keys are made, rotated and revoked and a tenant deactivated through the tenants function; the
authorizer is called with the admin key, a valid, a revoked, an unknown and an inactive tenant's key
(and once with the store down); every function is called with each of those keys in its
``x-api-key`` header (API Gateway passes the header on), on success and on error paths. Then every
byte the functions wrote (structured logs, other loggers, stdout/stderr with the EMF metrics), what
Tracer hands to X-Ray, and every answer are searched for each key, its random part and its SHA-256.
Only the creation answers show their new key, once, as the contract says.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from local_stack.template import Template
from tracker.tenants import API_KEY_PREFIX, create_admin_key, hash_api_key

from .support import (
    Functions,
    HttpAnswer,
    admin_context,
    api_event,
    authorizer_event,
    sample_event,
    tenant_context,
    tenant_store,
)

AUTHORIZER = "AuthorizerFunction"
USER = "user-42"


# ---------------------------------------------------------------- where keys could go


@dataclass
class TraceRecorder:
    """Stands in for the X-Ray recorder: what Tracer would send to X-Ray (metadata, annotations)."""

    records: list[tuple[str, str, Any]] = field(default_factory=list)

    @contextmanager
    def in_subsegment(self, name: str | None = None, **_kwargs: Any) -> Iterator[RecordingSubsegment]:
        yield RecordingSubsegment(self, str(name))


@dataclass
class RecordingSubsegment:
    recorder: TraceRecorder
    name: str

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        self.recorder.records.append((self.name, f"metadata {namespace}/{key}", value))

    def put_annotation(self, key: str, value: Any) -> None:
        self.recorder.records.append((self.name, f"annotation {key}", value))

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:  # noqa: ARG002
        self.recorder.records.append((self.name, "exception", repr(exception)))


@dataclass
class Keys:
    """Every key of the test by name; its secrets are the key, its random part and its SHA-256."""

    by_name: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, api_key: str) -> str:
        self.by_name[name] = api_key
        return api_key

    def secrets(self) -> dict[str, str]:
        found = {}
        for name, api_key in self.by_name.items():
            found[f"the {name} key"] = api_key
            found[f"the {name} key's random part"] = api_key.removeprefix(API_KEY_PREFIX)
            found[f"the {name} key's SHA-256"] = hash_api_key(api_key)
        return found


@dataclass
class Observed:
    """Everything the functions said, by where it went."""

    texts: list[tuple[str, str]] = field(default_factory=list)

    def add(self, where: str, value: Any) -> None:
        text = value if isinstance(value, str) else json.dumps(value, default=repr, ensure_ascii=False)
        self.texts.append((where, text))

    def leaks(self, keys: Keys) -> list[str]:
        found = []
        for where, text in self.texts:
            for name, secret in keys.secrets().items():
                at = text.find(secret)
                if at >= 0:
                    found.append(f"{name} in {where}: ...{text[max(0, at - 150) : at + 80]}...")
        return found


@dataclass
class Session:
    functions: Functions
    keys: Keys
    observed: Observed = field(default_factory=Observed)
    routes: set[tuple[str, str]] = field(default_factory=set)

    def http(self, event: dict[str, Any], api_key: str | None, shows_new_key: bool = False) -> HttpAnswer:
        """Invokes the route's function with ``api_key`` in the x-api-key header, as API Gateway passes it on.

        ``shows_new_key``: the answer creates a key and shows it once (the contract); that one is allowed.
        """
        if api_key is not None:
            event["headers"]["x-api-key"] = api_key
            event["multiValueHeaders"]["x-api-key"] = [api_key]
        answer = self.functions.http(event)
        self.routes.add((event["httpMethod"], event["resource"]))
        text = json.dumps({"headers": answer.headers, "body": answer.body}, ensure_ascii=False)
        if shows_new_key and answer.status == 201:
            new_key = answer.body["api_key"]
            assert text.count(new_key) == 1, answer.body
            text = text.replace(new_key, "<the new key, shown once>")
        self.observed.add(f"the answer to {event['httpMethod']} {event['resource']} ({answer.status})", text)
        return answer

    def authorize(self, label: str, api_key: str | None) -> None:
        try:
            policy = self.functions.invoke(AUTHORIZER, authorizer_event(api_key, "GET", "/v1/stats/daily"))
        except Exception as error:  # whatever the authorizer raises, Lambda logs
            self.observed.add(f"the authorizer's error ({label})", "".join(traceback.format_exception(error)))
        else:
            # The policy and its context go to API Gateway, its access logs and every function's event
            self.observed.add(f"the authorizer's policy ({label})", policy)


def tenant_event(tenant_id: str, method: str, resource: str, **kwargs: Any) -> dict[str, Any]:
    return api_event(method, resource, authorizer=tenant_context(tenant_id), **kwargs)


def admin_event(method: str, resource: str, **kwargs: Any) -> dict[str, Any]:
    return api_event(method, resource, authorizer=admin_context(), **kwargs)


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def log_stream(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The functions' Powertools logger, writing to a buffer instead of the stdout it bound at import."""
    from tracker.rest import logger

    buffer = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", buffer)
    return buffer


@pytest.fixture
def traces(monkeypatch: pytest.MonkeyPatch) -> TraceRecorder:
    """Tracer's subsegments, recorded (tests disable the X-Ray SDK, which would drop them)."""
    from tracker.rest import tracer

    recorder = TraceRecorder()
    monkeypatch.setattr(tracer.provider, "in_subsegment", recorder.in_subsegment)
    return recorder


@pytest.fixture
def erase_in_process(functions: Functions, monkeypatch: pytest.MonkeyPatch) -> None:
    """The erasure function starts its worker in-process (moto's Lambda would need Docker)."""

    def start(record: Any) -> None:
        functions.invoke("EraseWorkerFunction", {"tenant_id": record.tenant_id, "erasure_id": record.erasure_id})

    monkeypatch.setattr(functions.modules["ErasureFunction"], "start_erasure_worker", start)
    monkeypatch.setattr(functions.modules["ExportsFunction"], "start_export_worker", lambda _record: None)


@pytest.fixture
def observed(
    functions: Functions,
    template: Template,
    dynamodb: Any,
    log_stream: io.StringIO,
    traces: TraceRecorder,
    erase_in_process: None,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> tuple[Keys, Observed, Observed]:
    """Runs the whole scenario; returns the keys, what went to logs/metrics/answers, and what went to traces."""
    caplog.set_level(logging.INFO)
    keys = Keys()
    session = Session(functions, keys)
    admin_key = keys.add("admin", create_admin_key(tenant_store(template, dynamodb)).api_key)
    capsys.readouterr()
    # Given tenants and keys made, rotated, revoked and deactivated through the tenants function
    tenant_id = manage_keys(session, admin_key)
    keys.add("unknown", API_KEY_PREFIX + secrets.token_urlsafe(32))
    # When the authorizer checks every key
    for name, api_key in keys.by_name.items():
        session.authorize(name, api_key)
    session.authorize("no key", None)
    # And every function is called with every key in its header, on success and on error paths
    for name, api_key in keys.by_name.items():
        call_every_route(session, tenant_id, api_key, name)
    functions.invoke("RollupFunction", sample_event("rollup/scheduled_event.json"))
    # And the authorizer fails with the tenants table gone
    dynamodb.delete_table(TableName=template.functions[AUTHORIZER].environment["TENANTS_TABLE"])
    session.authorize("store down", keys.by_name["rotated"])
    missing = {(route.method, route.path) for spec in template.functions.values() for route in spec.routes}
    assert not missing - session.routes, f"routes not called: {sorted(missing - session.routes)}"

    captured = capsys.readouterr()
    session.observed.add("stdout (EMF metrics)", captured.out)
    session.observed.add("stderr", captured.err)
    session.observed.add("the structured logs", log_stream.getvalue())
    session.observed.add("other loggers", caplog.text)
    assert '"_aws"' in captured.out, "no EMF metrics were captured"
    assert log_stream.getvalue(), "no structured log line was captured"
    in_traces = Observed()
    for subsegment, kind, value in traces.records:
        in_traces.add(f"the trace of {subsegment} ({kind})", value)
    assert in_traces.texts, "no trace was recorded"
    return keys, session.observed, in_traces


def manage_keys(session: Session, admin_key: str) -> str:
    """Two tenants, a rotated and a revoked key, a deactivated tenant, a rate limit; returns the first tenant."""
    keys = session.keys
    shop = session.http(
        admin_event("POST", "/v1/tenants", body={"name": "Shop A", "timezone": "Europe/Kyiv"}), admin_key, True
    )
    assert shop.status == 201, shop.body
    keys.add("revoked", shop.body["api_key"])
    tenant = {"tenant_id": shop.body["tenant_id"]}
    other = session.http(admin_event("POST", "/v1/tenants", body={"name": "Shop B"}), admin_key, True)
    assert other.status == 201, other.body
    keys.add("inactive tenant's", other.body["api_key"])
    rotated = session.http(admin_event("POST", "/v1/tenants/{tenant_id}/keys", path_parameters=tenant), admin_key, True)
    assert rotated.status == 201, rotated.body
    keys.add("rotated", rotated.body["api_key"])
    revoke = {**tenant, "key_id": shop.body["key_id"]}
    revoked = session.http(
        admin_event("DELETE", "/v1/tenants/{tenant_id}/keys/{key_id}", path_parameters=revoke), admin_key
    )
    assert revoked.status == 204
    inactive = {"tenant_id": other.body["tenant_id"]}
    deactivated = session.http(
        admin_event("PATCH", "/v1/tenants/{tenant_id}", path_parameters=inactive, body={"active": False}), admin_key
    )
    assert deactivated.status == 200, deactivated.body
    limited = session.http(
        admin_event(
            "PATCH", "/v1/tenants/{tenant_id}", path_parameters=tenant, body={"rate_limit": {"rate": 5, "burst": 10}}
        ),
        admin_key,
    )
    assert limited.status == 200, limited.body
    return str(shop.body["tenant_id"])


def call_every_route(session: Session, tenant_id: str, api_key: str, name: str) -> None:
    """Every route with ``api_key`` in the header: answers, successes and errors, as a tenant and as an admin."""
    user = {"user_id": USER}
    event = {"event_id": f"evt-{hash_api_key(name)[:12]}", "user_id": USER, "action": "login"}
    tenant_calls = [
        api_event("GET", "/v1/health", authorizer=None),
        tenant_event(tenant_id, "POST", "/v1/events", body=event),
        tenant_event(tenant_id, "POST", "/v1/events", body={**event, "action": "other"}),  # 409
        tenant_event(tenant_id, "POST", "/v1/events", raw_body="{not json"),  # 400
        tenant_event(tenant_id, "POST", "/v1/events", body={"action": "login"}),  # 422
        tenant_event(tenant_id, "POST", "/v1/events/batch", body={"events": [event, {"user_id": USER}]}),
        tenant_event(tenant_id, "POST", "/v1/events/batch", body={"events": []}),  # 422
        tenant_event(tenant_id, "GET", "/v1/users/{user_id}/events", path_parameters=user, query={"limit": "1"}),
        tenant_event(tenant_id, "GET", "/v1/users/{user_id}/events", path_parameters=user, query={"cursor": "x.y"}),
        tenant_event(tenant_id, "GET", "/v1/users/{user_id}/events", path_parameters=user, query={"limit": "0"}),
        tenant_event(tenant_id, "GET", "/v1/users/{user_id}/activity", path_parameters=user),
        tenant_event(tenant_id, "GET", "/v1/users/{user_id}/activity", path_parameters=user, query={"period": "2h"}),
        tenant_event(tenant_id, "GET", "/v1/stats/daily", query={"days": "0"}),
        tenant_event(tenant_id, "GET", "/v1/stats/daily"),
        tenant_event(tenant_id, "GET", "/v1/stats/top-users"),
        tenant_event(tenant_id, "GET", "/v1/stats/trend"),
        tenant_event(tenant_id, "GET", "/v1/stats/frequency", query={"from": "not-a-date"}),
        tenant_event(tenant_id, "GET", "/v1/stats/frequency"),
        tenant_event(tenant_id, "GET", "/v1/stats/actions/{action}/daily", path_parameters={"action": "login"}),
        tenant_event(tenant_id, "GET", "/v1/users/{user_id}/points", path_parameters=user),
        tenant_event(tenant_id, "GET", "/v1/stats/top-users", query={"by": "points"}),
        tenant_event(
            tenant_id,
            "GET",
            "/v1/stats/actions/{action}/properties/{property}/daily",
            path_parameters={"action": "login", "property": "amount"},
        ),
        tenant_event(tenant_id, "GET", "/v1/stats/violations", query={"from": "not-a-date"}),
        tenant_event(tenant_id, "GET", "/v1/erasures/{erasure_id}", path_parameters={"erasure_id": "era_unknown"}),
        tenant_event(tenant_id, "GET", "/v1/tenants"),  # a tenant key on an admin route: 403
        tenant_event(tenant_id, "POST", "/v1/event-types", body={"name": "login", "points": 1}),
        tenant_event(tenant_id, "POST", "/v1/event-types", body={"name": "login", "points": -1}),  # 422
        tenant_event(tenant_id, "GET", "/v1/event-types", query={"search": "LOG"}),
        tenant_event(tenant_id, "GET", "/v1/event-types/{name}", path_parameters={"name": "unknown"}),  # 404
        tenant_event(tenant_id, "PATCH", "/v1/event-types/{name}", path_parameters={"name": "login"}, body={}),
        tenant_event(tenant_id, "DELETE", "/v1/event-types/{name}", path_parameters={"name": "login"}),
        tenant_event(tenant_id, "POST", "/v1/auth/token"),
        api_event("OPTIONS", "/v1/events", authorizer=None),  # a preflight: no key is read
        api_event("OPTIONS", "/v1/events/batch", authorizer=None),
        api_event("GET", "/dashboard", authorizer=None),  # the page: no key is read, it asks for one
        api_event("GET", "/dashboard/{file}", authorizer=None, path_parameters={"file": "app.js"}),
        *profile_calls(tenant_id),
    ]
    for call in tenant_calls:
        session.http(call, api_key)
    erasure = session.http(tenant_event(tenant_id, "DELETE", "/v1/users/{user_id}", path_parameters=user), api_key)
    assert erasure.status == 202, erasure.body
    progress = {"erasure_id": erasure.body["erasure_id"]}
    assert (
        session.http(
            tenant_event(tenant_id, "GET", "/v1/erasures/{erasure_id}", path_parameters=progress), api_key
        ).status
        == 200
    )
    unknown = {"tenant_id": "ten_0000000000000000"}
    admin_calls = [
        admin_event("GET", "/v1/tenants", query={"limit": "100"}),
        admin_event("GET", "/v1/tenants", query={"cursor": "x.y"}),  # 400
        admin_event("POST", "/v1/tenants", body={"name": "Shop A"}),  # 409
        admin_event("POST", "/v1/tenants", body={"name": "Shop C", "timezone": "Mars/Olympus"}),  # 422
        admin_event("PATCH", "/v1/tenants/{tenant_id}", path_parameters=unknown, body={"active": True}),  # 404
        admin_event("POST", "/v1/tenants/{tenant_id}/keys", path_parameters=unknown),  # 404
        admin_event(
            "DELETE", "/v1/tenants/{tenant_id}/keys/{key_id}", path_parameters={**unknown, "key_id": "key_0"}
        ),  # 404
        admin_event("POST", "/v1/events", body=event),  # an admin key on a tenant route: 403
    ]
    for call in admin_calls:
        session.http(call, api_key)


def profile_calls(tenant_id: str) -> list[dict[str, Any]]:
    """The profile and export routes, on success and error paths."""
    user = {"user_id": USER}
    profile = "/v1/users/{user_id}/profile"
    return [
        tenant_event(tenant_id, "PUT", profile, path_parameters=user, body={"email": "a@example.com"}),
        tenant_event(tenant_id, "PUT", profile, path_parameters=user, body={"phone": "12345"}),  # 422
        tenant_event(tenant_id, "PATCH", profile, path_parameters=user, body={"email": None}),
        tenant_event(tenant_id, "GET", profile, path_parameters=user),
        tenant_event(tenant_id, "DELETE", profile, path_parameters=user),
        tenant_event(tenant_id, "GET", "/v1/profiles", query={"email": "a@example.com"}),
        tenant_event(tenant_id, "POST", "/v1/users/{user_id}/exports", path_parameters=user),
        tenant_event(tenant_id, "GET", "/v1/exports/{export_id}", path_parameters={"export_id": "exp_unknown"}),
    ]


# ---------------------------------------------------------------- tests


def test_no_key_nor_its_hash_is_in_logs_metrics_answers_or_error_messages(
    observed: tuple[Keys, Observed, Observed],
) -> None:
    keys, outside, _ = observed
    problems = outside.leaks(keys)
    assert not problems, "\n".join(problems)


def test_no_key_nor_its_hash_is_in_traces(observed: tuple[Keys, Observed, Observed]) -> None:
    # Tracer puts each handler's response (and error) into the X-Ray trace as metadata
    keys, _, in_traces = observed
    problems = in_traces.leaks(keys)
    assert not problems, "\n".join(problems)
