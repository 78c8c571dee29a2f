"""What every HTTP function shares: the resolver, the error mapping, metrics and the entry point.

A function module is then a few routes that parse, call the domain, and return a model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from http import HTTPStatus
from re import Match
from typing import Any
from zoneinfo import ZoneInfo

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from tracker.cors import response_headers
from tracker.errors import (
    ApiError,
    BadRequest,
    Forbidden,
    NotFound,
    Unavailable,
    UnsupportedMediaType,
    ValidationFailed,
    field_error,
    pydantic_details,
)
from tracker.interfaces import TemporarilyUnavailable
from tracker.models import ErrorResponse
from tracker.observability import logger, metrics, tracer
from tracker.records import Role
from tracker.request_body import body_bytes, header, json_body_event

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]

# Pydantic error types that mean "could not be read at all" (400), not "read but wrong" (422).
_UNPARSEABLE = ("_parsing", "_type")
_LOCATIONS = frozenset({"body", "query", "path", "header"})
_ERROR_DESCRIPTIONS = {
    400: "Not JSON, a bad cursor, or a parameter that cannot be parsed",
    401: "No key, or an unknown or revoked key",
    403: "The key may not call this route",
    404: "Unknown route or resource",
    409: "Conflicts with what is stored",
    413: "The body or one event is too large",
    415: "The body's Content-Type is not JSON (application/json or application/*+json)",
    422: "JSON that breaks the schema; details lists each field",
    429: "Over the tenant's rate; see Retry-After",
    503: "The store is busy or down; see Retry-After",
}


def error_responses(*statuses: int) -> dict[int, Any]:
    """OpenAPI ``responses`` entries for the given error statuses, all in the contract's shape."""
    return {
        status: {
            "description": _ERROR_DESCRIPTIONS[status],
            "content": {content_types.APPLICATION_JSON: {"model": ErrorResponse}},
        }
        for status in statuses
    }


def documented(
    model: type[BaseModel], *error_statuses: int, status: int = 200, description: str = "OK"
) -> dict[int, Any]:
    """OpenAPI ``responses``: the success answer with its model, and the errors (Powertools
    documents its default 200 only for a route that declares no responses)."""
    success = {"description": description, "content": {content_types.APPLICATION_JSON: {"model": model}}}
    return {status: success, **error_responses(*error_statuses)}


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body, ensure_ascii=False),
        headers=dict(headers or {}),
    )


def model_response(status: int, model: BaseModel) -> Response[Any]:
    """A typed route's answer with a status other than 200; the resolver serializes the model."""
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=model)


def _error_response(error: ApiError) -> Response[str]:
    return json_response(error.status, error.body(), error.headers)


def _is_unparseable(error: Mapping[str, Any]) -> bool:
    """A body that is not JSON, or a query or path value of the wrong kind (``limit=abc``)."""
    kind = str(error.get("type", ""))
    location = next(iter(error.get("loc", ())), "")
    return kind == "json_invalid" or (location != "body" and kind.endswith(_UNPARSEABLE))


def _validation_response(error: RequestValidationError) -> Response[str]:
    errors = list(error.errors())
    details = pydantic_details(errors, drop_prefixes=_LOCATIONS)
    failure: ApiError
    if any(_is_unparseable(entry) for entry in errors):
        failure = BadRequest("The request could not be parsed.", details)
    else:
        failure = ValidationFailed("The request is not valid.", details)
    return _error_response(failure)


def _unsupported_media_type(_error: RequestUnsupportedContentType) -> Response[str]:
    """Bodies are checked before the resolver (``request_body``); this is the resolver's own check."""
    return _error_response(UnsupportedMediaType("Send the body as application/json."))


def _past_the_calendar(_error: OverflowError) -> Response[str]:
    """A range near the end of year 9999 whose local days (in the tenant's time zone) end past it."""
    detail = field_error("to", "reaches past the end of year 9999 in the tenant's time zone", "out_of_range")
    return _error_response(ValidationFailed("The range reaches past the calendar.", [detail]))


def _store_unavailable(_error: TemporarilyUnavailable) -> Response[str]:
    return _error_response(Unavailable("The store is busy; retry after the Retry-After delay."))


def _not_found(_error: Exception) -> Response[str]:
    return _error_response(NotFound("No such route."))


def _unexpected(_error: Exception) -> Response[str]:
    """A bug or a deployment mistake (a missing table, a denied call): logged, counted, a 500."""
    logger.exception("Unexpected error")
    metrics.add_metric(name="UnexpectedErrors", unit=MetricUnit.Count, value=1)
    body = {"error": {"code": "internal_error", "message": "An unexpected error occurred.", "details": []}}
    return json_response(HTTPStatus.INTERNAL_SERVER_ERROR, body)


