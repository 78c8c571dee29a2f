"""Hours, days and windows in a tenant's time zone, as UTC instants.

Statistics are bucketed by *local* hour and *local* date: an hour bucket is named by the UTC
instant at which that local hour starts (04:30Z for 10:00 in Asia/Kolkata), so DST days have
23 or 25 hourly buckets and zones with :30 and :45 offsets need nothing special.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Literal
from zoneinfo import ZoneInfo

Period = Literal["1h", "4h", "1d"]
HOUR = timedelta(hours=1)
QUARTER_HOUR = timedelta(minutes=15)
PERIOD_HOURS = {"1h": 1, "4h": 4, "1d": 24}


def local_hour_start(moment: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant at which the local hour holding ``moment`` began: the last instant, at or
    before ``moment``, at which the wall clock showed a whole hour.

    On a fall-back night with a one-hour change the repeated hour is two buckets (a 25-hour day);
    where clocks move by 30 minutes (Lord Howe Island) an hour bucket lasts 90 or 30 minutes,
    never overlapping another.
    """
    wall = moment.astimezone(zone).replace(minute=0, second=0, microsecond=0, tzinfo=None)
    for hours_back in range(3):
        candidate = wall - hours_back * HOUR
        for fold in (1, 0):  # the later of a repeated wall time first
            instant = candidate.replace(tzinfo=zone, fold=fold).astimezone(UTC)
            shown = instant.astimezone(zone).replace(tzinfo=None)
            if instant <= moment and shown == candidate:
                return instant
    raise ValueError(f"No local hour starts near {moment.isoformat()} in {zone.key}")


def next_hour_start(hour_start: datetime, zone: ZoneInfo) -> datetime:
    """The start of the local hour after the one starting at ``hour_start``."""
    probe = hour_start + HOUR
    while (start := local_hour_start(probe, zone)) <= hour_start:
        probe += QUARTER_HOUR  # every zone's offset is a whole number of quarter hours
    return start


def local_date(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def local_time(day: date, hour: int, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock hour of a day (the earlier one if it repeats)."""
    return datetime.combine(day, time(hour), tzinfo=zone).astimezone(UTC)


def day_start(day: date, zone: ZoneInfo) -> datetime:
    return local_time(day, 0, zone)


def windows(start: datetime, end: datetime, period: Period, zone: ZoneInfo) -> Iterator[tuple[datetime, datetime]]:
    """The windows of ``period`` that overlap ``[start, end)``, in order.

    ``1h`` windows are the local hours (``local_hour_start``); ``4h`` and ``1d`` windows start at
    local 00:00, 04:00, 08:00 ... by the wall clock, so on a DST day one of them is shorter
    or longer than four hours, and the day itself 23 or 25 hours.
    """
    if period == "1h":
        cursor = local_hour_start(start, zone)
        while cursor < end:
            following = next_hour_start(cursor, zone)
            yield cursor, following
            cursor = following
        return
    step = PERIOD_HOURS[period]
    day = local_date(start, zone)
    while True:
        boundaries = [local_time(day, hour, zone) for hour in range(0, 24, step)]
        boundaries.append(day_start(day + timedelta(days=1), zone))
        for window_start, window_end in pairwise(boundaries):
            if window_start >= end:
                return
            if window_end > start:
                yield window_start, window_end
        day += timedelta(days=1)


def dates(first: date, last: date) -> list[date]:
    """Every date from ``first`` to ``last``, both included."""
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
