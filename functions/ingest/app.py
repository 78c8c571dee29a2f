"""POST /v1/events and /v1/events/batch: each event stored once, whatever the retries."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.metrics import MetricUnit

from tracker import events
from tracker.adapters.events_table import event_store
from tracker.models import MAX_BATCH_BYTES, MAX_EVENT_BYTES, BatchIn, BatchResult, EventIn, EventStatus
from tracker.observability import metrics
from tracker.rest import create_app, documented, error_responses, lambda_entry, model_response, tenant_id_of
from tracker.settings import get_settings, require_settings
from tracker.timefmt import utc_now

require_settings("events_table")  # fail at init, naming what is missing

app = create_app()


SINGLE_EVENT_ROUTE = "POST /v1/events"


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
    record = events.to_record(event, tenant_id_of(app), utc_now())
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
    result = events.ingest_batch(
        event_store(),
        batch.events,
        tenant_id_of(app),
        utc_now(),
        settings.ingest_concurrency,
        out_of_time=lambda: context.get_remaining_time_in_millis() < settings.ingest_deadline_margin_ms,
    )
    _count(result.accepted, result.duplicates, result.rejected)
    return result


lambda_handler = lambda_entry(
    app,
    body_limits={SINGLE_EVENT_ROUTE: MAX_EVENT_BYTES, "POST /v1/events/batch": MAX_BATCH_BYTES},
    on_response=_count_single_event,
)
