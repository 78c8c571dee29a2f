"""Erasure of a user's data on request (GDPR): profile, exports, every event and per-user aggregate, in the background.

The API records the request and starts a worker; the worker deletes the user's events page by
page, then the user's aggregates, and can be run again at any point until it completes. Tenant-
wide totals keep the anonymous counts of the events a run counted before they were deleted. An
event the user sends after the erasure is new data (a new user for the distinct-user counts).

The user's aggregates are fenced, not just deleted: the worker takes the next fence token (a run
that holds the user's events, or half-written values of them, can no longer commit, and its
journaled keys are rewritten by the next run), then empties every item of the user with that
token, so that no older run can write them again.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import date

from tracker.aggregates import PART_SEPARATOR, day_users_partition
from tracker.erasure_models import ErasureAccepted, ErasureOut
from tracker.errors import NotFound
from tracker.interfaces import ErasureStore, ProfileEraser, TemporarilyUnavailable, UserAggregateEraser, UserEventEraser
from tracker.records import ErasureRecord
from tracker.timefmt import utc_now

FENCE_ATTEMPTS = 10


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


def fence_out_rollups(store: UserAggregateEraser) -> int:
    """Takes the next fence token: the run holding the lease (if any) can no longer commit, and the
    keys it journaled are rewritten by the next run."""
    for _ in range(FENCE_ATTEMPTS):
        seen = store.load_progress()
        abandoned = (seen.fence,) if seen.lease_until is not None else ()
        fenced = replace(seen, fence=seen.fence + 1, lease_until=None, dirty=(*seen.dirty, *abandoned))
        if store.replace_progress(fenced, seen.fence):
            return fenced.fence
    raise TemporarilyUnavailable("The rollup's progress kept moving; the erasure will be retried.")


def erase_user_aggregates(store: UserAggregateEraser, tenant_id: str, user_id: str) -> int:
    """Empties the user's partition and their top-users items; returns how many items."""
    token = fence_out_rollups(store)
    keys = store.user_items(tenant_id, user_id)
    keys += [
        (day_users_partition(tenant_id, date.fromisoformat(sort_key[2:])), user_id)
        for _, sort_key in keys
        if sort_key.startswith("D#") and PART_SEPARATOR not in sort_key
    ]
    store.tombstone(keys, token)
    return len(keys)


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
        erase_user_aggregates(aggregates, tenant_id, record.user_id)
    except Exception:
        store.set_erasure_status(tenant_id, erasure_id, "failed", utc_now())
        raise
    store.set_erasure_status(tenant_id, erasure_id, "completed", utc_now())
    return get_erasure(store, tenant_id, erasure_id)
