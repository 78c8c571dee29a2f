"""Section 2: ingest throughput through the local stack, over HTTP, with the standard library only.

``python -m local_stack run`` is started as a subprocess on free ports with a fixed ADMIN_API_KEY; the
bench waits for its ready line, creates a tenant with the admin key, and posts events in batches of 500
to ``/v1/events/batch``: once from one client, once from 4 and once from 16 concurrent clients (threads,
one keep-alive connection each), each phase with its own events. In the same run, the floor that the
emulation imposes: conditional PutItem calls (what ingest makes, one per event) straight to the stack's
moto server, from 1 and 4 clients; the goal is ingest at 4 clients >= 0.8 x that raw rate at 4 clients.
Before that, 4 concurrent one-event batches warm the ingest function's workers (spawned processes, as
Lambda's execution environments). Every event must end up stored: a client resends the events a batch
rejected with a retryable error (503, 429), as the API asks clients to, and the report counts those
resends; then one user's events are read back. The stack is stopped with SIGINT and must exit by itself
with status 0, leaving no process of its group behind.

The local stack also runs the rollup on its schedule (every minute), in its own worker, meanwhile.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import ingest_profile
from bench.common import PYCACHE_PREFIX, ROOT, log, median, percentile
from bench.data import ACTIONS, METADATA

HOST = "127.0.0.1"
READY_LINE = "Local stack ready on"
START_TIMEOUT = 180.0
STOP_TIMEOUT = 60.0
BATCH = 500
USERS = 200
CLIENTS = 4


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


PHASE_CLIENTS = {"sequential": 1, "concurrent": CLIENTS, "clients_16": 16}
RAW_PUTS = 2_000
EVENTS_TABLE = "activity-tracker-local-EventsTable"
RETRYABLE = frozenset({"unavailable", "throttled"})
RESENDS = 5


@dataclass
class Stack:
    process: subprocess.Popen[str]
    port: int
    aws_port: int
    admin_key: str
    log_path: Path
    stdout_path: Path
    stop: dict[str, Any] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)


@contextmanager
def local_stack() -> Iterator[Stack]:
    """The local stack as a subprocess (its own process group), stopped with SIGINT at the end."""
    ports = {name: free_port() for name in ("PORT", "LAMBDA_PORT", "AWS_PORT", "WS_PORT", "WS_MANAGEMENT_PORT")}
    admin_key = "atk_bench_" + secrets.token_urlsafe(24)
    environment = {
        **os.environ,
        **{name: str(port) for name, port in ports.items()},
        "ADMIN_API_KEY": admin_key,
        "PYTHONPYCACHEPREFIX": str(PYCACHE_PREFIX),
        "PYTHONUNBUFFERED": "1",
    }
    environment.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode goes to PYCACHE_PREFIX, outside the repository
    log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open for the whole run
        "w", prefix="bench-local-stack-", suffix=".stderr.log", delete=False
    )
    stdout_file = tempfile.NamedTemporaryFile(  # noqa: SIM115
        "w", prefix="bench-local-stack-", suffix=".stdout.log", delete=False
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "local_stack", "run"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=log_file,
        text=True,
        start_new_session=True,
    )
    stack = Stack(
        process, ports["PORT"], ports["AWS_PORT"], admin_key, Path(log_file.name), Path(stdout_file.name), ports=ports
    )
    ready = threading.Event()

    def read_stdout() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            stdout_file.write(line)
            if READY_LINE in line:
                stdout_file.flush()
                ready.set()

    reader = threading.Thread(target=read_stdout, name="local-stack-stdout", daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready.wait(0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                log_file.flush()
                tail = stack.log_path.read_text(encoding="utf-8", errors="replace")[-1500:]
                raise RuntimeError(f"the local stack did not start ({stack.log_path}):\n{tail}")
        yield stack
    finally:
        stop_seconds = _stop(process)
        reader.join(timeout=5)
        log_file.close()
        stdout_file.close()
        stack.stop = stopped_cleanly(process, stop_seconds)


def _stop(process: subprocess.Popen[str]) -> float | None:
    """SIGINT, then the seconds the stack took to exit (None: it had to be killed)."""
    if process.poll() is not None:
        return 0.0
    started = time.perf_counter()
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None
    return time.perf_counter() - started


def _group_members(group: int) -> list[str]:
    """Command lines of the live processes of a process group (Linux /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == group and fields[0] != "Z":
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                members.append(f"{entry.name}: {command[:160]}")
        except (OSError, ValueError, IndexError):
            continue
    return members


def stopped_cleanly(process: subprocess.Popen[str], stop_seconds: float | None) -> dict[str, Any]:
    """The stack exited with 0 after SIGINT and, within 10 s, every process it started was gone too."""
    deadline = time.monotonic() + 10
    left = _group_members(process.pid)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = _group_members(process.pid)
    if left:  # only our own group: the stack and the workers it started
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    return {
        "exit_status": process.returncode,
        "seconds_to_exit": round(stop_seconds, 1) if stop_seconds is not None else None,
        "killed": stop_seconds is None,
        "processes_left_behind": left,
        "clean": process.returncode == 0 and stop_seconds is not None and not left,
    }


class Client:
    """One keep-alive HTTP connection to the API."""

    def __init__(self, port: int) -> None:
        self._connection = http.client.HTTPConnection(HOST, port, timeout=300)

    def request(self, method: str, path: str, key: str, body: Any = None) -> tuple[int, Any, dict[str, str]]:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"x-api-key": key, "content-type": "application/json"}
        for attempt in range(2):
            try:
                self._connection.request(method, path, body=payload, headers=headers)
                answer = self._connection.getresponse()
                data = answer.read()
                break
            except (http.client.HTTPException, ConnectionError):
                self._connection.close()
                if attempt:
                    raise
        return answer.status, json.loads(data) if data else None, {k.lower(): v for k, v in answer.getheaders()}

    def close(self) -> None:
        self._connection.close()


