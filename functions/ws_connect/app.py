"""WebSocket ``$connect``: the tenant key in the ``api_key`` query parameter, or the connection is refused."""

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tracker import live
from tracker.adapters.connections_table import connection_store
from tracker.adapters.tenants_table import tenant_store
from tracker.errors import ApiError, Unavailable
from tracker.interfaces import TemporarilyUnavailable
from tracker.observability import logger, metrics, tracer
from tracker.records import RateLimitRecord
from tracker.settings import get_settings, require_settings
from tracker.timefmt import utc_now

require_settings("tenants_table", "connections_table")  # fail at init, naming what is missing


def _refused(error: ApiError) -> dict[str, Any]:
    """A non-2xx answer makes API Gateway refuse the WebSocket handshake with that status."""
    return {
        "statusCode": error.status,
        "headers": {"Content-Type": "application/json", **error.headers},
        "body": json.dumps(error.body()),
    }


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Lambda's signature
    connection_id = event["requestContext"]["connectionId"]
    api_key = (event.get("queryStringParameters") or {}).get("api_key")
    settings = get_settings()
    default_limit = RateLimitRecord(rate=settings.default_rate_limit, burst=settings.default_burst_limit)
    try:
        tenant_id = live.connect(
            connection_store(),
            tenant_store(),
            api_key=api_key,
            connection_id=connection_id,
            now=utc_now(),
            default_limit=default_limit,
        )
    except ApiError as error:
        metrics.add_metric(name="LiveConnectionsRefused", unit=MetricUnit.Count, value=1)
        return _refused(error)
    except TemporarilyUnavailable:
        return _refused(Unavailable("The service is busy; connect again."))
    logger.append_keys(tenant_id=tenant_id)
    metrics.add_metric(name="LiveConnections", unit=MetricUnit.Count, value=1)
    return {"statusCode": 200}
