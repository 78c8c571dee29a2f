"""The CLI's reading of import files: NDJSON and CSV, and every kind of bad line, without a server."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from activity_tracker.cli.importer import Rejects, batches, count_lines
from activity_tracker.cli.records import MAX_LINE_BYTES, FileError, Record, csv_records, ndjson_records


def ndjson(data: bytes) -> list[Record]:
    return list(ndjson_records(io.BytesIO(data)))


def csv_rows(data: bytes) -> list[Record]:
    return list(csv_records(io.BytesIO(data)))


def event(record: Record) -> dict[str, object]:
    assert record.item is not None, record
    return dict(json.loads(record.item))


def test_ndjson_lines_become_events_with_ids_derived_from_their_content() -> None:
    data = b'{"user_id": "6", "action": "login"}\n{"user_id": "6", "action": "login", "event_id": "e-1"}\n'
    first, second = ndjson(data)
    assert event(first)["event_id"] == event(ndjson(data)[0])["event_id"]  # the same on every run
    assert str(event(first)["event_id"]).startswith("imp-")
    assert event(second)["event_id"] == "e-1"


def test_the_derived_id_ignores_key_order_and_spacing_but_not_content() -> None:
    a, b, c = ndjson(
        b'{"user_id":"6","action":"login"}\n{ "action" : "login", "user_id" : "6" }\n{"user_id":"7","action":"login"}\n'
    )
    assert event(a)["event_id"] == event(b)["event_id"] != event(c)["event_id"]


def test_a_bom_and_windows_line_endings_are_read() -> None:
    (record,) = ndjson(b'\xef\xbb\xbf{"user_id": "6", "action": "login"}\r\n')
    assert event(record)["user_id"] == "6"
    header, row = b"\xef\xbb\xbfuser_id,action,occurred_at\r\n", b"6,login,2025-10-10T10:00:00Z\r\n"
    (record,) = csv_rows(header + row)
    assert event(record) == {
        "event_id": event(record)["event_id"],
        "user_id": "6",
        "action": "login",
        "occurred_at": "2025-10-10T10:00:00Z",
    }


@pytest.mark.parametrize(
    ("line", "code", "words"),
    [
        (b"[1, 2]", "validation_error", "not an object"),
        (b'"just a string"', "validation_error", "not an object"),
        (b"{not json", "bad_request", "not JSON"),
        (b'{"user_id": "6", "action": "a", "action": "b"}', "bad_request", "appears twice"),
        (b'{"user_id": "6", "action": "a", "metadata": {"x": NaN}}', "bad_request", "NaN"),
        (b'{"user_id": "\\ud800", "action": "a"}', "bad_request", "cannot be sent"),
        (b'{"user_id": "caf\xe9", "action": "a"}', "bad_request", "not valid UTF-8"),
    ],
    ids=["array", "string", "broken", "duplicate-key", "nan", "lone-surrogate", "latin-1"],
)
def test_a_bad_ndjson_line_is_rejected_alone(line: bytes, code: str, words: str) -> None:
    good = b'{"user_id": "6", "action": "login"}'
    records = ndjson(good + b"\n" + line + b"\n" + good + b"\n")
    assert [r.item is not None for r in records] == [True, False, True]
    assert records[1].code == code
    assert words in records[1].message
    assert records[1].first_line == 2


def test_a_10_mb_line_is_rejected_without_stopping_the_file() -> None:
    huge = b'{"user_id": "6", "action": "a", "metadata": {"x": "' + b"z" * 10_000_000 + b'"}}'
    records = ndjson(b'{"user_id": "1", "action": "a"}\n' + huge + b'\n{"user_id": "2", "action": "a"}\n')
    assert [r.code for r in records] == ["", "payload_too_large", ""]
    assert records[1].length == len(huge) + 1
    assert str(MAX_LINE_BYTES) in records[1].message


def test_blank_lines_are_skipped() -> None:
    assert len(ndjson(b'\n  \n{"user_id": "6", "action": "a"}\n\r\n')) == 1


def test_a_csv_header_without_a_required_column_stops_the_import() -> None:
    with pytest.raises(FileError, match="no column action"):
        csv_rows(b"user_id,occurred_at\n6,2025-10-10T10:00:00Z\n")


def test_a_csv_row_with_a_missing_field_or_bad_bytes_is_rejected_alone() -> None:
    data = b"user_id,action,city\n6,login,Kyiv\n7,login\n8,view,caf\xe9\n9,view,\n"
    records = csv_rows(data)
    assert [(r.first_line, r.code) for r in records] == [(2, ""), (3, "validation_error"), (4, "bad_request"), (5, "")]
    assert event(records[0])["metadata"] == {"city": "Kyiv"}
    assert "metadata" not in event(records[3])
    assert "2 fields" in records[1].message


def test_a_csv_metadata_column_is_a_json_object_and_quoted_fields_may_span_lines() -> None:
    data = b'user_id,action,metadata,note\n6,login,"{""device"": ""iPhone""}","two\r\nlines"\n7,x,"[1]",\n'
    first, second = csv_rows(data)
    assert event(first)["metadata"] == {"device": "iPhone", "note": "two\r\nlines"}
    assert second.code == "bad_request"
    assert second.first_line == 4


def test_a_10_mb_csv_line_is_rejected_alone() -> None:
    data = b"user_id,action\n6,a\n" + b"7," + b"b" * 10_000_000 + b"\n8,c\n"
    records = csv_rows(data)
    assert [r.code for r in records] == ["", "bad_request", ""]


def test_rejected_lines_are_copied_verbatim_next_to_the_input_and_a_csv_keeps_its_header(tmp_path: Path) -> None:
    source = tmp_path / "events.csv"
    data = b"user_id,action\r\n6,login\r\n7\r\n8,caf\xe9\r\n"
    source.write_bytes(data)
    rejects = Rejects(source, is_csv=True)
    with source.open("rb") as stream:
        for record in csv_records(stream):
            if record.item is None:
                rejects.write(record, record.code, record.message)
    rejects.close()
    assert (tmp_path / "events.rejected.csv").read_bytes() == b"user_id,action\r\n7\r\n8,caf\xe9\r\n"
    log = (tmp_path / "events.rejected.log").read_text()
    assert log.startswith("line 3: validation_error")
    assert "line 4: bad_request" in log


def test_batches_hold_at_most_500_events_and_stay_under_1_mib() -> None:
    small = [Record(n, 0, 1, item=json.dumps({"user_id": "6", "action": "a", "n": n})) for n in range(1234)]
    assert [len(b) for b in batches(iter(small), None)] == [500, 500, 234]
    large = [Record(n, 0, 1, item=json.dumps({"user_id": "6", "action": "a", "x": "y" * 30_000})) for n in range(100)]
    for batch in batches(iter(large), None):
        assert sum(len((r.item or "").encode()) + 1 for r in batch) + 13 < 1024 * 1024


def test_events_over_32_kib_are_rejected_before_sending() -> None:
    rejected: list[str] = []
    big = Record(1, 0, 1, item=json.dumps({"user_id": "6", "action": "a", "x": "y" * 40_000}))
    assert list(batches(iter([big]), lambda _record, code, _message: rejected.append(code))) == []
    assert rejected == ["payload_too_large"]


def test_lines_are_counted_for_the_progress_bar(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a\nb\nc")
    assert count_lines(path) == 3
