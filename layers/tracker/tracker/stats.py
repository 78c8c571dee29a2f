"""The statistics routes, answered from the aggregates alone: their cost does not grow with events.

Every answer is one snapshot: the progress record gives the tenant's committed token and
``as_of``, and each item read is taken as of that token (``tracker.aggregates``), whatever a run
is writing meanwhile. Only a reader slower than two commits finds an item rewritten past its
token; it reads again with the new progress.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

from tracker.aggregates import (
    LIFETIME_SORT_KEY,
    PART_SEPARATOR,
    Aggregate,
    StoredAggregate,
    assemble,
    day_sort_key,
    day_users_partition,
    hour_sort_key,
    tenant_actions_partition,
    tenant_days_partition,
    user_partition,
)
from tracker.errors import Unavailable, ValidationFailed, field_error
from tracker.interfaces import StatsStore
from tracker.local_calendar import Period, dates, day_start, local_date, local_hour_start, next_hour_start, windows
from tracker.stats_models import (
    MAX_ACTIVITY_WINDOWS,
    MAX_RANGE_DAYS,
    ActionDaily,
    ActionDay,
    ActionPoints,
    ActionTotal,
    ActivityWindow,
    DailyStats,
    DailyUsage,
    Frequency,
    PropertyDaily,
    PropertyDay,
    TopUsers,
    TopUsersBy,
    Trend,
    TrendDay,
    UserActivity,
    UserCount,
    UserPoints,
    UserPointsCount,
    ViolationCount,
    Violations,
)
from tracker.timefmt import parse_utc

NEVER = datetime(1970, 1, 1, tzinfo=UTC)
SNAPSHOT_ATTEMPTS = 5
DEFAULT_RANGE = timedelta(days=7)
MILLISECOND = timedelta(milliseconds=1)


@dataclass(frozen=True)
class TenantClock:
    tenant_id: str
    zone: ZoneInfo
    now: datetime


def snapshot(
    store: StatsStore, tenant_id: str, read: Callable[[], list[StoredAggregate]]
) -> tuple[datetime, list[Aggregate]]:
    """The values ``read()`` finds, as of the tenant's last committed run, and that run's ``as_of``."""
    for _ in range(SNAPSHOT_ATTEMPTS):
        token, as_of = store.load_progress().snapshot(tenant_id)
        values = assemble(read(), token)
        if values is not None:
            return as_of or NEVER, values
    raise Unavailable("The statistics kept moving while they were read; retry in a moment.", retry_after_seconds=1)


def _check_range(start: datetime, end: datetime, zone: ZoneInfo, whole_days: bool) -> None:
    """Non-empty and at most 366 days: whole local days counted on the wall clock (a DST change
    makes 366 days an hour longer or shorter), times as they are."""
    if start >= end:
        raise ValidationFailed("The range is empty.", [field_error("from", "must be before `to`", "range")])
    length = end - start
    if whole_days:
        length = end.astimezone(zone).replace(tzinfo=None) - start.astimezone(zone).replace(tzinfo=None)
    if length > timedelta(days=MAX_RANGE_DAYS):
        raise ValidationFailed(
            "The range is too long.",
            [field_error("to", f"must be at most {MAX_RANGE_DAYS} days after `from`", "range")],
        )


def instant_range(
    clock: TenantClock, start: date | datetime | None, end: date | datetime | None, default: timedelta
) -> tuple[datetime, datetime]:
    """``[from, to)`` as instants: a date means its whole local day (``to`` included)."""
    end_at = clock.now if end is None else _instant(end, clock.zone, end_of_day=True)
    start_at = end_at - default if start is None else _instant(start, clock.zone, end_of_day=False)
    _check_range(start_at, end_at, clock.zone, _whole_days(start, end))
    return start_at, end_at


def date_range(clock: TenantClock, start: date | datetime | None, end: date | datetime | None) -> list[date]:
    """The local dates a range touches; by default 7 days, ending today (or on the day of ``to``)."""
    today = local_date(clock.now, clock.zone)
    default_end = day_start(today + timedelta(days=1), clock.zone)
    end_at = default_end if end is None else _instant(end, clock.zone, end_of_day=True)
    last_day = local_date(end_at - MILLISECOND, clock.zone)
    start_at = (
        day_start(last_day - timedelta(days=6), clock.zone) if start is None else _instant(start, clock.zone, False)
    )
    _check_range(start_at, end_at, clock.zone, _whole_days(start, end))
    return dates(local_date(start_at, clock.zone), local_date(end_at - MILLISECOND, clock.zone))


def _whole_days(*values: date | datetime | None) -> bool:
    return not any(isinstance(value, datetime) for value in values)


def _instant(value: date | datetime, zone: ZoneInfo, end_of_day: bool) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return day_start(value + timedelta(days=1) if end_of_day else value, zone)


def user_activity(
    store: StatsStore, clock: TenantClock, user_id: str, *, period: Period, start: datetime, end: datetime
) -> UserActivity:
    spans = list(windows(start, end, period, clock.zone))
    if len(spans) > MAX_ACTIVITY_WINDOWS:
        raise ValidationFailed(
            "Too many windows.",
            [field_error("period", f"the range holds {len(spans)} windows; at most {MAX_ACTIVITY_WINDOWS}", "range")],
        )
    partition = user_partition(clock.tenant_id, user_id)
    if period == "1d":
        first, last = (local_date(spans[0][0], clock.zone), local_date(spans[-1][0], clock.zone))
        low, high = day_sort_key(first), day_sort_key(last)
    else:
        low, high = hour_sort_key(spans[0][0]), hour_sort_key(spans[-1][1] - MILLISECOND)
    high += PART_SEPARATOR * 2  # and the parts of the last value

    as_of, items = snapshot(store, clock.tenant_id, lambda: store.read_partition(partition, low, high))
    counts = [0] * len(spans)
    actions: list[Counter[str]] = [Counter() for _ in spans]
    starts = [span[0] for span in spans]
    for item in items:
        instant = day_start(date.fromisoformat(item.sort_key[2:]), clock.zone) if period == "1d" else None
        index = bisect_right(starts, instant or parse_utc(item.sort_key[2:])) - 1
        if 0 <= index < len(spans):
            counts[index] += item.count
            actions[index].update(item.actions)
    return UserActivity(
        user_id=user_id,
        period=period,
        as_of=as_of,
        items=[
            ActivityWindow(start=span[0], end=span[1], count=count, by_action=dict(sorted(by_action.items())))
            for span, count, by_action in zip(spans, counts, actions, strict=True)
        ],
    )


def daily(store: StatsStore, clock: TenantClock, days: int) -> DailyStats:
    today = local_date(clock.now, clock.zone)
    days_listed = dates(today - timedelta(days=days - 1), today)
    partition = tenant_days_partition(clock.tenant_id)
    first, last = days_listed[0].isoformat(), days_listed[-1].isoformat()
    as_of, items = snapshot(store, clock.tenant_id, lambda: store.read_partition(partition, first, last))
    by_day = {item.sort_key: item for item in items}
    usage = []
    for day in days_listed:
        item = by_day.get(day.isoformat())
        usage.append(DailyUsage(date=day, count=item.count if item else 0, users=item.users if item else 0))
    return DailyStats(as_of=as_of, timezone=clock.zone.key, items=usage)


def top_users(store: StatsStore, clock: TenantClock, hours: int, limit: int, by: TopUsersBy = "events") -> TopUsers:
    """The busiest users (or those who earned the most points) of the last ``hours`` local hours,
    the current one included: one item per user and local day the window touches, each holding
    that user's count and points of the day and per hour."""
    current = local_hour_start(clock.now, clock.zone)
    start = current
    for _ in range(hours - 1):
        start = local_hour_start(start - MILLISECOND, clock.zone)
    end = next_hour_start(current, clock.zone)
    days = dates(local_date(start, clock.zone), local_date(current, clock.zone))
    partitions = [day_users_partition(clock.tenant_id, day) for day in days]
    as_of, items = snapshot(store, clock.tenant_id, lambda: store.read_partitions(partitions))
    day_of = dict(zip(partitions, days, strict=True))
    counts: Counter[str] = Counter()
    points: Counter[str] = Counter()
    for item in items:
        day = day_of[item.partition]
        midnight = day_start(day, clock.zone)
        if start <= midnight and day_start(day + timedelta(days=1), clock.zone) <= end:
            counts[item.sort_key] += item.count
            points[item.sort_key] += item.points
            continue
        for totals, per_hour in ((counts, item.hours), (points, item.hour_points)):
            totals[item.sort_key] += sum(n for minutes, n in per_hour.items() if start <= _at(midnight, minutes) < end)
    ranking = points if by == "points" else counts
    ranked = sorted((user for user, n in ranking.items() if n), key=lambda user: (-ranking[user], user))[:limit]
    listed: list[UserPointsCount] | list[UserCount] = (
        [UserPointsCount(user_id=user, points=points[user], count=counts[user]) for user in ranked]
        if by == "points"
        else [UserCount(user_id=user, count=counts[user]) for user in ranked]
    )
    return TopUsers(as_of=as_of, from_=start, to=end, by=by, items=listed)


