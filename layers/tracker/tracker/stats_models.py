"""Bodies of the statistics routes (``/v1/users/{user_id}/activity``, ``/v1/stats/...``): only the
statistics function builds them."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tracker.models import UtcTimestamp

MAX_ACTIVITY_WINDOWS = 1000
MAX_RANGE_DAYS = 366


class ActivityWindow(BaseModel):
    start: UtcTimestamp
    end: UtcTimestamp
    count: int
    by_action: dict[str, int]


class UserActivity(BaseModel):
    user_id: str
    period: Literal["1h", "4h", "1d"]
    as_of: UtcTimestamp
    items: list[ActivityWindow]


class DailyUsage(BaseModel):
    date: date
    count: int
    users: int


class DailyStats(BaseModel):
    as_of: UtcTimestamp
    timezone: str
    items: list[DailyUsage]


class UserCount(BaseModel):
    user_id: str
    count: int


class TopUsers(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    as_of: UtcTimestamp
    from_: UtcTimestamp = Field(alias="from")
    to: UtcTimestamp
    items: list[UserCount]


class TrendDay(BaseModel):
    date: date
    counts: dict[str, int]


class Trend(BaseModel):
    as_of: UtcTimestamp
    items: list[TrendDay]


class ActionTotal(BaseModel):
    action: str
    total: int


class Frequency(BaseModel):
    as_of: UtcTimestamp
    items: list[ActionTotal]


class ActionDay(BaseModel):
    date: date
    count: int
    users: int
    avg_per_user: float


class ActionDaily(BaseModel):
    action: str
    as_of: UtcTimestamp
    items: list[ActionDay]
