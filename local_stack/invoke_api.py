"""The Lambda Invoke API, as ``sam local start-lambda`` serves it, for boto3 and the AWS CLI.

``POST /2015-03-31/functions/{FunctionName}/invocations`` where FunctionName is the logical id, the
local function name or its ARN. ``X-Amz-Invocation-Type``: ``RequestResponse`` (default; 200 with the
result, plus ``X-Amz-Function-Error: Unhandled`` on a function error), ``Event`` (202, run in the
background) or ``DryRun`` (204). Errors have Lambda's shape: ``X-Amzn-ErrorType`` and
``{"Type": "User", "message": ...}``, which botocore turns into the usual exceptions::

    boto3.client("lambda", endpoint_url="http://127.0.0.1:3001").invoke(FunctionName="HealthFunction", Payload=b"{}")
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any
from urllib.parse import unquote

from local_stack.httpserver import HttpRequest, HttpResponse
from local_stack.lambdas import InvokeResult, LambdaRuntime, result_note

logger = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's synchronous payload limit
_INVOKE_PATH = re.compile(r"/2015-03-31/functions/([^/]+)/invocations")


class LambdaApiError(Exception):
    """An error answer of the Lambda API (what botocore raises as ``{error_type}``)."""

    def __init__(self, status: int, error_type: str, message: str, kind: str = "User") -> None:
        super().__init__(message)
        self.status, self.error_type, self.message, self.kind = status, error_type, message, kind

    def response(self) -> HttpResponse:
        body = json.dumps({"Type": self.kind, "message": self.message}).encode()
        return HttpResponse(
            self.status, [("Content-Type", "application/json"), ("X-Amzn-ErrorType", self.error_type)], body
        )


class InvokeApi:
    def __init__(self, runtime: LambdaRuntime) -> None:
        self.runtime = runtime

    def handle(self, request: HttpRequest) -> HttpResponse:
        try:
            return self._handle(request)
        except LambdaApiError as error:
            return error.response()
        except Exception as error:
            logger.exception("Invoke API error on %s %s", request.method, request.path)
            return LambdaApiError(500, "ServiceException", f"Local invoke failed: {error}", "Service").response()

    def protocol_error(self, status: int, message: str) -> HttpResponse:
        return LambdaApiError(status, "InvalidRequestContentException", message).response()

    def _handle(self, request: HttpRequest) -> HttpResponse:
        logical_id, event = self._parse(request)
        invocation_type = request.header("X-Amz-Invocation-Type") or "RequestResponse"
        if invocation_type == "DryRun":
            return HttpResponse(204)
        if invocation_type == "Event":
            self.runtime.invoke_async(logical_id, event).add_done_callback(_log_background_result(logical_id))
            return HttpResponse(202, served_by=logical_id)
        if invocation_type != "RequestResponse":
            raise LambdaApiError(400, "InvalidParameterValueException", f"Unknown invocation type {invocation_type}")
        result = self.runtime.invoke(logical_id, event)
        headers = [("Content-Type", "application/json"), ("X-Amz-Executed-Version", "$LATEST")]
        if result.function_error:
            headers.append(("X-Amz-Function-Error", "Unhandled"))
        return HttpResponse(200, headers, result.payload.encode(), served_by=logical_id, note=result_note(result))

    def _parse(self, request: HttpRequest) -> tuple[str, Any]:
        """The logical id of the function and the event; raises LambdaApiError for a bad request."""
        found = _INVOKE_PATH.fullmatch(request.path)
        if found is None or request.method != "POST":
            message = f"{request.method} {request.path} is not served by the local Invoke API"
            raise LambdaApiError(404, "PathNotFoundLocally", message)
        name = unquote(found.group(1))
        logical_id = self.runtime.resolve(name)
        if logical_id is None:
            template = self.runtime.template
            arn = f"arn:{template.partition}:lambda:{template.region}:{template.account_id}:function:{name}"
            raise LambdaApiError(404, "ResourceNotFoundException", f"Function not found: {arn}")
        if request.too_large:
            raise LambdaApiError(
                413, "RequestTooLargeException", f"Request must be smaller than {MAX_PAYLOAD_BYTES} bytes"
            )
        try:
            return logical_id, json.loads(request.body) if request.body.strip() else {}
        except (ValueError, RecursionError) as error:
            message = f"Could not parse request body into json: {error}"
            raise LambdaApiError(400, "InvalidRequestContentException", message) from None


def _log_background_result(logical_id: str) -> Callable[[Future[InvokeResult]], None]:
    def log(future: Future[InvokeResult]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            logger.error("Event invocation of %s failed: %s", logical_id, error)
        elif future.result().function_error:
            logger.error("Event invocation of %s: %s", logical_id, future.result().payload)

    return log
