"""HTTP with the standard library: one keep-alive connection per thread, JSON in and out, the API's errors.

``http.client`` rather than ``requests``/``httpx``: the SDK then adds no dependency (and no import time) to
the apps and Lambda functions that embed it, and nothing here needs more than one persistent connection.
"""

from __future__ import annotations

import gzip
import http.client
import json
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from activity_tracker import __version__

USER_AGENT = f"activity-tracker-python/{__version__}"
NETWORK_ERRORS = (OSError, http.client.HTTPException)
"""What a request can raise when the network or the server's connection fails (timeouts included)."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    """Lower-case names."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Transport(Protocol):
    """Sends one request; raises one of ``NETWORK_ERRORS`` when no response came back."""

    def send(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]) -> Response: ...

    def close(self) -> None: ...


class HttpTransport:
    """``http.client`` with a persistent connection per thread (so the worker and the caller never share one)."""

    def __init__(self, endpoint: str, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(endpoint.rstrip("/"))
        if parsed.scheme not in {"http", "https"} or not parsed.hostname:
            raise ValueError(f"endpoint must be an http(s) URL, not {endpoint!r}")
        self._scheme = parsed.scheme
        self._host = parsed.hostname
        self._port = parsed.port
        self._base_path = parsed.path
        self._timeout = timeout
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            kind = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            connection = kind(self._host, self._port, timeout=self._timeout)
            self._local.connection = connection
            with self._lock:
                self._all.append(connection)
        return connection

    def send(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]) -> Response:
        connection = self._connection()
        try:
            connection.request(method, self._base_path + path, body=body, headers=dict(headers))
            answer = connection.getresponse()
            payload = answer.read()
        except BaseException:
            # Whatever state the connection is in, it is not reused.
            connection.close()
            raise
        if answer.will_close:
            connection.close()
        return Response(answer.status, {name.lower(): value for name, value in answer.getheaders()}, payload)

    def close(self) -> None:
        with self._lock:
            for connection in self._all:
                connection.close()
            self._all.clear()
        self._local = threading.local()


@dataclass
class ApiError(Exception):
    """An answer of the API that is an error: its status and the contract's ``code``, ``message``, ``details``."""

    status: int
    code: str
    message: str
    details: list[Any] = field(default_factory=list)
    retry_after: str | None = None

    def __str__(self) -> str:
        return f"{self.message} ({self.status} {self.code})"

    @classmethod
    def from_response(cls, response: Response) -> ApiError:
        try:
            error = response.json()["error"]
            return cls(
                response.status,
                str(error.get("code", "error")),
                str(error.get("message", "")),
                list(error.get("details") or []),
                response.headers.get("retry-after"),
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            text = response.body[:300].decode("utf-8", errors="replace").strip()
            return cls(
                response.status,
                "http_error",
                text or f"HTTP {response.status}",
                [],
                response.headers.get("retry-after"),
            )


def encode_json(value: Any, *, compress: bool) -> tuple[bytes, dict[str, str]]:
    """A JSON body and its headers; gzip (level 1: JSON shrinks about 5x already, and it is fast) if asked."""
    body = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    headers = {"content-type": "application/json"}
    if compress:
        body = gzip.compress(body, compresslevel=1, mtime=0)
        headers["content-encoding"] = "gzip"
    return body, headers


class ApiClient:
    """The API's routes as JSON calls: the key on every request, errors raised as ``ApiError``."""

    def __init__(self, endpoint: str, api_key: str, *, timeout: float = 30.0, transport: Transport | None = None):
        if not api_key:
            raise ValueError("an API key is required")
        self.api_key = api_key
        self.transport: Transport = transport or HttpTransport(endpoint, timeout)

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {"x-api-key": self.api_key, "user-agent": USER_AGENT, "accept": "application/json", **(extra or {})}

    def send(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Response:
        return self.transport.send(method, path, body, self.headers(headers))

    def call(self, method: str, path: str, payload: Any = None, query: Mapping[str, Any] | None = None) -> Any:
        """One request; the parsed JSON answer (None for 204), or ``ApiError``."""
        if query:
            present = {name: value for name, value in query.items() if value is not None}
            if present:
                path = f"{path}?{urllib.parse.urlencode(present)}"
        body, headers = encode_json(payload, compress=False) if payload is not None else (None, {})
        response = self.send(method, path, body, headers)
        if response.status >= 400:
            raise ApiError.from_response(response)
        try:
            return response.json()
        except ValueError as error:
            raise ApiError(response.status, "bad_response", f"The answer is not JSON: {error}") from None

    def close(self) -> None:
        self.transport.close()


def user_path(user_id: str) -> str:
    """A user id in a path: every character percent-encoded but the unreserved ones (``a/b`` -> ``a%2Fb``)."""
    return urllib.parse.quote(user_id, safe="")
