"""Profiles and exports over HTTP against the local stack: the contract's routes, an export that runs
in the background and downloads with curl from the local AWS endpoint, and erasure of both."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from tests.e2e.conftest import Stack, rfc3339, send
from tests.e2e.test_erasure import ingest

pytestmark = pytest.mark.e2e

USER = "export/user é"
WAIT_SECONDS = 120
PROFILE = {
    "email": "Grace.Hopper@Navy.example",
    "username": "grace",
    "first_name": "Grace",
    "last_name": "Hopper",
    "phone": "+12025550123",
    "traits": {"rank": "rear admiral", "languages": ["COBOL", "FLOW-MATIC"]},
}


def profile_path(user: str) -> str:
    return f"/v1/users/{quote(user, safe='')}/profile"


def wait_until_done(stack: Stack, key: str, path: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        reply = send(stack, "GET", path, key=key)
        assert reply.status == 200, reply.body
        if reply.body["status"] in {"completed", "failed"}:
            return dict(reply.body)
        assert time.monotonic() < deadline, f"{path} still {reply.body['status']}"
        time.sleep(0.3)


def curl(url: str) -> tuple[int, bytes]:
    """GET with curl, as a user would download the file."""
    executable = shutil.which("curl")
    assert executable, "curl is needed to download like a user"
    done = subprocess.run(  # noqa: S603 - a fixed executable, a URL the stack gave
        [executable, "-sS", "-o", "-", "-w", "\n%{http_code}", url], capture_output=True, timeout=60, check=True
    )
    body, _, status = done.stdout.rpartition(b"\n")
    return int(status), body


def test_profile_routes_and_lookup_over_http(stack: Stack) -> None:
    key = stack.new_tenant()["api_key"]
    created = send(stack, "PUT", profile_path(USER), PROFILE, key)
    assert created.status == 201, created.body
    assert send(stack, "PUT", profile_path(USER), PROFILE, key).status == 200
    patched = send(stack, "PATCH", profile_path(USER), {"phone": None, "username": "amazing-grace"}, key)
    assert (patched.status, patched.body["phone"], patched.body["username"]) == (200, None, "amazing-grace")
    assert send(stack, "GET", profile_path(USER), key=key).body == patched.body
    found = send(stack, "GET", "/v1/profiles?email=GRACE.HOPPER%40navy.EXAMPLE", key=key)
    assert [(item["user_id"], item["email"]) for item in found.body["items"]] == [(USER, PROFILE["email"])]
    assert send(stack, "GET", "/v1/profiles?email=a%40b.example&email=c%40d.example", key=key).status == 400
    assert send(stack, "GET", "/v1/profiles", key=key).status == 422
    assert send(stack, "PATCH", profile_path("nobody"), {"username": "x"}, key).status == 404
    assert send(stack, "PUT", profile_path(USER), {"phone": "12345"}, key).status == 422
    assert send(stack, "DELETE", profile_path(USER), key=key).status == 204
    assert send(stack, "GET", profile_path(USER), key=key).status == 404


def test_an_export_downloads_with_curl_and_an_erasure_removes_it(stack: Stack) -> None:
    # Given a profile and 1,200 events of a user (more than one page of the worker's reads)
    key = stack.new_tenant()["api_key"]
    assert send(stack, "PUT", profile_path(USER), PROFILE, key).status == 201
    now = datetime.now(UTC).replace(microsecond=0)
    events = [
        {
            "event_id": f"exp-{index:05d}",
            "user_id": USER,
            "action": "view",
            "occurred_at": rfc3339(now - timedelta(seconds=index)),
            "metadata": {"n": index},
        }
        for index in range(1200)
    ]
    ingest(stack, key, events)
    # When an export is requested and done
    accepted = send(stack, "POST", f"/v1/users/{quote(USER, safe='')}/exports", key=key)
    assert accepted.status == 202, accepted.body
    assert accepted.body["status"] == "pending"
    done = wait_until_done(stack, key, f"/v1/exports/{accepted.body['export_id']}")
    assert (done["status"], done["events"], done["user_id"]) == ("completed", 1200, USER)
    # Then its URL points at the local AWS endpoint and downloads with curl: profile, then events oldest first
    assert urlsplit(done["download_url"]).netloc == urlsplit(stack.aws).netloc
    status, body = curl(done["download_url"])
    assert status == 200, body[:300]
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert lines[0]["type"] == "profile"
    assert lines[0]["email"] == PROFILE["email"]
    assert [line["event_id"] for line in lines[1:]] == [event["event_id"] for event in reversed(events)]
    # When the user is erased, Then the profile, the lookup and the file are gone, and the export says why
    erasure = send(stack, "DELETE", f"/v1/users/{quote(USER, safe='')}", key=key)
    erased = wait_until_done(stack, key, f"/v1/erasures/{erasure.body['erasure_id']}")
    assert (erased["status"], erased["deleted_events"], erased["deleted_profiles"]) == ("completed", 1200, 1)
    assert send(stack, "GET", profile_path(USER), key=key).status == 404
    assert send(stack, "GET", "/v1/profiles?email=grace.hopper%40navy.example", key=key).body == {"items": []}
    after = send(stack, "GET", f"/v1/exports/{accepted.body['export_id']}", key=key).body
    assert (after["status"], after["download_url"], after["error"]["code"]) == ("failed", None, "erased")
    assert curl(done["download_url"])[0] == 404
