"""Opaque page cursors, bound to the query that made them.

A cursor is ``base64url(position) "." base64url(digest)``, where the digest covers the
position and everything that defines the query (tenant, user, filters). A cursor from
another tenant, user or query, or one edited by a single byte, fails the check: 400.
The position itself is only ever applied inside the caller's own key range.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence

from tracker.errors import BadRequest

_DIGEST_BYTES = 16


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


def _b64decode(text: str) -> bytes:
    """Strict: only the URL-safe alphabet, and only the one canonical spelling of the bytes
    (an edit in the unused low bits of the last character would otherwise decode the same)."""
    if not _ALPHABET.fullmatch(text):
        raise ValueError("not URL-safe base64")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64encode(raw) != text:
        raise ValueError("not the canonical encoding")
    return raw


def _digest(position: str, binding: Sequence[str | None]) -> bytes:
    material = "\x1f".join(["" if part is None else part for part in binding] + [position])
    return hashlib.blake2b(material.encode(), digest_size=_DIGEST_BYTES, person=b"tracker-cursor").digest()


def encode_cursor(position: str, binding: Sequence[str | None]) -> str:
    return f"{_b64encode(position.encode())}.{_b64encode(_digest(position, binding))}"


def decode_cursor(cursor: str, binding: Sequence[str | None], position_pattern: re.Pattern[str]) -> str:
    """The position a cursor holds; BadRequest unless this query made it and it has the position's form.

    The form is checked too: the digest is keyed by nothing secret, so a client could sign a
    position of its own making (inside its own key range, which is all a position can reach).
    """
    encoded_position, _, encoded_digest = cursor.partition(".")
    try:
        position = _b64decode(encoded_position).decode()
        digest = _b64decode(encoded_digest)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest("The cursor is not valid.") from None
    if not hmac.compare_digest(digest, _digest(position, binding)) or not position_pattern.fullmatch(position):
        raise BadRequest("The cursor is not valid for this query.")
    return position
