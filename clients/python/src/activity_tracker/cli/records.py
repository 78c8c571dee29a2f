"""Reading an import file as events: NDJSON or CSV with a header, streamed, each line judged on its own.

Every record keeps where it came from (line number, byte offset and length in the file), so that a
rejected record can be copied verbatim to the rejects file, whatever its size or encoding. A record
without an ``event_id`` gets one derived from its content, so that importing the same file again stores
nothing twice (two identical lines are one event: give them ``event_id`` values to keep them apart).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

BOM = b"\xef\xbb\xbf"
MAX_LINE_BYTES = 64 * 1024
"""Longer lines are rejected without being held in memory (an event is at most 32 KiB)."""
EVENT_FIELDS = ("event_id", "user_id", "action", "occurred_at", "metadata")
REQUIRED_CSV_COLUMNS = ("user_id", "action")


class FileError(Exception):
    """The file as a whole cannot be imported (a CSV header without a required column, ...)."""


@dataclass(frozen=True)
class Line:
    number: int
    offset: int
    length: int
    data: bytes | None
    """None when the line is longer than ``MAX_LINE_BYTES``."""


@dataclass(frozen=True)
class Record:
    first_line: int
    offset: int
    length: int
    item: str | None = None
    """The event as compact JSON, ready to send; None when rejected here."""
    code: str = ""
    message: str = ""


def read_lines(stream: IO[bytes]) -> Iterator[Line]:
    """Physical lines, each with its terminator; an over-long one is skipped over in chunks."""
    offset = 0
    number = 0
    while True:
        data = stream.readline(MAX_LINE_BYTES)
        if not data:
            return
        number += 1
        start = offset
        offset += len(data)
        if len(data) == MAX_LINE_BYTES and not data.endswith(b"\n"):
            while True:
                rest = stream.readline(1024 * 1024)
                offset += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            yield Line(number, start, offset - start, None)
        else:
            yield Line(number, start, len(data), data)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"the key {key!r} appears twice in one object")
        found[key] = value
    return found


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def parse_object(text: str) -> Any:
    """JSON as strictly as the server reads it: no NaN/Infinity, no duplicate keys."""
    return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_reject_constant)


def serialize(event: dict[str, Any]) -> str:
    """The event as compact JSON with an ``event_id`` (derived from the content when absent).

    Raises ValueError for what cannot be sent as UTF-8 JSON (lone surrogates).
    """
    if event.get("event_id") is None:
        content = {key: value for key, value in event.items() if key != "event_id"}
        canonical = json.dumps(content, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
        event = {"event_id": f"imp-{digest}", **content}
    item = json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    item.encode("utf-8")  # raises UnicodeEncodeError (a ValueError) on a lone surrogate
    return item


def _decode(number: int, data: bytes) -> str:
    """A line as text (strict UTF-8), without the byte order mark that may open the file."""
    return (data[len(BOM) :] if number == 1 and data.startswith(BOM) else data).decode("utf-8")


def ndjson_records(stream: IO[bytes]) -> Iterator[Record]:
    for line in read_lines(stream):
        where = (line.number, line.offset, line.length)
        if line.data is None:
            yield Record(*where, code="payload_too_large", message=f"The line is longer than {MAX_LINE_BYTES} bytes.")
            continue
        try:
            text = _decode(line.number, line.data)
        except UnicodeDecodeError as error:
            yield Record(*where, code="bad_request", message=f"The line is not valid UTF-8 ({error.reason}).")
            continue
        if not text.strip():
            continue
        try:
            value = parse_object(text)
        except (ValueError, RecursionError) as error:
            yield Record(*where, code="bad_request", message=f"The line is not JSON: {error}.")
            continue
        if not isinstance(value, dict):
            yield Record(
                *where, code="validation_error", message=f"The line is a JSON {type(value).__name__}, not an object."
            )
            continue
        try:
            yield Record(*where, item=serialize(value))
        except ValueError as error:
            yield Record(*where, code="bad_request", message=f"The event cannot be sent: {error}.")


class _CsvLines:
    """Feeds decoded lines to ``csv.reader`` and remembers which physical lines the current record spans."""

    def __init__(self, lines: Iterator[Line]) -> None:
        self._lines = lines
        self.consumed: list[Line] = []
        self.problem: str | None = None

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.consumed.append(line)
        if line.data is None:
            self.problem = f"The line is longer than {MAX_LINE_BYTES} bytes."
            return "\n"
        try:
            return _decode(line.number, line.data)
        except UnicodeDecodeError as error:
            self.problem = f"The line is not valid UTF-8 ({error.reason})."
            return line.data.decode("utf-8", errors="replace")

    def take(self) -> tuple[int, int, int, str | None]:
        """The span of the record just read, and what was wrong with its lines; then starts a new record."""
        first, last = self.consumed[0], self.consumed[-1]
        span = (first.number, first.offset, last.offset + last.length - first.offset, self.problem)
        self.consumed, self.problem = [], None
        return span


def _csv_event(columns: list[str], row: list[str]) -> dict[str, Any]:
    event: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, value in zip(columns, row, strict=False):
        if name == "metadata":
            if value.strip():
                metadata = parse_object(value)
                if not isinstance(metadata, dict):
                    raise ValueError("the metadata column is not a JSON object")
                extra = {**metadata, **extra}
        elif name in EVENT_FIELDS:
            if value != "" or name in REQUIRED_CSV_COLUMNS:
                event[name] = value
        elif value != "":
            extra[name] = value
    if extra:
        event["metadata"] = extra
    return event


def _csv_columns(reader: Iterator[list[str]], lines: _CsvLines) -> list[str]:
    try:
        header = next(reader)
    except StopIteration:
        raise FileError("The CSV file is empty: it needs a header line.") from None
    except csv.Error as error:
        raise FileError(f"The CSV header cannot be read: {error}.") from None
    problem = lines.take()[3]
    if problem:
        raise FileError(f"The CSV header cannot be read: {problem}")
    columns = [name.strip() for name in header]
    missing = [name for name in REQUIRED_CSV_COLUMNS if name not in columns]
    if missing:
        raise FileError(f"The CSV header has no column {', '.join(missing)} (it has: {', '.join(columns)}).")
    if len(set(columns)) != len(columns):
        raise FileError("The CSV header names a column twice.")
    return columns


def _csv_record(columns: list[str], row: list[str], span: tuple[int, int, int, str | None]) -> Record | None:
    number, offset, length, problem = span
    if problem:
        return Record(number, offset, length, code="bad_request", message=problem)
    if not row or row == [""]:
        return None
    if len(row) != len(columns):
        return Record(
            number,
            offset,
            length,
            code="validation_error",
            message=f"The row has {len(row)} fields; the header has {len(columns)}.",
        )
    try:
        return Record(number, offset, length, item=serialize(_csv_event(columns, row)))
    except (ValueError, RecursionError) as error:
        return Record(number, offset, length, code="bad_request", message=f"The row cannot be sent: {error}.")


def csv_records(stream: IO[bytes]) -> Iterator[Record]:
    """Rows of a CSV file with a header: ``user_id``, ``action`` required; ``event_id``, ``occurred_at``,
    ``metadata`` (a JSON object) optional; any other column becomes a metadata key (a string)."""
    lines = _CsvLines(read_lines(stream))
    csv.field_size_limit(MAX_LINE_BYTES * 16)
    reader = csv.reader(lines, strict=True)
    columns = _csv_columns(reader, lines)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            number, offset, length, _ = lines.take()
            yield Record(number, offset, length, code="bad_request", message=f"The CSV row cannot be read: {error}.")
            continue
        record = _csv_record(columns, row, lines.take())
        if record is not None:
            yield record


def header_span(stream: IO[bytes]) -> bytes:
    """The CSV header line as in the file (it heads the rejects file too)."""
    stream.seek(0)
    return stream.readline(MAX_LINE_BYTES)
