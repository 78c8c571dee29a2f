"""Fuzzing every operation of the OpenAPI document with schemathesis, against the local stack.

For each operation of the document the stack serves (``GET /openapi.json``), schemathesis generates
requests, valid and invalid (its coverage phase: boundaries, missing and wrong-typed values,
unexpected methods, no key; then its fuzzing phase: ``FUZZ_EXAMPLES`` random requests, default
``DEFAULT_EXAMPLES``), each with its own headers or a Content-Type from ``MEDIA_TYPES``, sent
with a tenant key (the admin key on ``/v1/tenants`` routes). Every answer
must be what the contract promises:

- no 5xx (a 503 is allowed only with ``Retry-After``: the store busy is in the contract);
- a documented status code, a documented content type, a body that matches the documented schema;
- every 4xx/5xx in the error shape ``{"error": {"code", "message", "details"}}``, a 429 with ``Retry-After``.

Each operation's cases all run (a failure does not stop the others); the test of the operation then
fails with each distinct failure once, with a curl command that reproduces it. ``FUZZ_SEED`` replays a
run (each run prints its seed). ``make fuzz`` runs it with ``FUZZ_EXAMPLES=500``.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="make fuzz installs schemathesis (requirements/fuzz.in)")

from hypothesis import strategies as st  # noqa: E402 - after the importorskip above
from schemathesis.checks import load_all_checks  # noqa: E402
from schemathesis.core.failures import FailureGroup  # noqa: E402
from schemathesis.pytest.lazy import get_all_tests  # noqa: E402

from tests.e2e.conftest import ROOT, Stack  # noqa: E402

pytestmark = pytest.mark.e2e

# 17 operations; about 2 minutes on 2 busy cores with the coverage phase (some 80 cases each) added.
DEFAULT_EXAMPLES = 15
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", DEFAULT_EXAMPLES))
SEED = int(os.environ.get("FUZZ_SEED") or secrets.randbits(32))
ADMIN_PREFIX = "/v1/tenants"
SHOWN_FAILURES = 12
# Content-Types a hostile client sends: JSON in any case, with parameters or as a +json type (all
# read as JSON), and everything else (415), down to arbitrary printable text.
MEDIA_TYPES = st.sampled_from(
    [
        "application/json",
        "APPLICATION/JSON",
        "application/json; charset=UTF-8",
        "application/vnd.api+json",
        "application/merge-patch+json",
        "application/json; charset=latin-1",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "*/*",
        "",
    ]
) | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.strip)


def _document_operations() -> list[str]:
    """``METHOD /path`` of every operation of the committed document (the one the stack serves)."""
    document = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    return [f"{m.upper()} {p}" for p, item in document["paths"].items() for m in item if m in methods]


def _error_shape_problem(status: int, body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(error, dict):
        return f"{status} body is not {{'error': {{...}}}}"
    if set(error) != {"code", "message", "details"}:
        return f"{status} error has keys {sorted(error)}, not code, message, details"
    if not (
        isinstance(error["code"], str) and isinstance(error["message"], str) and isinstance(error["details"], list)
    ):
        return f"{status} error: code and message must be strings, details a list"
    return None


def _register_contract_checks() -> list[Callable[..., Any]]:
    """The contract's own checks, on top of schemathesis's: error shape and Retry-After."""

    @schemathesis.check
    def error_shape(ctx: Any, response: Any, case: Any) -> bool | None:
        if response.status_code < 400:
            return None
        try:
            body = json.loads(response.content)
        except ValueError:
            body = response.text[:200]
        problem = _error_shape_problem(response.status_code, body)
        assert problem is None, f"{problem}: {response.text[:300]}"
        return True

    @schemathesis.check
    def retry_after(ctx: Any, response: Any, case: Any) -> bool | None:
        if response.status_code not in {429, 503}:
            return None
        value = (response.headers.get("retry-after") or [""])[0]
        assert value.strip().isdigit(), f"{response.status_code} without a Retry-After in seconds ({value!r})"
        return True

    return [error_shape, retry_after]


@dataclass
class Findings:
    """Every case of one operation: statuses, and each distinct failure once (with its reproduction)."""

    label: str
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[tuple[str, int, str], str] = field(default_factory=dict)
    repeats: Counter[tuple[str, int, str]] = field(default_factory=Counter)

    @property
    def cases(self) -> int:
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def add(self, title: str, status: int, message: str, reproduction: str) -> None:
        first_line = message.strip().splitlines()[0] if message.strip() else ""
        key = (title, status, first_line[:160])
        self.repeats[key] += 1
        self.failures.setdefault(key, f"{title} ({status}): {message.strip()[:1200]}\n    {reproduction}")

    def report(self) -> str:
        lines = [f"{self.label}: {len(self.failures)} distinct failure(s) in {self.cases} cases"]
        for key, text in list(self.failures.items())[:SHOWN_FAILURES]:
            lines.append(f"\n[{self.repeats[key]}x] {text}")
        if len(self.failures) > SHOWN_FAILURES:
            lines.append(f"\n... and {len(self.failures) - SHOWN_FAILURES} more")
        return "\n".join(lines)


@dataclass
class FuzzTarget:
    stack: Stack
    schema: Any
    tenant_key: str
    victim: dict[str, str]
    checks: list[Callable[..., Any]]
    totals: Counter[str] = field(default_factory=Counter)

    def key_for(self, path: str) -> str:
        return self.stack.admin_key if path.startswith(ADMIN_PREFIX) else self.tenant_key


@pytest.fixture(scope="module")
def fuzz(stack: Stack, request: pytest.FixtureRequest) -> Iterator[FuzzTarget]:
    from schemathesis import checks as builtin
    from schemathesis.specs.openapi import checks as openapi_checks

    load_all_checks()
    tenant = stack.new_tenant(name="Fuzz")
    # The fuzzer is not a load test: lift the tenant's rate limit so that its cases reach the handlers.
    lifted = stack.request(
        "PATCH", f"/v1/tenants/{tenant['tenant_id']}", {"rate_limit": {"rate": 10000, "burst": 5000}}, stack.admin_key
    )
    assert lifted.status == 200, lifted.body
    # A tenant the admin routes may really change (path parameters sometimes name it instead of noise).
    victim = stack.new_tenant(name="Fuzz victim")
    config = schemathesis.Config.from_dict(
        {
            "base-url": stack.api,
            "seed": SEED,
            "suppress-health-check": ["all"],
            "generation": {"max-examples": EXAMPLES, "no-shrink": True, "database": "none"},
            "phases": {"stateful": {"enabled": False}},
        }
    )
    schema = schemathesis.openapi.from_url(f"{stack.api}/openapi.json", config=config, timeout=60)

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
        choices = [path_parameters]
        if isinstance(path_parameters, dict) and "tenant_id" in path_parameters:
            real = {**path_parameters, "tenant_id": victim["tenant_id"]}
            if "key_id" in path_parameters:
                real["key_id"] = victim["key_id"]
            choices.append(real)
        return st.sampled_from(choices)

    @schema.hook
    def flatmap_headers(context: Any, headers: dict[str, Any] | None) -> Any:
        """Headers too: the Content-Type of every case is one of many spellings, JSON or not."""
        return st.one_of(
            st.just(headers),
            MEDIA_TYPES.map(lambda media_type: {**(headers or {}), "Content-Type": media_type}),
        )

    checks = [
        builtin.not_a_server_error,
        openapi_checks.status_code_conformance,
        openapi_checks.content_type_conformance,
        openapi_checks.response_schema_conformance,
        openapi_checks.response_headers_conformance,
        *_register_contract_checks(),
    ]
    target = FuzzTarget(stack, schema, tenant["api_key"], victim, checks)
    yield target
    summary = (
        f"fuzz: {target.totals['cases']} cases over {target.totals['operations']} operations "
        f"({EXAMPLES} fuzzing examples each, seed {SEED}): {target.totals['5xx']} 5xx, "
        f"{target.totals['failures']} distinct failures"
    )
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is None or reporter is None:  # pragma: no cover - pytest without its terminal
        print(summary)
        return
    with capture.global_and_fixture_disabled():
        reporter.ensure_newline()
        reporter.write_line(summary)


@pytest.mark.parametrize("label", _document_operations())
def test_operation_keeps_the_contract(fuzz: FuzzTarget, label: str) -> None:
    method, path = label.split(" ", 1)
    schema = fuzz.schema.include(method=method, path=path)
    findings = Findings(label)

    def one_case(case: Any) -> None:
        headers = {"x-api-key": fuzz.key_for(case.path)}
        try:
            response = case.call(headers=headers, timeout=60)
        except Exception as error:
            findings.statuses[0] += 1
            findings.add("connection error", 0, repr(error), case.as_curl_command(headers=headers))
            return
        findings.statuses[response.status_code] += 1
        try:
            case.validate_response(
                response,
                checks=fuzz.checks,
                headers=headers,
                transport_kwargs={"headers": headers, "base_url": fuzz.stack.api},
            )
        except FailureGroup as group:
            reproduction = case.as_curl_command(headers=headers)
            for failure in group.exceptions:
                findings.add(failure.title, response.status_code, failure.message, reproduction)

    tests = [result.ok() for result in get_all_tests(schema=schema, test_func=one_case, settings=None, given_kwargs={})]
    if not tests:
        pytest.fail(f"{label} is in docs/openapi.json but not in the document the stack serves")
    started = time.monotonic()
    for _operation, hypothesis_test in tests:
        hypothesis_test()
    fuzz.totals["operations"] += 1
    fuzz.totals["cases"] += findings.cases
    fuzz.totals["5xx"] += findings.server_errors
    fuzz.totals["failures"] += len(findings.failures)
    print(
        f"{label}: {findings.cases} cases in {time.monotonic() - started:.1f} s, "
        f"statuses {dict(sorted(findings.statuses.items()))}, {len(findings.failures)} distinct failures"
    )
    if findings.failures:
        pytest.fail(findings.report(), pytrace=False)


@pytest.mark.parametrize("names", [("x-api-key", "X-Api-Key"), ("x-api-key", "x-api-key")], ids=["cases", "same"])
def test_two_different_keys_in_one_request_are_a_401(stack: Stack, names: tuple[str, str]) -> None:
    # Given a tenant's key and the admin key, in two x-api-key headers of one request
    tenant = stack.new_tenant(name=f"Two keys {secrets.token_hex(4)}")
    host, port = stack.api.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        for first, second in ((tenant["api_key"], stack.admin_key), (stack.admin_key, tenant["api_key"])):
            connection.putrequest("GET", "/v1/users/u/events")
            connection.putheader(names[0], first)
            connection.putheader(names[1], second)
            connection.endheaders()
            answer = connection.getresponse()
            body = json.loads(answer.read())
            # Then the gateway answers 401 in the contract's shape, whichever comes first
            assert answer.status == 401, body
            assert _error_shape_problem(401, body) is None, body
    finally:
        connection.close()
