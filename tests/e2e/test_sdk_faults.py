"""The Python SDK against a local stack of its own, through a fault-injecting proxy: events tracked from
8 threads through one Tracker, with 429s, 503s and connections dropped before and after the stack stored a
batch, are every one stored exactly once (read back through ``GET /v1/users/{id}/events``).

5,000 events here (``SDK_FAULT_EVENTS`` to change it); ``make bench`` runs the same scenario with 100,000.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Stack, start_stack, stop_stack
from tests.e2e.fault_proxy import exactly_once

pytestmark = [pytest.mark.e2e, pytest.mark.local_only]  # a local stack of its own (or its emulation)

SDK_FAULT_EVENTS = int(os.environ.get("SDK_FAULT_EVENTS", "5000"))


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    running = start_stack()
    yield running
    stop_stack(running)


@pytest.mark.timeout(1800)  # minutes on a busy machine: the local stack shares its CPUs
def test_sdk_events_from_8_threads_through_faults_are_stored_exactly_once(stack: Stack) -> None:
    # Given a tenant, and a proxy that injects 429s, 503s and dropped connections into batch requests
    key = stack.new_tenant()["api_key"]
    # When 8 threads track events through one Tracker behind the proxy
    result = exactly_once(stack.api, key, SDK_FAULT_EVENTS, threads=8, batch_size=250)
    print(f"SDK exactly-once under faults: {json.dumps(result.summary())}")
    # Then every event is stored once: none missing, none twice; the retries found the lost answers' events stored
    assert result.failures == []
    assert (result.stored, result.missing, result.stored_twice) == (SDK_FAULT_EVENTS, 0, 0)
    assert result.tracker["accepted"] + result.tracker["duplicates"] == SDK_FAULT_EVENTS
    assert result.faults.get("drop_after_forwarding", 0) + result.faults.get("503_after_forwarding", 0) > 0
    assert result.tracker["duplicates"] > 0
