"""Runs one erasure to its end (invoked asynchronously; Lambda retries it, and it resumes)."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tracker.adapters.aggregates_table import aggregate_eraser
from tracker.adapters.events_table import event_store
from tracker.adapters.exports_bucket import export_files
from tracker.adapters.profiles_table import profile_store
from tracker.adapters.tenants_table import erasure_store
from tracker.erasure import erase_user
from tracker.exports import UserDataEraser
from tracker.observability import logger, metrics, tracer
from tracker.settings import require_settings

require_settings(
    "tenants_table", "events_table", "aggregates_table", "profiles_table", "exports_bucket"
)  # fail at init, naming what is missing


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Lambda's signature
    tenant_id, erasure_id = str(event["tenant_id"]), str(event["erasure_id"])
    logger.append_keys(tenant_id=tenant_id, erasure_id=erasure_id)
    profiles = UserDataEraser(profile_store(), profile_store(), export_files())
    done = erase_user(erasure_store(), event_store(), aggregate_eraser(), tenant_id, erasure_id, profiles=profiles)
    metrics.add_metric(name="ErasuresCompleted", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="ErasedEvents", unit=MetricUnit.Count, value=done.deleted_events)
    logger.info("Erasure completed", extra={"deleted_events": done.deleted_events})
    return done.model_dump(mode="json")
