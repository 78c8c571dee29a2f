"""WebSocket ``$disconnect``: the connection and its subscriptions are forgotten."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from tracker.adapters.connections_table import connection_store
from tracker.observability import logger, tracer
from tracker.settings import require_settings

require_settings("connections_table")  # fail at init, naming what is missing


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Lambda's signature
    # Best effort, as API Gateway treats it: a failure here leaves the items to their TTL.
    connection_store().remove_connection(event["requestContext"]["connectionId"])
    return {"statusCode": 200}
