"""CORS for the ingest routes: pages on a tenant's allowed origins may send events with an ingest key.

A browser's preflight (``OPTIONS``) carries no key, so it is answered for an origin that any
tenant allows; the answer to the real request carries ``Access-Control-Allow-Origin`` only when
the origin is one of the key's own tenant's (the authorizer passes them in its context).
"""

from __future__ import annotations

ALLOWED_METHODS = "POST, OPTIONS"
ALLOWED_HEADERS = "content-type, content-encoding, x-api-key, authorization"
EXPOSED_HEADERS = "retry-after"
PREFLIGHT_MAX_AGE_SECONDS = 600


def preflight_headers(origin: str) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_SECONDS),
        "Vary": "Origin",
    }


def response_headers(origin: str | None, allowed_origins: str) -> dict[str, str]:
    """The CORS headers of an answer to ``origin``, given the tenant's allowed origins (space-separated)."""
    if origin and origin.lower() in allowed_origins.split():
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Expose-Headers": EXPOSED_HEADERS,
            "Vary": "Origin",
        }
    return {}
