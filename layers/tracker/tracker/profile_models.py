"""Request and response bodies of the profile and export routes, and what is stored of them.

A profile is who a user is (email, names, phone, traits), kept apart from what they do: its own
table, its own KMS key. Every field is optional; the rules are the contract's.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from tracker.json_shape import within_bounds
from tracker.models import UtcTimestamp, no_control_characters

MAX_EMAIL_CHARS = 254
MAX_NAME_CHARS = 128
MAX_TRAITS_BYTES = 8 * 1024
MAX_TRAITS_DEPTH = 32
PROFILE_FIELDS = ("email", "username", "first_name", "last_name", "phone", "traits")

# RFC 5322 addr-spec, ASCII only (no obsolete forms, no folding whitespace, no comments):
# local-part = dot-atom / quoted-string; domain = dot-atom / domain-literal.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED_STRING = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"'
_DOMAIN_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]*\]"
ADDR_SPEC = re.compile(rf"(?:{_DOT_ATOM}|{_QUOTED_STRING})@(?:{_DOT_ATOM}|{_DOMAIN_LITERAL})")
# E.164: a plus, then 8 to 15 digits, the country code first (never 0).
E164 = re.compile(r"\+[1-9][0-9]{7,14}")


def _addr_spec(value: str) -> str:
    if not ADDR_SPEC.fullmatch(value):
        raise ValueError("must be an email address (RFC 5322 addr-spec, ASCII), such as ada@example.com")
    return value


def _e164(value: str) -> str:
    if not E164.fullmatch(value):
        raise ValueError("must be an E.164 phone number: + then 8 to 15 digits, such as +380441234567")
    return value


def _traits(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return within_bounds(value, MAX_TRAITS_DEPTH, MAX_TRAITS_BYTES)


Email = Annotated[str, StringConstraints(min_length=3, max_length=MAX_EMAIL_CHARS), AfterValidator(_addr_spec)]
Phone = Annotated[str, AfterValidator(_e164)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS), AfterValidator(no_control_characters)]
Traits = Annotated[dict[str, Any] | None, AfterValidator(_traits)]


EXPORT_ID = re.compile(r"exp_[0-9a-f]{20}")


class ProfileIn(BaseModel):
    """A whole profile (PUT); on PATCH, a field set to null is removed and an absent one kept."""

    model_config = ConfigDict(extra="forbid")

    email: Email | None = Field(default=None, description="Stored as given; looked up case-insensitively.")
    username: Name | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    phone: Phone | None = Field(default=None, description="E.164, such as +380441234567.")
    traits: Traits = Field(default=None, description=f"Any JSON object, at most {MAX_TRAITS_BYTES} bytes.")

    def given(self) -> dict[str, Any]:
        """The fields the client sent, null ones included (``None``)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class ProfileOut(BaseModel):
    user_id: str
    email: str | None
    username: str | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    traits: dict[str, Any] | None
    created_at: UtcTimestamp
    updated_at: UtcTimestamp


class ProfileList(BaseModel):
    items: list[ProfileOut]


# ---------------------------------------------------------------- exports

ExportStatus = Literal["pending", "running", "completed", "failed"]


class ExportAccepted(BaseModel):
    export_id: str
    status: ExportStatus


class ExportError(BaseModel):
    code: str = Field(examples=["erased"])
    message: str


class ExportOut(BaseModel):
    export_id: str
    user_id: str
    status: ExportStatus
    events: int = Field(description="Events in the file (once completed).")
    download_url: str | None = Field(description="The NDJSON file, once completed; valid 15 minutes.")
    expires_at: UtcTimestamp | None = Field(description="When download_url stops working.")
    error: ExportError | None = Field(default=None, description="Why the export failed.")
    created_at: UtcTimestamp
    updated_at: UtcTimestamp


# ---------------------------------------------------------------- stored


class ProfileRecord(BaseModel):
    tenant_id: str
    user_id: str
    fields: dict[str, Any]
    """The profile's fields that are set (``PROFILE_FIELDS``), as given."""
    created_at: datetime
    updated_at: datetime
    version: int = 0


class ExportPart(BaseModel):
    number: int
    etag: str


class ExportRecord(BaseModel):
    """An export and, while it runs, how far it got: what a next invocation resumes from."""

    tenant_id: str
    export_id: str
    user_id: str
    status: ExportStatus
    events: int
    created_at: datetime
    updated_at: datetime
    error: ExportError | None = None
    after: str | None = None
    """The ``occurred_key`` of the last event in the uploaded parts."""
    upload_id: str | None = None
    parts: list[ExportPart] = []
    version: int = 0

    @property
    def file_key(self) -> str:
        return f"exports/{self.tenant_id}/{self.export_id}.ndjson"
