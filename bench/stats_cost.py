"""Section 4: what each statistics route asks of DynamoDB, with 10,000 and with 200,000 events behind it.

The tenants' catalogs give ``ACTION`` points and a number property whose values (2-decimal amounts) the
events of that action carry, so that points, top users by points and the property's daily statistics
are read from aggregates as full as the counts'.

Two tenants (Europe/Kyiv) in one in-process moto: one with 10,000 events, one with 200,000, over the same
users and hours (every user has events in every one of the last 48 hours in both) and the same 20 actions,
so that only the number of events differs. They are written straight into moto and rolled up by one run.
Then each route of the StatsFunction in template.yaml is invoked through the real handler
(``functions/stats/app.py`` ``lambda_handler``, loaded with importlib, environment from the template) with an
API Gateway proxy event carrying the authorizer's context, for each tenant in turn, and the requests and
items read on the product's client are counted. The two tenants' figures must be equal.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bench.common import function, load_function_module, log, quiet_stdout
from bench.data import ACTIONS, TenantSpec, create_tenants, grid, user_id, write_events, zone_reader
from bench.dynamo import Recorder, mocked_aws

if TYPE_CHECKING:
    from local_stack.template import Template
    from tracker.records import EventRecord

HOURS = 48
# A third tenant for long top-users windows: every one of 20 users active in each of the last 720 hours.
MONTH_USERS = 20
MONTH_HOURS = 720
SEED = 424242
ACTION = ACTIONS[0]
POINTS = 10
PROPERTY = "amount"
RANGE_DAYS = 30


@dataclass(frozen=True)
class Measurement:
    """One request of a route (its event name in template.yaml); ``days``: ``from``/``to`` are the last
    that many local dates, ``hours``: the last that many hours as times."""

    route: str
    description: str
    query: tuple[tuple[str, str], ...] = ()
    days: int | None = None
    hours: int | None = None

    def parameters(self, now: datetime) -> dict[str, str]:
        query = dict(self.query)
        if self.days is not None:
            today = now.astimezone(ZoneInfo(TIMEZONE)).date()
            query |= {"from": (today - timedelta(days=self.days - 1)).isoformat(), "to": today.isoformat()}
        if self.hours is not None:
            end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            query |= {"from": rfc3339(end - timedelta(hours=self.hours)), "to": rfc3339(end)}
        return query


TIMEZONE = "Europe/Kyiv"
MEASUREMENTS: dict[str, Measurement] = {
    "UserActivity": Measurement("UserActivity", "activity of one user, 4h windows, default 7 days"),
    "Daily": Measurement("Daily", "daily, days=7", (("days", "7"),)),
    "TopUsers": Measurement("TopUsers", "top-users, hours=24 limit=10", (("hours", "24"), ("limit", "10"))),
    "Trend": Measurement("Trend", "trend, default 7 days"),
    "Frequency": Measurement("Frequency", "frequency, default 7 days"),
    "ActionDaily": Measurement("ActionDaily", f"actions/{ACTION}/daily, default 7 days"),
    "UserPoints": Measurement("UserPoints", "points of one user, lifetime"),
    "UserPointsDays": Measurement("UserPoints", f"points of one user, {RANGE_DAYS} days (dates)", days=RANGE_DAYS),
    "UserPointsHours": Measurement(
        "UserPoints", f"points of one user, {RANGE_DAYS * 24} hours (times)", hours=RANGE_DAYS * 24
    ),
    "TopUsersByPoints": Measurement(
        "TopUsers", "top-users by=points, hours=24 limit=10", (("hours", "24"), ("limit", "10"), ("by", "points"))
    ),
    "PropertyDaily": Measurement(
        "PropertyDaily", f"actions/{ACTION}/properties/{PROPERTY}/daily, {RANGE_DAYS} days", days=RANGE_DAYS
    ),
    "Violations": Measurement("Violations", f"violations, {RANGE_DAYS} days", days=RANGE_DAYS),
}


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _proxy_event(resource: str, path_parameters: dict[str, str], query: dict[str, str], tenant: dict[str, str]) -> Any:
    path = resource
    for name, value in path_parameters.items():
        path = path.replace("{" + name + "}", value)
    return {
        "resource": resource,
        "path": path,
        "httpMethod": "GET",
        "headers": {"Accept": "application/json", "x-api-key": "bench-key"},
        "multiValueHeaders": {"Accept": ["application/json"], "x-api-key": ["bench-key"]},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {name: [value] for name, value in query.items()} or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": "GET",
            "path": f"/dev{path}",
            "stage": "dev",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "127.0.0.1", "userAgent": "bench"},
            "authorizer": {
                "tenant_id": tenant["tenant_id"],
                "role": "tenant",
                "key_id": "key_bench",
                "timezone": tenant["timezone"],
                "principalId": "key_bench",
            },
        },
        "body": None,
        "isBase64Encoded": False,
    }


def _sanity(event_name: str, body: dict[str, Any], events: list[EventRecord]) -> bool:  # noqa: PLR0911 - one per route
    """A light check that the route answered from the data (totals where the default range holds them all)."""
    items = body.get("items", [])
    if event_name.startswith("UserPoints"):
        mine = [e for e in events if e.user_id == user_id(0)]
        return bool(body["total"] == POINTS * sum(e.action == ACTION for e in mine))
    if event_name == "TopUsersByPoints":
        return len(items) == 10 and all(item["points"] > 0 for item in items)
    if event_name == "PropertyDaily":
        amounts = [Decimal(str(e.metadata[PROPERTY])) for e in events if e.action == ACTION and e.metadata]
        return bool(sum(i["count"] for i in items) == len(amounts) and sum(i["sum"] for i in items) == sum(amounts))
    if event_name == "Violations":
        return bool(items == [])
    if event_name in {"Daily", "ActionDaily"}:
        wanted = len(events) if event_name == "Daily" else sum(e.action == ACTION for e in events)
        return bool(sum(item["count"] for item in items) == wanted)
    if event_name == "Trend":
        return bool(sum(sum(item["counts"].values()) for item in items) == len(events))
    if event_name == "Frequency":
        return bool(sum(item["total"] for item in items) == len(events))
    if event_name == "UserActivity":
        return bool(sum(item["count"] for item in items) == sum(e.user_id == user_id(0) for e in events))
    if event_name == "TopUsers":
        return len(items) == 10
    return False


def run(template: Template, *, small: int, large: int, users: int) -> dict[str, Any]:
    spec = function(template, "StatsFunction")
    rollup_spec = function(template, "RollupFunction")
    routes = {route.event_name: route for route in spec.routes}
    missing = {measurement.route for measurement in MEASUREMENTS.values()} - set(routes)
    if missing:
        raise SystemExit(f"StatsFunction has no route {', '.join(sorted(missing))} in template.yaml")
    environment = {**rollup_spec.environment, **spec.environment, "POWERTOOLS_TRACE_DISABLED": "true"}
    sizes = {"small": small, "large": large}
    tenants = {key: TenantSpec(key, f"Bench {key} {count:,}", TIMEZONE, users, 0.5) for key, count in sizes.items()}
    with mocked_aws(template, environment) as moto:
        from tracker.adapters.aggregates_table import rollup_aggregates
        from tracker.adapters.catalog_table import catalog_reader
        from tracker.adapters.tenants_table import DynamoTenantStore
        from tracker.rollup import run_rollup

        started = time.perf_counter()
        events_table, tenants_table = moto.tables["EventsTable"], moto.tables["TenantsTable"]
        direct: Any = moto.direct
        setup_tenants = DynamoTenantStore(direct, tenants_table)
        generated = datetime.now(UTC)
        month_tenant = TenantSpec("month", "Bench month", "Europe/Kyiv", MONTH_USERS, 0.0)
        ids = create_tenants(setup_tenants, [*tenants.values(), month_tenant], generated - timedelta(days=31))
        _create_catalogs(moto.client, moto.tables["CatalogTable"], ids.values(), generated - timedelta(days=32))
        data = _write_events(moto.direct, events_table, ids, sizes, users=users, generated=generated)
        month = data["month"]
        log(f"stats: rolling up {small + large + len(month):,} events")
        report = run_rollup(
            rollup_aggregates(),
            zone_reader(setup_tenants),
            now=datetime.now(UTC),
            settle=timedelta(0),
            initial_lookback=timedelta(hours=MONTH_HOURS + 2),
            catalog=catalog_reader(),
        )
        if not report.finished or report.events != small + large + len(month):
            raise RuntimeError(f"the set-up rollup counted {report.events} events: {report}")
        setup_seconds = time.perf_counter() - started

        handler = getattr(load_function_module(spec, "bench_stats_app"), spec.handler_function)
        from local_stack.lambdas import LambdaContext, WorkerSetup

        setup = WorkerSetup.of(spec, dict(environment))
        tenant_context = {key: {"tenant_id": ids[key], "timezone": TIMEZONE} for key in sizes}
        for attempt in range(2):
            hour_before = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

            def new_context() -> Any:
                return LambdaContext(setup, str(uuid.uuid4()), "bench")

            caller = _Caller(handler, new_context, moto.client)
            measured = _measure(caller, routes, tenant_context, data)
            everyone = {**tenant_context, "month": {"tenant_id": ids["month"], "timezone": TIMEZONE}}
            windows = _top_users_windows(caller, routes["TopUsers"].path, everyone, data)
            if datetime.now(UTC).replace(minute=0, second=0, microsecond=0) == hour_before:
                break
            log(f"stats: an hour began during the measurement (attempt {attempt + 1}); measuring again")
    comparison = {
        name: {
            "requests_equal": result["small"]["dynamodb"]["requests"] == result["large"]["dynamodb"]["requests"],
            "items_read_equal": result["small"]["dynamodb"]["total_items_read"]
            == result["large"]["dynamodb"]["total_items_read"],
        }
        for name, result in measured.items()
    }
    return {
        "events": sizes,
        "users": users,
        "hours": HOURS,
        "actions": len(ACTIONS),
        "timezone": TIMEZONE,
        "setup_seconds": round(setup_seconds, 1),
        "routes": measured,
        "top_users_windows": windows,
        "all_equal": all(all(entry.values()) for entry in comparison.values()),
        "comparison": comparison,
    }


@dataclass
class _Caller:
    """Invokes the stats handler as API Gateway would, for a tenant, counting the product client's requests."""

    handler: Callable[[dict[str, Any], Any], dict[str, Any]]
    context: Callable[[], Any]
    client: Any

    def get(
        self, path: str, path_parameters: dict[str, str], query: dict[str, str], tenant: dict[str, str]
    ) -> tuple[dict[str, Any], Any, float]:
        """The answer, the DynamoDB counts, the milliseconds."""
        event = _proxy_event(path, path_parameters, query, tenant)
        with Recorder(self.client) as recorder, quiet_stdout():
            started = time.perf_counter()
            answer = self.handler(event, self.context())
            milliseconds = (time.perf_counter() - started) * 1000
        return answer, recorder.counts, milliseconds


