"""Time as the contract writes it: RFC 3339 in, UTC with ``Z`` and milliseconds out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def format_utc(moment: datetime) -> str:
    """``2025-10-10T18:30:00.000Z``: fixed width, so the strings sort as the instants do.

    Written field by field: ``strftime("%Y")`` does not pad years before 1000 on every platform.
    """
    utc = moment.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}."
        f"{utc.microsecond // 1000:03d}Z"
    )


def truncate_to_millis(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def ceil_to_millis(moment: datetime) -> datetime:
    """The first whole millisecond at or after ``moment``: stored times have millisecond precision,
    so ``t >= moment`` is ``t >= ceil_to_millis(moment)`` for every stored ``t``."""
    truncated = truncate_to_millis(moment)
    return truncated if truncated == moment else truncated + timedelta(milliseconds=1)


def parse_utc(text: str) -> datetime:
    """Parses a stored ``format_utc`` string back."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def utc_now() -> datetime:
    return truncate_to_millis(datetime.now(UTC))
