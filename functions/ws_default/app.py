"""WebSocket ``$default``: every client message (subscribe, unsubscribe); the answer goes back to the client."""

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from tracker import live
from tracker.adapters.connections_table import connection_store
from tracker.errors import ApiError
from tracker.observability import logger, tracer
from tracker.request_body import body_bytes
from tracker.settings import require_settings

require_settings("connections_table")  # fail at init, naming what is missing


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Lambda's signature
    connection_id = event["requestContext"]["connectionId"]
    try:
        raw = body_bytes(event)
    except ApiError as error:
        answer = live.error_message(error)
    else:
        answer = live.handle_message(connection_store(), connection_id, raw)
    # The route's response (RouteResponseSelectionExpression $default) sends this body to the client.
    return {"statusCode": 200, "body": json.dumps(answer, ensure_ascii=False)}
