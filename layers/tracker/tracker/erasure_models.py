"""Bodies of the erasure routes (``DELETE /v1/users/{user_id}``, ``GET /v1/erasures/{id}``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tracker.models import UtcTimestamp

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