def _events(prefix: str, count: int, rng: random.Random, now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{prefix}-{index:06d}",
            "user_id": f"user-{index % USERS:04d}",
            "action": rng.choice(ACTIONS),
            "occurred_at": (now - timedelta(seconds=rng.uniform(0, 3 * 86400))).isoformat(timespec="milliseconds"),
            "metadata": METADATA,
        }
        for index in range(count)
    ]


@dataclass
class Phase:
    clients: int
    events: int
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    """Rejected at the first send (each is then resent, if its error is retryable)."""
    rejected_by_code: Counter[str] = field(default_factory=Counter)
    resent: int = 0
    stored: int = 0
    """Accepted or duplicate, at the first send or a resend: stored once."""
    throttled_retries: int = 0
    failures: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "clients": self.clients,
            "events": self.events,
            "requests": len(self.latencies_ms),
            "seconds": round(self.seconds, 2),
            "events_per_second": round(self.events / self.seconds, 1) if self.seconds else None,
            "request_ms": {
                "p50": round(median(self.latencies_ms), 1),
                "p95": round(percentile(self.latencies_ms, 0.95), 1),
                "max": round(max(self.latencies_ms), 1),
            },
            "first_send": {
                "accepted": self.accepted,
                "duplicates": self.duplicates,
                "rejected": self.rejected,
                "rejected_by_code": dict(self.rejected_by_code),
            },
            "resent_events": self.resent,
            "stored": self.stored,
            "all_accepted": self.accepted == self.events and not self.failures,
            "all_stored": self.stored == self.events and not self.failures,
            "throttled_retries": self.throttled_retries,
            "failures": self.failures[:5],
        }


def _send(client: Client, key: str, batch: list[dict[str, Any]], phase: Phase, lock: threading.Lock) -> Any:
    """One batch request (waiting out 429s); its latency is recorded. None when the request failed."""
    while True:
        started = time.perf_counter()
        status, body, headers = client.request("POST", "/v1/events/batch", key, {"events": batch})
        elapsed = (time.perf_counter() - started) * 1000
        if status != 429:
            break
        with lock:
            phase.throttled_retries += 1
        time.sleep(float(headers.get("retry-after", "1")))
    with lock:
        phase.latencies_ms.append(elapsed)
        if status != 200:
            phase.failures.append(f"{status}: {json.dumps(body)[:300]}")
            return None
    return body


def _post_batches(port: int, key: str, batches: list[list[dict[str, Any]]], phase: Phase, lock: threading.Lock) -> None:
    client = Client(port)
    try:
        for batch in batches:
            body = _send(client, key, batch, phase, lock)
            if body is None:
                continue
            retry = []
            with lock:
                phase.accepted += body["accepted"]
                phase.duplicates += body["duplicates"]
                phase.rejected += body["rejected"]
                phase.stored += body["accepted"] + body["duplicates"]
                for result in body["results"]:
                    if result["status"] == "rejected":
                        code = result["error"]["code"]
                        phase.rejected_by_code[code] += 1
                        if code in RETRYABLE:
                            retry.append(batch[result["index"]])
            for _ in range(RESENDS):
                if not retry:
                    break
                with lock:
                    phase.resent += len(retry)
                body = _send(client, key, retry, phase, lock)
                if body is None:
                    break
                with lock:
                    phase.stored += body["accepted"] + body["duplicates"]
                retry = [retry[r["index"]] for r in body["results"] if r["status"] == "rejected"]
    finally:
        client.close()


