"""Export runs on in-memory stores: the file is always exactly the brute-force NDJSON (profile line,
then every event oldest first), however the work is cut by part sizes and deadlines; an erasure at
any moment leaves no file; a crashed run is resumed by a retry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import InMemoryEventStore
from tests.profile_fakes import InMemoryExportFiles, InMemoryProfileStore
from tracker.events import prepare_event
from tracker.exports import ERASED, ExportRun, UserDataEraser, fail_export, get_export, request_export
from tracker.interfaces import TemporarilyUnavailable
from tracker.profile_models import ExportError, ExportRecord, ProfileRecord

TENANT = "ten_unit"
USER = "user-1"
START = datetime(2025, 10, 1, tzinfo=UTC)


def given_user(events: InMemoryEventStore, store: InMemoryProfileStore, n: int, pad: int, profile: bool) -> None:
    if profile:
        fields = {"email": "a@example.com", "traits": {"k": "v"}}
        store.save_profile(
            ProfileRecord(tenant_id=TENANT, user_id=USER, fields=fields, created_at=START, updated_at=START), None, None
        )
    for index in range(n):
        occurred = START + timedelta(seconds=(index * 7919) % (n + 1))  # out of order, some at the same time
        raw = {"event_id": f"e{index:04d}", "user_id": USER, "action": "a", "occurred_at": occurred.isoformat()}
        events.put_new(prepare_event({**raw, "metadata": {"p": "x" * pad}}, TENANT, START + timedelta(days=1)))
    other = {"event_id": "other", "user_id": "someone-else", "action": "a"}
    events.put_new(prepare_event(other, TENANT, START))


def expected_lines(events: InMemoryEventStore, store: InMemoryProfileStore) -> list[tuple[str, str]]:
    """Brute force: the profile, then the user's events by occurred_at then event_id."""
    lines = [("profile", USER)] if store.get_profile(TENANT, USER) else []
    mine = sorted((r for r in events.records.values() if r.user_id == USER), key=lambda r: r.occurred_key)
    return lines + [("event", record.event_id) for record in mine]


def file_lines(body: bytes) -> list[tuple[str, str]]:
    parsed = [json.loads(line) for line in body.decode().splitlines()]
    return [(line["type"], line["user_id"] if line["type"] == "profile" else line["event_id"]) for line in parsed]


def new_export(store: InMemoryProfileStore) -> ExportRecord:
    accepted = request_export(store, TENANT, USER, lambda _record: None)
    record = store.get_export(TENANT, accepted.export_id)
    assert record is not None
    return record


def runner(
    store: InMemoryProfileStore, events: InMemoryEventStore, files: InMemoryExportFiles, part: int, left: list[int]
) -> ExportRun:
    clock = iter(left)
    return ExportRun(store, store, events, files, part, lambda: next(clock, 10**9), margin_ms=1000)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 40),
    pad=st.integers(0, 300),
    profile=st.booleans(),
    part=st.integers(1, 3000),
    left=st.lists(st.sampled_from([0, 999, 1000, 10**6]), max_size=30),
)
def test_the_file_is_the_brute_force_ndjson_however_the_runs_are_cut(
    n: int, pad: int, profile: bool, part: int, left: list[int]
) -> None:
    # Given a user's events (and maybe a profile), and runs that stop whenever the clock says so
    events, store, files = InMemoryEventStore(), InMemoryProfileStore(), InMemoryExportFiles()
    given_user(events, store, n, pad, profile)
    record = new_export(store)
    # When runs go on until one completes
    outcomes = []
    while not outcomes or outcomes[-1] == "resume":
        outcomes.append(runner(store, events, files, part, left).run(TENANT, record.export_id))
        assert len(outcomes) <= n + 2
    # Then the file holds exactly the brute-force lines, and the export counts the events
    assert outcomes[-1] == "completed"
    done = store.get_export(TENANT, record.export_id)
    assert done is not None
    assert (done.status, done.events) == ("completed", n)
    assert file_lines(files.files[done.file_key]) == expected_lines(events, store)
    assert files.uploads == {}
    # And a run delivered again changes nothing
    assert runner(store, events, files, part, []).run(TENANT, record.export_id) == "finished already"


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 30), part=st.integers(1, 2000), erase_at=st.integers(0, 12))
def test_an_erasure_at_any_moment_leaves_no_file_and_says_so(n: int, part: int, erase_at: int) -> None:
    # Given an export running, and an erasure of the user that happens before the export's n-th write
    events, store, files = InMemoryEventStore(), InMemoryProfileStore(), InMemoryExportFiles()
    given_user(events, store, n, 100, True)
    record = new_export(store)
    writes = count()
    eraser = UserDataEraser(store, store, files)

    def maybe_erase(_record: ExportRecord) -> None:
        if next(writes) == erase_at:
            eraser.erase_profile(TENANT, USER)

    store.before_save_export = maybe_erase
    # When the worker runs (and runs again while it says "resume"); an aborted upload may stop a run
    outcome = "resume"
    while outcome == "resume":
        try:
            outcome = runner(store, events, files, part, []).run(TENANT, record.export_id)
        except LookupError:  # the erasure aborted the upload this run was writing to
            outcome = "resume"
    store.before_save_export = lambda _record: None
    eraser.erase_profile(TENANT, USER)  # the erasure's own end, if the export ran first
    # Then the export says it was erased, and no file or upload is left
    final = store.get_export(TENANT, record.export_id)
    assert final is not None
    assert (final.status, final.error) == ("failed", ERASED)
    assert files.files == {}
    assert files.uploads == {}
    assert get_export(store, files, TENANT, record.export_id).download_url is None


