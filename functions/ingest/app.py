"""POST /v1/events and /v1/events/batch: each event stored once, whatever the retries."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.metrics import MetricUnit

from tracker import events, tracking_plan
from tracker.adapters.catalog_table import event_type_store
from tracker.adapters.events_table import event_store
from tracker.ingest_models import MAX_BATCH_BYTES, MAX_EVENT_BYTES, BatchIn, BatchResult, EventIn, EventStatus
from tracker.observability import metrics
from tracker.records import Role, ValidationMode
from tracker.rest import (
    authorizer_context,
    create_app,
    documented,
    error_responses,
    lambda_entry,
    model_response,
    tenant_id_of,
)
from tracker.settings import get_settings, require_settings
from tracker.timefmt import utc_now

SETTINGS = require_settings("events_table", "catalog_table")  # fail at init, naming what is missing

app = create_app()
# Event types read from the catalog, kept by this execution environment for CATALOG_CACHE_SECONDS.
CATALOG = tracking_plan.CatalogCache(SETTINGS.catalog_cache_seconds)
VALIDATION_MODES: dict[str, ValidationMode] = {"off": "off", "flag": "flag", "block": "block"}


def _plan_screen(tenant_id: str) -> tracking_plan.Screen | None:
    """The tenant's tracking plan, in the mode the authorizer read with the key (``off`` if none)."""
    mode = VALIDATION_MODES.get(str(authorizer_context(app).get("validation")), "off")
    return tracking_plan.plan_screen(mode, event_type_store(), CATALOG, tenant_id)


SINGLE_EVENT_ROUTE = "POST /v1/events"
INGEST_ROLES: tuple[Role, ...] = ("tenant", "ingest")


def _count(accepted: int, duplicates: int, rejected: int) -> None:
    metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=accepted)
    metrics.add_metric(name="EventsDuplicate", unit=MetricUnit.Count, value=duplicates)
    metrics.add_metric(name="EventsRejected", unit=MetricUnit.Count, value=rejected)


def _count_single_event(route: str, status: int) -> None:
    """The single route's outcome is its status, whichever layer answered (validation included)."""
    if route == SINGLE_EVENT_ROUTE:
        _count(status == 201, status == 200, status >= 400)


@app.post(
    "/v1/events",
    summary="Record one event",
    tags=["events"],
    responses={
        201: {"description": "Stored", "content": {"application/json": {"model": EventStatus}}},
        200: {
            "description": "Already stored with the same content",
            "content": {"application/json": {"model": EventStatus}},
        },
        **error_responses(400, 401, 403, 409, 413, 415, 422, 429, 503),
    },
)
def post_event(event: Annotated[EventIn, Body()]) -> Response[EventStatus]:
    tenant_id = tenant_id_of(app, INGEST_ROLES)
    record = tracking_plan.screen_one(_plan_screen(tenant_id), events.to_record(event, tenant_id, utc_now()))
    stored = events.store_event(event_store(), record)
    status = 201 if stored.status == "accepted" else 200
    return model_response(status, stored.to_status())


@app.post(
    "/v1/events/batch",
    summary="Record up to 500 events; each is accepted, a duplicate, or rejected on its own",
    tags=["events"],
    responses=documented(BatchResult, 400, 401, 403, 413, 415, 422, 429, 503),
)
def post_batch(batch: Annotated[BatchIn, Body()]) -> BatchResult:
    settings = get_settings()
    context = app.lambda_context
    tenant_id = tenant_id_of(app, INGEST_ROLES)
    result = events.ingest_batch(
        event_store(),
        batch.events,
        tenant_id,
        utc_now(),
        settings.ingest_concurrency,
        out_of_time=lambda: context.get_remaining_time_in_millis() < settings.ingest_deadline_margin_ms,
        screen=_plan_screen(tenant_id),
    )
    _count(result.accepted, result.duplicates, result.rejected)
    return result


lambda_handler = lambda_entry(
    app,
    body_limits={SINGLE_EVENT_ROUTE: MAX_EVENT_BYTES, "POST /v1/events/batch": MAX_BATCH_BYTES},
    on_response=_count_single_event,
    cors=True,
)
