"""Request and response bodies of the HTTP API; the OpenAPI document is generated from them."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from tracker.json_shape import json_depth
from tracker.time_zones import is_time_zone_name
from tracker.timefmt import ceil_to_millis, format_utc

MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 32
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 1024 * 1024
MAX_BATCH_EVENTS = 500
MAX_RATE_LIMIT = 10_000
MAX_BURST_LIMIT = 5_000

ID_PATTERN = r"^[A-Za-z0-9._:-]+$"
# Every time and date the API takes lies in these bounds (the contract's 2000-01-01 .. 9999-12-31).
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime.max.replace(tzinfo=UTC)
LAST_MILLISECOND = LATEST_TIME.replace(microsecond=999_000)
# RFC 3339 ``date-time`` (section 5.6), with the space its note allows; the offset is required.
_RFC3339_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_RFC3339_TIME = re.compile(
    _RFC3339_DATE.pattern + r"[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _nfc(value: Any) -> Any:
    """One spelling per name: ids and names are NFC-normalized before any other rule applies."""
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else value


def no_control_characters(value: str) -> str:
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError("must not contain control characters")
    return value


def _metadata_shape(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Only what every read can serve back: a bounded depth (serializers stop at some) and size."""
    if value is None:
        return value
    if json_depth(value) > MAX_METADATA_DEPTH:
        raise ValueError(f"must be at most {MAX_METADATA_DEPTH} levels deep (the object itself is level 1)")
    if len(compact_json(value).encode()) > MAX_METADATA_BYTES:
        raise ValueError(f"must be at most {MAX_METADATA_BYTES} bytes when serialized")
    return value


def _iana_timezone(value: str) -> str:
    if not is_time_zone_name(value):
        raise ValueError("must be a time zone name of the IANA tz database, such as Europe/Kyiv")
    return value


def _time_parsing_error() -> PydanticCustomError:
    return PydanticCustomError(
        "datetime_parsing", "Input should be an RFC 3339 time with an offset, such as 2025-10-10T18:30:00Z"
    )


def _rfc3339_time(value: Any) -> Any:
    """A time is a string in RFC 3339 with an offset: never a number, nor a number in a string."""
    if not isinstance(value, str) or not _RFC3339_TIME.fullmatch(value):
        raise _time_parsing_error()
    return value


def _query_time(value: Any) -> datetime:
    """A time parameter: RFC 3339 with an offset, in the contract's years, as UTC at the millisecond
    precision of stored times, rounded up, which keeps ``[from, to)`` selecting exactly the same
    events. The last millisecond of year 9999 is as far as it goes (no event is stored that late:
    they are at most an hour ahead of their arrival). In a query string an unencoded ``+02:00``
    offset arrives as `` 02:00``, so the ``+`` is put back first."""
    if isinstance(value, str) and len(value) > 6 and value[-6] == " " and value[-3] == ":":
        value = f"{value[:-6]}+{value[-5:]}"
    try:
        moment = _AWARE_TIME.validate_python(_rfc3339_time(value))
    except ValidationError:
        raise _time_parsing_error() from None
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:  # an offset carries it past year 9999
        utc = None
    if utc is None or utc < EARLIEST_TIME:
        raise PydanticCustomError("out_of_range", "must lie in 2000-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z")
    return LAST_MILLISECOND if utc > LAST_MILLISECOND else ceil_to_millis(utc)


def _query_date(value: Any) -> date:
    if not isinstance(value, str) or not _RFC3339_DATE.fullmatch(value):
        raise PydanticCustomError("date_parsing", "Input should be a date, such as 2025-10-12")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("date_parsing", "Input should be a date that exists, such as 2025-10-12") from None
    if day < EARLIEST_TIME.date():
        raise PydanticCustomError("out_of_range", "must lie in 2000-01-01 .. 9999-12-31")
    return day


