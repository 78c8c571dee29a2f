"""The operators' CloudWatch dashboard and alarms in template.yaml name only metrics that exist: the
functions' own (found by reading the code: every ``add_metric`` and its dimensions) and AWS's (with the
dimensions AWS gives them, valued with this template's resources). A renamed metric fails here, not
silently in an alarm that never fires. And every function, table, index and queue is watched."""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local_stack.template import read_yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
LAYER = ROOT / "layers" / "tracker" / "tracker"

# What AWS publishes, by namespace: metric names and the dimension sets they come with.
AWS_METRICS: dict[str, tuple[frozenset[str], tuple[frozenset[str], ...]]] = {
    "AWS/ApiGateway": (
        frozenset({"Count", "4XXError", "5XXError", "Latency", "IntegrationLatency"}),
        (frozenset({"ApiName", "Stage"}), frozenset({"ApiName", "Method", "Resource", "Stage"})),
    ),
    "AWS/Lambda": (
        frozenset({"Errors", "Throttles", "ConcurrentExecutions", "Invocations", "Duration"}),
        (frozenset({"FunctionName"}),),
    ),
    "AWS/DynamoDB": (
        frozenset({"ReadThrottleEvents", "WriteThrottleEvents"}),
        (frozenset({"TableName"}), frozenset({"TableName", "GlobalSecondaryIndexName"})),
    ),
    "AWS/SQS": (frozenset({"ApproximateNumberOfMessagesVisible"}), (frozenset({"QueueName"}),)),
}
# Dimensions whose value a SEARCH leaves open (one time series per route, resource or method).
OPEN_DIMENSIONS = frozenset({"route", "Method", "Resource"})
MAX_ALARM_METRICS = 10  # CloudWatch's hard limit for a metric math alarm


@dataclass(frozen=True)
class MetricUse:
    """One metric named by the dashboard or an alarm; ``dimensions`` values are None when left open."""

    where: str
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str | None], ...]


# ---------------------------------------------------------------- what the code emits


def _calls(tree: ast.AST, attribute: str) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == attribute:
            yield node


def _keyword(call: ast.Call, name: str) -> Any:
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return keyword.value.value
    return None


def _metric_names(tree: ast.AST) -> set[str]:
    return {str(_keyword(call, "name")) for call in _calls(tree, "add_metric")}


def emitted_metrics(template: dict[str, Any]) -> dict[str, set[frozenset[str]]]:
    """Metric name -> the dimension sets it is emitted with, by reading the functions and the layer.

    Every function's metrics carry Powertools' ``service``; a function that answers HTTP through the
    layer's entry point (the one that adds the ``route`` dimension) carries ``route`` too, on its own
    metrics and on the entry point's.
    """
    emitted: dict[str, set[frozenset[str]]] = {}
    layer_trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in LAYER.rglob("*.py")}
    entry_points: set[str] = set()
    entry_metrics: set[str] = set()
    for tree in layer_trees.values():
        for function in (node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)):
            if any(_keyword(call, "name") == "route" for call in _calls(function, "add_dimension")):
                entry_points.add(function.name)
                entry_metrics |= _metric_names(tree)
    assert entry_points, "no layer function adds the route dimension: update this test"
    cold_start = False
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        module = ROOT / properties["CodeUri"] / (properties["Handler"].split(".")[0] + ".py")
        tree = ast.parse(module.read_text(encoding="utf-8"))
        http = any(
            isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in entry_points
            for node in ast.walk(tree)
        )
        names = _metric_names(tree) | (entry_metrics if http else set())
        dimensions = frozenset({"service", "route"} if http else {"service"})
        for name in names:
            emitted.setdefault(name, set()).add(dimensions)
        cold_start = cold_start or any(
            _keyword(call, "capture_cold_start_metric") is True for call in _calls(tree, "log_metrics")
        )
    if cold_start:
        emitted.setdefault("ColdStart", set()).add(frozenset({"function_name", "service"}))
    return emitted


# ---------------------------------------------------------------- what the template names


def _value(value: Any) -> str:
    """A dimension value as a readable reference: ``<Logical>``, ``<Logical.Attribute>`` or the text."""
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return f"<{'.'.join(target) if isinstance(target, list) else target}>"
    return str(value)


