"""Bodies of the statistics routes (``/v1/users/{user_id}/activity``, ``/v1/stats/...``): only the
statistics function builds them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from tracker.models import UtcTimestamp, searchable_text

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


TopUsersBy = Literal["events", "points"]


class UserPointsCount(BaseModel):
    """A top user by points: their points and events in the window."""

    user_id: str
    points: int
    count: int


class TopUsers(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    as_of: UtcTimestamp
    from_: UtcTimestamp = Field(alias="from")
    to: UtcTimestamp
    by: TopUsersBy = "events"
    items: list[UserPointsCount] | list[UserCount] = Field(description="With by=points, each item has points.")


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


# Points, numeric properties and tracking-plan violations (issue 13), read from the same aggregates.

ExactNumber = Annotated[
    int | Decimal,
    WithJsonSchema({"type": "number", "description": "Exact: every decimal digit, never rounded to a double."}),
]
"""An integer, or a decimal whose text is sent as a JSON number digit for digit (``tracker.exact_json``)."""


class ActionPoints(BaseModel):
    count: int = Field(description="The user's events of this action.")
    points: int = Field(description="The points they earned.")


class UserPoints(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    user_id: str
    as_of: UtcTimestamp
    from_: UtcTimestamp | None = Field(
        alias="from", description="Start of the whole local days or hours counted; null: the user's whole history."
    )
    to: UtcTimestamp | None = Field(description="End of the days or hours counted (exclusive); null: lifetime.")
    total: int
    by_action: dict[str, ActionPoints]


PropertyPathName = Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(searchable_text)]
"""A property name in a path: a metadata key's length, and text any key could hold (a key never
holds a control character or an unpaired surrogate)."""


class PropertyDay(BaseModel):
    date: date
    count: int = Field(description="Events of the action that day whose metadata held the property as a number.")
    sum: ExactNumber = Field(description="Their exact sum; 0 on an empty day.")
    avg: float | None = Field(description="sum / count as a double; null on an empty day.")
    min: ExactNumber | None = Field(description="Exact; null on an empty day.")
    max: ExactNumber | None = Field(description="Exact; null on an empty day.")


class PropertyDaily(BaseModel):
    action: str
    property: str
    as_of: UtcTimestamp
    items: list[PropertyDay]


class ViolationCount(BaseModel):
    date: date
    action: str
    kind: str = Field(description="unplanned_action, required_missing or type_mismatch")
    count: int


class Violations(BaseModel):
    as_of: UtcTimestamp
    items: list[ViolationCount] = Field(description="Non-zero counts only, by date, then action, then kind.")
