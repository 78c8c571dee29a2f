"""The dashboard function: its files with their types, a strict CSP, gzip, ETags; nothing else served."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from local_stack.template import load_template
from tests.support import lambda_context, load_function_module

ROOT = Path(__file__).resolve().parents[2]
FUNCTION = ROOT / "functions" / "dashboard"


SPEC = load_template().functions["DashboardFunction"]


@pytest.fixture
def dashboard(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The function's module; its invocations read no ``WEBSOCKET_URL`` unless a test sets one."""
    monkeypatch.delenv("WEBSOCKET_URL", raising=False)
    return load_function_module(SPEC)


def get(module: ModuleType, file: str | None = None, **headers: str) -> dict[str, Any]:
    event = {
        "resource": "/dashboard" if file is None else "/dashboard/{file}",
        "httpMethod": "GET",
        "headers": {name.replace("_", "-"): value for name, value in headers.items()} or None,
        "pathParameters": None if file is None else {"file": file},
    }
    answer: dict[str, Any] = module.lambda_handler(event, lambda_context(SPEC))
    return answer


def body(answer: dict[str, Any]) -> bytes:
    raw = str(answer["body"]).encode()
    return base64.b64decode(raw) if answer["isBase64Encoded"] else raw


def test_the_page_and_its_files_are_served_with_their_types(dashboard: ModuleType) -> None:
    page = get(dashboard)
    assert page["statusCode"] == 200
    assert page["headers"]["Content-Type"] == "text/html; charset=utf-8"
    html = body(page).decode()
    # Every file the page refers to is served, with a script or style type
    referred = re.findall(r'(?:src|href)="dashboard/([^"]+)"', html)
    assert set(referred) == set(dashboard.ASSETS)
    for name in referred:
        answer = get(dashboard, name)
        assert answer["statusCode"] == 200, name
        assert answer["headers"]["Content-Type"] == dashboard.ASSETS[name]
        assert body(answer) == (FUNCTION / "static" / name).read_bytes()


def test_the_page_holds_no_inline_script_or_style(dashboard: ModuleType) -> None:
    html = body(get(dashboard)).decode()
    assert "<script>" not in html
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None
    assert "<style" not in html
    assert " style=" not in html
    assert re.search(r"\son\w+=", html) is None  # no inline event handlers


def test_the_policy_allows_this_origin_only(dashboard: ModuleType) -> None:
    policy = get(dashboard)["headers"]["Content-Security-Policy"]
    directives = dict(item.strip().split(" ", 1) for item in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"


def test_the_websocket_origin_is_allowed_when_there_is_one(
    dashboard: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBSOCKET_URL", "wss://abc.execute-api.eu-west-1.amazonaws.com/dev")
    answer = get(dashboard, "config.json")
    assert json.loads(body(answer)) == {"websocket_url": "wss://abc.execute-api.eu-west-1.amazonaws.com/dev"}
    assert (
        "connect-src 'self' wss://abc.execute-api.eu-west-1.amazonaws.com;"
        in answer["headers"]["Content-Security-Policy"]
    )


@pytest.mark.parametrize("url", ["", "https://example.com/", "javascript:alert(1)", "ws://", "wss://a b'c;"])
def test_a_websocket_url_that_is_not_one_is_ignored(
    dashboard: ModuleType, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("WEBSOCKET_URL", url)
    answer = get(dashboard, "config.json")
    assert json.loads(body(answer)) == {"websocket_url": ""}
    assert "connect-src 'self';" in answer["headers"]["Content-Security-Policy"]


@pytest.mark.parametrize(
    "name", ["index.html", "app.py", "../app.py", "..%2Fapp.py", "openapi.json", ".", "", "APP.JS", "app.js\x00"]
)
def test_nothing_else_is_served(dashboard: ModuleType, name: str) -> None:
    answer = get(dashboard, name)
    assert answer["statusCode"] == 404
    assert json.loads(answer["body"])["error"]["code"] == "not_found"


def test_large_files_are_gzipped_for_browsers_that_accept_it(dashboard: ModuleType) -> None:
    plain = get(dashboard, "uPlot.iife.min.js")
    zipped = get(dashboard, "uPlot.iife.min.js", accept_encoding="gzip, deflate, br")
    assert "Content-Encoding" not in plain["headers"]
    assert zipped["headers"]["Content-Encoding"] == "gzip"
    assert zipped["headers"]["Vary"] == "Accept-Encoding"
    assert gzip.decompress(body(zipped)) == body(plain)
    assert len(body(zipped)) < len(body(plain)) / 2
    # gzip;q=0 is a refusal
    assert "Content-Encoding" not in get(dashboard, "uPlot.iife.min.js", accept_encoding="gzip;q=0")["headers"]


def test_an_unchanged_file_is_a_304(dashboard: ModuleType) -> None:
    etag = get(dashboard, "app.js")["headers"]["ETag"]
    again = get(dashboard, "app.js", if_none_match=etag)
    assert again["statusCode"] == 304
    assert again["body"] == ""
    assert get(dashboard, "app.js", if_none_match='"other"')["statusCode"] == 200


def test_the_function_imports_nothing_heavy() -> None:
    # A fresh interpreter: the handler module pulls in neither boto3, pydantic nor Powertools
    script = (
        f"import sys; sys.path.insert(0, {str(FUNCTION)!r}); import app; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'boto3', 'botocore', 'pydantic', 'aws_lambda_powertools', 'tracker'}))"
    )
    done = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, check=True)  # noqa: S603
    assert done.stdout.strip() == "[]"


def test_the_vendored_files_are_the_recorded_ones() -> None:
    recorded = (FUNCTION / "static" / "VENDORED.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", recorded, flags=re.MULTILINE)
    assert [name for name, _ in rows] == ["uPlot.iife.min.js", "uPlot.min.css"]
    for name, digest in rows:
        assert hashlib.sha256((FUNCTION / "static" / name).read_bytes()).hexdigest() == digest, name
