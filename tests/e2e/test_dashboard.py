"""The tenant web dashboard in headless Chromium against the local stack: what the page shows is what the
API answers (read from the DOM's data attributes), hostile user ids render as text, the key stays in the
tab's session storage, and the page holds at 375 and 1440 px."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.browser import ROOT, save_screenshot, set_viewport
from tests.e2e.conftest import Stack, rfc3339, run_rollup, send, start_stack, stop_stack

pytestmark = [pytest.mark.e2e, pytest.mark.local_only]  # starts a local stack of its own

XSS = "<img src=x onerror=alert(1)>"
HEAVY = "heavy-1"
HEAVY_EVENTS = 64  # three pages of the events table
PAGE = 25  # the events table's page
ACTIONS = ("login", "view_item", "add_to_cart", "purchase", "search", "share.link")
USERS = ("alice", "bob", "carol", "dave", "erin", "a/b é")
DAYS = 12
TIMEZONE = "Europe/Kyiv"
WAIT_SECONDS = 60
README_SCREENSHOT = ROOT / "docs" / "dashboard.png"


@dataclass
class Tenant:
    tenant_id: str
    api_key: str


def seeded_events(now: datetime) -> list[dict[str, Any]]:
    """A dozen days of events of a few users (the hostile id among them), a heavy user in the last day."""
    pick = random.Random(16)  # noqa: S311 - test data
    events: list[dict[str, Any]] = []
    for index in range(150):
        user = pick.choice([*USERS, XSS])
        occurred = now - timedelta(days=pick.uniform(0, DAYS - 1), minutes=1)
        action = pick.choice(ACTIONS)
        events.append(
            {"event_id": f"seed-{index}", "user_id": user, "action": action, "occurred_at": rfc3339(occurred)}
        )
    events += [
        {
            "event_id": f"xss-{index}",
            "user_id": XSS,
            "action": "login",
            "occurred_at": rfc3339(now - timedelta(hours=index)),
        }
        for index in range(1, 4)
    ]
    events += [
        {
            "event_id": f"heavy-{index}",
            "user_id": HEAVY,
            "action": ACTIONS[index % len(ACTIONS)],
            "occurred_at": rfc3339(now - timedelta(minutes=10 * index + 5)),
            "metadata": {"n": index, "note": XSS},
        }
        for index in range(HEAVY_EVENTS)
    ]
    return events


def ingest(stack: Stack, key: str, events: list[dict[str, Any]]) -> None:
    for offset in range(0, len(events), 500):
        reply = send(stack, "POST", "/v1/events/batch", {"events": events[offset : offset + 500]}, key)
        assert reply.status == 200, reply.body
        assert reply.body["rejected"] == 0, reply.body


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """A stack of this module's own whose functions wait longer for the emulation: on a busy machine moto's
    TransactWriteItems (a deep copy of the table per item) outlasts the 2 s read timeout, and the retry
    then races the first attempt inside moto (a 500)."""
    # No live feed here (test_dashboard_live.py has one): the page must say so.
    running = start_stack({"AWS_READ_TIMEOUT_SECONDS": "30", "WEBSOCKET_URL": ""})
    yield running
    if running.process.poll() is None:
        try:
            stop_stack(running)
        except subprocess.TimeoutExpired:  # a busy machine: do not leave it behind
            running.process.kill()
            running.process.wait()


@pytest.fixture(scope="module")
def tenant(stack: Stack) -> Tenant:
    created = stack.new_tenant(timezone=TIMEZONE)
    now = datetime.now(UTC)
    ingest(stack, created["api_key"], seeded_events(now))
    # An action cannot hold markup: the API refuses it, so only user ids carry the hostile text.
    refused = send(stack, "POST", "/v1/events", {"user_id": "u", "action": XSS}, created["api_key"])
    assert refused.status == 422
    run_rollup(stack, datetime.now(UTC))
    return Tenant(created["tenant_id"], created["api_key"])


def api(stack: Stack, key: str, path: str) -> dict[str, Any]:
    reply = send(stack, "GET", path, key=key)
    assert reply.status == 200, reply.body
    return dict(reply.body)


def wait_for(driver: webdriver.Chrome, script: str, timeout: float = WAIT_SECONDS) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: d.execute_script(script))


def open_with_key(driver: webdriver.Chrome, stack: Stack, key: str) -> None:
    driver.get(f"{stack.api}/dashboard")
    field = driver.find_element(By.ID, "api-key")
    field.send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()


def loaded(driver: webdriver.Chrome) -> None:
    wait_for(driver, "return document.body.dataset.loaded === 'all'")


def rows(driver: webdriver.Chrome, selector: str, *attributes: str) -> list[tuple[str, ...]]:
    found = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(n => arguments[1].map(a => n.getAttribute(a)))",
        selector,
        list(attributes),
    )
    return [tuple(row) for row in found]


def panel_errors(driver: webdriver.Chrome) -> list[str]:
    texts = driver.execute_script("return [...document.querySelectorAll('[data-role=error]')].map(n => n.textContent)")
    return [text for text in texts if text]


def console_problems(driver: webdriver.Chrome) -> list[str]:
    """CSP violations and uncaught script errors reported by the browser."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")  # type: ignore[no-untyped-call]
        if "Content Security Policy" in entry["message"] or "Uncaught" in entry["message"]
    ]


