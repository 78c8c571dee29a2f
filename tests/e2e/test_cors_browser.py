"""A real browser sends an event with a publishable ingest key from a page on an allowed origin, and
is refused from another: the preflight, the CORS headers and the stored events, end to end."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from selenium import webdriver

from tests.e2e.conftest import Stack, free_port, send

pytestmark = [pytest.mark.e2e, pytest.mark.local_only]  # serves its pages on this machine

PAGE = b"""<!doctype html><meta charset="utf-8"><title>pending</title><script>
const params = new URLSearchParams(location.search);
fetch(params.get("api") + "/v1/events", {
  method: "POST",
  headers: {"content-type": "application/json", "x-api-key": params.get("key")},
  body: JSON.stringify({event_id: params.get("event"), user_id: "web-user", action: "page.view"}),
}).then((answer) => { document.title = "status " + answer.status; })
  .catch(() => { document.title = "blocked"; });
</script>"""


class PageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *_: object) -> None:
        """Quiet: the test says what matters."""


@pytest.fixture
def page_origins() -> Iterator[tuple[str, str]]:
    """Two web origins serving the page: the tenant allows the first only."""
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), PageHandler) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tuple(f"http://127.0.0.1:{server.server_address[1]}" for server in servers)  # type: ignore[misc]
    for server in servers:
        server.shutdown()


def title_after_load(browser: webdriver.Chrome, url: str, timeout: float = 60) -> str:
    browser.get(url)
    deadline = time.monotonic() + timeout
    while browser.title == "pending" and time.monotonic() < deadline:
        time.sleep(0.2)
    return str(browser.title)


def test_a_page_on_an_allowed_origin_sends_events_and_another_is_refused(
    stack: Stack, browser: webdriver.Chrome, page_origins: tuple[str, str]
) -> None:
    allowed, other = page_origins
    # Given a tenant that allows one origin, and its publishable ingest key
    tenant = stack.new_tenant()
    patched = send(
        stack, "PATCH", f"/v1/tenants/{tenant['tenant_id']}", {"allowed_origins": [allowed]}, stack.admin_key
    )
    assert patched.status == 200, patched.body
    created = send(stack, "POST", f"/v1/tenants/{tenant['tenant_id']}/keys", {"role": "ingest"}, stack.admin_key)
    ingest_key = created.body["api_key"]
    # When a page on each origin sends an event with it
    query = {"api": stack.api, "key": ingest_key}
    sent = title_after_load(browser, f"{allowed}/?{urlencode({**query, 'event': 'web-1'})}")
    refused = title_after_load(browser, f"{other}/?{urlencode({**query, 'event': 'web-2'})}")
    # Then the allowed page reads its 201, the other is blocked by the browser, before any POST
    assert sent == "status 201"
    assert refused == "blocked"
    stored = send(stack, "GET", "/v1/users/web-user/events", key=tenant["api_key"])
    assert [event["event_id"] for event in stored.body["items"]] == ["web-1"], json.dumps(stored.body)
