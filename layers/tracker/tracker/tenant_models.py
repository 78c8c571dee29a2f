"""Bodies of the admin routes (``/v1/tenants``, their keys): only the tenants function builds them,
and only it reads the tz database (a tenant's time zone must be one of its names)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from tracker.models import StrictBody, UtcTimestamp, nfc
from tracker.time_zones import is_time_zone_name

MAX_RATE_LIMIT = 10_000
MAX_BURST_LIMIT = 5_000


def _iana_timezone(value: str) -> str:
    if not is_time_zone_name(value):
        raise ValueError("must be a time zone name of the IANA tz database, such as Europe/Kyiv")
    return value


TimeZoneName = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_iana_timezone)]


class RateLimit(StrictBody):
    """What an API Gateway usage plan holds: whole requests per second (a fraction is not kept
    by every implementation of its ``rateLimit``) and an integer burst, within the account's
    default regional limits (10,000 requests per second, burst 5,000)."""

    rate: int = Field(ge=1, le=MAX_RATE_LIMIT, description="Steady requests per second, a whole number.")
    burst: int = Field(ge=1, le=MAX_BURST_LIMIT, description="Requests allowed at once above the steady rate.")


class TenantCreate(StrictBody):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128), BeforeValidator(nfc)]
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


class TenantCreated(TenantOut, ApiKeyCreated):
    pass


class TenantPage(BaseModel):
    items: list[TenantOut]
    next_cursor: str | None
