"""The OpenAPI document of the whole API (``docs/openapi.json``), merged from the functions' resolvers.

Each function with ``Api`` routes is a Powertools resolver named ``app`` in its handler module;
Powertools' ``OpenAPIMerge`` imports them (layers on ``sys.path``, the function's template environment
set) and merges their schemas. A function without a resolver (the dashboard's static files) describes
its operations in an ``openapi.json`` beside its handler, whose ``paths`` are added as they are. The
template then has the last word on auth: an operation on a route without auth gets ``security: []``
unless its resolver says otherwise. Routes of the template missing from the document, or the other
way round, are reported: one of the two is wrong.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from local_stack.template import Template

TITLE = "Activity Tracker API"
VERSION = "1.0.0"
SERVER_URL = "http://127.0.0.1:3000"
SECURITY_SCHEME = "apiKey"
RESOLVER_NAME = "app"
STATIC_DESCRIPTION = "openapi.json"
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


class OpenApiError(RuntimeError):
    """A handler could not be loaded: the document would silently lack its routes."""


def document_path(template: Template) -> Path:
    return template.root / "docs" / "openapi.json"


def dump(document: dict[str, Any]) -> str:
    """The committed form: stable, readable, with a trailing newline."""
    return json.dumps(document, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


@contextmanager
def _import_environment(template: Template) -> Iterator[None]:
    """Layers on sys.path and the functions' variables in os.environ while the handlers are imported."""
    saved_environ, saved_path = dict(os.environ), list(sys.path)
    paths = [str(path) for spec in template.functions.values() for path in spec.layer_paths]
    sys.path[:0] = [path for path in dict.fromkeys(paths) if path not in sys.path]
    os.environ.update({"AWS_REGION": template.region, "AWS_DEFAULT_REGION": template.region})
    os.environ.update({"POWERTOOLS_TRACE_DISABLED": "true", "AWS_SAM_LOCAL": "true"})
    for spec in template.functions.values():
        for name, value in spec.environment.items():
            os.environ.setdefault(name, value)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_environ)
        sys.path[:] = saved_path


def generate(template: Template) -> dict[str, Any]:
    """The merged OpenAPI 3 document of every function that has Api routes."""
    from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge  # noqa: PLC0415 - slow import
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, Server  # noqa: PLC0415

    header = template.api.identity_header if template.api else None
    merge = OpenAPIMerge(
        title=TITLE,
        version=VERSION,
        servers=[Server(url=SERVER_URL)],
        security_schemes={SECURITY_SCHEME: APIKey(name=header, in_=APIKeyIn.header)} if header else None,
        security=[{SECURITY_SCHEME: []}] if header else None,
        on_conflict="error",
    )
    described = {spec.logical_id: spec.code_uri / STATIC_DESCRIPTION for spec in template.functions.values()}
    for spec in template.functions.values():
        if spec.routes and not described[spec.logical_id].is_file():
            merge.add_file(spec.code_uri / f"{spec.handler_module}.py", resolver_name=RESOLVER_NAME)
    with _import_environment(template), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Every handler module is called `app`: an imported one would stand in for all the others.
        sys.modules.pop(RESOLVER_NAME, None)
        document: dict[str, Any] = json.loads(merge.get_openapi_json_schema())
    failures = [str(warning.message) for warning in caught if "Failed to load" in str(warning.message)]
    if failures:
        raise OpenApiError("\n".join(failures))
    for path in described.values():
        if path.is_file():
            document.setdefault("paths", {}).update(json.loads(path.read_text(encoding="utf-8"))["paths"])
    _apply_template_auth(document, template)
    _no_body_for_no_content(document)
    return _one_error_shape(document)


def _no_body_for_no_content(document: dict[str, Any]) -> None:
    """A 204 has no body, whatever the route's return annotation made Powertools write."""
    for operations in (document.get("paths") or {}).values():
        for operation in operations.values():
            operation.get("responses", {}).get("204", {}).pop("content", None)


# Powertools documents its own 422 body where a route declares none; this API answers every
# error in one shape (the handlers' ErrorResponse), so the document says so.
POWERTOOLS_ERROR_SCHEMAS = ("HTTPValidationError", "ValidationError", "ResponseValidationError")
ERROR_SCHEMA = "ErrorResponse"
SCHEMA_REF = "#/components/schemas/"


def _one_error_shape(document: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(document).replace(f'"{SCHEMA_REF}HTTPValidationError"', f'"{SCHEMA_REF}{ERROR_SCHEMA}"')
    rewritten: dict[str, Any] = json.loads(text)
    schemas = rewritten.get("components", {}).get("schemas", {})
    while unused := [  # one may be used only by another: drop until none is left unused
        name for name in POWERTOOLS_ERROR_SCHEMAS if name in schemas and not _referenced(rewritten, name)
    ]:
        for name in unused:
            del schemas[name]
    return rewritten


def _referenced(document: dict[str, Any], name: str) -> bool:
    schemas = document.get("components", {}).get("schemas", {})
    elsewhere = {key: value for key, value in document.items() if key != "components"}
    others = {key: value for key, value in schemas.items() if key != name}
    return f'"{SCHEMA_REF}{name}"' in json.dumps([elsewhere, others])


def _apply_template_auth(document: dict[str, Any], template: Template) -> None:
    paths = document.get("paths") or {}
    for spec in template.functions.values():
        for route in spec.routes:
            operation = paths.get(route.path, {}).get(route.method.lower())
            if operation is not None and not route.auth:
                operation.setdefault("security", [])


def route_mismatches(document: dict[str, Any], template: Template) -> list[str]:
    """Routes in the template and not in the document, and the other way round."""
    in_template = {(route.method.lower(), route.path) for spec in template.functions.values() for route in spec.routes}
    in_document = {
        (method, path)
        for path, item in (document.get("paths") or {}).items()
        for method in item
        if method in _HTTP_METHODS
    }
    missing = [
        f"{m.upper()} {p}: in template.yaml, not in the OpenAPI document" for m, p in sorted(in_template - in_document)
    ]
    extra = [
        f"{m.upper()} {p}: in the OpenAPI document, not in template.yaml" for m, p in sorted(in_document - in_template)
    ]
    return missing + extra
