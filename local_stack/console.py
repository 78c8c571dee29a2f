"""What ``run`` prints: one line per request, errors with their message, and (verbose) the functions' logs.

A request line: time, method, path (never the query string, which may hold an ``api_key``, nor a
header), status, milliseconds, the function that served it, and a note (the error of a 5xx or of a
function; for a rollup run, the events it counted and its ``as_of``)::

    14:03:07  POST   /v1/events/batch                       200    84 ms  IngestFunction
    14:04:00  RUN    schedule                               ok    412 ms  RollupFunction  events 500, as_of 2026-...

The functions' own output (Powertools' JSON lines, EMF documents, tracebacks) goes to
``<log dir>/<Function>.log``; ``FunctionLogs`` follows those files: it hands EMF documents to the
metrics, prints every line with ``verbose``, and else only the error records, as one line each.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from local_stack.httpserver import HttpRequest, HttpResponse
from local_stack.lambdas import InvokeResult, function_log_path, result_note

POLL_SECONDS = 0.2
_ERROR_LEVELS = frozenset({"ERROR", "CRITICAL"})
_PATH_WIDTH = 38


class Console:
    """Thread-safe lines on ``out``; the ``access_log`` of the servers and the scheduler's hook."""

    def __init__(self, verbose: bool, out: TextIO | None = None) -> None:
        self.verbose = verbose
        self._out = out or sys.stdout
        self._lock = threading.Lock()

    def print(self, text: str) -> None:
        with self._lock:
            self._out.write(text + "\n")
            self._out.flush()

    def request(self, request: HttpRequest, response: HttpResponse, seconds: float) -> None:
        self._line(
            request.method,
            request.path,
            str(response.status),
            seconds,
            function=response.served_by,
            note=response.note,
        )

    def scheduled(self, function_id: str, result: InvokeResult | None, seconds: float) -> None:
        note: str | None = "the invocation failed (see the log above)"
        status = "error"
        if result is not None:
            status, note = ("error" if result.function_error else "ok"), result_note(result)
        self._line("RUN", "schedule", status, seconds, function=function_id, note=note)

    def _line(
        self, method: str, path: str, status: str, seconds: float, *, function: str | None, note: str | None
    ) -> None:
        shown = path if len(path) <= _PATH_WIDTH else path[: _PATH_WIDTH - 3] + "..."
        line = f"{datetime.now():%H:%M:%S}  {method:<6} {shown:<{_PATH_WIDTH}} {status:>5} {seconds * 1000:6.0f} ms"
        if function:
            line += f"  {function}"
        if note:
            line += f"  {note}"
        self.print(line)

    def function_line(self, function_id: str, line: str) -> None:
        """A line a function wrote: all of it when verbose, else one line for an error record."""
        if self.verbose:
            self.print(f"  {function_id} | {line}")
            return
        error = _error_message(line)
        if error is not None:
            self.print(f"  {function_id} ERROR {error}")


def _error_message(line: str) -> str | None:
    """The message of an error record (a Powertools JSON line at ERROR, or Lambda's ``[ERROR]`` line)."""
    if line.startswith("[ERROR]"):
        return line.removeprefix("[ERROR]").strip()[:500]
    record = parse_json_line(line)
    if record is None or str(record.get("level", "")).upper() not in _ERROR_LEVELS:
        return None
    message = str(record.get("message", ""))
    exception = record.get("exception_name")
    return f"{message} ({exception})"[:500] if exception else message[:500]


def parse_json_line(line: str) -> dict[str, Any] | None:
    """A JSON object written on one line (a Powertools log record, an EMF document); None for other text."""
    if not line.startswith("{"):
        return None
    try:
        document = json.loads(line)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


class FunctionLogs:
    """Follows each function's log file from its current end, handing each new line to ``on_line``."""

    def __init__(self, log_dir: Path, function_ids: Iterable[str], on_line: Callable[[str, str], None]) -> None:
        self._files = {function_id: function_log_path(log_dir, function_id) for function_id in function_ids}
        self._on_line = on_line
        self._positions = {function_id: _size(path) for function_id, path in self._files.items()}
        self._partial: dict[str, bytes] = dict.fromkeys(self._files, b"")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="function-logs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.poll()

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.poll()

    def poll(self) -> None:
        for function_id, path in self._files.items():
            try:
                with path.open("rb") as log:
                    log.seek(self._positions[function_id])
                    data = log.read()
            except FileNotFoundError:
                continue
            if not data:
                continue
            self._positions[function_id] += len(data)
            *lines, rest = (self._partial[function_id] + data).split(b"\n")
            self._partial[function_id] = rest
            for raw in lines:
                line = raw.decode("utf-8", errors="replace").rstrip("\r")
                if line:
                    try:
                        self._on_line(function_id, line)
                    except Exception as error:
                        print(f"Could not handle a line of {function_id}: {error}", file=sys.stderr)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
