"""What the HTTP API's bodies share: ids, times, the error shape, the strict body base.

Each area's bodies are in a module of their own (``ingest_models``, ``event_models``, ``tenant_models``,
``catalog_models``, ``stats_models``, ``erasure_models``, ``profile_models``), so that a function
builds only the pydantic models of its own routes at import; the OpenAPI document is generated
from them all.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from tracker.timefmt import ceil_to_millis, format_utc

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


def nfc(value: Any) -> Any:
    """One spelling per name: ids and names are NFC-normalized before any other rule applies."""
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else value


def no_control_characters(value: str) -> str:
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError("must not contain control characters")
    return value


def searchable_text(value: str) -> str:
    """Text a search or a path can hold: no control characters, and no lone surrogate (DynamoDB takes UTF-8 only)."""
    if any(unicodedata.category(char) in {"Cc", "Cs"} for char in value):
        raise ValueError("must not contain control characters or unpaired surrogates")
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


EventId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=ID_PATTERN)]
ResourceId = EventId
"""A server-made id in a path (tenant, key, erasure): the event id's characters and length."""
Action = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN)]
# The before-validator is written last: it still runs first, and the constraints stay intact.
UserId = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(no_control_characters), BeforeValidator(nfc)
]
UtcTimestamp = Annotated[datetime, PlainSerializer(format_utc, return_type=str)]
BodyTime = Annotated[AwareDatetime, Field(strict=False), BeforeValidator(_rfc3339_time)]
"""A time in a body: an RFC 3339 string (bodies are otherwise strict, so the string is allowed here)."""
QueryTime = Annotated[datetime, BeforeValidator(_query_time)]
QueryDateOrTime = Annotated[datetime | date, BeforeValidator(_query_date_or_time)]
_AWARE_TIME: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)


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


class StrictBody(BaseModel):
    """A request body: JSON types as they are, no string read as a number or a boolean."""

    model_config = ConfigDict(strict=True)
