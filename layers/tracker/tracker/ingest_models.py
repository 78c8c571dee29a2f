"""Bodies of the ingest routes (``POST /v1/events[/batch]``): only the ingest function builds them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from tracker.json_shape import within_bounds
from tracker.models import (
    Action,
    BodyTime,
    ErrorInfo,
    EventId,
    StrictBody,
    UserId,
    UtcTimestamp,
)

MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 32
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 1024 * 1024
MAX_BATCH_EVENTS = 500


def _metadata_shape(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Only what every read can serve back: a bounded depth (serializers stop at some) and size."""
    if value is None:
        return value
    return within_bounds(value, MAX_METADATA_DEPTH, MAX_METADATA_BYTES, " (the object itself is level 1)")


Metadata = Annotated[dict[str, Any] | None, AfterValidator(_metadata_shape)]


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
