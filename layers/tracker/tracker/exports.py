"""Data export on request (GDPR access): a user's profile and every event, as one NDJSON file.

The API records the request and starts a worker; the worker writes the profile line, then the
user's events oldest first, page by page, uploading the file in parts. Each uploaded part is
recorded with the position of its last event; a worker near its deadline stops (after a part, or
before a page once it has uploaded one), and a next invocation resumes after the last part. Every
write of the record is conditional on its version: of two workers on one export only one goes on,
and an erasure, which marks the user's exports failed and deletes their files, wins over a worker
still running (that worker then removes what it wrote).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from tracker.errors import NotFound
from tracker.event_reads import event_out
from tracker.interfaces import EventStore, ExportFiles, ExportStore, ProfileStore, UserEventsQuery
from tracker.profile_models import EXPORT_ID, ExportAccepted, ExportError, ExportOut, ExportPart, ExportRecord
from tracker.profiles import profile_out
from tracker.timefmt import utc_now

DOWNLOAD_SECONDS = 15 * 60
# An export whose worker wrote nothing for this long is dead (its retries ended in the dead-letter
# queue): a run writes progress after each part, lasts at most 15 minutes, and Lambda retries
# within minutes.
STALLED_AFTER = timedelta(minutes=30)
STALLED = ExportError(code="stalled", message="The export stopped and its retries are over; request a new one.")
EVENTS_PAGE = 1000
ERASED = ExportError(code="erased", message="The user's data was erased; this export's file was deleted with it.")

# Attempts to mark an export failed while its worker keeps writing progress.
FAIL_ATTEMPTS = 10

Outcome = Literal["completed", "resume", "failed", "superseded", "finished already"]


def export_out(record: ExportRecord, files: ExportFiles) -> ExportOut:
    url, expires = None, None
    if record.status in {"pending", "running"} and utc_now() - record.updated_at > STALLED_AFTER:
        record = record.model_copy(update={"status": "failed", "error": STALLED})
    if record.status == "completed":
        expires = utc_now() + timedelta(seconds=DOWNLOAD_SECONDS)
        url = files.download_url(record.file_key, DOWNLOAD_SECONDS)
    return ExportOut(
        export_id=record.export_id,
        user_id=record.user_id,
        status=record.status,
        events=record.events,
        download_url=url,
        expires_at=expires,
        error=record.error,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def request_export(
    store: ExportStore, tenant_id: str, user_id: str, start_worker: Callable[[ExportRecord], None]
) -> ExportAccepted:
    now = utc_now()
    record = ExportRecord(
        tenant_id=tenant_id,
        export_id=f"exp_{secrets.token_hex(10)}",
        user_id=user_id,
        status="pending",
        events=0,
        created_at=now,
        updated_at=now,
    )
    store.create_export(record)
    start_worker(record)
    return ExportAccepted(export_id=record.export_id, status=record.status)


def get_export(store: ExportStore, files: ExportFiles, tenant_id: str, export_id: str) -> ExportOut:
    record = store.get_export(tenant_id, export_id) if EXPORT_ID.fullmatch(export_id) else None
    if record is None:
        raise NotFound(f"No export {export_id}.")
    return export_out(record, files)


def _line(kind: str, body: dict[str, object]) -> bytes:
    return (json.dumps({"type": kind, **body}, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


@dataclass
class ExportRun:
    """One invocation's work on one export."""

    exports: ExportStore
    profiles: ProfileStore
    events: EventStore
    files: ExportFiles
    part_bytes: int
    time_left_ms: Callable[[], int]
    margin_ms: int

    def _save(self, record: ExportRecord, **changes: object) -> ExportRecord | None:
        """The record with ``changes``, stored; None when another write (an erasure, a second worker) came first."""
        updated = record.model_copy(update={**changes, "version": record.version + 1, "updated_at": utc_now()})
        return updated if self.exports.save_export(updated, record.version) else None

    def _give_up(self, record: ExportRecord, upload_id: str | None) -> Outcome:
        """Another write came first. An erasure: remove what this run wrote. Another worker: leave it be."""
        current = self.exports.get_export(record.tenant_id, record.export_id)
        if current is None or current.error == ERASED:
            if upload_id is not None:
                self.files.abort_upload(record.file_key, upload_id)
            self.files.delete_file(record.file_key)
        return "superseded"

    def run(self, tenant_id: str, export_id: str) -> Outcome:
        """Runs the export to its end, or up to a part near the deadline ("resume": invoke again)."""
        found = self.exports.get_export(tenant_id, export_id)
        if found is None:
            raise NotFound(f"No export {export_id} for tenant {tenant_id}.")
        if found.status == "completed" or found.error == ERASED:
            return "finished already"
        record = self._save(found, status="running", error=None)
        if record is None:
            return "superseded"
        buffer = bytearray()
        if record.after is None and not record.parts:
            profile = self.profiles.get_profile(tenant_id, record.user_id)
            if profile is not None:
                buffer += _line("profile", profile_out(profile).model_dump(mode="json"))
        in_buffer, last_key, parts_at_start = 0, record.after, len(record.parts)
        more = True
        while more:
            # Near the deadline (checked after each part, and before each page once this run has uploaded
            # one, a page being far shorter than a part): stop; the next run re-reads from the last part.
            if len(record.parts) > parts_at_start and self.time_left_ms() < self.margin_ms:
                return "resume"
            query = UserEventsQuery(tenant_id, record.user_id, None, None, None, False, EVENTS_PAGE, last_key)
            page, more = self.events.query_user_events(query)
            for event in page:
                buffer += _line("event", event_out(event).model_dump(mode="json"))
                in_buffer, last_key = in_buffer + 1, event.occurred_key
                if len(buffer) < self.part_bytes:
                    continue
                saved = self._upload_part(record, bytes(buffer), in_buffer, last_key)
                if saved is None:
                    return self._give_up(record, record.upload_id)
                record, buffer, in_buffer = saved, bytearray(), 0
                if self.time_left_ms() < self.margin_ms:
                    return "resume"
            more = more and bool(page)
        return self._finish(record, bytes(buffer), in_buffer)

    def _upload_part(self, record: ExportRecord, body: bytes, count: int, last_key: str | None) -> ExportRecord | None:
        if record.upload_id is None:
            upload_id = self.files.start_upload(record.file_key)
            started = self._save(record, upload_id=upload_id)
            if started is None:
                self.files.abort_upload(record.file_key, upload_id)  # nobody else knows of this upload
                return None
            record = started
        assert record.upload_id is not None  # noqa: S101 - set just above  # nosec B101
        number = len(record.parts) + 1
        etag = self.files.upload_part(record.file_key, record.upload_id, number, body)
        parts = [*record.parts, ExportPart(number=number, etag=etag)]
        return self._save(record, parts=parts, after=last_key, events=record.events + count)

    def _finish(self, record: ExportRecord, rest: bytes, count: int) -> Outcome:
        if record.upload_id is None:
            self.files.put_file(record.file_key, rest)
            parts = record.parts
        else:
            parts = record.parts
            if rest or not parts:
                etag = self.files.upload_part(record.file_key, record.upload_id, len(parts) + 1, rest)
                parts = [*parts, ExportPart(number=len(parts) + 1, etag=etag)]
            self.files.complete_upload(record.file_key, record.upload_id, parts)
        done = self._save(record, status="completed", events=record.events + count, parts=parts)
        return "completed" if done is not None else self._give_up(record, None)