def assert_no_alert(driver: webdriver.Chrome) -> None:
    try:
        alert = driver.switch_to.alert
    except NoAlertPresentException:
        return
    text = alert.text
    alert.dismiss()
    pytest.fail(f"a script ran: alert({text!r})")


# ---------------------------------------------------------------- the page itself


def test_the_page_is_served_without_a_key_with_a_strict_content_security_policy(stack: Stack) -> None:
    # When the page and its files are asked for without a key
    page = stack.request("GET", "/dashboard")
    script = stack.request("GET", "/dashboard/app.js")
    config = stack.request("GET", "/dashboard/config.json")
    missing = stack.request("GET", "/dashboard/..%2Fapp.py")
    # Then they are served with their types, and the policy allows nothing inline nor from elsewhere
    assert page.status == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert script.headers["content-type"].startswith("text/javascript")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy
    assert "http" not in policy  # no other origin (no WebSocket configured here)
    assert "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert config.body == {"websocket_url": ""}
    # And anything else under /dashboard/ is a 404 in the contract's error shape
    assert missing.status == 404
    assert missing.body["error"]["code"] == "not_found"


# ---------------------------------------------------------------- what the page shows


@pytest.fixture
def shown(browser: webdriver.Chrome, stack: Stack, tenant: Tenant) -> webdriver.Chrome:
    """The seeded tenant's dashboard, opened with its key, at desktop width."""
    set_viewport(browser, 1440)
    open_with_key(browser, stack, tenant.api_key)
    loaded(browser)
    return browser


def test_the_dashboard_shows_the_apis_numbers(shown: webdriver.Chrome, stack: Stack, tenant: Tenant) -> None:
    key = tenant.api_key
    # Given what the API answers
    daily = api(stack, key, "/v1/stats/daily?days=14")
    start, end = daily["items"][0]["date"], daily["items"][-1]["date"]
    to = (datetime.fromisoformat(end) + timedelta(days=1)).date().isoformat()
    trend = api(stack, key, f"/v1/stats/trend?from={start}&to={to}")
    frequency = api(stack, key, f"/v1/stats/frequency?from={start}&to={to}")
    top = api(stack, key, "/v1/stats/top-users?hours=24&limit=10")
    # Then the page shows the same: daily events and users
    assert rows(shown, "#daily-table tbody tr", "data-date", "data-count", "data-users") == [
        (item["date"], str(item["count"]), str(item["users"])) for item in daily["items"]
    ]
    assert sum(item["count"] for item in daily["items"]) > 0
    # the trend per action and day
    assert sorted(rows(shown, "#trend-table tbody tr", "data-date", "data-action", "data-count")) == sorted(
        (item["date"], action, str(count))
        for item in trend["items"]
        for action, count in item["counts"].items()
        if count
    )
    # the frequency, most frequent first
    assert rows(shown, "#frequency-list li", "data-action", "data-total") == [
        (item["action"], str(item["total"])) for item in frequency["items"]
    ]
    # the top users, by events (no points on this API)
    assert rows(shown, "#top-list li", "data-user-id", "data-count") == [
        (item["user_id"], str(item["count"])) for item in top["items"]
    ]
    assert shown.find_element(By.ID, "top-by-label").is_displayed() is False
    # the tenant's time zone and the statistics' as_of, labelled
    assert shown.find_element(By.ID, "timezone").get_attribute("data-timezone") == TIMEZONE
    assert shown.find_element(By.ID, "timezone").text == f"Times in {TIMEZONE}"
    assert shown.find_element(By.ID, "as-of").get_attribute("data-as-of") == daily["as_of"]
    assert shown.find_element(By.ID, "as-of").text.startswith("Statistics up to ")
    # both charts drawn, no error, no policy violation
    assert shown.execute_script("return document.querySelectorAll('.chart canvas').length") == 2
    assert panel_errors(shown) == []
    assert console_problems(shown) == []


