"""Fixtures of the unit tests: the domain logic on in-memory stores, no network, no moto."""

from __future__ import annotations

import pytest

from tests.fakes import InMemoryEventStore, InMemoryTenantStore


@pytest.fixture
def event_store() -> InMemoryEventStore:
    return InMemoryEventStore()


@pytest.fixture
def tenant_store() -> InMemoryTenantStore:
    return InMemoryTenantStore()
