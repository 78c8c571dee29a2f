"""The Events table's stream (new items only) -> each new event pushed to the subscribed connections of its tenant."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tracker import live
from tracker.adapters.connections_table import connection_store
from tracker.adapters.events_table import event_from_item
from tracker.adapters.management_api import management_pusher
from tracker.observability import logger, metrics, tracer
from tracker.settings import get_settings, require_settings

require_settings("connections_table", "websocket_management_url")  # fail at init, naming what is missing


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Lambda's signature
    # The event source mapping passes INSERTs only (a retried event is a failed conditional put:
    # no stream record); the check stays for a mapping whose filter was changed.
    events = [
        event_from_item(record["dynamodb"]["NewImage"])
        for record in event.get("Records", [])
        if record.get("eventName") == "INSERT" and "NewImage" in record.get("dynamodb", {})
    ]
    # Reading the subscriptions may fail (TemporarilyUnavailable): nothing was pushed yet, and the
    # batch is retried whole. Failed pushes are counted, never retried: that would duplicate others.
    result = live.broadcast(events, connection_store(), management_pusher(), get_settings().broadcast_concurrency)
    metrics.add_metric(name="LiveMessagesPushed", unit=MetricUnit.Count, value=result.pushed)
    metrics.add_metric(name="LiveConnectionsGone", unit=MetricUnit.Count, value=result.gone)
    metrics.add_metric(name="LiveMessagesFailed", unit=MetricUnit.Count, value=result.failed)
    return {"events": len(events), "pushed": result.pushed, "gone": result.gone, "failed": result.failed}
