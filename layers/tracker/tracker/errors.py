"""Every error a caller can cause, with its HTTP status and the contract's error code."""

from __future__ import annotations

from typing import Any, ClassVar


class ApiError(Exception):
    """An error that becomes ``{"error": {"code", "message", "details"}}`` with ``status``."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class ValidationFailed(ApiError):
    status, code = 422, "validation_error"


class Unavailable(ApiError):
    status, code = 503, "unavailable"

    def __init__(self, message: str, retry_after_seconds: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_seconds)})


def field_error(field: str, message: str, kind: str) -> dict[str, Any]:
    """One entry of ``details``: which field, what is wrong, and a machine-readable type."""
    return {"field": field, "message": message, "type": kind}


def pydantic_details(errors: list[Any], drop_prefixes: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Pydantic's errors as ``details`` entries, with dotted field paths (``metadata.a``).

    A leading location in ``drop_prefixes`` (``body``, ``query``) is left out; an error about
    the whole body (it is not JSON, or not an object) names the field ``body``.
    """
    details = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        if loc and loc[0] in drop_prefixes:
            loc = loc[1:]
        if error.get("type") == "json_invalid" or not loc:
            loc = ["body"]
        details.append(field_error(".".join(loc), str(error.get("msg", "invalid")), str(error.get("type", "invalid"))))
    return details
