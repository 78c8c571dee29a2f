"""Erasure of a user's data on request (GDPR): profile, exports, every event and per-user aggregate, in the background.

The API records the request and starts a worker; the worker deletes the user's events page by
page, then the user's aggregates, and can be run again at any point until it completes. Tenant-
wide totals keep their anonymous counts. An event the user sends after the erasure is new data.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from tracker.errors import NotFound
from tracker.interfaces import ErasureStore, ProfileEraser, UserAggregateEraser, UserEventEraser
from tracker.models import ErasureAccepted, ErasureOut
from tracker.records import ErasureRecord
from tracker.timefmt import utc_now


def erasure_out(record: ErasureRecord) -> ErasureOut:
    return ErasureOut(
        erasure_id=record.erasure_id,
        user_id=record.user_id,
        status=record.status,
        deleted_events=record.deleted_events,
        deleted_profiles=record.deleted_profiles,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def request_erasure(
    store: ErasureStore, tenant_id: str, user_id: str, start_worker: Callable[[ErasureRecord], None]
) -> ErasureAccepted:
    now = utc_now()
    record = ErasureRecord(
        tenant_id=tenant_id,
        erasure_id=f"era_{secrets.token_hex(10)}",
        user_id=user_id,
        status="pending",
        deleted_events=0,
        created_at=now,
        updated_at=now,
    )
    store.create_erasure(record)
    start_worker(record)
    return ErasureAccepted(erasure_id=record.erasure_id, status=record.status)


def get_erasure(store: ErasureStore, tenant_id: str, erasure_id: str) -> ErasureOut:
    record = store.get_erasure(tenant_id, erasure_id)
    if record is None:
        raise NotFound(f"No erasure {erasure_id}.")
    return erasure_out(record)


def erase_user(
    store: ErasureStore,
    events: UserEventEraser,
    aggregates: UserAggregateEraser,
    tenant_id: str,
    erasure_id: str,
    *,
    profiles: ProfileEraser,
) -> ErasureOut:
    """Runs (or resumes) an erasure to its end; marks it failed and re-raises on an error."""
    record = store.get_erasure(tenant_id, erasure_id)
    if record is None:
        raise NotFound(f"No erasure {erasure_id} for tenant {tenant_id}.")
    if record.status == "completed":
        return erasure_out(record)
    store.set_erasure_status(tenant_id, erasure_id, "running", utc_now())
    try:
        # First the profile and the export files: an export running now then fails rather than keep erased data.
        store.add_deleted_profiles(tenant_id, erasure_id, profiles.erase_profile(tenant_id, record.user_id))
        for keys in events.user_event_pages(tenant_id, record.user_id):
            events.delete_events(keys)
            store.add_deleted_events(tenant_id, erasure_id, len(keys))
        # After the events: a rollup that read some of them before they went cannot write them back.
        aggregates.delete_user_aggregates(tenant_id, record.user_id)
    except Exception:
        store.set_erasure_status(tenant_id, erasure_id, "failed", utc_now())
        raise
    store.set_erasure_status(tenant_id, erasure_id, "completed", utc_now())
    return get_erasure(store, tenant_id, erasure_id)