def fail_export(store: ExportStore, tenant_id: str, export_id: str, error: ExportError) -> None:
    """Marks an export failed (by an erasure, or by a worker's error: a retry then resumes it)."""
    for _attempt in range(FAIL_ATTEMPTS):
        record = store.get_export(tenant_id, export_id)
        if record is None or record.error == ERASED or (record.status == "completed" and error != ERASED):
            return
        failed = record.model_copy(
            update={"status": "failed", "error": error, "version": record.version + 1, "updated_at": utc_now()}
        )
        if store.save_export(failed, record.version):
            return


@dataclass
class UserDataEraser:
    """The erasure's profile step: the profile, then every export of the user (marked failed, file deleted)."""

    profiles: ProfileStore
    exports: ExportStore
    files: ExportFiles

    def erase_profile(self, tenant_id: str, user_id: str) -> int:
        erased = int(self.profiles.delete_profile(tenant_id, user_id))
        for export_id in self.exports.user_export_ids(tenant_id, user_id):
            fail_export(self.exports, tenant_id, export_id, ERASED)
            record = self.exports.get_export(tenant_id, export_id)
            if record is not None:
                if record.upload_id is not None:
                    self.files.abort_upload(record.file_key, record.upload_id)
                self.files.delete_file(record.file_key)
        return erased