def _at(midnight: datetime, minutes: int) -> datetime:
    """The local hour named by its minutes after the local midnight of its day."""
    return midnight + timedelta(minutes=minutes)


def _action_days(store: StatsStore, clock: TenantClock, days: list[date]) -> tuple[datetime, list[Aggregate]]:
    partition = tenant_actions_partition(clock.tenant_id)
    first, last = days[0].isoformat(), f"{days[-1].isoformat()}#~"  # "~" sorts after every character of an action
    return snapshot(store, clock.tenant_id, lambda: store.read_partition(partition, first, last))


def _split(item: Aggregate) -> tuple[str, str]:
    day, _, action = item.sort_key.partition("#")
    return day, action


def _days_of(items: list[Aggregate], action: str) -> dict[str, Aggregate]:
    """The action-days of one action, by date."""
    return {day: item for item in items for day, item_action in [_split(item)] if item_action == action}


def trend(store: StatsStore, clock: TenantClock, days: list[date]) -> Trend:
    as_of, items = _action_days(store, clock, days)
    per_day: dict[str, dict[str, int]] = {day.isoformat(): {} for day in days}
    for item in items:
        day, action = _split(item)
        if day in per_day:
            per_day[day][action] = item.count
    return Trend(as_of=as_of, items=[TrendDay(date=date.fromisoformat(day), counts=c) for day, c in per_day.items()])


