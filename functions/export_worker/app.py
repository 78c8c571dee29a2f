"""Runs one export, or as much of it as fits before the deadline, then invokes itself to go on.

Invoked asynchronously: Lambda retries a failed run twice, then hands the event to a dead-letter
queue; every run resumes after the last uploaded part.
"""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tracker.adapters.events_table import event_store
from tracker.adapters.exports_bucket import export_files
from tracker.adapters.lambda_invoke import start_export_worker
from tracker.adapters.profiles_table import profile_store
from tracker.exports import ExportRun, fail_export
from tracker.interfaces import TemporarilyUnavailable
from tracker.observability import logger, metrics, tracer
from tracker.profile_models import ExportError
from tracker.settings import require_settings

require_settings("profiles_table", "events_table", "exports_bucket", "export_worker_function")  # fail at init
WORKER_ERROR = ExportError(code="internal_error", message="The export failed; it is retried, then given up.")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    tenant_id, export_id = str(event["tenant_id"]), str(event["export_id"])
    logger.append_keys(tenant_id=tenant_id, export_id=export_id)
    settings = require_settings("export_part_bytes")
    store = profile_store()
    run = ExportRun(
        exports=store,
        profiles=store,
        events=event_store(),
        files=export_files(),
        part_bytes=settings.export_part_bytes,
        time_left_ms=context.get_remaining_time_in_millis,
        margin_ms=settings.export_deadline_margin_ms,
    )
    try:
        outcome = run.run(tenant_id, export_id)
    except TemporarilyUnavailable:
        raise  # still running: Lambda's retry resumes it
    except Exception:
        fail_export(store, tenant_id, export_id, WORKER_ERROR)  # a bug or a denied call; a retry may still resume
        raise
    metrics.add_metric(name="ExportRuns", unit=MetricUnit.Count, value=1)
    if outcome == "resume":
        record = store.get_export(tenant_id, export_id)
        if record is not None:
            start_export_worker(record)
        metrics.add_metric(name="ExportsResumed", unit=MetricUnit.Count, value=1)
    elif outcome == "completed":
        metrics.add_metric(name="ExportsCompleted", unit=MetricUnit.Count, value=1)
    logger.info("Export run ended", extra={"outcome": outcome})
    return {"export_id": export_id, "outcome": outcome}
