"""``activity-tracker events import FILE``: batches of up to 500 events, sent by a few threads, retried.

Stops reading (and says so) when a batch cannot be delivered within the retry budget, or on Ctrl-C: then
the summary says what was confirmed and what was not, and running the same command again completes the
import (the events already stored come back as duplicates, thanks to their event ids).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from activity_tracker._delivery import (
    BATCH_ENVELOPE_BYTES,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    BatchSender,
)
from activity_tracker._http import ApiClient
from activity_tracker._retry import RetryPolicy, SystemClock
from activity_tracker.cli.records import Record, csv_records, header_span, ndjson_records

SAFE_BATCH_BYTES = MAX_BATCH_BYTES - 4096


@dataclass
class Summary:
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    unconfirmed: int = 0
    """Sent, but no answer confirmed them (retry budget spent, or Ctrl-C)."""
    not_sent: int = 0
    """Read and batched, but never sent because the import stopped."""
    last_line_read: int = 0
    stopped_because: str | None = None
    errors: list[str] = field(default_factory=list)
    """The first few rejections, for the summary."""
    rejects_path: Path | None = None

    @property
    def processed(self) -> int:
        return self.accepted + self.duplicates + self.rejected + self.unconfirmed


def rejects_paths(source: Path) -> tuple[Path, Path]:
    """``events.rejected.ndjson`` (the rejected lines, verbatim) and ``events.rejected.log`` (why)."""
    return (
        source.with_name(f"{source.stem}.rejected{source.suffix}"),
        source.with_name(f"{source.stem}.rejected.log"),
    )


class Rejects:
    """Copies rejected records from the input file, byte for byte, to the rejects file; reasons to the log."""

    def __init__(self, source: Path, is_csv: bool) -> None:
        self._source = source
        self._is_csv = is_csv
        self.lines_path, self.log_path = rejects_paths(source)
        self._files: tuple[IO[bytes], IO[bytes], IO[str]] | None = None
        """Opened at the first rejection: the input (to copy from), the rejects file, the log."""
        self._lock = threading.Lock()
        for stale in (self.lines_path, self.log_path):
            stale.unlink(missing_ok=True)

    def write(self, record: Record, code: str, message: str) -> None:
        with self._lock:
            if self._files is None:
                self._files = (
                    self._source.open("rb"),
                    self.lines_path.open("wb"),
                    self.log_path.open("w", encoding="utf-8"),
                )
                if self._is_csv:
                    header = header_span(self._files[0])
                    self._files[1].write(header if header.endswith(b"\n") else header + b"\n")
            reader, lines, log = self._files
            reader.seek(record.offset)
            left = record.length
            last = b""
            while left > 0:
                chunk = reader.read(min(left, 1024 * 1024))
                if not chunk:
                    break
                lines.write(chunk)
                last = chunk
                left -= len(chunk)
            if not last.endswith(b"\n"):
                lines.write(b"\n")
            log.write(f"line {record.first_line}: {code}: {message}\n")

    def close(self) -> None:
        for handle in self._files or ():
            handle.close()


def count_lines(path: Path) -> int:
    with path.open("rb") as stream:
        count = 0
        last = b"\n"
        while chunk := stream.read(1024 * 1024):
            count += chunk.count(b"\n")
            last = chunk
        return count + (0 if last.endswith(b"\n") else 1)


def batches(records: Iterator[Record], on_local_reject: Any) -> Iterator[list[Record]]:
    """Groups the valid records into batches under the server's count and size limits."""
    batch: list[Record] = []
    size = BATCH_ENVELOPE_BYTES
    for record in records:
        if record.item is None:
            on_local_reject(record, record.code, record.message)
            continue
        item_size = len(record.item.encode("utf-8"))
        if item_size > MAX_EVENT_BYTES:
            on_local_reject(
                record, "payload_too_large", f"An event is at most {MAX_EVENT_BYTES} bytes; this one is {item_size}."
            )
            continue
        if batch and (len(batch) >= MAX_BATCH_EVENTS or size + item_size + 1 > SAFE_BATCH_BYTES):
            yield batch
            batch, size = [], BATCH_ENVELOPE_BYTES
        batch.append(record)
        size += item_size + 1
    if batch:
        yield batch


