"""Reading a JSON request body strictly, before anything else parses it.

Run by the entry point of every route that takes a body, so that hostile or odd bodies get
a clear 4xx instead of reaching a parser that would raise something unexpected:
gzip (with ``Content-Encoding: gzip``, bounded while it inflates), the size limit, the media
type, invalid UTF-8, NaN and Infinity literals, duplicate keys, nesting deeper than Python's
parser allows, integers past Python's digit limit, and lone surrogates DynamoDB cannot store.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Mapping
from typing import Any, NoReturn

from tracker.errors import BadRequest, PayloadTooLarge, ValidationFailed, field_error

_GZIP_WINDOW = 16 + zlib.MAX_WBITS


def header(event: Mapping[str, Any], name: str) -> str | None:
    """A request header, whatever its case."""
    headers = event.get("headers") or {}
    return next((str(value) for key, value in headers.items() if key.lower() == name), None)


def body_bytes(event: Mapping[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("The body is not valid base64.") from None
    return str(body).encode("utf-8", errors="surrogatepass")


def _inflate(raw: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(_GZIP_WINDOW)
    try:
        inflated = inflater.decompress(raw, limit + 1)
    except zlib.error:
        raise BadRequest("The body is not valid gzip.") from None
    if len(inflated) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"The body is larger than {limit} bytes once decompressed.")
    return inflated


def _no_constants(name: str) -> NoReturn:
    raise BadRequest(f"{name} is not a JSON value.")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise BadRequest(f"The key {key!r} appears twice in one object.")
        found[key] = value
    return found


def parse_json(raw: bytes) -> Any:
    """The JSON value of a body, or BadRequest saying what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The body is not valid UTF-8.") from None
    if not text.strip():
        raise BadRequest("The body is empty; send a JSON document.")
    try:
        value = json.loads(text, parse_constant=_no_constants, object_pairs_hook=_unique_keys)
        # Lone surrogates (\ud800) parse, but are not Unicode text and cannot be stored.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except json.JSONDecodeError as error:
        raise BadRequest(f"The body is not JSON: {error.msg} at character {error.pos}.") from None
    except RecursionError:
        raise BadRequest("The body is nested too deeply.") from None
    except UnicodeEncodeError:
        raise BadRequest("The body holds an unpaired surrogate (\\ud800-\\udfff); it is not valid Unicode.") from None
    except ValueError as error:  # e.g. an integer longer than Python converts
        raise BadRequest(f"The body holds a value that cannot be read: {error}.") from None
    return value


def json_body_event(event: Mapping[str, Any], limit: int) -> dict[str, Any]:
    """The event with its body checked and given as plain JSON text (not base64, not gzip)."""
    raw = body_bytes(event)
    encoding = (header(event, "content-encoding") or "identity").strip().lower()
    if encoding == "gzip":
        raw = _inflate(raw, limit)
    elif encoding != "identity":
        raise BadRequest(f"Content-Encoding {encoding!r} is not supported; send gzip or none.")
    if len(raw) > limit:
        raise PayloadTooLarge(f"The body is larger than {limit} bytes.")
    media_type = (header(event, "content-type") or "application/json").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise BadRequest(f"Send the body as application/json, not {media_type}.")
    if not isinstance(parse_json(raw), dict):
        raise ValidationFailed(
            "The body must be a JSON object.",
            [field_error("body", "Input should be a JSON object", "model_attributes_type")],
        )
    headers = {key: value for key, value in (event.get("headers") or {}).items() if key.lower() != "content-encoding"}
    return {**event, "body": raw.decode("utf-8"), "isBase64Encoded": False, "headers": headers}
