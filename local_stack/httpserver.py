"""The HTTP plumbing shared by the API Gateway emulation and the Lambda Invoke API.

An app is a plain object turning an ``HttpRequest`` into an ``HttpResponse``; this module only moves
bytes (threads, keep-alive, Content-Length or chunked bodies, the body size limit), so the apps can be
tested without sockets.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpRequest:
    method: str
    target: str
    """The request target as sent: raw (percent-encoded) path and query."""
    headers: list[tuple[str, str]]
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    too_large: bool = False
    """The body is over the server's limit and was not read (``body`` is empty)."""

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


class HttpApp(Protocol):
    def handle(self, request: HttpRequest) -> HttpResponse: ...

    def protocol_error(self, status: int, message: str) -> HttpResponse:
        """The answer to a request that could not be parsed (bad request line, bad headers ...)."""
        ...


_MAX_DISCARD = 64 * 1024 * 1024
# Hop-by-hop and framing headers: the server sets them itself.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "local-stack"
    sys_version = ""
    app: HttpApp
    max_body: int

    def _handle(self) -> None:
        try:
            body, too_large = self._read_body()
        except ValueError:
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad Content-Length or chunked body")
            return
        request = HttpRequest(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            too_large=too_large,
        )
        try:
            response = self.app.handle(request)
        except Exception:  # the apps answer every error themselves; this is the last resort
            logger.exception("Unhandled error answering %s %s", self.command, self.path)
            response = HttpResponse(502, [("Content-Type", "application/json")], b'{"message": "Internal error"}')
        self._send(response)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def _read_body(self) -> tuple[bytes, bool]:
        """The body, or (b"", True) when it is over ``max_body``: then it is read and dropped, so that a
        client that sends the whole body before reading the answer still gets the answer."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError(length)
        if length <= self.max_body:
            return self.rfile.read(length), False
        self._discard(length)
        return b"", True

    def _read_chunked(self) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk_size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if chunk_size == 0:
                while self.rfile.readline() not in {b"\r\n", b"\n", b""}:  # trailers
                    pass
                return (b"", True) if size > self.max_body else (b"".join(chunks), False)
            size += chunk_size
            if size > self.max_body:
                self._discard(chunk_size)
                chunks.clear()
            else:
                chunks.append(self.rfile.read(chunk_size))
            self.rfile.readline()

    def _discard(self, length: int) -> None:
        if length > _MAX_DISCARD:  # not worth reading: the client will see the connection close
            self.close_connection = True
            return
        while length > 0:
            read = len(self.rfile.read(min(length, 1 << 20)) or b"")
            if not read:
                break
            length -= read

    def _send(self, response: HttpResponse) -> None:
        try:
            self.send_response(response.status)
            for name, value in response.headers:
                if name.lower() not in _FRAMING_HEADERS:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and response.status not in {HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED}:
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:  # noqa: ARG002
        """Malformed requests get the app's JSON error, never http.server's HTML page."""
        self.close_connection = True
        if not hasattr(self, "command") or self.command is None:
            self.command = "GET"
        self._send(self.app.protocol_error(code, message or HTTPStatus(code).phrase))

    def log_message(self, format: str, *args: object) -> None:
        logger.info("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def make_server(app: HttpApp, host: str, port: int, max_body: int) -> ThreadingHTTPServer:
    """A threaded HTTP/1.1 server for ``app``, bound (``port=0`` picks a free one), not yet serving."""
    handler = type("Handler", (_Handler,), {"app": app, "max_body": max_body})
    return _Server((host, port), handler)


def serve_in_thread(server: ThreadingHTTPServer, name: str) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True)
    thread.start()
    return thread


def server_url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"