def test_a_users_timeline_and_events_page_through_next_cursor(
    shown: webdriver.Chrome, stack: Stack, tenant: Tenant
) -> None:
    key, path = tenant.api_key, f"/v1/users/{quote(HEAVY, safe='')}"
    pages = [api(stack, key, f"{path}/events?order=desc&limit={PAGE}")]
    while pages[-1]["next_cursor"]:
        pages.append(api(stack, key, f"{path}/events?order=desc&limit={PAGE}&cursor={quote(pages[-1]['next_cursor'])}"))
    activity = api(stack, key, f"{path}/activity?period=1h")
    # When a user id is searched with 1-hour windows
    shown.find_element(By.ID, "user-id").send_keys(HEAVY)
    shown.find_element(By.CSS_SELECTOR, "#user-period option[value='1h']").click()
    shown.find_element(By.CSS_SELECTOR, "#user-form button[type=submit]").click()
    wait_for(shown, f"return document.querySelectorAll('#events-table tbody tr').length === {PAGE}")
    # Then its activity matches the API's windows, and the first page of its events is listed
    assert rows(shown, "#activity-table tbody tr", "data-start", "data-count") == [
        (item["start"], str(item["count"])) for item in activity["items"] if item["count"]
    ]
    assert shown.find_element(By.ID, "user-panel").get_attribute("data-activity-total") == str(
        sum(item["count"] for item in activity["items"])
    )
    # When "Load more" follows next_cursor to the end, Then every event is listed once, newest first
    for listed in range(2 * PAGE, HEAVY_EVENTS + PAGE, PAGE):
        more = shown.find_element(By.ID, "events-more")
        assert more.is_displayed()
        more.click()
        wait_for(
            shown, f"return document.querySelectorAll('#events-table tbody tr').length === {min(listed, HEAVY_EVENTS)}"
        )
    assert [row[0] for row in rows(shown, "#events-table tbody tr", "data-event-id")] == [
        item["event_id"] for page in pages for item in page["items"]
    ]
    assert len(pages) == 3
    assert not shown.find_element(By.ID, "events-more").is_displayed()
    # And the metadata holding markup is shown as text
    assert XSS in shown.find_element(By.ID, "events-table").get_attribute("textContent")
    assert shown.execute_script("return document.querySelectorAll('img').length") == 0
    assert_no_alert(shown)


def test_a_hostile_user_id_renders_as_text(shown: webdriver.Chrome, stack: Stack, tenant: Tenant) -> None:
    # Given a user whose id is markup, among the top users
    listed = shown.find_elements(By.CSS_SELECTOR, "#top-list li")
    hostile = [item for item in listed if item.get_attribute("data-user-id") == XSS]
    assert len(hostile) == 1
    # Then it reads as the text itself
    assert hostile[0].find_element(By.CSS_SELECTOR, "button").text == XSS
    # When it is opened, Then its events are listed under the literal id, and no script ran
    hostile[0].find_element(By.CSS_SELECTOR, "button").click()
    events = api(stack, tenant.api_key, f"/v1/users/{quote(XSS, safe='')}/events?order=desc&limit={PAGE}")
    wait_for(shown, f"return document.querySelectorAll('#events-table tbody tr').length === {len(events['items'])}")
    assert shown.find_element(By.ID, "user-shown").text == XSS
    assert shown.execute_script("return document.querySelectorAll('img').length") == 0
    assert_no_alert(shown)
    assert console_problems(shown) == []


def test_the_key_stays_in_session_storage(shown: webdriver.Chrome, stack: Stack, tenant: Tenant) -> None:
    # Then the key is in this tab's session storage only: not in the URL, a cookie or local storage
    assert tenant.api_key not in shown.current_url
    assert shown.get_cookies() == []
    assert shown.execute_script("return localStorage.length") == 0
    assert shown.execute_script("return sessionStorage.getItem('activityTracker.apiKey')") == tenant.api_key
    names = shown.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
    assert all(tenant.api_key not in name for name in names)
    # When the page is reloaded, Then the dashboard opens without asking again
    shown.refresh()
    loaded(shown)
    assert not shown.find_element(By.ID, "key-panel").is_displayed()
    # When "Change key" is pressed, Then the key is forgotten
    shown.find_element(By.ID, "forget-key").click()
    assert shown.execute_script("return sessionStorage.length") == 0
    assert shown.find_element(By.ID, "key-panel").is_displayed()


def test_the_live_feed_says_when_there_is_no_websocket(shown: webdriver.Chrome) -> None:
    wait_for(shown, "return document.getElementById('live-panel').dataset.live === 'unavailable'")
    assert "not available" in shown.find_element(By.ID, "live-status").text


