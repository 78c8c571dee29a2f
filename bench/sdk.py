"""Section 5: the Python SDK and CLI against the local stack.

1. ``activity-tracker events import`` of an NDJSON file (no event ids: the CLI derives them) through the
   local stack, timed from the command's start to its exit, next to the stack's raw batch-ingest rate
   measured in the same run with the same concurrency (bench/ingest.py's client: pre-built events, plain
   JSON, 4 keep-alive connections, 300 s per request: the CLI gets ``--timeout 300`` too), once before and
   once after the import (their mean is the reference; goal: the import at least 0.9 of it).
2. The SDK's exactly-once figure: events tracked from 8 threads through one ``Tracker`` behind a proxy that
   answers 429/503 and drops connections before and after the stack stored a batch
   (tests/e2e/fault_proxy.py), then every event read back: stored, missing, stored twice.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import ROOT, log
from bench.ingest import CLIENTS, Client, _events, _phase, local_stack

SDK_SOURCE = ROOT / "clients" / "python" / "src"
GOAL_RATIO = 0.9


def _import_with_cli(port: int, key: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-import-") as directory:
        source = Path(directory) / "events.ndjson"
        with source.open("w", encoding="utf-8") as out:
            for event in events:
                out.write(json.dumps({k: v for k, v in event.items() if k != "event_id"}) + "\n")
        command = [sys.executable, "-m", "activity_tracker", "--timeout", "300", "events", "import", str(source)]
        command.append("--no-progress")
        command += ["--concurrency", str(CLIENTS)]  # as many connections as the raw client
        environment = {
            **os.environ,
            "PYTHONPATH": str(SDK_SOURCE),
            "ACTIVITY_TRACKER_ENDPOINT": f"http://127.0.0.1:{port}",
            "ACTIVITY_TRACKER_API_KEY": key,
        }
        started = time.perf_counter()
        finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=3600, check=False)
        seconds = time.perf_counter() - started
    summary = finished.stdout.strip().splitlines()[0] if finished.stdout.strip() else finished.stderr[-500:]
    counts = {}
    if ": accepted " in summary:
        for part in summary.split(": ", 1)[1].split(", "):
            name, value = part.rsplit(" ", 1)
            counts[name] = int(value)
    return {
        "command": " ".join(["activity-tracker", *command[3:]]),
        "events": len(events),
        "seconds": round(seconds, 2),
        "events_per_second": round(len(events) / seconds, 1),
        "exit_status": finished.returncode,
        "summary": summary,
        "accepted": counts.get("accepted"),
        "all_stored": finished.returncode == 0
        and counts.get("accepted", 0) + counts.get("duplicates", 0) == len(events),
    }


def run(import_events: int, raw_events: int, fault_events: int) -> dict[str, Any]:
    if str(SDK_SOURCE) not in sys.path:
        sys.path.insert(0, str(SDK_SOURCE))
    from tests.e2e.fault_proxy import exactly_once

    rng = random.Random(11)  # noqa: S311 - reproducible test data
    run_id = secrets.token_hex(4)
    now = datetime.now(UTC)
    log("sdk: starting the local stack")
    with local_stack() as stack:
        admin = Client(stack.port)
        status, tenant, _ = admin.request("POST", "/v1/tenants", stack.admin_key, {"name": f"SDK bench {run_id}"})
        if status != 201:
            raise RuntimeError(f"creating the tenant failed: {status} {tenant}")
        key = tenant["api_key"]
        _phase(stack.port, key, _events(f"warm-{run_id}", CLIENTS * 10, rng, now), CLIENTS)
        log(f"sdk: raw batch ingest of {raw_events:,} events from {CLIENTS} clients")
        before = _phase(stack.port, key, _events(f"raw1-{run_id}", raw_events, rng, now), CLIENTS).summary()
        log(f"sdk: {before['events_per_second']} events/s; CLI import of {import_events:,} events")
        cli = _import_with_cli(stack.port, key, _events(f"cli-{run_id}", import_events, rng, now))
        log(f"sdk: {cli['events_per_second']} events/s ({cli['summary']}); raw ingest again")
        after = _phase(stack.port, key, _events(f"raw2-{run_id}", raw_events, rng, now), CLIENTS).summary()
        raw_rate = (before["events_per_second"] + after["events_per_second"]) / 2
        log(f"sdk: {after['events_per_second']} events/s; exactly-once under faults with {fault_events:,} events")
        status, other, _ = admin.request("POST", "/v1/tenants", stack.admin_key, {"name": f"SDK faults {run_id}"})
        admin.close()
        faults = exactly_once(f"http://127.0.0.1:{stack.port}", other["api_key"], fault_events, threads=8).summary()
        log(f"sdk: stored {faults['stored']:,}/{faults['events']:,}, twice {faults['stored_twice']}")
    return {
        "clients": CLIENTS,
        "raw_before": before,
        "raw_after": after,
        "raw_events_per_second": round(raw_rate, 1),
        "cli_import": cli,
        "ratio": round(cli["events_per_second"] / raw_rate, 3) if raw_rate else None,
        "goal_ratio": GOAL_RATIO,
        "exactly_once": faults,
        "stop": stack.stop,
    }
