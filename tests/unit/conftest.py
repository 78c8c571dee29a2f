"""Fixtures of the unit tests: the domain logic on in-memory stores, no network, no moto."""

from __future__ import annotations

import pytest

from tests.fakes import InMemoryEventStore, InMemoryTenantStore, InMemoryUsagePlans

from .support import Admin


@pytest.fixture
def event_store() -> InMemoryEventStore:
    return InMemoryEventStore()


@pytest.fixture
def tenant_store() -> InMemoryTenantStore:
    return InMemoryTenantStore()


@pytest.fixture
def usage_plans() -> InMemoryUsagePlans:
    return InMemoryUsagePlans()


@pytest.fixture
def admin(tenant_store: InMemoryTenantStore, usage_plans: InMemoryUsagePlans) -> Admin:
    return Admin(tenant_store, usage_plans)
