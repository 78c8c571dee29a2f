"""GET /v1/users/{user_id}/events: a user's events in a time range, in pages."""

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from tracker.adapters.events_table import event_store
from tracker.event_models import EventPage
from tracker.event_reads import EventFilter, query_user_events
from tracker.models import Action, QueryTime, UserId
from tracker.rest import create_app, documented, lambda_entry, tenant_id_of
from tracker.settings import require_settings

require_settings("events_table")  # fail at init, naming what is missing

app = create_app()


@app.get(
    "/v1/users/<user_id>/events",
    summary="A user's events with occurred_at in [from, to)",
    description=(
        "A page holds `limit` events, or fewer when they are large: a page stays under 5 MiB as the Lambda"
        " response holds it (its limit is 6 MB, API Gateway's 10 MB); `next_cursor` then leads to the rest."
        " `from` and `to` are RFC 3339 times with an offset in 2000-01-01 .. 9999-12-31 (422 outside),"
        " read at millisecond precision (rounded up), the precision of stored times."
    ),
    tags=["events"],
    responses=documented(EventPage, 400, 401, 403, 422, 429, 503),
)
def get_user_events(  # noqa: PLR0917 - one argument per query parameter
    user_id: Annotated[UserId, Path()],
    from_: Annotated[QueryTime | None, Query(alias="from", description="Inclusive start (RFC 3339)")] = None,
    to: Annotated[QueryTime | None, Query(description="Exclusive end (RFC 3339)")] = None,
    action: Annotated[Action | None, Query(description="Only this action")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    order: Annotated[Literal["asc", "desc"], Query()] = "asc",
    cursor: Annotated[str | None, Query(max_length=1024, description="next_cursor of the previous page")] = None,
) -> EventPage:
    event_filter = EventFilter(start=from_, end=to, action=action, descending=order == "desc", limit=limit)
    return query_user_events(event_store(), tenant_id_of(app), user_id, event_filter, cursor)


lambda_handler = lambda_entry(app)
