"""GET /dashboard and GET /dashboard/{file}: the tenant web dashboard, static files shipped beside
this module, under a strict Content-Security-Policy.

No key is needed to load the page (it asks for one and calls the API with it from the browser).
Only the standard library is imported: the function answers a few static files and nothing else.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

STATIC = Path(__file__).resolve().parent / "static"
PAGE = "index.html"
CONFIG = "config.json"
# The files the page loads, by the name in its URL (/dashboard/app.js); nothing else is served.
ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
}
GZIP_MIN_BYTES = 1024


# A ws(s) URL with a plain host (its origin goes into the CSP header: no space, quote or semicolon).
WEBSOCKET_URL = re.compile(r"wss?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?")


def websocket_url() -> str:
    """The live feed's URL (``WEBSOCKET_URL``), or "" when there is none or it is not a plain ws(s) URL."""
    url = os.environ.get("WEBSOCKET_URL", "").strip()
    return url if WEBSOCKET_URL.fullmatch(url) else ""


def content_security_policy(live_url: str) -> str:
    """Scripts, styles and API calls from this origin only (and the WebSocket's); nothing inline."""
    connect = "'self'"
    if live_url:
        parts = urlsplit(live_url)
        connect += f" {parts.scheme}://{parts.netloc}"
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {connect}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


@cache
def static_file(name: str) -> bytes:
    return (STATIC / name).read_bytes()


@cache
def gzipped(name: str) -> bytes:
    return gzip.compress(static_file(name), compresslevel=9, mtime=0)


def _accepts_gzip(headers: dict[str, str]) -> bool:
    """Accept-Encoding names gzip (or *) with a quality above 0."""
    value = next((value for key, value in headers.items() if key.lower() == "accept-encoding"), "")
    for item in value.split(","):
        coding, *parameters = (part.strip().lower() for part in item.split(";"))
        quality = next((p.removeprefix("q=") for p in parameters if p.startswith("q=")), "1")
        if coding in {"gzip", "*"}:
            try:
                return float(quality) > 0
            except ValueError:
                return False
    return False


def _if_none_match(headers: dict[str, str]) -> str:
    return next((value for key, value in headers.items() if key.lower() == "if-none-match"), "")


def _answer(content_type: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """200 with the body, or 304 when the browser's copy (If-None-Match) is this one."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    response_headers = {
        "Content-Type": content_type,
        "Content-Security-Policy": content_security_policy(websocket_url()),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
        "ETag": etag,
        "Vary": "Accept-Encoding",
    }
    if etag in {tag.strip() for tag in _if_none_match(headers).split(",")}:
        return {"statusCode": 304, "headers": response_headers, "body": "", "isBase64Encoded": False}
    return {"statusCode": 200, "headers": response_headers, "body": body.decode(), "isBase64Encoded": False}


def _not_found(name: str) -> dict[str, Any]:
    error = {"error": {"code": "not_found", "message": f"No dashboard file named {name!r}.", "details": []}}
    return {
        "statusCode": 404,
        "headers": {"Content-Type": "application/json", "X-Content-Type-Options": "nosniff"},
        "body": json.dumps(error),
        "isBase64Encoded": False,
    }


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:  # noqa: ARG001 - Lambda's signature
    headers = event.get("headers") or {}
    name = (event.get("pathParameters") or {}).get("file")
    if name == CONFIG:
        config = json.dumps({"websocket_url": websocket_url()}).encode()
        return _answer("application/json", config, headers)
    if name is None:
        name, content_type = PAGE, "text/html; charset=utf-8"
    elif name in ASSETS:
        content_type = ASSETS[name]
    else:
        return _not_found(str(name))
    body = static_file(name)
    answer = _answer(content_type, body, headers)
    if answer["statusCode"] == 200 and len(body) >= GZIP_MIN_BYTES and _accepts_gzip(headers):
        answer["headers"]["Content-Encoding"] = "gzip"
        answer["body"] = base64.b64encode(gzipped(name)).decode("ascii")
        answer["isBase64Encoded"] = True
    return answer
