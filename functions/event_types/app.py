"""/v1/event-types: the tenant's catalog of event types (names, descriptions, points, properties)."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from tracker import catalog
from tracker.adapters.catalog_table import event_type_store
from tracker.catalog_models import EventTypeIn, EventTypeOut, EventTypePage, EventTypePatch, SearchText
from tracker.rest import (
    create_app,
    documented,
    error_responses,
    lambda_entry,
    model_response,
    tenant_id_of,
)
from tracker.settings import require_settings

require_settings("catalog_table")  # fail at init, naming what is missing

app = create_app()
ERRORS = (400, 401, 403, 422, 429, 503)


@app.post(
    "/v1/event-types",
    summary="Add an event type to the catalog",
    tags=["event types"],
    responses=documented(EventTypeOut, 409, 413, 415, *ERRORS, status=201, description="Created"),
)
def create_event_type(request: Annotated[EventTypeIn, Body()]) -> Response[EventTypeOut]:
    return model_response(201, catalog.create_event_type(event_type_store(), tenant_id_of(app), request))


@app.get(
    "/v1/event-types",
    summary="The catalog by name; search matches name or description, case-insensitive, anywhere",
    tags=["event types"],
    responses=documented(EventTypePage, *ERRORS),
)
def list_event_types(
    search: Annotated[SearchText | None, Query(description="Text the name or the description contains")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=1024, description="next_cursor of the previous page")] = None,
) -> EventTypePage:
    return catalog.search_event_types(event_type_store(), tenant_id_of(app), search, limit, cursor)


@app.get(
    "/v1/event-types/<name>",
    summary="One event type",
    tags=["event types"],
    responses=documented(EventTypeOut, 404, *ERRORS),
)
def get_event_type(name: str) -> EventTypeOut:
    return catalog.get_event_type(event_type_store(), tenant_id_of(app), name)


@app.patch(
    "/v1/event-types/<name>",
    summary="Change the description, points or properties (properties replaces the whole map)",
    tags=["event types"],
    responses=documented(EventTypeOut, 404, 413, 415, *ERRORS),
)
def update_event_type(name: str, patch: Annotated[EventTypePatch, Body()]) -> EventTypeOut:
    return catalog.update_event_type(event_type_store(), tenant_id_of(app), name, patch)


@app.delete(
    "/v1/event-types/<name>",
    summary="Remove an event type from the catalog",
    tags=["event types"],
    responses={204: {"description": "Deleted"}, **error_responses(404, *ERRORS)},
)
def delete_event_type(name: str) -> Response[None]:
    catalog.delete_event_type(event_type_store(), tenant_id_of(app), name)
    return Response(status_code=204)


BODY_LIMIT = 64 * 1024
lambda_handler = lambda_entry(
    app, body_limits={"POST /v1/event-types": BODY_LIMIT, "PATCH /v1/event-types/{name}": BODY_LIMIT}
)
