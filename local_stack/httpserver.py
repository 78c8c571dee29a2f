"""The HTTP plumbing shared by the API Gateway emulation and the Lambda Invoke API.

An app is a plain object turning an ``HttpRequest`` into an ``HttpResponse``; this module only moves
bytes, so the apps can be tested without sockets. Parsing and framing are h11's (a strict, maintained
HTTP/1.1 implementation); the sockets and threads are the standard library's ``socketserver``.

What it guarantees, as API Gateway's front door does:

- a listen backlog of ``LISTEN_BACKLOG`` (``socketserver``'s default of 5 made a burst of new
  connections overflow the accept queue, which the clients saw as connection resets), one thread
  per connection;
- strictness: a malformed request line or header (a bare CR or LF, a line without a colon, an
  obsolete line folding), a bad or conflicting ``Content-Length``, a ``Transfer-Encoding`` other than
  ``chunked`` or one sent with a ``Content-Length``, or a bad chunk gets a 400 and the connection is
  closed;
- deadlines: a new or kept-alive connection that sends nothing for ``IDLE_TIMEOUT_SECONDS`` is closed;
  a request (head and body) must arrive within ``REQUEST_TIMEOUT_SECONDS`` (else 408 and close), so a
  client that trickles bytes cannot hold a thread;
- a body over ``max_body`` is read and dropped (up to ``MAX_DISCARD_BYTES``), so that a client that
  sends the whole body before reading still gets the app's 413; closes are lingering (the unread
  input is drained briefly), so a client never loses its answer to a reset.

Nothing here logs a request's target or headers: the access log (``on_response``) gets the request
and writes what it chooses (the path, never the query string or a header).
"""

from __future__ import annotations

import logging
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Protocol

import h11

logger = logging.getLogger(__name__)

LISTEN_BACKLOG = 1024
IDLE_TIMEOUT_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 30.0
MAX_HEAD_BYTES = 64 * 1024
MAX_DISCARD_BYTES = 64 * 1024 * 1024
_LINGER_SECONDS = 1.0
_RECEIVE_SIZE = 64 * 1024
# Hop-by-hop and framing headers: the server sets them itself.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}
_NO_BODY_STATUSES = frozenset({HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED})
# In a request head, CR and LF only ever come as CRLF, and no line starts with a space or tab (obs-fold).
_LOOSE_LINE_BREAK = re.compile(rb"\r(?!\n)|(?<!\r)\n|\r\n[ \t]")


@dataclass(frozen=True)
class HttpRequest:
    method: str
    target: str
    """The request target as sent: raw (percent-encoded) path and query."""
    headers: list[tuple[str, str]]
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    too_large: bool = False
    """The body is over the server's limit and was not kept (``body`` is empty)."""

    @property
    def path(self) -> str:
        path = self.target.split("?", 1)[0]
        if "://" in path:  # absolute-form target
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        return path

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def header(self, name: str) -> str | None:
        """The last value of a header (case-insensitive name), as API Gateway's ``headers`` keeps it."""
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return values[-1] if values else None


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    served_by: str | None = None
    """For the access log: the function that produced the answer, if one did."""
    route: str | None = None
    """For the access log and the metrics: the route (resource path) the request matched."""
    note: str | None = None
    """For the access log: an error message or a summary of the result worth a person's eye."""


class HttpApp(Protocol):
    def handle(self, request: HttpRequest) -> HttpResponse: ...

    def protocol_error(self, status: int, message: str) -> HttpResponse:
        """The answer to a request that could not be parsed (bad request line, bad headers ...)."""
        ...


AccessLog = Callable[[HttpRequest, HttpResponse, float], None]
"""Called after each answer with the request, the response and the seconds it took."""


class _ProtocolError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class _Closed(Exception):
    """The client went away (or stayed silent too long) between requests: nothing to answer."""


