"""A short load test (``python -m loadtest`` in small): concurrent clients, then an exact read-back.

32 clients for 4 s (``LOAD_CLIENTS``, ``LOAD_SECONDS``), half on keep-alive connections and half on a
new connection per request, send single events and batches to a tenant of their own and read events
and statistics, retrying 429/503 with the same event ids. No connection may be refused or reset, no
answer may be a 5xx but a 503 with Retry-After; then every event the server accepted must be stored
exactly once, and the rollup must count each exactly once.
"""

from __future__ import annotations

import os

import pytest

from loadtest.runner import LoadConfig, run_load
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.local_only]

CLIENTS = int(os.environ.get("LOAD_CLIENTS", "32"))
SECONDS = float(os.environ.get("LOAD_SECONDS", "4"))


def test_concurrent_ingest_loses_nothing_and_counts_each_event_once(stack: Stack) -> None:
    config = LoadConfig(
        base_url=stack.api,
        admin_key=stack.admin_key,
        lambda_url=stack.lambda_api,
        clients=CLIENTS,
        seconds=SECONDS,
        batch_size=100,
        users=24,
        seed=20251012,
    )
    result = run_load(config, log=print)
    print(result.report())

    assert result.events_confirmed > 0, "no event was accepted"
    assert result.server_errors == 0, f"5xx answers: {dict(result.statuses)}"
    assert not result.lost, f"accepted but not stored: {result.lost[:10]}"
    assert not result.extra, f"stored but never accepted: {result.extra[:10]}"
    assert not result.listed_twice, f"listed twice: {result.listed_twice[:10]}"
    assert not result.accepted_twice, f"accepted twice (stored twice): {result.accepted_twice[:10]}"
    assert not result.unconfirmed, f"never confirmed despite retries: {result.unconfirmed[:10]}"
    assert not result.content_mismatches, result.content_mismatches[:5]
    assert not result.unexpected_answers, result.unexpected_answers[:5]
    assert not result.contract_violations, result.contract_violations[:5]
    assert not result.stats_mismatches, result.stats_mismatches[:5]
    assert result.ok, result.problems()  # connection errors and unretried 5xx included
