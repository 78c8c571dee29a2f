"""Bodies of the event type routes (``/v1/event-types``): the tenant's catalog."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

from tracker.models import Action, UtcTimestamp, no_control_characters, searchable_text

MAX_PROPERTIES = 50
MAX_POINTS = 1_000_000
MAX_DESCRIPTION_CHARS = 1000
MAX_SEARCH_CHARS = 1024


def _text_characters(value: str) -> str:
    """Prose: tabs and line breaks are fine, other control characters (NUL included) are not."""
    if any(unicodedata.category(char) == "Cc" and char not in "\t\n\r" for char in value):
        raise ValueError("must not contain control characters other than tab and line breaks")
    return value


PropertyName = Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(no_control_characters)]
Description = Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION_CHARS), AfterValidator(_text_characters)]
Points = Annotated[StrictInt, Field(ge=0, le=MAX_POINTS, description="Whole points, 0 to 1,000,000.")]
SearchText = Annotated[str, StringConstraints(max_length=MAX_SEARCH_CHARS), AfterValidator(searchable_text)]


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
