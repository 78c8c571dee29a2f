"""Request and response bodies of the HTTP API; the OpenAPI document is generated from them."""

from __future__ import annotations

import json
import unicodedata
from datetime import date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
)

from tracker.timefmt import format_utc

MAX_METADATA_BYTES = 16 * 1024
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 1024 * 1024
MAX_BATCH_EVENTS = 500

ID_PATTERN = r"^[A-Za-z0-9._:-]+$"


def no_control_characters(value: str) -> str:
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError("must not contain control characters")
    return value


def _metadata_size(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(compact_json(value).encode()) > MAX_METADATA_BYTES:
        raise ValueError(f"must be at most {MAX_METADATA_BYTES} bytes when serialized")
    return value


def _iana_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError("must be an IANA time zone name, such as Europe/Kyiv") from error
    return value


def _restore_plus_in_offset(value: Any) -> Any:
    """In a query string an unencoded ``+02:00`` offset arrives as `` 02:00``; put the ``+`` back."""
    if isinstance(value, str) and len(value) > 6 and value[-6] == " " and value[-3] == ":":
        return f"{value[:-6]}+{value[-5:]}"
    return value


def compact_json(value: Any) -> str:
    """The canonical serialization used for sizes and fingerprints."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True, allow_nan=False)


EventId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=ID_PATTERN)]
Action = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN)]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(no_control_characters)]
Metadata = Annotated[dict[str, Any] | None, AfterValidator(_metadata_size)]
TimeZoneName = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_iana_timezone)]
UtcTimestamp = Annotated[datetime, PlainSerializer(format_utc, return_type=str)]
QueryTime = Annotated[AwareDatetime, BeforeValidator(_restore_plus_in_offset)]


class ErrorDetail(BaseModel):
    field: str
    message: str
    type: str


class ErrorInfo(BaseModel):
    code: str = Field(examples=["validation_error"])
    message: str
    details: list[ErrorDetail] = []


class ErrorResponse(BaseModel):
    """The one shape of every error, whatever produced it."""

    error: ErrorInfo


# ---------------------------------------------------------------- events


class EventIn(BaseModel):
    """One activity event as a client sends it. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    event_id: EventId | None = Field(default=None, description="Idempotency key; the server makes a UUID when absent.")
    user_id: UserId
    action: Action
    occurred_at: AwareDatetime | None = Field(
        default=None, description="When the user did it (RFC 3339 with offset); default: the time received."
    )
    sent_at: AwareDatetime | None = Field(
        default=None, description="The client's clock when sending; corrects occurred_at for clock skew."
    )
    metadata: Metadata = Field(default=None, description=f"Any JSON object, at most {MAX_METADATA_BYTES} bytes.")


class BatchIn(BaseModel):
    """Events are validated one by one, so that one bad event rejects only itself."""

    events: list[Any] = Field(
        min_length=1,
        max_length=MAX_BATCH_EVENTS,
        description="1 to 500 events, each an EventIn; each is accepted or rejected on its own.",
    )


class EventStatus(BaseModel):
    event_id: str
    received_at: UtcTimestamp
    status: Literal["accepted", "duplicate"]


class BatchItemResult(BaseModel):
    index: int
    event_id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    error: ErrorInfo | None = None


class BatchResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[BatchItemResult]


class EventOut(BaseModel):
    event_id: str
    user_id: str
    action: str
    occurred_at: UtcTimestamp
    received_at: UtcTimestamp
    metadata: dict[str, Any] | None


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None


# ---------------------------------------------------------------- tenants


class RateLimit(BaseModel):
    rate: float = Field(gt=0, le=10_000, description="Steady requests per second.")
    burst: int = Field(ge=1, le=5_000, description="Requests allowed at once above the steady rate.")


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
    timezone: TimeZoneName = "UTC"


class TenantPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    active: bool | None = None
    rate_limit: RateLimit | None = Field(default=None, description="null restores the default rate limit.")


class TenantOut(BaseModel):
    tenant_id: str
    name: str
    timezone: str
    active: bool
    created_at: UtcTimestamp
    rate_limit: RateLimit | None = None


class ApiKeyCreated(BaseModel):
    key_id: str
    api_key: str = Field(description="Shown once; only its hash is stored.")


class TenantCreated(TenantOut, ApiKeyCreated):
    pass


class TenantPage(BaseModel):
    items: list[TenantOut]
    next_cursor: str | None


class Health(BaseModel):
    status: Literal["ok"]


# ---------------------------------------------------------------- statistics

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


# ---------------------------------------------------------------- erasure

ErasureStatus = Literal["pending", "running", "completed", "failed"]


class ErasureAccepted(BaseModel):
    erasure_id: str
    status: ErasureStatus


class ErasureOut(BaseModel):
    erasure_id: str
    user_id: str
    status: ErasureStatus
    deleted_events: int
    deleted_profiles: int = Field(default=0, description="1 when the user's profile was erased.")
    created_at: UtcTimestamp
    updated_at: UtcTimestamp