def frequency(store: StatsStore, clock: TenantClock, days: list[date], action: str | None) -> Frequency:
    as_of, items = _action_days(store, clock, days)
    totals: Counter[str] = Counter({action: 0} if action else {})
    for item in items:
        _, item_action = _split(item)
        if action is None or item_action == action:
            totals[item_action] += item.count
    ranked = sorted(totals.items(), key=lambda entry: (-entry[1], entry[0]))
    return Frequency(as_of=as_of, items=[ActionTotal(action=name, total=total) for name, total in ranked])


def action_daily(store: StatsStore, clock: TenantClock, days: list[date], action: str) -> ActionDaily:
    as_of, items = _action_days(store, clock, days)
    found = _days_of(items, action)
    listed = []
    for day in days:
        item = found.get(day.isoformat())
        count, users = (item.count, item.users) if item else (0, 0)
        listed.append(
            ActionDay(date=day, count=count, users=users, avg_per_user=round(count / users, 4) if users else 0.0)
        )
    return ActionDaily(action=action, as_of=as_of, items=listed)


def user_points(
    store: StatsStore, clock: TenantClock, user_id: str, start: date | datetime | None, end: date | datetime | None
) -> UserPoints:
    """A user's points and events per action: with no range the lifetime item (one read); with
    dates the user-days, with times the local hours the range touches (as ``activity`` reads)."""
    partition = user_partition(clock.tenant_id, user_id)
    span: tuple[datetime | None, datetime | None] = (None, None)
    low = high = LIFETIME_SORT_KEY
    if start is not None or end is not None:
        if _whole_days(start, end):
            days = date_range(clock, start, end)
            low, high = day_sort_key(days[0]), day_sort_key(days[-1])
            span = (day_start(days[0], clock.zone), day_start(days[-1] + timedelta(days=1), clock.zone))
        else:
            start_at, end_at = instant_range(clock, start, end, DEFAULT_RANGE)
            first, last = local_hour_start(start_at, clock.zone), local_hour_start(end_at - MILLISECOND, clock.zone)
            low, high = hour_sort_key(first), hour_sort_key(last)
            span = (first, next_hour_start(last, clock.zone))
    high += PART_SEPARATOR * 2  # and the parts of the last value

    as_of, items = snapshot(store, clock.tenant_id, lambda: store.read_partition(partition, low, high))
    counts: Counter[str] = Counter()
    points: Counter[str] = Counter()
    for item in items:
        counts.update(item.actions)
        points.update(item.points_by_action)
    by_action = {
        action: ActionPoints(count=counts[action], points=points[action]) for action in sorted(counts | points)
    }
    return UserPoints(
        user_id=user_id, as_of=as_of, from_=span[0], to=span[1], total=sum(points.values()), by_action=by_action
    )


def property_daily(store: StatsStore, clock: TenantClock, days: list[date], action: str, name: str) -> PropertyDaily:
    """A numeric property of one action per local day: count, exact sum, min and max, and the mean
    as the double nearest to ``sum / count`` (no decimal rounding on the way)."""
    as_of, items = _action_days(store, clock, days)
    found = _days_of(items, action)
    listed = []
    for day in days:
        item = found.get(day.isoformat())
        counted = item.property_stats(name) if item else None
        if counted is None:
            listed.append(PropertyDay(date=day, count=0, sum=0, avg=None, min=None, max=None))
            continue
        listed.append(
            PropertyDay(
                date=day,
                count=counted.count,
                sum=counted.sum,
                avg=float(Fraction(counted.sum) / counted.count),
                min=counted.min,
                max=counted.max,
            )
        )
    return PropertyDaily(action=action, property=name, as_of=as_of, items=listed)


def violations(store: StatsStore, clock: TenantClock, days: list[date]) -> Violations:
    """The tracking plan's flagged events per local day, action and kind: non-zero counts only."""
    as_of, items = _action_days(store, clock, days)
    listed = sorted(
        (date.fromisoformat(day), action, kind, count)
        for item in items
        for day, action in [_split(item)]
        for kind, count in item.violations.items()
        if count
    )
    return Violations(
        as_of=as_of,
        items=[ViolationCount(date=day, action=action, kind=kind, count=count) for day, action, kind, count in listed],
    )
