"""The functions' scheduled events, run locally on their rate.

``Type: Schedule`` (an EventBridge rule) hands the function the standard scheduled event (or the
rule's constant ``Input``); ``Type: ScheduleV2`` (EventBridge Scheduler) hands it its ``Input`` with the
context attributes (``<aws.scheduler.scheduled-time>`` ...) filled in. Only ``rate(...)`` expressions
run locally: ``cron(...)`` and ``at(...)`` are logged and skipped (invoke the function through the
Invoke API to run it now). Each schedule has a daemon thread; the first run is one period after start,
as for a new EventBridge schedule.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from local_stack.lambdas import InvokeResult
from local_stack.template import ScheduleSpec, Template

logger = logging.getLogger(__name__)

_RATE = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int | None:
    """The period of a ``rate(N unit)`` expression in seconds; None for ``cron(...)``/``at(...)``."""
    expression = expression.strip()
    if expression.startswith(("cron(", "at(")):
        return None
    found = _RATE.fullmatch(expression)
    if found is None or int(found.group(1)) < 1:
        raise ValueError(f"Not a schedule expression: {expression!r}")
    return int(found.group(1)) * _UNIT_SECONDS[found.group(2).removesuffix("s")]


def rfc3339(moment: datetime) -> str:
    """``2025-10-12T18:30:00Z``: how EventBridge writes a scheduled time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scheduled_event(schedule: ScheduleSpec, template: Template, function_id: str, now: datetime) -> Any:
    """The event the function gets for one run of ``schedule`` at ``now``."""
    if schedule.type == "Schedule":
        if schedule.input is not None:
            return json.loads(schedule.input)
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": template.account_id,
            "time": rfc3339(now),
            "region": template.region,
            "resources": [],
            "detail": {},
        }
    schedule_arn = (
        f"arn:{template.partition}:scheduler:{template.region}:{template.account_id}:"
        f"schedule/default/{template.stack_name}-{function_id}{schedule.name}"
    )
    text = schedule.input or "{}"
    for attribute, value in {
        "<aws.scheduler.scheduled-time>": rfc3339(now),
        "<aws.scheduler.execution-id>": str(uuid.uuid4()),
        "<aws.scheduler.attempt-number>": "1",
        "<aws.scheduler.schedule-arn>": schedule_arn,
    }.items():
        text = text.replace(attribute, value)
    return json.loads(text)


RunHook = Callable[[str, "InvokeResult | None", float], None]
"""Called after each scheduled run with the function's logical id, its result (None: the invocation
itself failed) and the seconds it took."""


@dataclass(frozen=True)
class ScheduledJob:
    function_id: str
    schedule: ScheduleSpec
    period_seconds: int


def scheduled_jobs(template: Template) -> list[ScheduledJob]:
    """The enabled rate schedules of the template's functions (others are logged)."""
    jobs = []
    for function_id, spec in template.functions.items():
        for schedule in spec.schedules:
            period = rate_seconds(schedule.expression) if schedule.enabled else None
            if period is None:
                reason = "disabled" if not schedule.enabled else f"{schedule.expression} is not run locally"
                logger.info("Schedule %s.%s: %s", function_id, schedule.name, reason)
                continue
            jobs.append(ScheduledJob(function_id, schedule, period))
    return jobs


class Scheduler:
    """One daemon thread per job, invoking the function every period.

    ``time_scale`` shrinks the periods (tests use e.g. 1/600 so that one minute is 0.1 s).
    """

    def __init__(
        self,
        template: Template,
        invoke: Callable[[str, Any], InvokeResult],
        time_scale: float = 1.0,
        on_run: RunHook | None = None,
    ) -> None:
        self.template = template
        self.jobs = scheduled_jobs(template)
        self._invoke = invoke
        self._time_scale = time_scale
        self._on_run = on_run
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for job in self.jobs:
            name = f"schedule-{job.function_id}-{job.schedule.name}"
            thread = threading.Thread(target=self._run, args=(job,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=1)

    def _run(self, job: ScheduledJob) -> None:
        period = job.period_seconds * self._time_scale
        next_run = time.monotonic() + period
        # Runs stay on the period's grid, however long each one takes (a slow run skips the missed ones).
        while not self._stop.wait(max(0.0, next_run - time.monotonic())):
            self.run_once(job)
            while next_run <= time.monotonic():
                next_run += period

    def run_once(self, job: ScheduledJob) -> InvokeResult | None:
        event = scheduled_event(job.schedule, self.template, job.function_id, datetime.now(UTC))
        started = time.monotonic()
        result: InvokeResult | None = None
        try:
            result = self._invoke(job.function_id, event)
        except Exception:
            logger.exception("Scheduled run of %s failed", job.function_id)
        if self._on_run is not None:
            self._on_run(job.function_id, result, time.monotonic() - started)
        elif result is not None and result.function_error:
            logger.error("Scheduled run of %s: %s", job.function_id, result.payload)
        return result