class _ConnectionHandler:
    """One client connection: requests read with h11, each answered by the app, until either side closes."""

    def __init__(
        self, sock: socket.socket, source_ip: str, app: HttpApp, max_body: int, access_log: AccessLog | None
    ) -> None:
        self.sock, self.source_ip, self.app, self.max_body, self.access_log = sock, source_ip, app, max_body, access_log
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._head_probe = b""
        self._deadline: float | None = None

    def serve(self) -> None:
        try:
            while self._serve_one():
                self.h11.start_next_cycle()
        except _Closed:
            pass
        except OSError as error:  # reset or broken pipe: the client is gone
            logger.debug("Connection from %s ended: %s", self.source_ip, error)
        finally:
            self._close()

    def _serve_one(self) -> bool:
        """Reads and answers one request; False when the connection must close."""
        started = time.monotonic()
        try:
            request = self._read_request()
        except _ProtocolError as error:
            if self.h11.our_state in {h11.IDLE, h11.SEND_RESPONSE}:
                response = self.app.protocol_error(error.status, error.message)
                self._send(response, head_only=False, close=True)
            return False
        if request is None:
            return False
        try:
            response = self.app.handle(request)
        except Exception as error:  # the apps answer every error themselves; this is the last resort
            logger.exception("Unhandled error answering %s %s", request.method, request.path)
            response = HttpResponse(502, [("Content-Type", "application/json")], b'{"message": "Internal error"}')
            response.note = f"{type(error).__name__}: {error}"
        close = self.h11.their_state is not h11.DONE  # an over-large body we did not read to the end
        self._send(response, head_only=request.method == "HEAD", close=close)
        if self.access_log is not None:
            self.access_log(request, response, time.monotonic() - started)
        return self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE

    def _read_request(self) -> HttpRequest | None:
        self._deadline = None
        self._head_probe = bytes(self.h11.trailing_data[0])
        self._check_head()
        event = self._next_event()
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):  # pragma: no cover - h11 gives a Request first
            raise _ProtocolError(400, "Bad request")
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in event.headers.raw_items()]
        names = [name.lower() for name, _ in headers]
        if "transfer-encoding" in names and "content-length" in names:
            raise _ProtocolError(400, "Both Content-Length and Transfer-Encoding")
        body, too_large = self._read_body(event)
        return HttpRequest(
            method=event.method.decode("ascii"),
            target=event.target.decode("latin-1"),
            headers=headers,
            body=body,
            source_ip=self.source_ip,
            too_large=too_large,
        )

    def _read_body(self, request: h11.Request) -> tuple[bytes, bool]:
        """The body, or (b"", True) when it is over ``max_body``: then it is read and dropped (up to
        MAX_DISCARD_BYTES; past that the connection closes after the answer)."""
        declared = next((int(value) for name, value in request.headers if name == b"content-length"), None)
        if declared is not None and declared > MAX_DISCARD_BYTES:
            return b"", True
        if self.h11.they_are_waiting_for_100_continue and (declared is None or declared <= self.max_body):
            self.sock.sendall(self.h11.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
        chunks: list[bytes] = []
        size = 0
        while True:
            event = self._next_event()
            if isinstance(event, h11.EndOfMessage):
                return (b"", True) if size > self.max_body else (b"".join(chunks), False)
            if isinstance(event, h11.ConnectionClosed):
                raise _Closed
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size <= self.max_body:
                    chunks.append(bytes(event.data))
                else:
                    chunks.clear()
                    if size > MAX_DISCARD_BYTES:
                        return b"", True

    def _next_event(self) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as error:
                raise _ProtocolError(400, f"Bad request: {error}") from None
            if event is not h11.NEED_DATA:
                return event
            self._receive()

    def _receive(self) -> None:
        """Feeds the next bytes from the socket to h11, within the deadlines."""
        waiting_for_request = self.h11.their_state is h11.IDLE and not self._head_probe
        timeout = IDLE_TIMEOUT_SECONDS if waiting_for_request else self._remaining()
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(_RECEIVE_SIZE)
        except TimeoutError:
            if waiting_for_request:
                raise _Closed from None
            raise _ProtocolError(408, "Request timed out") from None
        if self._deadline is None:
            self._deadline = time.monotonic() + REQUEST_TIMEOUT_SECONDS
        if self.h11.their_state is h11.IDLE:
            self._head_probe += data
            self._check_head()
        self.h11.receive_data(data)

    def _remaining(self) -> float:
        if self._deadline is None:
            self._deadline = time.monotonic() + REQUEST_TIMEOUT_SECONDS
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise _ProtocolError(408, "Request timed out")
        return remaining

    def _check_head(self) -> None:
        """Refuses a head whose lines do not all end with CRLF (h11 would take a bare LF as a line end)."""
        end = self._head_probe.find(b"\r\n\r\n")
        # An incomplete head may end in the CR of a CRLF whose LF is still on its way.
        head = self._head_probe.removesuffix(b"\r") if end < 0 else self._head_probe[: end + 2]
        if _LOOSE_LINE_BREAK.search(head.lstrip(b"\r\n")):
            raise _ProtocolError(400, "Bad request: a bare CR or LF, or a folded line, in the request head")
        if end >= 0:
            self._head_probe = b""

    def _send(self, response: HttpResponse, head_only: bool, close: bool) -> None:
        headers = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in response.headers
            if name.lower() not in _FRAMING_HEADERS
        ]
        has_body = response.status not in _NO_BODY_STATUSES and response.status >= 200
        if has_body:
            headers.append((b"Content-Length", str(len(response.body)).encode()))
        if close:
            headers.append((b"Connection", b"close"))
        try:
            reason = _REASONS.get(response.status, b"")
            out = self.h11.send(h11.Response(status_code=response.status, headers=headers, reason=reason))
        except h11.LocalProtocolError:  # e.g. a header value h11 refuses: the app's fault, not the client's
            logger.exception("Cannot send the answer to %s", self.source_ip)
            return
        if has_body and not head_only and response.body:
            out = (out or b"") + (self.h11.send(h11.Data(data=response.body)) or b"")
        out = (out or b"") + (self.h11.send(h11.EndOfMessage()) or b"")
        self.sock.settimeout(REQUEST_TIMEOUT_SECONDS)
        self.sock.sendall(out)

    def _close(self) -> None:
        """A lingering close: stop sending, then drain what the client still sends for a moment, so the
        kernel does not answer unread input with a reset that could destroy the answer in flight."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + _LINGER_SECONDS
            drained = 0
            while drained < MAX_DISCARD_BYTES and (remaining := deadline - time.monotonic()) > 0:
                self.sock.settimeout(remaining)
                data = self.sock.recv(_RECEIVE_SIZE)
                if not data:
                    break
                drained += len(data)
        except OSError:
            pass
        finally:
            self.sock.close()


class Server(socketserver.ThreadingTCPServer):
    """One daemon thread per connection; a deep listen backlog."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], app: HttpApp, max_body: int, access_log: AccessLog | None) -> None:
        self.app, self.max_body, self.access_log = app, max_body, access_log
        super().__init__(address, socketserver.BaseRequestHandler)

    def finish_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _ConnectionHandler(request, client_address[0], self.app, self.max_body, self.access_log).serve()

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        """The connection handler closes its socket itself (lingering)."""

    def handle_error(self, request: object, client_address: object) -> None:  # noqa: ARG002 - socketserver's signature
        logger.exception("Error on the connection from %s", client_address)


def make_server(app: HttpApp, host: str, port: int, max_body: int, access_log: AccessLog | None = None) -> Server:
    """A threaded HTTP/1.1 server for ``app``, bound (``port=0`` picks a free one), not yet serving."""
    return Server((host, port), app, max_body, access_log)


def serve_in_thread(server: Server, name: str) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True)
    thread.start()
    return thread


def server_url(server: Server) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"
