"""The scheduled rollup: counts what arrived since the last run into the aggregates."""

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tracker.adapters.aggregates_table import rollup_aggregates
from tracker.adapters.catalog_table import catalog_reader
from tracker.adapters.tenants_table import tenant_store
from tracker.observability import logger, metrics, tracer
from tracker.rollup import run_rollup
from tracker.settings import get_settings, require_settings
from tracker.timefmt import format_utc, utc_now

# Fail at init, naming what is missing.
require_settings("aggregates_table", "catalog_table", "events_table", "tenants_table")

# Stop starting new parts this long before the function's timeout; the next run goes on.
TIMEOUT_MARGIN_MS = 20_000
# The lease outlives the invocation by this much: Lambda has stopped it by then.
LEASE_MARGIN = timedelta(seconds=5)


def scheduled_now(event: dict[str, Any], wall_clock: datetime) -> datetime:
    """The run's "now": the schedule's time (an EventBridge rule's ``time``, or the Scheduler
    ``time`` this function's input carries), to the end of that second, never past the present.
    """
    try:
        scheduled = datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00")).astimezone(UTC)
    except (KeyError, TypeError, ValueError):
        return wall_clock
    return min(scheduled + timedelta(seconds=1), wall_clock)


@cache
def _zone(tenant_id: str) -> ZoneInfo:
    tenant = tenant_store().get_tenant(tenant_id)
    return ZoneInfo(tenant.timezone if tenant else "UTC")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    started = utc_now()
    now = scheduled_now(event, started)
    report = run_rollup(
        rollup_aggregates(),
        _zone,
        now=now,
        settle=timedelta(seconds=settings.rollup_settle_seconds),
        initial_lookback=timedelta(hours=settings.rollup_initial_lookback_hours),
        should_stop=lambda: context.get_remaining_time_in_millis() < TIMEOUT_MARGIN_MS,
        lease_for=timedelta(milliseconds=context.get_remaining_time_in_millis()) + LEASE_MARGIN,
        catalog=catalog_reader(),
    )
    _zone.cache_clear()  # a tenant's zone is fixed, but a warm container should not grow forever
    finished = utc_now()
    lag = (finished - report.as_of).total_seconds() if report.as_of else 0.0
    metrics.add_metric(name="RollupRuns", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="RollupEventsProcessed", unit=MetricUnit.Count, value=report.events)
    metrics.add_metric(name="RollupCommits", unit=MetricUnit.Count, value=report.commits)
    metrics.add_metric(
        name="RollupDuration", unit=MetricUnit.Milliseconds, value=(finished - started) / timedelta(milliseconds=1)
    )
    metrics.add_metric(name="RollupLag", unit=MetricUnit.Seconds, value=lag)
    metrics.add_metric(name="RollupAggregatesWritten", unit=MetricUnit.Count, value=report.aggregates_written)
    if report.conflict:
        metrics.add_metric(name="RollupConflicts", unit=MetricUnit.Count, value=1)
    if report.skipped:
        metrics.add_metric(name="RollupSkipped", unit=MetricUnit.Count, value=1)
    if report.failed_tenants:
        metrics.add_metric(name="RollupTenantFailures", unit=MetricUnit.Count, value=len(report.failed_tenants))
    for tenant_id, failure in report.failures.items():
        logger.error(
            "Rollup failed for a tenant; it is set apart and retried", extra={"tenant_id": tenant_id, "error": failure}
        )
    summary = {
        "events": report.events,
        "commits": report.commits,
        "started_from": format_utc(report.started_from) if report.started_from else None,
        "as_of": format_utc(report.as_of) if report.as_of else None,
        "finished": report.finished,
        "conflict": report.conflict,
        "skipped": report.skipped,
        "aggregates_written": report.aggregates_written,
        "failed_tenants": list(report.failed_tenants),
        "lag_seconds": lag,
    }
    logger.info("Rollup run", extra=summary)
    return summary