def test_a_refused_key_shows_the_apis_message(browser: webdriver.Chrome, stack: Stack) -> None:
    # When a wrong key is entered
    open_with_key(browser, stack, "atk_not_a_key_000000000000000000")
    message = wait_for(browser, "return document.getElementById('key-error').textContent")
    # Then the API's own message is shown and the key is not kept
    assert message == "The API refused this key: A valid x-api-key header or bearer token is required."
    assert browser.execute_script("return sessionStorage.length") == 0


def test_a_tenant_without_events_sees_how_to_send_one(browser: webdriver.Chrome, stack: Stack) -> None:
    fresh = stack.new_tenant()
    open_with_key(browser, stack, fresh["api_key"])
    loaded(browser)
    empty = browser.find_element(By.CSS_SELECTOR, "#daily-panel [data-role=empty]")
    assert empty.is_displayed()
    assert "No events" in empty.text
    assert f"curl -X POST {stack.api}/v1/events" in empty.text
    assert "No events in the last 24 hours." in browser.find_element(By.ID, "top-panel").text
    assert panel_errors(browser) == []


def test_a_rate_limited_tenant_is_retried_after_retry_after(browser: webdriver.Chrome, stack: Stack) -> None:
    # Given a tenant allowed a burst of 2 requests and 1 a second: the page's first load asks for more
    limited = stack.new_tenant()
    patched = stack.request(
        "PATCH", f"/v1/tenants/{limited['tenant_id']}", {"rate_limit": {"rate": 1, "burst": 2}}, stack.admin_key
    )
    assert patched.status == 200, patched.body
    # When the dashboard opens, Then every panel is filled after the 429s were waited out
    open_with_key(browser, stack, limited["api_key"])
    loaded(browser)
    assert int(browser.execute_script("return document.body.dataset.retried || '0'")) > 0
    assert panel_errors(browser) == []


# ---------------------------------------------------------------- layouts, screenshots, figures


def test_the_layout_holds_at_375_and_1440_px_and_the_figures(
    browser: webdriver.Chrome, stack: Stack, tenant: Tenant
) -> None:
    # Given a first load in a fresh profile (nothing cached)
    set_viewport(browser, 1440)
    open_with_key(browser, stack, tenant.api_key)
    loaded(browser)
    figures = browser.execute_script(
        """
        const navigation = performance.getEntriesByType('navigation')[0];
        const resources = performance.getEntriesByType('resource');
        const sum = (entries, field) => entries.reduce((total, entry) => total + entry[field], 0);
        const files = resources.filter(r => new URL(r.name).pathname.startsWith('/dashboard'));
        const calls = resources.filter(r => new URL(r.name).pathname.startsWith('/v1/'));
        return {
          page_bytes: navigation.transferSize + sum(files, 'transferSize'),
          page_decoded_bytes: navigation.decodedBodySize + sum(files, 'decodedBodySize'),
          api_bytes: sum(calls, 'transferSize'),
          requests: 1 + resources.length,
          key_to_first_chart_ms: performance.measure('k', 'key-entered', 'first-chart').duration,
        };
        """
    )
    browser.refresh()  # the key is in the session: the charts come without a click
    loaded(browser)
    figures["reload_to_first_chart_ms"] = browser.execute_script(
        "return performance.getEntriesByName('first-chart')[0].startTime"
    )
    print(f"\ndashboard first load: {figures}")
    assert figures["page_bytes"] > 0
    # Open a user so that every panel has content in the pictures
    browser.find_element(By.ID, "user-id").send_keys(HEAVY)
    browser.find_element(By.CSS_SELECTOR, "#user-form button[type=submit]").click()
    wait_for(browser, f"return document.querySelectorAll('#events-table tbody tr').length === {PAGE}")
    for width in (375, 1440):
        set_viewport(browser, width)
        wait_for(browser, f"return window.innerWidth === {width}")
        # Then the charts follow the width of their panels, and nothing is wider than the screen
        wait_for(
            browser,
            "return [...document.querySelectorAll('.chart canvas')].every("
            "c => c.getBoundingClientRect().right <= c.closest('.panel').getBoundingClientRect().right)",
        )
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width
        path = save_screenshot(browser, "dashboard", width)
        print(f"screenshot at {width} px: {path}")
    if os.environ.get("UPDATE_DASHBOARD_SCREENSHOT"):
        shutil.copyfile(path, README_SCREENSHOT)
        print(f"updated {README_SCREENSHOT}")
    assert panel_errors(browser) == []
    assert console_problems(browser) == []