class Importer:
    def __init__(
        self,
        client: ApiClient,
        source: Path,
        *,
        file_format: str,
        concurrency: int = 4,
        retry: RetryPolicy,
        compress: bool = True,
        progress: Any = None,
    ) -> None:
        self._client = client
        self._source = source
        self._is_csv = file_format == "csv"
        self._concurrency = concurrency
        self._stop = threading.Event()
        self._sender = BatchSender(
            client,
            retry,
            SystemClock(),
            random.Random(),  # noqa: S311 - jitter
            compress=compress,
            stamp_sent_at=False,  # the file's times are what happened; there is no clock skew to correct
            stopping=self._stop.is_set,
        )
        self._progress = progress
        self._lock = threading.Lock()
        self.summary = Summary()
        self._rejects = Rejects(source, self._is_csv)

    def _reject(self, record: Record, code: str, message: str) -> None:
        self._rejects.write(record, code, message)
        with self._lock:
            self.summary.rejected += 1
            if len(self.summary.errors) < 5:
                self.summary.errors.append(f"line {record.first_line}: {code}: {message}")
            self.summary.rejects_path = self._rejects.lines_path
        self._advance(1)

    def _advance(self, count: int) -> None:
        if self._progress is not None:
            with self._lock:
                summary = self.summary
                self._progress.set_postfix_str(
                    f"accepted {summary.accepted} duplicate {summary.duplicates} rejected {summary.rejected}",
                    refresh=False,
                )
                self._progress.update(count)

    def _send(self, batch: list[Record]) -> None:
        if self._stop.is_set():
            with self._lock:
                self.summary.not_sent += len(batch)
            return
        delivery = self._sender.deliver([record.item or "" for record in batch])
        for rejection in delivery.rejected:
            self._reject(batch[rejection.index], rejection.code, _with_details(rejection.message, rejection.details))
        with self._lock:
            self.summary.accepted += delivery.accepted
            self.summary.duplicates += delivery.duplicates
            self.summary.unconfirmed += len(delivery.failed)
            if delivery.failed and not self._stop.is_set():
                self.summary.stopped_because = f"a batch was not confirmed within the retry budget: {delivery.failure}"
                self._stop.set()
        self._advance(delivery.accepted + delivery.duplicates + len(delivery.failed))

    def run(self) -> Summary:
        """Imports the file; a KeyboardInterrupt stops it cleanly (the summary says so) and is re-raised."""
        in_flight = threading.BoundedSemaphore(self._concurrency * 2)
        futures: list[Future[None]] = []
        interrupted: KeyboardInterrupt | None = None

        def send(batch: list[Record]) -> None:
            try:
                self._send(batch)
            finally:
                in_flight.release()

        pool = ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="import")
        try:
            with self._source.open("rb") as stream:
                records = csv_records(stream) if self._is_csv else ndjson_records(stream)
                for batch in batches(self._tracked(records), self._reject):
                    if self._stop.is_set():
                        break
                    in_flight.acquire()
                    futures.append(pool.submit(send, batch))
                    futures = _pending(futures)
        except KeyboardInterrupt as error:
            interrupted = error
            self.summary.stopped_because = "interrupted (Ctrl-C)"
            self._stop.set()  # the batches on the wire finish their request, but are not retried
        finally:
            pool.shutdown(wait=True)
            self._rejects.close()
        for future in futures:
            future.result()
        if interrupted is not None:
            raise interrupted
        return self.summary

    def _tracked(self, records: Iterator[Record]) -> Iterator[Record]:
        for record in records:
            self.summary.last_line_read = record.first_line
            yield record


def _pending(futures: list[Future[None]]) -> list[Future[None]]:
    """The futures not done yet; a done one that failed raises its error here."""
    for future in futures:
        if future.done():
            future.result()
    return [future for future in futures if not future.done()]


def _with_details(message: str, details: list[Any]) -> str:
    """The API's message, followed by what each ``details`` entry says about which field."""
    notes = [
        f"{detail.get('field')}: {detail.get('message')}" if isinstance(detail, dict) else str(detail)
        for detail in details
    ]
    return f"{message} ({'; '.join(notes)})" if notes else message