def _query_date_or_time(value: Any) -> date | datetime:
    """A date (``2025-10-12``) or a time, each under its own rule."""
    return _query_date(value) if isinstance(value, str) and _RFC3339_DATE.fullmatch(value) else _query_time(value)


def compact_json(value: Any) -> str:
    """The canonical serialization used for sizes and fingerprints."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True, allow_nan=False)


EventId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=ID_PATTERN)]
ResourceId = EventId
"""A server-made id in a path (tenant, key, erasure): the event id's characters and length."""
Action = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN)]
# The before-validator is written last: it still runs first, and the constraints stay intact.
UserId = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(no_control_characters), BeforeValidator(_nfc)
]
Metadata = Annotated[dict[str, Any] | None, AfterValidator(_metadata_shape)]
TimeZoneName = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_iana_timezone)]
UtcTimestamp = Annotated[datetime, PlainSerializer(format_utc, return_type=str)]
BodyTime = Annotated[AwareDatetime, Field(strict=False), BeforeValidator(_rfc3339_time)]
"""A time in a body: an RFC 3339 string (bodies are otherwise strict, so the string is allowed here)."""
QueryTime = Annotated[datetime, BeforeValidator(_query_time)]
QueryDateOrTime = Annotated[datetime | date, BeforeValidator(_query_date_or_time)]
_AWARE_TIME: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)
USER_ID: TypeAdapter[str] = TypeAdapter(UserId)
"""The user id rule, for paths: the same as for bodies."""


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


class StrictBody(BaseModel):
    """A request body: JSON types as they are, no string read as a number or a boolean."""

    model_config = ConfigDict(strict=True)


