"""In-memory stand-ins for the profile store, the export store and the export bucket."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tracker.profile_models import ExportPart, ExportRecord, ProfileRecord


@dataclass
class InMemoryProfileStore:
    """Profiles and exports (one table in the cloud), with the same conditional writes."""

    profiles: dict[tuple[str, str], tuple[ProfileRecord, str | None]] = field(default_factory=dict)
    exports: dict[tuple[str, str], ExportRecord] = field(default_factory=dict)
    before_save_export: Callable[[ExportRecord], None] = lambda _record: None
    """Runs before each export write: where a test makes something happen meanwhile."""

    def get_profile(self, tenant_id: str, user_id: str) -> ProfileRecord | None:
        found = self.profiles.get((tenant_id, user_id))
        return None if found is None else found[0].model_copy(deep=True)

    def save_profile(self, record: ProfileRecord, email_key: str | None, expected_version: int | None) -> bool:
        current = self.profiles.get((record.tenant_id, record.user_id))
        if (current[0].version if current else None) != expected_version:
            return False
        self.profiles[(record.tenant_id, record.user_id)] = (record.model_copy(deep=True), email_key)
        return True

    def delete_profile(self, tenant_id: str, user_id: str) -> bool:
        return self.profiles.pop((tenant_id, user_id), None) is not None

    def find_by_email_key(self, tenant_id: str, email_key: str) -> list[ProfileRecord]:
        return sorted(
            (
                record
                for (tenant, _user), (record, key) in self.profiles.items()
                if tenant == tenant_id and key == email_key
            ),
            key=lambda record: record.user_id,
        )

    def create_export(self, record: ExportRecord) -> None:
        self.exports[(record.tenant_id, record.export_id)] = record.model_copy(deep=True)

    def get_export(self, tenant_id: str, export_id: str) -> ExportRecord | None:
        found = self.exports.get((tenant_id, export_id))
        return None if found is None else found.model_copy(deep=True)

    def save_export(self, record: ExportRecord, expected_version: int) -> bool:
        self.before_save_export(record)
        current = self.exports.get((record.tenant_id, record.export_id))
        if current is None or current.version != expected_version:
            return False
        self.exports[(record.tenant_id, record.export_id)] = record.model_copy(deep=True)
        return True

    def user_export_ids(self, tenant_id: str, user_id: str) -> list[str]:
        return [
            record.export_id
            for record in self.exports.values()
            if record.tenant_id == tenant_id and record.user_id == user_id
        ]


@dataclass
class InMemoryExportFiles:
    """A bucket: whole files, multipart uploads (any part size), and presigned URLs that name the key."""

    files: dict[str, bytes] = field(default_factory=dict)
    uploads: dict[str, dict[int, bytes]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def put_file(self, key: str, body: bytes) -> None:
        self.calls.append("put")
        self.files[key] = body

    def start_upload(self, key: str) -> str:
        upload_id = f"upload-{len(self.uploads)}-{key}"
        self.uploads[upload_id] = {}
        return upload_id

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> str:  # noqa: ARG002
        self.calls.append("part")
        if upload_id not in self.uploads:
            raise LookupError("NoSuchUpload")
        self.uploads[upload_id][number] = body
        return f"etag-{number}-{len(body)}"

    def complete_upload(self, key: str, upload_id: str, parts: list[ExportPart]) -> None:
        stored = self.uploads.pop(upload_id)
        assert [part.number for part in parts] == sorted(stored)
        self.files[key] = b"".join(stored[part.number] for part in parts)

    def abort_upload(self, key: str, upload_id: str) -> None:  # noqa: ARG002
        self.uploads.pop(upload_id, None)

    def delete_file(self, key: str) -> None:
        self.files.pop(key, None)

    def download_url(self, key: str, seconds: int) -> str:
        return f"https://bucket.example/{key}?expires={seconds}"