def dashboard_body(template: dict[str, Any], resource: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's JSON, with ``${X}`` written ``<X>`` (a number parameter: its default)."""
    body = resource["Properties"]["DashboardBody"]["Fn::Sub"]
    parameters = template.get("Parameters", {})

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        parameter = parameters.get(name)
        if parameter is not None and parameter["Type"] == "Number":
            return str(parameter["Default"])
        return f"<{name}>"

    loaded: dict[str, Any] = json.loads(re.sub(r"\$\{([^}!]+)\}", substitute, body))
    return loaded


SEARCH = re.compile(r"SEARCH\(\s*'\{([^}]*)\}([^']*)'")
FILTER = re.compile(r'(\w+)="([^"]*)"')


def dashboard_uses(template: dict[str, Any]) -> list[MetricUse]:
    uses = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Dashboard":
            continue
        for widget in dashboard_body(template, resource)["widgets"]:
            title = widget["properties"].get("title", "")
            for entry in widget["properties"].get("metrics", []):
                where = f"{logical_id} / {title}"
                if isinstance(entry[0], dict):
                    uses += _search_uses(where, entry[0]["expression"])
                    continue
                namespace, name, *rest = [item for item in entry if not isinstance(item, dict)]
                pairs = tuple(zip(rest[::2], rest[1::2], strict=True))
                uses.append(MetricUse(where, namespace, name, pairs))
    return uses


def _search_uses(where: str, expression: str) -> list[MetricUse]:
    uses = []
    for schema, terms in SEARCH.findall(expression):
        namespace, *dimension_names = [part.strip() for part in schema.split(",")]
        filters = dict(FILTER.findall(terms))
        name = filters.pop("MetricName")
        assert set(filters) <= set(dimension_names), f"{where}: {filters} outside the schema {schema}"
        pairs = tuple((dimension, filters.get(dimension)) for dimension in dimension_names)
        uses.append(MetricUse(where, namespace, name, pairs))
    assert uses or "SEARCH" not in expression, f"{where}: unreadable SEARCH {expression}"
    return uses


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }


def alarm_uses(template: dict[str, Any]) -> list[MetricUse]:
    uses = []
    for logical_id, properties in alarms(template).items():
        metrics = [query["MetricStat"]["Metric"] for query in properties.get("Metrics", []) if "MetricStat" in query]
        if "MetricName" in properties:
            metrics.append(properties)
        for metric in metrics:
            pairs = tuple((item["Name"], _value(item["Value"])) for item in metric.get("Dimensions", []))
            uses.append(MetricUse(logical_id, metric["Namespace"], metric["MetricName"], pairs))
    return uses


# ---------------------------------------------------------------- the check


def unknown_metrics(template: dict[str, Any]) -> list[str]:
    """Every metric of the dashboard and the alarms that nothing emits, or not with those dimensions."""
    emitted = emitted_metrics(template)
    globals_env = template["Globals"]["Function"]["Environment"]["Variables"]
    own_namespace, service = globals_env["POWERTOOLS_METRICS_NAMESPACE"], globals_env["POWERTOOLS_SERVICE_NAME"]
    resources = template["Resources"]
    problems = []
    for use in dashboard_uses(template) + alarm_uses(template):
        names = frozenset(name for name, _ in use.dimensions)
        label = f"{use.where}: {use.namespace} {use.name} {dict(use.dimensions)}"
        if use.namespace == own_namespace:
            if names not in emitted.get(use.name, set()):
                problems.append(f"{label}: the code emits {use.name} with {emitted.get(use.name) or 'no dimensions'}")
        elif use.namespace in AWS_METRICS:
            metric_names, dimension_sets = AWS_METRICS[use.namespace]
            if use.name not in metric_names or names not in dimension_sets:
                problems.append(f"{label}: not a metric AWS publishes with these dimensions")
        else:
            problems.append(f"{label}: unknown namespace")
        problems += [f"{label}: {problem}" for problem in _bad_values(use, resources, service)]
    return problems


def _bad_values(use: MetricUse, resources: dict[str, Any], service: str) -> Iterator[str]:
    """Dimension values must name this stack's resources (or be left open where a SEARCH may)."""
    values = dict(use.dimensions)
    for name, value in use.dimensions:
        if value is None:
            if name not in OPEN_DIMENSIONS:
                yield f"{name} left open"
            continue
        target = value[1:-1].split(".")[0] if value.startswith("<") else None
        expected_type = {
            "FunctionName": "AWS::Serverless::Function",
            "TableName": "AWS::DynamoDB::Table",
            "QueueName": "AWS::SQS::Queue",
        }.get(name)
        if name == "service" and value != service:
            yield f"service is {service!r} in the functions' environment"
        elif name == "ApiName" and value != "<AWS::StackName>":
            yield "ApiName must be the stack name (the Api's Name)"
        elif name == "Stage" and value != "<Stage>":
            yield "Stage must be the Stage parameter"
        elif expected_type and (target not in resources or resources[target]["Type"] != expected_type):
            yield f"{name} {value} is not a {expected_type} of the template"
        elif name == "GlobalSecondaryIndexName":
            table = resources.get(str(values.get("TableName", ""))[1:-1], {}).get("Properties", {})
            if value not in {index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])}:
                yield f"{value} is not an index of {values.get('TableName')}"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return read_yaml(TEMPLATE)


def test_the_code_is_read_for_its_metrics(template: dict[str, Any]) -> None:
    emitted = emitted_metrics(template)
    # Then the known metrics are found, with their dimensions (a sanity check of the reading itself)
    assert emitted["Requests"] == {frozenset({"service", "route"})}
    assert emitted["EventsAccepted"] == {frozenset({"service", "route"})}
    assert emitted["RollupLag"] == {frozenset({"service"})}
    assert emitted["KeysRefused"] == {frozenset({"service"})}


