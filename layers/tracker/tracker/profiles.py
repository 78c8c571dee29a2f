"""User profiles: who a user is, kept apart from what they do.

The email is found by a keyed hash (HMAC-SHA256 with a secret of the stack, over the tenant and
the lowercased address), never by the address itself: what is indexed tells nothing without the
secret, and the same address in two tenants hashes differently.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from tracker.errors import Conflict, NotFound
from tracker.interfaces import LookupKeySource, ProfileStore
from tracker.profile_models import PROFILE_FIELDS, ProfileIn, ProfileOut, ProfileRecord
from tracker.timefmt import utc_now

# Attempts of a read-modify-write that lost a race to another write of the same profile.
SAVE_ATTEMPTS = 3


def email_key(secret: bytes, tenant_id: str, email: str) -> str:
    """What the lookup index holds: the HMAC of the tenant and the lowercased email."""
    message = f"{tenant_id}\n{email.lower()}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def profile_out(record: ProfileRecord) -> ProfileOut:
    return ProfileOut(
        user_id=record.user_id,
        **{name: record.fields.get(name) for name in PROFILE_FIELDS},
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


class Profiles:
    """The profile routes' logic over a store and the lookup secret."""

    def __init__(self, store: ProfileStore, lookup_keys: LookupKeySource) -> None:
        self.store = store
        self.lookup_keys = lookup_keys

    def _email_key(self, tenant_id: str, fields: dict[str, Any]) -> str | None:
        email = fields.get("email")
        return None if email is None else email_key(self.lookup_keys.lookup_key(), tenant_id, email)

    def _write(self, tenant_id: str, user_id: str, change: ProfileIn, merge: bool) -> tuple[ProfileOut, bool]:
        """Replaces (PUT) or merges into (PATCH) the profile; whether it is new. Retries a lost race."""
        for _attempt in range(SAVE_ATTEMPTS):
            current = self.store.get_profile(tenant_id, user_id)
            if current is None and merge:
                raise NotFound(f"No profile for user {user_id}.")
            fields = {**(current.fields if merge and current else {}), **change.given()}
            now = utc_now()
            record = ProfileRecord(
                tenant_id=tenant_id,
                user_id=user_id,
                fields={name: value for name, value in fields.items() if value is not None},
                created_at=current.created_at if current else now,
                updated_at=now,
                version=current.version + 1 if current else 0,
            )
            expected = current.version if current else None
            if self.store.save_profile(record, self._email_key(tenant_id, record.fields), expected):
                return profile_out(record), current is None
        raise Conflict("The profile was changed by another request at the same time; send yours again.")

    def put(self, tenant_id: str, user_id: str, profile: ProfileIn) -> tuple[ProfileOut, bool]:
        return self._write(tenant_id, user_id, profile, merge=False)

    def patch(self, tenant_id: str, user_id: str, change: ProfileIn) -> ProfileOut:
        return self._write(tenant_id, user_id, change, merge=True)[0]

    def get(self, tenant_id: str, user_id: str) -> ProfileOut:
        record = self.store.get_profile(tenant_id, user_id)
        if record is None:
            raise NotFound(f"No profile for user {user_id}.")
        return profile_out(record)

    def delete(self, tenant_id: str, user_id: str) -> None:
        self.store.delete_profile(tenant_id, user_id)

    def find_by_email(self, tenant_id: str, email: str) -> list[ProfileOut]:
        """Exact match, case-insensitive; the hash narrows, the stored email decides."""
        wanted = email.lower()
        found = self.store.find_by_email_key(tenant_id, email_key(self.lookup_keys.lookup_key(), tenant_id, email))
        return [
            profile_out(record)
            for record in found
            if record.tenant_id == tenant_id and str(record.fields.get("email", "")).lower() == wanted
        ]
