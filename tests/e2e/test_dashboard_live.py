"""The dashboard's live feed against the contract's "Live activity (WebSocket)": a stand-in WebSocket
server (RFC 6455, standard library) checks the key and the subscription, pushes events, and the page
lists them as text. The stack's dashboard learns the server's URL from WEBSOCKET_URL."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.conftest import Stack, free_port, start_stack, stop_stack

pytestmark = [pytest.mark.e2e, pytest.mark.local_only]  # starts a local stack of its own

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
XSS = "<img src=x onerror=alert(1)>"
TEXT, CLOSE = 0x1, 0x8


class LiveFeedStandIn(threading.Thread):
    """Accepts WebSocket connections whose ``api_key`` is in ``keys``; answers a subscribe with
    ``subscribed`` and then pushes ``events``; refuses any other key at connect (HTTP 401)."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        super().__init__(daemon=True)
        self.server = socket.create_server(("127.0.0.1", free_port()))
        self.port = self.server.getsockname()[1]
        self.keys: set[str] = set()
        self.events = events
        self.received: list[dict[str, Any]] = []
        self.refused = 0

    def run(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(connection,), daemon=True).start()

    def serve(self, connection: socket.socket) -> None:
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = connection.recv(4096)
                if not chunk:
                    return
                request += chunk
            lines = request.decode("latin-1").split("\r\n")
            target = lines[0].split(" ")[1]
            headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
            if parse_qs(urlsplit(target).query).get("api_key", [""])[0] not in self.keys:
                self.refused += 1
                connection.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
                return
            accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + GUID).encode()).digest())  # noqa: S324 - the protocol's hash
            connection.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            while (message := self.read_text(connection)) is not None:
                self.received.append(message)
                if message.get("action") == "subscribe":
                    self.send(connection, {"type": "subscribed", "user_id": message.get("user_id")})
                    for event in self.events:
                        self.send(connection, {"type": "event", "event": event})

    @staticmethod
    def read_text(connection: socket.socket) -> dict[str, Any] | None:
        def exactly(size: int) -> bytes:
            data = b""
            while len(data) < size:
                chunk = connection.recv(size - len(data))
                if not chunk:
                    raise ConnectionError
                data += chunk
            return data

        try:
            first, second = exactly(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", exactly(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", exactly(8))[0]
            mask = exactly(4) if second & 0x80 else b"\0\0\0\0"
            payload = bytes(byte ^ mask[index % 4] for index, byte in enumerate(exactly(length)))
        except (ConnectionError, OSError):
            return None
        if first & 0x0F == CLOSE:
            return None
        loaded: dict[str, Any] = json.loads(payload)
        return loaded

    @staticmethod
    def send(connection: socket.socket, message: dict[str, Any]) -> None:
        payload = json.dumps(message).encode()
        header = bytes([0x80 | TEXT])
        if len(payload) < 126:
            header += bytes([len(payload)])
        else:
            header += bytes([126]) + struct.pack(">H", len(payload))
        connection.sendall(header + payload)

    def stop(self) -> None:
        self.server.close()


EVENTS = [
    {
        "event_id": f"live-{index}",
        "user_id": user,
        "action": "login",
        "occurred_at": f"2026-01-0{index + 1}T10:00:00.000Z",
        "received_at": f"2026-01-0{index + 1}T10:00:00.100Z",
        "metadata": {},
    }
    for index, user in enumerate(["alice", XSS, "bob"])
]


@pytest.fixture(scope="module")
def live() -> Iterator[LiveFeedStandIn]:
    server = LiveFeedStandIn(EVENTS)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(live: LiveFeedStandIn) -> Iterator[Stack]:
    running = start_stack({"WEBSOCKET_URL": f"ws://127.0.0.1:{live.port}"})
    yield running
    if running.process.poll() is None:
        try:
            stop_stack(running)
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.wait()


def test_the_live_feed_subscribes_and_lists_pushed_events_as_text(
    browser: webdriver.Chrome, stack: Stack, live: LiveFeedStandIn
) -> None:
    # Given a tenant whose key the live feed accepts
    tenant = stack.new_tenant()
    live.keys.add(tenant["api_key"])
    page = stack.request("GET", "/dashboard")
    assert f"connect-src 'self' ws://127.0.0.1:{live.port};" in page.headers["content-security-policy"]
    # When the dashboard opens with that key
    browser.get(f"{stack.api}/dashboard")
    browser.find_element(By.ID, "api-key").send_keys(tenant["api_key"])
    browser.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
    WebDriverWait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#live-list li")) == len(EVENTS))
    # Then it subscribed to every event of the tenant, and lists the pushed events newest first, as text
    assert live.received[0] == {"action": "subscribe"}
    assert browser.find_element(By.ID, "live-panel").get_attribute("data-live") == "subscribed"
    listed = browser.find_elements(By.CSS_SELECTOR, "#live-list li")
    assert [item.get_attribute("data-event-id") for item in listed] == [event["event_id"] for event in reversed(EVENTS)]
    assert listed[1].find_element(By.CSS_SELECTOR, ".who").text == XSS
    assert browser.execute_script("return document.querySelectorAll('img').length") == 0


def test_a_refused_key_is_said_and_retried(browser: webdriver.Chrome, stack: Stack, live: LiveFeedStandIn) -> None:
    # Given a tenant whose key the live feed refuses at connect (the API still accepts it)
    tenant = stack.new_tenant()
    refused_before = live.refused
    browser.get(f"{stack.api}/dashboard")
    browser.find_element(By.ID, "api-key").send_keys(tenant["api_key"])
    browser.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
    # Then the panel says so, and the page keeps the rest of the dashboard
    WebDriverWait(browser, 60).until(lambda d: "refused" in d.find_element(By.ID, "live-status").text)
    assert live.refused > refused_before
    assert browser.find_elements(By.CSS_SELECTOR, "#live-list li") == []