def test_a_failed_run_is_resumed_by_a_retry() -> None:
    # Given a store that fails once in the middle of the export
    events, store, files = InMemoryEventStore(), InMemoryProfileStore(), InMemoryExportFiles()
    given_user(events, store, 30, 200, True)
    record = new_export(store)
    real_upload = files.upload_part
    calls = count()

    def flaky(key: str, upload_id: str, number: int, body: bytes) -> str:
        if next(calls) == 2:
            raise TemporarilyUnavailable("down")
        return real_upload(key, upload_id, number, body)

    files.upload_part = flaky  # type: ignore[method-assign]
    # When the run fails (the worker marks the export failed), Then the export says so
    with pytest.raises(TemporarilyUnavailable):
        ExportRun(store, store, events, files, 500, lambda: 10**9, 1000).run(TENANT, record.export_id)
    fail_export(store, TENANT, record.export_id, ExportError(code="internal_error", message="retried"))
    assert store.get_export(TENANT, record.export_id).status == "failed"  # type: ignore[union-attr]
    # When Lambda retries it, Then it resumes after the last part and completes the whole file
    assert ExportRun(store, store, events, files, 500, lambda: 10**9, 1000).run(TENANT, record.export_id) == "completed"
    done = store.get_export(TENANT, record.export_id)
    assert done is not None
    assert (done.status, done.error, done.events) == ("completed", None, 30)
    assert file_lines(files.files[done.file_key]) == expected_lines(events, store)


def test_a_run_that_loses_to_another_worker_leaves_its_files_alone() -> None:
    # Given another worker that writes the record right after this one's first write
    events, store, files = InMemoryEventStore(), InMemoryProfileStore(), InMemoryExportFiles()
    given_user(events, store, 20, 300, False)
    record = new_export(store)
    writes = count()

    def other_worker(_record: ExportRecord) -> None:
        if next(writes) == 2:
            current = store.exports[(TENANT, record.export_id)]
            store.exports[(TENANT, record.export_id)] = current.model_copy(update={"version": current.version + 1})

    store.before_save_export = other_worker
    files.files[record.file_key] = b"the other worker's file"
    # When this run goes on, Then it stops and leaves what the other worker owns
    assert (
        ExportRun(store, store, events, files, 400, lambda: 10**9, 1000).run(TENANT, record.export_id) == "superseded"
    )
    assert files.files[record.file_key] == b"the other worker's file"


def test_a_user_with_nothing_gets_an_empty_file() -> None:
    events, store, files = InMemoryEventStore(), InMemoryProfileStore(), InMemoryExportFiles()
    record = new_export(store)
    assert ExportRun(store, store, events, files, 10, lambda: 10**9, 1000).run(TENANT, record.export_id) == "completed"
    assert files.files[record.file_key] == b""
    assert files.calls == ["put"]


def test_the_download_url_is_given_once_completed_with_its_expiry() -> None:
    events, store, files = InMemoryEventStore(), InMemoryProfileStore(), InMemoryExportFiles()
    record = new_export(store)
    pending = get_export(store, files, TENANT, record.export_id)
    assert (pending.status, pending.download_url, pending.expires_at) == ("pending", None, None)
    ExportRun(store, store, events, files, 10, lambda: 10**9, 1000).run(TENANT, record.export_id)
    done = get_export(store, files, TENANT, record.export_id)
    assert done.download_url == f"https://bucket.example/{record.file_key}?expires=900"
    assert done.expires_at is not None
    assert timedelta(minutes=14, seconds=59) < done.expires_at - datetime.now(UTC) <= timedelta(minutes=15)


def test_an_export_nobody_wrote_for_30_minutes_is_reported_failed() -> None:
    # Given an export whose worker's retries ended (it stays "running" in the store)
    store, files = InMemoryProfileStore(), InMemoryExportFiles()
    record = new_export(store)
    stale = datetime.now(UTC) - timedelta(minutes=31)
    store.exports[(TENANT, record.export_id)] = record.model_copy(update={"status": "running", "updated_at": stale})
    # When it is read, Then it says it failed, and why
    answer = get_export(store, files, TENANT, record.export_id)
    assert (answer.status, answer.error.code if answer.error else None, answer.download_url) == (
        "failed",
        "stalled",
        None,
    )
    # And a fresh one is still running
    store.exports[(TENANT, record.export_id)] = record.model_copy(update={"status": "running"})
    assert get_export(store, files, TENANT, record.export_id).status == "running"
