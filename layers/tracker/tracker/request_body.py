"""Reading a JSON request body strictly, before anything else parses it.

Run by the entry point of every route that takes a body, so that hostile or odd bodies get
a clear 4xx instead of reaching a parser that would raise something unexpected:
gzip (with ``Content-Encoding: gzip``, bounded while it inflates), the size limit, the media
type (every ``Content-Type`` sent, matched case-insensitively: ``application/json`` and
``application/*+json`` are JSON, anything else a 415), invalid UTF-8, NaN and Infinity
literals, duplicate keys, nesting deeper than Python's parser allows, integers past Python's
digit limit, and lone surrogates DynamoDB cannot store.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from collections.abc import Mapping
from typing import Any, NoReturn

from tracker.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed, field_error
from tracker.json_shape import json_depth

_GZIP_WINDOW = 16 + zlib.MAX_WBITS
# application/json or application/<anything>+json (RFC 6839), with optional parameters.
_JSON_MEDIA_TYPE = re.compile(r"application/([!#$&^_.+\w-]+\+)?json", re.IGNORECASE)
_UTF8 = {"utf-8", "utf8"}
# Deep enough for every body the API takes (a batch, an event, metadata of 32 levels: 35), shallow
# enough that no serializer or validator after this one meets a recursion limit (they did near 930).
MAX_BODY_DEPTH = 64


def header(event: Mapping[str, Any], name: str) -> str | None:
    """A request header, whatever its case (one value: use ``header_values`` where two could differ)."""
    headers = event.get("headers") or {}
    return next((str(value) for key, value in headers.items() if key.lower() == name), None)


def header_values(event: Mapping[str, Any], name: str) -> list[str]:
    """Every distinct value sent for a header, whatever the case of its name, from both of the
    proxy event's maps (``headers`` keeps one value per name, ``multiValueHeaders`` all of them)."""
    found: list[str] = []
    single = event.get("headers") or {}
    multi = event.get("multiValueHeaders") or {}
    candidates = [value for key, value in single.items() if key.lower() == name]
    candidates += [value for key, values in multi.items() if key.lower() == name for value in values or []]
    for value in candidates:
        if str(value) not in found:
            found.append(str(value))
    return found


def _is_json_media_type(content_type: str) -> bool:
    media_type, *parameters = (part.strip() for part in content_type.split(";"))
    if not _JSON_MEDIA_TYPE.fullmatch(media_type):
        return False
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in _UTF8:
            return False
    return True


def _check_media_type(event: Mapping[str, Any]) -> None:
    """Every Content-Type sent must be JSON (none at all is taken as JSON)."""
    for content_type in header_values(event, "content-type"):
        if not _is_json_media_type(content_type):
            raise UnsupportedMediaType(
                f"Send the body as application/json (or application/*+json, UTF-8), not {content_type[:100]!r}."
            )


def _without(headers: Mapping[str, Any], names: set[str]) -> dict[str, Any]:
    return {key: value for key, value in headers.items() if key.lower() not in names}


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
        if json_depth(value) > MAX_BODY_DEPTH:
            raise BadRequest(f"The body is nested more than {MAX_BODY_DEPTH} levels deep.")
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
    encodings = {value.strip().lower() for value in header_values(event, "content-encoding")} or {"identity"}
    if len(encodings) > 1:
        raise BadRequest("Send one Content-Encoding (gzip or none), not several.")
    encoding = encodings.pop()
    if encoding == "gzip":
        raw = _inflate(raw, limit)
    elif encoding != "identity":
        raise BadRequest(f"Content-Encoding {encoding!r} is not supported; send gzip or none.")
    if len(raw) > limit:
        raise PayloadTooLarge(f"The body is larger than {limit} bytes.")
    _check_media_type(event)
    if not isinstance(parse_json(raw), dict):
        raise ValidationFailed(
            "The body must be a JSON object.",
            [field_error("body", "Input should be a JSON object", "model_attributes_type")],
        )
    # What the resolver sees: plain JSON text, with one Content-Type it knows.
    replaced = {"content-encoding", "content-type"}
    headers = {**_without(event.get("headers") or {}, replaced), "Content-Type": "application/json"}
    multi_headers = {**_without(event.get("multiValueHeaders") or {}, replaced), "Content-Type": ["application/json"]}
    return {
        **event,
        "body": raw.decode("utf-8"),
        "isBase64Encoded": False,
        "headers": headers,
        "multiValueHeaders": multi_headers,
    }
