"""OPTIONS on the ingest routes: the CORS preflight of pages on an allowed origin (no key: browsers send none)."""

from typing import Any

from aws_lambda_powertools.event_handler import Response

from tracker.adapters.tenants_table import tenant_store
from tracker.cors import preflight_headers
from tracker.request_body import header
from tracker.rest import create_app, lambda_entry
from tracker.settings import require_settings

require_settings("tenants_table")  # fail at init, naming what is missing

app = create_app()


def _preflight() -> Response[Any]:
    origin = header(app.current_event.raw_event, "origin")
    allowed = bool(origin) and tenant_store().origin_allowed(str(origin).lower())
    # Another origin gets no CORS headers: the browser then refuses to send the request.
    return Response(status_code=204, headers=preflight_headers(str(origin)) if allowed else {"Vary": "Origin"})


PREFLIGHT_SUMMARY = "CORS preflight of a page on an origin a tenant allows (no key)"
PREFLIGHT_RESPONSES: dict[int, Any] = {
    204: {"description": "Access-Control-Allow-* headers for an allowed Origin, none for another"}
}


for ingest_route in ("/v1/events", "/v1/events/batch"):
    app.route(
        ingest_route,
        method="OPTIONS",
        summary=PREFLIGHT_SUMMARY,
        tags=["events"],
        security=[],
        responses=PREFLIGHT_RESPONSES,
    )(_preflight)


lambda_handler = lambda_entry(app)