class DecodedPathResolver(APIGatewayRestResolver):
    """A REST resolver that hands each route its path parameters as API Gateway decoded them.

    Powertools matches a route against the event's ``path``, which is still percent-encoded
    (``/v1/users/a%2Fb/events``), and by default passes the matched text (``a%2Fb``) to the
    handler. API Gateway's ``pathParameters`` hold the decoded values (``a/b``): those are what
    the handlers take, validated under their annotations like any other parameter. (Powertools'
    own Bedrock resolver overrides the same method to take its parameters from the event.)
    """

    def _convert_matches_into_route_keys(self, match: Match[str]) -> dict[str, str]:
        decoded = self.current_event.path_parameters or {}
        return {name: decoded.get(name, matched) for name, matched in match.groupdict().items()}


def create_app() -> APIGatewayRestResolver:
    """A REST API resolver whose every error, expected or not, has the contract's shape, and
    whose routes take their path parameters decoded (``DecodedPathResolver``)."""
    app = DecodedPathResolver(enable_validation=True)
    app.exception_handler(ApiError)(_error_response)
    app.exception_handler(RequestUnsupportedContentType)(_unsupported_media_type)
    app.exception_handler(RequestValidationError)(_validation_response)
    app.exception_handler(OverflowError)(_past_the_calendar)
    app.exception_handler(TemporarilyUnavailable)(_store_unavailable)
    app.exception_handler(Exception)(_unexpected)
    app.not_found(_not_found)
    return app


def authorizer_context(app: APIGatewayRestResolver) -> dict[str, Any]:
    return dict(app.current_event.request_context.authorizer.raw_event or {})


TENANT_ONLY: tuple[Role, ...] = ("tenant",)


def tenant_id_of(app: APIGatewayRestResolver, roles: Collection[Role] = TENANT_ONLY) -> str:
    """The caller's tenant, as the authorizer resolved it from the key: never from the request.

    The authorizer's policy already keeps each role to its routes; this checks it again here.
    """
    context = authorizer_context(app)
    if context.get("role") not in roles or not context.get("tenant_id"):
        raise Forbidden(
            "This route needs a tenant key." if roles == ("tenant",) else "This key may not call this route."
        )
    return str(context["tenant_id"])


def tenant_zone_of(app: APIGatewayRestResolver) -> ZoneInfo:
    """The caller's tenant time zone, which the authorizer read with the key."""
    return ZoneInfo(str(authorizer_context(app).get("timezone") or "UTC"))


def _admin_only(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    if authorizer_context(app).get("role") != "admin":
        raise Forbidden("This route needs an admin key.")
    return next_middleware(app)


def create_admin_app() -> APIGatewayRestResolver:
    """A resolver whose every route, present and future, answers admin keys only."""
    app = create_app()
    app.use(middlewares=[_admin_only])
    return app


def lambda_entry(
    app: APIGatewayRestResolver,
    body_limits: Mapping[str, int] | None = None,
    on_response: Callable[[str, int], None] | None = None,
    optional_bodies: Collection[str] = (),
    cors: bool = False,
) -> Handler:
    """The Lambda handler of a function: logs, traces and metrics around ``app.resolve``.

    ``body_limits`` maps each route that takes a JSON body (``"POST /v1/events"``) to its
    largest body in bytes; such a body is read strictly (``request_body``) before the resolver,
    unless the route is in ``optional_bodies`` and the body is empty. ``on_response(route,
    status)`` sees every answer, whatever produced it. With ``cors``, every answer to a page on
    one of the tenant's allowed origins carries the CORS headers (``tracker.cors``).
    """
    limits = dict(body_limits or {})

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
    # Responses hold user data and, once, a new API key: traces keep timings, not bodies.
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics(capture_cold_start_metric=True)
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        route = f"{event.get('httpMethod', '')} {event.get('resource', '')}"
        metrics.add_dimension(name="route", value=route)
        metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
        try:
            if route in limits and (route not in optional_bodies or body_bytes(event).strip()):
                event = json_body_event(event, limits[route])
        except ApiError as error:
            result = response_to_proxy(_error_response(error))
        else:
            result = app.resolve(event, context)
        if cors:
            allowed = str(((event.get("requestContext") or {}).get("authorizer") or {}).get("allowed_origins") or "")
            result["headers"] = {**(result.get("headers") or {}), **response_headers(header(event, "origin"), allowed)}
        status = int(result.get("statusCode", 500))
        if status >= 400:
            metrics.add_metric(name="ClientErrors" if status < 500 else "ServerErrors", unit=MetricUnit.Count, value=1)
        if on_response is not None:
            on_response(route, status)
        logger.info("Request handled", extra={"route": route, "status": status})
        return result

    entry: Handler = lambda_handler  # the parametrized tracer decorator is typed loosely
    return entry


def response_to_proxy(response: Response[str]) -> dict[str, Any]:
    return {
        "statusCode": response.status_code,
        "headers": {"Content-Type": content_types.APPLICATION_JSON, **{k: str(v) for k, v in response.headers.items()}},
        "body": response.body,
        "isBase64Encoded": False,
    }