def _top_users_windows(
    caller: _Caller, path: str, tenants: dict[str, dict[str, str]], data: dict[str, list[EventRecord]]
) -> dict[str, Any]:
    """Items read by top-users for 24, 168 and 720 hours, next to the distinct users active in the window."""
    figures: dict[str, Any] = {}
    now = datetime.now(UTC)
    for key, tenant in tenants.items():
        for hours in (24, 168, 720):
            answer, counts, _ = caller.get(path, {}, {"hours": str(hours), "limit": "10"}, tenant)
            start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
            figures[f"{key} hours={hours}"] = {
                "status": answer.get("statusCode"),
                "distinct_users_in_window": len({e.user_id for e in data[key] if e.occurred_at >= start}),
                "items_read": counts.total_items_read,
                "requests": counts.total_requests,
                "read_request_units": round(counts.read_units, 1),
            }
    return figures


def _write_events(
    direct: Any, table: str, ids: dict[str, str], sizes: dict[str, int], *, users: int, generated: datetime
) -> dict[str, list[EventRecord]]:
    """The events of each sized tenant (amounts on ``ACTION``) and of the month tenant, written to moto."""
    last_hour = generated.replace(minute=0, second=0, microsecond=0)
    rng = random.Random(SEED)  # noqa: S311 - reproducible test data
    data: dict[str, list[EventRecord]] = {}
    for key, count in sizes.items():
        log(f"stats: writing {count:,} events of tenant {key}")
        data[key] = _with_amounts(
            rng, grid(rng, ids[key], count, users=users, hours=HOURS, last_hour=last_hour, prefix=key)
        )
    data["month"] = grid(
        rng,
        ids["month"],
        MONTH_USERS * MONTH_HOURS,
        users=MONTH_USERS,
        hours=MONTH_HOURS,
        last_hour=last_hour,
        prefix="month",
    )
    for events in data.values():
        write_events(direct, table, events)
    return data


