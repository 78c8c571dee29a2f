"""The statistics routes: answered from the rollup's aggregates, never from raw events."""

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from tracker import stats
from tracker.adapters.aggregates_table import stats_aggregates
from tracker.exact_json import exact_model_json
from tracker.models import Action, QueryDateOrTime, UserId
from tracker.rest import create_app, documented, lambda_entry, tenant_id_of, tenant_zone_of
from tracker.settings import require_settings
from tracker.stats_models import (
    ActionDaily,
    DailyStats,
    Frequency,
    PropertyDaily,
    PropertyPathName,
    TopUsers,
    TopUsersBy,
    Trend,
    UserActivity,
    UserPoints,
    Violations,
)
from tracker.timefmt import utc_now

require_settings("aggregates_table")  # fail at init, naming what is missing

app = create_app()
STATS_ERRORS = (400, 401, 403, 422, 429, 503)
DateOrTime = Annotated[QueryDateOrTime | None, Query(description="A date (a whole local day) or an RFC 3339 time")]
FromParam = Annotated[
    QueryDateOrTime | None,
    Query(alias="from", description="A date (from its local midnight) or an RFC 3339 time"),
]


def _clock() -> stats.TenantClock:
    return stats.TenantClock(tenant_id=tenant_id_of(app), zone=tenant_zone_of(app), now=utc_now())


@app.get(
    "/v1/users/<user_id>/activity",
    summary="A user's event counts per 1h, 4h or 1d window (local time), zero-filled",
    tags=["statistics"],
    responses=documented(UserActivity, *STATS_ERRORS),
)
def get_user_activity(
    user_id: Annotated[UserId, Path()],
    period: Annotated[Literal["1h", "4h", "1d"], Query()] = "4h",
    from_: FromParam = None,
    to: DateOrTime = None,
) -> UserActivity:
    clock = _clock()
    start, end = stats.instant_range(clock, from_, to, stats.DEFAULT_RANGE)
    return stats.user_activity(stats_aggregates(), clock, user_id, period=period, start=start, end=end)


@app.get(
    "/v1/stats/daily",
    summary="Events and distinct users per local day, the last `days` days up to today",
    tags=["statistics"],
    responses=documented(DailyStats, *STATS_ERRORS),
)
def get_daily(days: Annotated[int, Query(ge=1, le=366)] = 7) -> DailyStats:
    return stats.daily(stats_aggregates(), _clock(), days)


@app.get(
    "/v1/stats/top-users",
    summary="The users with the most events (or points) in the last `hours` hours; ties by user_id",
    tags=["statistics"],
    responses=documented(TopUsers, *STATS_ERRORS),
)
def get_top_users(
    hours: Annotated[int, Query(ge=1, le=720)] = 24,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    by: Annotated[TopUsersBy, Query(description="Rank by events (default) or by points")] = "events",
) -> TopUsers:
    return stats.top_users(stats_aggregates(), _clock(), hours, limit, by)


@app.get(
    "/v1/stats/trend",
    summary="Events per local day per action",
    tags=["statistics"],
    responses=documented(Trend, *STATS_ERRORS),
)
def get_trend(from_: FromParam = None, to: DateOrTime = None) -> Trend:
    clock = _clock()
    return stats.trend(stats_aggregates(), clock, stats.date_range(clock, from_, to))


@app.get(
    "/v1/stats/frequency",
    summary="Events per action over a range, most frequent first",
    tags=["statistics"],
    responses=documented(Frequency, *STATS_ERRORS),
)
def get_frequency(
    action: Annotated[Action | None, Query(description="Only this action")] = None,
    from_: FromParam = None,
    to: DateOrTime = None,
) -> Frequency:
    clock = _clock()
    return stats.frequency(stats_aggregates(), clock, stats.date_range(clock, from_, to), action)


@app.get(
    "/v1/stats/actions/<action>/daily",
    summary="One action per local day: events, distinct users, average per user",
    tags=["statistics"],
    responses=documented(ActionDaily, *STATS_ERRORS),
)
def get_action_daily(action: Annotated[Action, Path()], from_: FromParam = None, to: DateOrTime = None) -> ActionDaily:
    clock = _clock()
    return stats.action_daily(stats_aggregates(), clock, stats.date_range(clock, from_, to), action)


@app.get(
    "/v1/users/<user_id>/points",
    summary="A user's points and events per action: lifetime, or over whole local days or hours",
    tags=["statistics"],
    responses=documented(UserPoints, *STATS_ERRORS),
)
def get_user_points(user_id: Annotated[UserId, Path()], from_: FromParam = None, to: DateOrTime = None) -> UserPoints:
    return stats.user_points(stats_aggregates(), _clock(), user_id, from_, to)


@app.get(
    "/v1/stats/actions/<action>/properties/<property>/daily",
    summary="A numeric property of one action per local day: count, exact sum, avg, min, max",
    tags=["statistics"],
    responses=documented(PropertyDaily, *STATS_ERRORS),
)
def get_property_daily(
    action: Annotated[Action, Path()],
    property: Annotated[PropertyPathName, Path(description="A metadata key: 1-128 characters, no control character")],
    from_: FromParam = None,
    to: DateOrTime = None,
) -> Response[str]:
    clock = _clock()
    days = stats.date_range(clock, from_, to)
    answer = stats.property_daily(stats_aggregates(), clock, days, action, property)
    # Written here, not by the resolver: its encoders make a Decimal a string or a float.
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=exact_model_json(answer))


@app.get(
    "/v1/stats/violations",
    summary="Events the tracking plan flagged, per local day, action and kind (non-zero only)",
    tags=["statistics"],
    responses=documented(Violations, *STATS_ERRORS),
)
def get_violations(from_: FromParam = None, to: DateOrTime = None) -> Violations:
    clock = _clock()
    return stats.violations(stats_aggregates(), clock, stats.date_range(clock, from_, to))


lambda_handler = lambda_entry(app)
