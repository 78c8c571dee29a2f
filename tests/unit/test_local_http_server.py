"""The local stack's HTTP connection handling without sockets: a scripted transport feeds the bytes
(in any cut), the app records what it was given; framing, strictness and deadlines are checked."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from local_stack import httpserver
from local_stack.httpserver import HttpRequest, HttpResponse


class Transport:
    """Stands in for a socket: ``recv`` hands out the scripted pieces (a TimeoutError piece raises it)."""

    def __init__(self, pieces: Iterable[bytes | type[TimeoutError]]) -> None:
        self.pieces = list(pieces)
        self.sent = b""
        self.closed = False
        self.timeouts: list[float | None] = []

    def recv(self, _size: int) -> bytes:
        if not self.pieces:
            return b""
        piece = self.pieces.pop(0)
        if piece is TimeoutError:
            raise TimeoutError
        assert isinstance(piece, bytes)
        return piece

    def settimeout(self, seconds: float | None) -> None:
        self.timeouts.append(seconds)

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def shutdown(self, _how: int) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class EchoApp:
    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []

    def handle(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        body = json.dumps({"length": len(request.body), "too_large": request.too_large}).encode()
        return HttpResponse(200, [("Content-Type", "application/json")], body)

    def protocol_error(self, status: int, message: str) -> HttpResponse:
        return HttpResponse(status, [("Content-Type", "application/json")], json.dumps({"message": message}).encode())


def serve(pieces: Iterable[bytes | type[TimeoutError]], max_body: int = 1000) -> tuple[EchoApp, Transport]:
    app, transport = EchoApp(), Transport(pieces)
    handler = httpserver._ConnectionHandler(transport, "127.0.0.1", app, max_body, None)  # type: ignore[arg-type]
    handler.serve()
    return app, transport


def statuses(sent: bytes) -> list[int]:
    """The status of every answer sent (the echo app's bodies never contain a status line)."""
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", sent)]


def chunked(body: bytes, sizes: list[int]) -> bytes:
    out, position = b"", 0
    for size in sizes:
        part = body[position : position + size]
        position += size
        if part:
            out += b"%x;ext=1\r\n%s\r\n" % (len(part), part)
    return out + b"0\r\nX-Trailer: t\r\n\r\n"


@given(
    body=st.binary(min_size=1, max_size=300),
    sizes=st.lists(st.integers(1, 50), min_size=1, max_size=20),
    cuts=st.lists(st.integers(1, 40), min_size=1, max_size=30),
)
def test_a_chunked_body_is_read_whole_however_the_bytes_arrive(body: bytes, sizes: list[int], cuts: list[int]) -> None:
    # Given a chunked request (with extensions and a trailer), cut into arbitrary pieces on the wire
    sizes.append(len(body))  # the last chunk takes whatever is left
    wire = b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(body, sizes)
    pieces, position = [], 0
    for cut in cuts:
        pieces.append(wire[position : position + cut])
        position += cut
    pieces.append(wire[position:])

    # When it is served
    app, transport = serve([piece for piece in pieces if piece])

    # Then the app got exactly the body
    assert [request.body for request in app.requests] == [body]
    assert statuses(transport.sent) == [200]


def test_a_chunked_body_over_the_limit_is_flagged_not_kept() -> None:
    wire = b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"a" * 30, [10, 10, 10])
    app, _ = serve([wire], max_body=25)
    assert [(request.body, request.too_large) for request in app.requests] == [(b"", True)]


def test_keep_alive_requests_are_answered_in_order_on_one_connection() -> None:
    wire = (
        b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
        b"GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    )
    app, transport = serve([wire[:10], wire[10:57], wire[57:]])
    assert [request.target for request in app.requests] == ["/a", "/b", "/c"]
    assert statuses(transport.sent) == [200, 200, 200]
    assert transport.closed


@pytest.mark.parametrize(
    "head",
    [
        b"GET /x HTTP/1.1\r\nHost: h\r\nX-A: 1\rX-B: 2\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: h\nX-A: 1\r\n\r\n",
        b"GET /x HTTP/1.1\nHost: h\n\n",
        b"GET /x HTTP/1.1\r\nHost: h\r\nno colon\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\tfolded\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
        b"GET /x HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
        b"\x16\x03\x01\x02\x00",  # a TLS hello on the plain port
    ],
)
def test_a_malformed_request_is_a_400_and_the_connection_closes(head: bytes) -> None:
    # Even when the bytes come one at a time
    app, transport = serve([head[i : i + 1] for i in range(len(head))])
    assert app.requests == []
    assert statuses(transport.sent) == [400]
    assert b"connection: close" in transport.sent.lower()
    assert transport.closed


def test_a_crlf_split_across_reads_is_not_a_bare_cr() -> None:
    app, transport = serve([b"GET /x HTTP/1.1\r", b"\nHost: h\r", b"\n\r", b"\n"])
    assert statuses(transport.sent) == [200]
    assert len(app.requests) == 1


def test_an_idle_connection_is_closed_without_an_answer() -> None:
    app, transport = serve([TimeoutError])
    assert (app.requests, transport.sent, transport.closed) == ([], b"", True)
    assert transport.timeouts[0] == httpserver.IDLE_TIMEOUT_SECONDS


def test_a_request_that_does_not_arrive_in_time_is_a_408(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a client that sends the head, then trickles the body and stalls
    monkeypatch.setattr(httpserver, "REQUEST_TIMEOUT_SECONDS", 5.0)
    head = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n"
    app, transport = serve([head, b"a", b"b", TimeoutError])

    # Then it gets a 408 and the connection closes; every wait was within the request's deadline
    assert app.requests == []
    assert statuses(transport.sent) == [408]
    assert transport.closed
    assert all(timeout is not None and timeout <= 5.0 for timeout in transport.timeouts[1:])


def test_a_body_at_the_limit_is_kept_and_one_byte_more_is_flagged() -> None:
    def body_of(length: int) -> HttpRequest:
        wire = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % length + b"z" * length
        app, _ = serve([wire], max_body=100)
        return app.requests[0]

    assert (len(body_of(100).body), body_of(100).too_large) == (100, False)
    assert (body_of(101).body, body_of(101).too_large) == (b"", True)


def test_expect_100_continue_is_answered_before_the_body() -> None:
    head = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
    app, transport = serve([head, b"ok"])
    assert statuses(transport.sent) == [100, 200]
    assert app.requests[0].body == b"ok"


def test_no_body_is_sent_for_head_or_204() -> None:
    class NoContent(EchoApp):
        def handle(self, request: HttpRequest) -> HttpResponse:
            return HttpResponse(204 if request.method == "DELETE" else 200, [], b"body")

    app, transport = (
        NoContent(),
        Transport([b"HEAD /x HTTP/1.1\r\nHost: h\r\n\r\nDELETE /x HTTP/1.1\r\nHost: h\r\n\r\n"]),
    )
    httpserver._ConnectionHandler(transport, "127.0.0.1", app, 10, None).serve()  # type: ignore[arg-type]
    assert statuses(transport.sent) == [200, 204]
    assert b"body" not in transport.sent