def test_every_metric_of_the_dashboard_and_the_alarms_is_emitted(template: dict[str, Any]) -> None:
    assert dashboard_uses(template)
    assert alarm_uses(template)
    assert unknown_metrics(template) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('"RollupLag"', '"RollupLagSeconds"'),  # a metric renamed
        ('"RollupRuns", "service"', '"RollupRuns", "stage"'),  # a dimension renamed
        ('MetricName=\\"EventsAccepted\\"', 'MetricName=\\"EventAccepted\\"'),  # inside a SEARCH
        ("${EventsTable}", "${EventTable}"),  # a resource that does not exist
    ],
)
def test_a_renamed_metric_in_the_dashboard_is_caught(template: dict[str, Any], old: str, new: str) -> None:
    changed = copy.deepcopy(template)
    dashboard = changed["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]
    assert old in dashboard["Fn::Sub"]
    dashboard["Fn::Sub"] = dashboard["Fn::Sub"].replace(old, new)
    assert unknown_metrics(changed) != []


def test_a_renamed_metric_in_an_alarm_is_caught(template: dict[str, Any]) -> None:
    changed = copy.deepcopy(template)
    changed["Resources"]["RollupLagAlarm"]["Properties"]["MetricName"] = "RollupDelay"
    assert unknown_metrics(changed) == [
        "RollupLagAlarm: ActivityTracker RollupDelay {'service': 'activity-tracker'}: the code emits RollupDelay "
        "with no dimensions"
    ]


# ---------------------------------------------------------------- coverage and wording


def _watched(template: dict[str, Any], metric: str, dimension: str) -> set[str]:
    return {dict(use.dimensions)[dimension] or "" for use in alarm_uses(template) if use.name == metric}


def test_every_function_table_index_and_queue_is_watched_by_an_alarm(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    of_type = {
        kind: {f"<{name}>" for name, r in resources.items() if r["Type"] == kind}
        for kind in ("AWS::Serverless::Function", "AWS::DynamoDB::Table", "AWS::SQS::Queue")
    }
    functions = of_type["AWS::Serverless::Function"]
    assert _watched(template, "Errors", "FunctionName") == functions
    assert _watched(template, "Throttles", "FunctionName") == functions
    for metric in ("ReadThrottleEvents", "WriteThrottleEvents"):
        uses = [dict(use.dimensions) for use in alarm_uses(template) if use.name == metric]
        assert {use["TableName"] for use in uses} == of_type["AWS::DynamoDB::Table"]
        indexes = {
            (f"<{name}>", index["IndexName"])
            for name, r in resources.items()
            if r["Type"] == "AWS::DynamoDB::Table"
            for index in r["Properties"].get("GlobalSecondaryIndexes", [])
        }
        assert {
            (use["TableName"], use["GlobalSecondaryIndexName"]) for use in uses if "GlobalSecondaryIndexName" in use
        } == indexes
    assert _watched(template, "ApproximateNumberOfMessagesVisible", "QueueName") == {
        f"{name[:-1]}.QueueName>" for name in of_type["AWS::SQS::Queue"]
    }


def test_every_function_is_on_the_dashboards_lambda_graphs(template: dict[str, Any]) -> None:
    functions = {f"<{name}>" for name, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    for metric in ("Errors", "Throttles", "ConcurrentExecutions"):
        shown = {dict(use.dimensions)["FunctionName"] for use in dashboard_uses(template) if use.name == metric}
        assert shown == functions, metric


def test_every_alarm_says_what_to_do_and_notifies_the_topic(template: dict[str, Any]) -> None:
    found = alarms(template)
    assert set(found) >= {
        "ApiServerErrorRateAlarm",
        "ApiFunctionErrorsAlarm",
        "ApiFunctionThrottlesAlarm",
        "BackgroundFunctionFailuresAlarm",
        "DynamoDbReadThrottlesAlarm",
        "DynamoDbWriteThrottlesAlarm",
        "RollupLagAlarm",
        "EraseWorkerDeadLettersAlarm",
    }
    for name, properties in found.items():
        assert len(properties["AlarmDescription"]) > 150, name
        assert properties["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        stats = [query for query in properties.get("Metrics", []) if "MetricStat" in query]
        assert len(stats) <= MAX_ALARM_METRICS, f"{name}: {len(stats)} metrics, CloudWatch allows {MAX_ALARM_METRICS}"
        assert sum(1 for query in properties.get("Metrics", []) if query.get("ReturnData", True)) <= 1, name


def test_the_rollup_lag_alarm_fires_on_a_stopped_rollup_and_has_its_parameter(template: dict[str, Any]) -> None:
    lag = template["Resources"]["RollupLagAlarm"]["Properties"]
    assert lag["Threshold"] == {"Ref": "RollupLagAlarmSeconds"}
    assert template["Parameters"]["RollupLagAlarmSeconds"]["Default"] == 600
    assert lag["TreatMissingData"] == "breaching"  # no metric at all: the rollup stopped


def test_the_email_subscription_is_optional(template: dict[str, Any]) -> None:
    subscription = template["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""
