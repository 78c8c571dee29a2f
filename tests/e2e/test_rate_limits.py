"""Per-tenant rate limits over HTTP: a burst over a tenant's limit is refused, exactly the excess."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

BURST = 5
RATE = 1  # the slowest refill a usage plan holds: rates are whole requests per second
SENT = 12


def test_a_burst_over_a_tenants_limit_refuses_exactly_the_excess_and_spares_other_tenants(stack: Stack) -> None:
    # Given tenant A limited to a burst of 5 and a slow refill (one request per second), and tenant B on the default
    limited, other = stack.new_tenant(), stack.new_tenant()
    patched = stack.request(
        "PATCH", f"/v1/tenants/{limited['tenant_id']}", {"rate_limit": {"rate": RATE, "burst": BURST}}, stack.admin_key
    )
    assert patched.status == 200, patched.body
    assert patched.body["rate_limit"] == {"rate": RATE, "burst": BURST}
    # When A sends 12 requests at once, and B sends 12 as well
    started = time.monotonic()
    answers = [stack.request("GET", "/v1/users/u/events?limit=1", key=limited["api_key"]) for _ in range(SENT)]
    elapsed = time.monotonic() - started
    others = [stack.request("GET", "/v1/users/u/events?limit=1", key=other["api_key"]) for _ in range(SENT)]
    accepted = [answer for answer in answers if answer.status == 200]
    refused = [answer for answer in answers if answer.status == 429]
    print(
        f"rate limit: sent {SENT} in {elapsed:.2f} s at burst {BURST}: {len(accepted)} accepted, {len(refused)} refused"
    )
    # Then the burst is served, and no more than the refill in that time; the excess is refused
    assert elapsed < 5
    assert BURST <= len(accepted) <= BURST + int(elapsed * RATE)
    assert len(accepted) + len(refused) == SENT
    for answer in refused:
        assert answer.body["error"]["code"] == "throttled"
        assert int(answer.headers["retry-after"]) >= 1
    # And tenant B is not affected
    assert [answer.status for answer in others] == [200] * SENT
    # When A's override is removed, Then it is back on the default limit at once
    restored = stack.request("PATCH", f"/v1/tenants/{limited['tenant_id']}", {"rate_limit": None}, stack.admin_key)
    assert restored.status == 200
    assert restored.body["rate_limit"] is None
    time.sleep(0.2)
    assert stack.request("GET", "/v1/users/u/events?limit=1", key=limited["api_key"]).status == 200
