"""The e2e tier: the local stack started as a subprocess on free ports, driven over HTTP.

Against a deployed stack instead: ``E2E_API_URL`` (the stack's ``ApiUrl`` output), ``E2E_WS_URL``
(its ``WebSocketUrl``), ``E2E_ADMIN_KEY``
(``make admin-key STACK=...``) and ``AWS_SAM_STACK_NAME`` (to find the rollup function, invoked
with boto3 and your AWS credentials). Tests marked ``local_only`` (they read the local emulation
or stop the stack) are skipped there.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "Local stack ready on"
ROLLUP_INVOKE = "/2015-03-31/functions/RollupFunction/invocations"
START_TIMEOUT_SECONDS = 90
ROLLUP_CATCH_UP_SECONDS = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Stack:
    api: str
    lambda_api: str | None
    """The local Lambda Invoke API; None for a deployed stack (boto3 invokes the rollup there)."""
    aws: str | None
    admin_key: str
    process: subprocess.Popen[str] | None
    output: list[str] = field(default_factory=list)
    """Every line the stack printed after its ready line (kept by the thread that drains its pipe)."""
    ws: str = ""
    """The WebSocket API (live activity): ``ws://127.0.0.1:{WS_PORT}``."""
    cloud_stack_name: str | None = None

    @property
    def local(self) -> bool:
        return self.process is not None

    def invoke_rollup(self, now: datetime) -> tuple[dict[str, Any], bool]:
        """Runs the rollup with the scheduler's event for ``now``: its result, and whether it failed."""
        event = {"time": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        if self.lambda_api is not None:
            reply = self.request("POST", ROLLUP_INVOKE, event, base=self.lambda_api)
            assert reply.status == 200, reply.body
            return dict(reply.body), "x-amz-function-error" in reply.headers
        import boto3  # only against a deployed stack

        rollup = boto3.client("cloudformation").describe_stack_resource(
            StackName=self.cloud_stack_name, LogicalResourceId="RollupFunction"
        )["StackResourceDetail"]["PhysicalResourceId"]
        answer = boto3.client("lambda").invoke(FunctionName=rollup, Payload=json.dumps(event).encode())
        return json.loads(answer["Payload"].read()), "FunctionError" in answer

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        key: str | None = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        base: str | None = None,
    ) -> Reply:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        sent = {"content-type": "application/json", **(headers or {})}
        if key is not None:
            sent["x-api-key"] = key
        request = urllib.request.Request(f"{base or self.api}{path}", data=data, method=method, headers=sent)  # noqa: S310 - local test URL
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310
                status, reply_headers, payload = answer.status, dict(answer.headers), answer.read()
        except urllib.error.HTTPError as error:
            status, reply_headers, payload = error.code, dict(error.headers), error.read()
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = payload.decode(errors="replace")
        return Reply(status, {k.lower(): v for k, v in reply_headers.items()}, parsed)

    def new_tenant(self, name: str | None = None, timezone: str = "UTC") -> dict[str, Any]:
        reply = self.request(
            "POST",
            "/v1/tenants",
            {"name": name or f"Tenant {secrets.token_hex(4)}", "timezone": timezone},
            self.admin_key,
        )
        assert reply.status == 201, reply.body
        return dict(reply.body)


