"""The e2e tier: the local stack started as a subprocess on free ports, driven over HTTP.

With ``AWS_SAM_STACK_NAME`` set, the same tests would need a deployed stack's URL and admin
key instead (``E2E_API_URL``, ``E2E_ADMIN_KEY``); without them they run on the local stack.
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "Local stack ready on"
ROLLUP_INVOKE = "/2015-03-31/functions/RollupFunction/invocations"
START_TIMEOUT_SECONDS = 90


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
    lambda_api: str
    aws: str
    admin_key: str
    process: subprocess.Popen[str]
    ws: str = ""
    """The WebSocket API (live activity): ``ws://127.0.0.1:{WS_PORT}``."""

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
    # Keep draining its output so that a full pipe never blocks it.
    import threading

    threading.Thread(target=lambda: [None for _ in process.stdout or []], daemon=True).start()
    return Stack(
        api=f"http://127.0.0.1:{ports['PORT']}",
        lambda_api=f"http://127.0.0.1:{ports['LAMBDA_PORT']}",
        aws=f"http://127.0.0.1:{ports['AWS_PORT']}",
        admin_key=admin_key,
        process=process,
        ws=f"ws://127.0.0.1:{ports['WS_PORT']}",
    )


def stop_stack(stack: Stack) -> int:
    stack.process.send_signal(signal.SIGINT)
    return stack.process.wait(timeout=30)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    running = start_stack()
    yield running
    if running.process.poll() is None:
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
    """Invokes the rollup (Lambda Invoke API) until it has counted everything received before ``not_before``."""
    body: dict[str, Any] = {}
    failures: list[str] = []
    for _ in range(20):
        now = datetime.now(UTC)
        reply = stack.request(
            "POST", ROLLUP_INVOKE, {"time": now.strftime("%Y-%m-%dT%H:%M:%SZ")}, base=stack.lambda_api
        )
        assert reply.status == 200, reply.body
        body = dict(reply.body)
        if "x-amz-function-error" in reply.headers:
            # A run that failed (the store busy) commits nothing half-way; the next run resumes.
            failures.append(str(body.get("errorMessage")))
            assert len(failures) < 5, f"the rollup keeps failing: {failures}"
            continue
        as_of = body.get("as_of")
        if body["finished"] and not body["conflict"] and as_of and datetime.fromisoformat(as_of) >= not_before:
            return body
        time.sleep(0.5)
    pytest.fail(f"The rollup did not catch up to {not_before}: {body}")