def _create_catalogs(client: Any, table: str, tenant_ids: Iterable[str], declared: datetime) -> None:
    """Each tenant's ``ACTION`` earns ``POINTS`` and has the number property ``PROPERTY``, declared
    before any event was received."""
    from tracker.adapters.catalog_table import DynamoEventTypeStore
    from tracker.records import EventTypeRecord, PropertyRule

    store = DynamoEventTypeStore(client, table)
    for tenant_id in tenant_ids:
        rule = PropertyRule(type="number", declared_at=declared)
        store.create_event_type(
            EventTypeRecord(
                tenant_id=tenant_id,
                name=ACTION,
                description="bench",
                points=POINTS,
                properties={PROPERTY: rule},
                created_at=declared,
                updated_at=declared,
            )
        )


def _with_amounts(rng: random.Random, events: list[EventRecord]) -> list[EventRecord]:
    """The events of ``ACTION`` carry an amount with two decimals (a JSON float, exact as a decimal)."""
    return [
        event.model_copy(update={"metadata": {**(event.metadata or {}), PROPERTY: round(rng.uniform(0, 500), 2)}})
        if event.action == ACTION
        else event
        for event in events
    ]


def _measure(
    caller: _Caller, routes: dict[str, Any], tenants: dict[str, dict[str, str]], data: dict[str, list[EventRecord]]
) -> dict[str, Any]:
    measured: dict[str, Any] = {}
    now = datetime.now(UTC)
    for label, measurement in MEASUREMENTS.items():
        route = routes[measurement.route]
        path_parameters = {"user_id": user_id(0)} if "{user_id}" in route.path else {}
        if "{action}" in route.path:
            path_parameters["action"] = ACTION
        if "{property}" in route.path:
            path_parameters["property"] = PROPERTY
        query = measurement.parameters(now)
        per_size: dict[str, Any] = {
            "route": f"GET {route.path}",
            "query": query,
            "description": measurement.description,
        }
        for key, tenant in tenants.items():
            answer, counts, milliseconds = caller.get(route.path, path_parameters, query, tenant)
            body = json.loads(answer.get("body") or "{}", parse_float=Decimal)
            per_size[key] = {
                "status": answer.get("statusCode"),
                "ms": round(milliseconds, 1),
                "dynamodb": counts.as_dict(),
                "answer_matches_data": answer.get("statusCode") == 200 and _sanity(label, body, data[key]),
                "items_in_answer": len(body.get("items", [])),
            }
        measured[label] = per_size
    return measured