def _phase(port: int, key: str, events: list[dict[str, Any]], clients: int) -> Phase:
    batches = [events[offset : offset + BATCH] for offset in range(0, len(events), BATCH)]
    phase = Phase(clients=clients, events=len(events))
    lock = threading.Lock()
    shares = [batches[index::clients] for index in range(clients)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(_post_batches, port, key, share, phase, lock) for share in shares]:
            future.result()
    phase.seconds = time.perf_counter() - started
    return phase


def raw_put_rate(aws_port: int, puts: int, clients: int, run_id: str) -> dict[str, Any]:
    """Conditional PutItem calls of event-sized items straight to moto (boto3, as the functions call it)."""
    from local_stack.aws import client

    def put_share(worker: int) -> None:
        dynamodb = client("dynamodb", f"http://{HOST}:{aws_port}")
        for index in range(worker, puts, clients):
            dynamodb.put_item(
                TableName=EVENTS_TABLE,
                Item={
                    "pk": {"S": f"EVENT#ten_raw#raw-{run_id}-{clients}-{index:06d}"},
                    "user_key": {"S": f"ten_raw#user-{index % USERS:04d}"},
                    "occurred_key": {"S": f"2026-01-01T00:00:00.000Z#raw-{index:06d}"},
                    "received_key": {"S": f"2026-01-01T00:00:00.000Z#raw-{index:06d}"},
                    "action": {"S": "login"},
                    "metadata": {"S": json.dumps(METADATA)},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(put_share, worker) for worker in range(clients)]:
            future.result()
    seconds = time.perf_counter() - started
    return {"clients": clients, "puts": puts, "seconds": round(seconds, 2), "puts_per_second": round(puts / seconds, 1)}


def run(events: int) -> dict[str, Any]:
    rng = random.Random(7)  # noqa: S311 - reproducible test data
    run_id = secrets.token_hex(4)
    now = datetime.now(UTC)
    log("ingest: starting the local stack")
    started = time.perf_counter()
    with local_stack() as stack:
        start_seconds = time.perf_counter() - started
        log(f"ingest: local stack ready in {start_seconds:.1f} s")
        admin = Client(stack.port)
        status, tenant, _ = admin.request(
            "POST", "/v1/tenants", stack.admin_key, {"name": f"Bench {run_id}", "timezone": "Europe/Kyiv"}
        )
        if status != 201:
            raise RuntimeError(f"creating the tenant failed: {status} {tenant}")
        key = tenant["api_key"]
        warm_up_batches = [[event] for event in _events(f"warmup-{run_id}", CLIENTS, rng, now)]
        warm_up = Phase(clients=CLIENTS, events=CLIENTS)
        lock = threading.Lock()
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            for future in [pool.submit(_post_batches, stack.port, key, [b], warm_up, lock) for b in warm_up_batches]:
                future.result()
        raw = {}
        for clients in (1, CLIENTS):
            raw[f"clients_{clients}"] = raw_put_rate(stack.aws_port, RAW_PUTS, clients, run_id)
            rate = raw[f"clients_{clients}"]["puts_per_second"]
            log(f"ingest: raw conditional PutItem, {clients} client(s): {rate}/s")
        phases = {}
        for name, clients in PHASE_CLIENTS.items():
            log(f"ingest: posting {events:,} events in batches of {BATCH} from {clients} client(s)")
            phases[name] = _phase(stack.port, key, _events(f"{name}-{run_id}", events, rng, now), clients)
            log(f"ingest: {phases[name].events / phases[name].seconds:.0f} events/s")
        per_user = len(PHASE_CLIENTS) * events // USERS
        status, page, _ = admin.request("GET", f"/v1/users/user-0000/events?limit={per_user + 10}", key)
        read_back = len(page["items"]) if status == 200 else None
        admin.close()
    stop = stack.stop
    log(f"ingest: local stack stopped ({'cleanly' if stop['clean'] else 'NOT cleanly'})")
    return {
        "batch_size": BATCH,
        "users": USERS,
        "local_stack_start_seconds": round(start_seconds, 1),
        "warm_up": warm_up.summary(),
        **{name: phase.summary() for name, phase in phases.items()},
        "raw_put_item": raw,
        "profile": ingest_profile.run(),
        "ratio_to_raw_at_4_clients": round(
            phases["concurrent"].events / phases["concurrent"].seconds / raw[f"clients_{CLIENTS}"]["puts_per_second"], 2
        ),
        "read_back": {"user": "user-0000", "expected": per_user + 1, "found": read_back},
        "stop": stop,
        "local_stack_logs": [str(stack.log_path), str(stack.stdout_path)],
    }