class EventIn(StrictBody):
    """One activity event as a client sends it. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    event_id: EventId | None = Field(default=None, description="Idempotency key; the server makes a UUID when absent.")
    user_id: UserId
    action: Action
    occurred_at: BodyTime | None = Field(
        default=None, description="When the user did it (RFC 3339 with offset); default: the time received."
    )
    sent_at: BodyTime | None = Field(
        default=None, description="The client's clock when sending; corrects occurred_at for clock skew."
    )
    metadata: Metadata = Field(
        default=None,
        description=(
            f"Any JSON object, at most {MAX_METADATA_BYTES} bytes serialized and {MAX_METADATA_DEPTH} levels deep."
        ),
    )


class BatchIn(StrictBody):
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


class RateLimit(StrictBody):
    """What an API Gateway usage plan holds: whole requests per second (a fraction is not kept
    by every implementation of its ``rateLimit``) and an integer burst, within the account's
    default regional limits (10,000 requests per second, burst 5,000)."""

    rate: int = Field(ge=1, le=MAX_RATE_LIMIT, description="Steady requests per second, a whole number.")
    burst: int = Field(ge=1, le=MAX_BURST_LIMIT, description="Requests allowed at once above the steady rate.")


class TenantCreate(StrictBody):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128), BeforeValidator(_nfc)]
    timezone: TimeZoneName = "UTC"


MAX_ALLOWED_ORIGINS = 20
# scheme://host[:port], as browsers send it in the Origin header: no path, no trailing slash.
WebOrigin = Annotated[
    str,
    StringConstraints(
        max_length=253 + len("https://") + len(":65535"),
        pattern=r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)(:[0-9]{1,5})?$",
    ),
]
ValidationMode = Literal["off", "flag", "block"]


class TenantPatch(StrictBody):
    model_config = ConfigDict(extra="forbid")

    active: bool | None = None
    rate_limit: RateLimit | None = Field(default=None, description="null restores the default rate limit.")
    allowed_origins: list[WebOrigin] | None = Field(
        default=None,
        max_length=MAX_ALLOWED_ORIGINS,
        description="Origins (`https://shop.example`) whose pages may send events with an ingest key; "
        "null or [] allows none.",
    )
    validation: ValidationMode = Field(
        default="off",
        description="The tracking plan at ingest: off, flag (store and mark violations) or block (reject them).",
    )


class TenantOut(BaseModel):
    tenant_id: str
    name: str
    timezone: str
    active: bool
    created_at: UtcTimestamp
    rate_limit: RateLimit | None = None
    allowed_origins: list[str] = []
    validation: ValidationMode = "off"


KeyRole = Literal["tenant", "ingest"]


class KeyCreate(StrictBody):
    model_config = ConfigDict(extra="forbid")

    role: KeyRole = Field(
        default="tenant",
        description="`tenant` (secret: every tenant route) or `ingest` (publishable: only adds events).",
    )


class ApiKeyCreated(BaseModel):
    key_id: str
    api_key: str = Field(description="Shown once; only its hash is stored.")
    role: KeyRole = "tenant"


class AccessToken(BaseModel):
    access_token: str = Field(description="A signed JWT; send it as `Authorization: Bearer <token>`.")
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - a scheme name, not a secret
    expires_in: int = Field(description="Seconds until it expires.")


class TenantCreated(TenantOut, ApiKeyCreated):
    pass


class TenantPage(BaseModel):
    items: list[TenantOut]
    next_cursor: str | None


class Health(BaseModel):
    status: Literal["ok"]


# ---------------------------------------------------------------- event types

MAX_PROPERTIES = 50
MAX_POINTS = 1_000_000
MAX_DESCRIPTION_CHARS = 1000
MAX_SEARCH_CHARS = 1024


def _text_characters(value: str) -> str:
    """Prose: tabs and line breaks are fine, other control characters (NUL included) are not."""
    if any(unicodedata.category(char) == "Cc" and char not in "\t\n\r" for char in value):
        raise ValueError("must not contain control characters other than tab and line breaks")
    return value


def _searchable(value: str) -> str:
    """Text a search can hold: no control characters, and no lone surrogate (DynamoDB takes UTF-8 only)."""
    if any(unicodedata.category(char) in {"Cc", "Cs"} for char in value):
        raise ValueError("must not contain control characters or unpaired surrogates")
    return value


PropertyName = Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(no_control_characters)]
Description = Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION_CHARS), AfterValidator(_text_characters)]
Points = Annotated[StrictInt, Field(ge=0, le=MAX_POINTS, description="Whole points, 0 to 1,000,000.")]
SearchText = Annotated[str, StringConstraints(max_length=MAX_SEARCH_CHARS), AfterValidator(_searchable)]


class PropertySpec(BaseModel):
    """A metadata key the events of a type carry: its JSON type, and whether every event must have it."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["number", "string", "boolean"]
    required: StrictBool = False


Properties = Annotated[
    dict[PropertyName, PropertySpec],
    Field(max_length=MAX_PROPERTIES, description=f"Metadata keys and their types, at most {MAX_PROPERTIES}."),
]


class EventTypeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Action = Field(description="The action this type describes; the key of the type, fixed once created.")
    description: Description = ""
    points: Points = 0
    properties: Properties = {}


class EventTypePatch(BaseModel):
    """The fields to change; ``properties`` replaces the whole map. ``name`` is the key: it cannot change."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="Only the type's own name is accepted: a rename is a 422.")
    description: Description = ""
    points: Points = 0
    properties: Properties = {}


class EventTypeOut(BaseModel):
    name: str
    description: str
    points: int
    properties: dict[str, PropertySpec]
    created_at: UtcTimestamp
    updated_at: UtcTimestamp


class EventTypePage(BaseModel):
    items: list[EventTypeOut]
    next_cursor: str | None


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

TopUsersBy = Literal["events", "points"]
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


class UserPointsCount(BaseModel):
    """A top user by points: their points and events in the window."""

    user_id: str
    points: int
    count: int


PropertyPathName = Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(_searchable)]
PROPERTY_NAME: TypeAdapter[str] = TypeAdapter(PropertyPathName)
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