def start_stack(extra_env: dict[str, str] | None = None) -> Stack:
    ports = {name: free_port() for name in ("PORT", "LAMBDA_PORT", "AWS_PORT", "WS_PORT", "WS_MANAGEMENT_PORT")}
    admin_key = "atk_e2e_" + secrets.token_urlsafe(24)
    env = {
        **os.environ,
        **{name: str(port) for name, port in ports.items()},
        "ADMIN_API_KEY": admin_key,
        "ROLLUP_SETTLE_SECONDS": "0",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "local_stack", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    seen = []
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if READY_LINE in line:
            break
    else:
        process.kill()
    if not seen or READY_LINE not in seen[-1]:
        process.kill()
        pytest.fail("The local stack did not start:\n" + "".join(seen[-40:]))
    running = Stack(
        api=f"http://127.0.0.1:{ports['PORT']}",
        lambda_api=f"http://127.0.0.1:{ports['LAMBDA_PORT']}",
        aws=f"http://127.0.0.1:{ports['AWS_PORT']}",
        admin_key=admin_key,
        process=process,
        ws=f"ws://127.0.0.1:{ports['WS_PORT']}",
    )
    # Keep draining its output so that a full pipe never blocks it.
    import threading

    threading.Thread(target=lambda: running.output.extend(process.stdout or []), daemon=True).start()
    return running


def stop_stack(stack: Stack) -> int:
    assert stack.process is not None, "only a local stack can be stopped"
    stack.process.send_signal(signal.SIGINT)
    return stack.process.wait(timeout=30)


def deployed_stack() -> Stack | None:
    """The deployed stack named by ``E2E_API_URL`` and ``E2E_ADMIN_KEY``, when they are set."""
    api, admin_key = os.environ.get("E2E_API_URL"), os.environ.get("E2E_ADMIN_KEY")
    if not api or not admin_key:
        return None
    return Stack(
        api=api.rstrip("/"),
        lambda_api=None,
        aws=None,
        admin_key=admin_key,
        process=None,
        ws=os.environ.get("E2E_WS_URL", ""),
        cloud_stack_name=os.environ.get("AWS_SAM_STACK_NAME"),
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if deployed_stack() is not None:
        skip = pytest.mark.skip(reason="needs the local stack (E2E_API_URL names a deployed one)")
        for item in items:
            if "local_only" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    deployed = deployed_stack()
    if deployed is not None:
        yield deployed
        return
    running = start_stack()
    yield running
    if running.process is not None and running.process.poll() is None:
        stop_stack(running)


# ---------------------------------------------------------------- helpers shared by the e2e tests


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def send(
    stack: Stack,
    method: str,
    path: str,
    body: Any = None,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request; a 429 (the tenant's rate) or a 503 (the emulation overloaded) is waited out and sent again."""
    reply = stack.request(method, path, body, key, headers=headers)
    for _ in range(10):
        if reply.status not in {429, 503}:
            break
        time.sleep(float(reply.headers.get("retry-after", "1")))
        reply = stack.request(method, path, body, key, headers=headers)
    return reply


def run_rollup(stack: Stack, not_before: datetime) -> dict[str, Any]:
    """Invokes the rollup until it has counted everything received before ``not_before``.

    For up to ROLLUP_CATCH_UP_SECONDS rather than a number of tries: a scheduled run holding the lease makes
    each try a skip for as long as it runs, which on a busy machine (tests on every core) outlasted 20 tries.
    """
    body: dict[str, Any] = {}
    failures: list[str] = []
    deadline = time.monotonic() + ROLLUP_CATCH_UP_SECONDS
    while time.monotonic() < deadline:
        body, failed = stack.invoke_rollup(datetime.now(UTC))
        if failed:
            # A run that failed (the store busy) commits nothing half-way; the next run resumes.
            failures.append(str(body.get("errorMessage")))
            assert len(failures) < 5, f"the rollup keeps failing: {failures}"
            continue
        as_of = body.get("as_of")
        if body["finished"] and not body["conflict"] and as_of and datetime.fromisoformat(as_of) >= not_before:
            return body
        time.sleep(0.5)
    pytest.fail(f"The rollup did not catch up to {not_before}: {body}")


# ---------------------------------------------------------------- the browser (tests/e2e/browser.py)

from tests.e2e.browser import browser, saved_screenshots  # noqa: E402, F401 - the fixture, for the tests of this folder


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Names the folder of the screenshots the browser tests saved."""
    if saved_screenshots:
        folder = saved_screenshots[0].parent
        terminalreporter.write_line(f"Dashboard screenshots ({len(saved_screenshots)}) in {folder}")
