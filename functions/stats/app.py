"""The statistics routes: answered from the rollup's aggregates, never from raw events."""

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from tracker import stats
from tracker.adapters.aggregates_table import stats_aggregates
from tracker.models import Action, QueryDateOrTime, UserId
from tracker.rest import create_app, documented, lambda_entry, tenant_id_of, tenant_zone_of
from tracker.settings import require_settings
from tracker.stats_models import ActionDaily, DailyStats, Frequency, TopUsers, Trend, UserActivity
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
    summary="The users with the most events in the last `hours` hours; ties by user_id",
    tags=["statistics"],
    responses=documented(TopUsers, *STATS_ERRORS),
)
def get_top_users(
    hours: Annotated[int, Query(ge=1, le=720)] = 24,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> TopUsers:
    return stats.top_users(stats_aggregates(), _clock(), hours, limit)


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


lambda_handler = lambda_entry(app)
