"""Function settings, read from the environment that ``template.yaml`` declares."""

from __future__ import annotations

import os
from functools import cache

from pydantic import BaseModel, Field


class Settings(BaseModel):
    events_table: str = ""
    tenants_table: str = ""
    aggregates_table: str = ""
    erase_worker_function: str = ""
    usage_plan_name: str = ""
    token_signing_secret: str = ""
    """The Secrets Manager secret (ARN or name) that signs access tokens."""
    connections_table: str = ""
    # Where the broadcaster posts to WebSocket connections: the API's
    # https://{api}.execute-api.{region}.amazonaws.com/{stage} URL (the local stack's own locally).
    websocket_management_url: str = ""
    broadcast_concurrency: int = Field(default=16, ge=1, le=64)
    default_rate_limit: float = Field(default=50, gt=0)
    default_burst_limit: int = Field(default=100, ge=1)
    # An event is counted once it was received this long before a rollup's "now": longer than
    # the ingest function's timeout, so that no write still in flight is passed over.
    rollup_settle_seconds: float = Field(default=60, ge=0)
    # Where the very first rollup starts reading (there is no progress record yet).
    rollup_initial_lookback_hours: float = Field(default=24, gt=0)
    # Boto3 timeouts and retries (standard mode: exponential backoff with jitter on throttling,
    # 5xx and connection errors). One call takes at most attempts x (connect + read) plus the
    # backoffs between attempts (up to 1 s, then 2 s): 3 x 3 s + 3 s = 12 s, so a request ends
    # (stored, or a clean 503) inside the ingest function's 28 s and API Gateway's 29 s.
    aws_connect_timeout_seconds: float = Field(default=1.0, gt=0)
    aws_read_timeout_seconds: float = Field(default=2.0, gt=0)
    aws_max_attempts: int = Field(default=3, ge=1, description="Attempts in all, the first included.")
    # A batch starts no new write when less than this is left before the function's timeout
    # (one worst-case call and the answer); the events it did not write are rejected as
    # "unavailable", for the client to send again.
    ingest_deadline_margin_ms: int = Field(default=14_000, ge=0)
    ingest_concurrency: int = Field(default=16, ge=1, le=64)
    catalog_table: str = ""
    # How long an ingest execution environment keeps an event type (or its absence) it read from the
    # catalog: an edit of the catalog applies to the tracking plan at most this long after it.
    catalog_cache_seconds: float = Field(default=30, ge=0, le=3600)
    # Profiles and exports (a table, a secret and a bucket of their own).
    profiles_table: str = ""
    profile_lookup_secret: str = ""
    exports_bucket: str = ""
    export_worker_function: str = ""
    # An export file is uploaded in parts of this size (S3's least is 5 MiB); a worker stops after a part
    # once less than the margin is left of its time, and a next invocation resumes after that part.
    export_part_bytes: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024)
    export_deadline_margin_ms: int = Field(default=120_000, ge=0)


class ConfigurationError(RuntimeError):
    """A setting the function needs is missing or wrong: a deployment mistake, never the caller's."""


@cache
def get_settings() -> Settings:
    """Settings of this process; cached, so call it per request, not at import."""
    fields = Settings.model_fields
    values = {name: os.environ[name.upper()] for name in fields if name.upper() in os.environ}
    return Settings.model_validate(values)


def require_settings(*names: str) -> Settings:
    """The settings, once each named one is set; otherwise ``ConfigurationError`` naming the variables.

    Function modules call it at import, so that a function deployed without its table fails at
    init with a message that says which variable is missing, instead of answering 503 forever.
    """
    settings = get_settings()
    missing = [name.upper() for name in names if not getattr(settings, name)]
    if missing:
        raise ConfigurationError(f"Missing environment variable(s): {', '.join(missing)}")
    return settings
