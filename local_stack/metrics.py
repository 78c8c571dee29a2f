"""CloudWatch metrics, locally: the functions' EMF documents and API Gateway's request metrics go into
the emulator's CloudWatch, so that ``aws cloudwatch get-metric-statistics`` and boto3 read them as on AWS.

- ``emf_metric_data``: an Embedded Metric Format document (what Powertools' ``Metrics`` prints) as
  ``PutMetricData`` datums: one per metric and per dimension set, with the namespace, dimensions, unit,
  values and timestamp the document gives (what CloudWatch Logs extracts from it in the cloud).
- ``api_metric_data``: what API Gateway publishes per request in ``AWS/ApiGateway`` with detailed
  metrics (``Count``, ``4XXError``, ``5XXError``, ``Latency`` by ``ApiName``, ``Stage``, ``Resource``,
  ``Method``; and by ``ApiName`` alone).
- ``MetricsPublisher``: a thread that sends datums in batches (once a second).
- ``report``: the last hour of the stack's metrics as a small table (``make metrics``).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

logger = logging.getLogger(__name__)

API_NAMESPACE = "AWS/ApiGateway"
PUBLISH_INTERVAL_SECONDS = 1.0
_MAX_DATUMS_PER_CALL = 1000
_MAX_VALUES_PER_DATUM = 150


@dataclass(frozen=True)
class Datum:
    namespace: str
    value: dict[str, Any]
    """A ``MetricData`` item of PutMetricData."""


def emf_metric_data(document: Mapping[str, Any]) -> list[Datum]:
    """The datums of an EMF document; [] when it is not one (or is malformed: it is a log line then)."""
    directive = document.get("_aws")
    if not isinstance(directive, dict) or not isinstance(directive.get("CloudWatchMetrics"), list):
        return []
    timestamp = directive.get("Timestamp")
    when = datetime.fromtimestamp(timestamp / 1000, UTC) if isinstance(timestamp, int | float) else datetime.now(UTC)
    datums = []
    for block in directive["CloudWatchMetrics"]:
        if not isinstance(block, dict) or not isinstance(block.get("Namespace"), str):
            continue
        dimension_sets = [names for names in block.get("Dimensions") or [[]] if isinstance(names, list)]
        for metric in block.get("Metrics") or []:
            name = metric.get("Name") if isinstance(metric, dict) else None
            values = _numbers(document.get(name)) if isinstance(name, str) else []
            if not values:
                continue
            for names in dimension_sets:
                dimensions = [
                    {"Name": str(dimension), "Value": str(document[dimension])}
                    for dimension in names
                    if dimension in document
                ]
                datum: dict[str, Any] = {"MetricName": name, "Dimensions": dimensions, "Timestamp": when}
                datum["Unit"] = metric.get("Unit") or "None"
                datums += [
                    Datum(block["Namespace"], {**datum, "Values": chunk})
                    for chunk in _chunks(values, _MAX_VALUES_PER_DATUM)
                ]
    return datums


def _numbers(value: Any) -> list[float]:
    values = value if isinstance(value, list) else [value]
    return [float(item) for item in values if isinstance(item, int | float) and not isinstance(item, bool)]


def _chunks(values: list[Any], size: int) -> Iterable[list[Any]]:
    return (values[start : start + size] for start in range(0, len(values), size))


def api_metric_data(
    *, api_name: str, stage: str, resource: str, method: str, status: int, latency_ms: float
) -> list[Datum]:
    """API Gateway's metrics for one request (``resource`` is the matched route's path)."""
    when = datetime.now(UTC)
    values = {
        "Count": (1.0, "Count"),
        "4XXError": (1.0 if 400 <= status < 500 else 0.0, "Count"),
        "5XXError": (1.0 if status >= 500 else 0.0, "Count"),
        "Latency": (latency_ms, "Milliseconds"),
    }
    dimension_sets = [
        [{"Name": "ApiName", "Value": api_name}],
        [
            {"Name": "ApiName", "Value": api_name},
            {"Name": "Method", "Value": method},
            {"Name": "Resource", "Value": resource},
            {"Name": "Stage", "Value": stage},
        ],
    ]
    return [
        Datum(
            API_NAMESPACE,
            {"MetricName": name, "Dimensions": dimensions, "Timestamp": when, "Value": value, "Unit": unit},
        )
        for name, (value, unit) in values.items()
        for dimensions in dimension_sets
    ]


class MetricsPublisher:
    """Sends the datums it is given to CloudWatch (``put_metric_data`` of a boto3 client), in batches."""

    def __init__(self, put_metric_data: Callable[..., Any], interval: float = PUBLISH_INTERVAL_SECONDS) -> None:
        self._put = put_metric_data
        self._interval = interval
        self._queue: queue.SimpleQueue[Datum] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-publisher", daemon=True)

    def add(self, datums: Iterable[Datum]) -> None:
        for datum in datums:
            self._queue.put(datum)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()
        self.flush()

    def flush(self) -> None:
        by_namespace: dict[str, list[dict[str, Any]]] = defaultdict(list)
        while True:
            try:
                datum = self._queue.get_nowait()
            except queue.Empty:
                break
            by_namespace[datum.namespace].append(datum.value)
        for namespace, data in by_namespace.items():
            for chunk in _chunks(data, _MAX_DATUMS_PER_CALL):
                try:
                    self._put(Namespace=namespace, MetricData=chunk)
                except Exception as error:
                    logger.warning("Could not put %d metrics in %s: %s", len(chunk), namespace, error)


# ---------------------------------------------------------------- make metrics


@dataclass(frozen=True)
class _Series:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]


def _statistic(cloudwatch: Any, series: _Series, statistic: str, start: datetime, end: datetime) -> float | None:
    answer = cloudwatch.get_metric_statistics(
        Namespace=series.namespace,
        MetricName=series.name,
        Dimensions=[{"Name": name, "Value": value} for name, value in series.dimensions],
        StartTime=start,
        EndTime=end,
        Period=3600,
        Statistics=[statistic],
    )
    points = [float(point[statistic]) for point in answer.get("Datapoints", [])]
    if not points:
        return None
    return max(points) if statistic == "Maximum" else sum(points)


def _series(cloudwatch: Any, namespace: str) -> list[_Series]:
    found = []
    for page in cloudwatch.get_paginator("list_metrics").paginate(Namespace=namespace):
        for metric in page.get("Metrics", []):
            dimensions = tuple(sorted((item["Name"], item["Value"]) for item in metric.get("Dimensions", [])))
            found.append(_Series(namespace, metric["MetricName"], dimensions))
    return found


def report(cloudwatch: Any, namespace: str, hours: float = 1.0) -> str:
    """The last ``hours`` of the stack's metrics: requests and errors per route, ingest, rollup."""
    end = datetime.now(UTC) + timedelta(minutes=1)
    start = end - timedelta(hours=hours, minutes=1)
    lines = [f"Metrics of the last {hours:g} h (CloudWatch of the AWS emulation)", ""]

    routes: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for series in _series(cloudwatch, API_NAMESPACE):
        dimensions = dict(series.dimensions)
        if "Resource" not in dimensions:
            continue
        statistic = "Average" if series.name == "Latency" else "Sum"
        value = _statistic(cloudwatch, series, statistic, start, end)
        if value is not None:
            routes[dimensions["Method"], dimensions["Resource"]][series.name] = value
    lines.append(f"{'route':<45}{'requests':>10}{'4xx':>8}{'5xx':>8}{'avg ms':>9}")
    for (method, resource), values in sorted(routes.items(), key=lambda item: item[0][::-1]):
        lines.append(
            f"{method + ' ' + resource:<45}{values.get('Count', 0):>10.0f}{values.get('4XXError', 0):>8.0f}"
            f"{values.get('5XXError', 0):>8.0f}{values.get('Latency', 0):>9.1f}"
        )
    if not routes:
        lines.append("(no request yet)")

    totals: dict[str, float] = defaultdict(float)
    maxima: dict[str, float] = {}
    for series in _series(cloudwatch, namespace):
        if series.name == "RollupLag":
            value = _statistic(cloudwatch, series, "Maximum", start, end)
            if value is not None:
                maxima[series.name] = max(value, maxima.get(series.name, value))
        else:
            totals[series.name] += _statistic(cloudwatch, series, "Sum", start, end) or 0.0
    lines += [
        "",
        f"Events: accepted {totals['EventsAccepted']:.0f}, duplicate {totals['EventsDuplicate']:.0f}, "
        f"rejected {totals['EventsRejected']:.0f}",
        f"Rollup: {totals['RollupRuns']:.0f} runs, {totals['RollupEventsProcessed']:.0f} events counted, "
        f"{totals['RollupConflicts']:.0f} conflicts, largest lag "
        + (f"{maxima['RollupLag']:.1f} s" if "RollupLag" in maxima else "-"),
    ]
    return "\n".join(lines)
