"""Shared values and builders of the unit tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes import InMemoryTenantStore, InMemoryUsagePlans
from tracker import auth, tenants
from tracker.aggregates import ReceivedEvent
from tracker.auth import Principal
from tracker.records import RateLimitRecord
from tracker.tenant_models import TenantCreate, TenantCreated, TenantOut, TenantPatch

TENANT = "ten_unit000000000001"
OTHER_TENANT = "ten_unit000000000002"
RECEIVED = datetime(2025, 10, 10, 12, 0, 0, tzinfo=UTC)
"""The server's clock when the events of a test arrive."""


def received_event(
    tenant: str,
    *,
    user: str = "u1",
    action: str = "login",
    occurred: str = "2025-06-15T04:47:00Z",
    received: str = "2025-06-15T05:00:00.000Z",
    event_id: str = "e1",
    metadata: dict[str, Any] | None = None,
    violations: tuple[str, ...] = (),
) -> ReceivedEvent:
    """An event as the rollup reads it from the ``by_received_v2`` index."""
    return ReceivedEvent(
        received_key=f"{received}#{tenant}#{event_id}",
        tenant_id=tenant,
        user_id=user,
        action=action,
        occurred_at=datetime.fromisoformat(occurred.replace("Z", "+00:00")),
        metadata=metadata,
        violations=violations,
    )


def raw_event(**fields: Any) -> dict[str, Any]:
    """A valid event as a client sends it; ``fields`` override or add (``None`` removes a field)."""
    event: dict[str, Any] = {
        "event_id": "evt-1",
        "user_id": "user-1",
        "action": "login",
        "occurred_at": "2025-10-10T11:00:00Z",
    }
    event.update(fields)
    return {name: value for name, value in event.items() if value is not None}


DEFAULT_LIMIT = RateLimitRecord(rate=50, burst=100)
"""The stack's default rate limit, as the authorizer gets it from its settings."""


@dataclass
class Admin:
    """The tenants logic on in-memory stores, as the tenants function and the authorizer call it."""

    store: InMemoryTenantStore = field(default_factory=InMemoryTenantStore)
    plans: InMemoryUsagePlans = field(default_factory=InMemoryUsagePlans)

    def create(self, name: str = "Shop A", timezone: str = "UTC", minutes: int = 0) -> TenantCreated:
        request = TenantCreate(name=name, timezone=timezone)
        return tenants.create_tenant(self.store, self.plans, request, now=RECEIVED + timedelta(minutes=minutes))

    def patch(self, tenant_id: str, body: dict[str, Any]) -> TenantOut:
        return tenants.update_tenant(self.store, self.plans, tenant_id, TenantPatch.model_validate(body))

    def authenticate(self, api_key: str | None) -> Principal:
        return auth.authenticate(self.store, [api_key] if api_key is not None else [], DEFAULT_LIMIT)
