"""Every sample event in ``events/`` goes through the function the template routes it to, with its expected answer.

``sam local invoke -e events/...`` users get these same answers when the store holds the sample state
(the sample tenant, its key and one event of the sample user), which each test creates first with
the ids the events carry.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from local_stack.template import Template
from tests.iam import allows
from tracker.adapters.catalog_table import DynamoEventTypeStore
from tracker.adapters.profiles_table import DynamoProfileStore
from tracker.events import prepare_event
from tracker.profile_models import ExportRecord, ProfileRecord
from tracker.records import ApiKeyRecord, EventTypeRecord, PropertyRule, TenantRecord
from tracker.tenants import hash_api_key

from .support import EVENTS_DIR, Functions, create_pending_erasure, event_store, sample_event, tenant_store

# The expected answer of every sample event: an HTTP status, the authorizer's policy effect, or
# "completes" for a scheduled function (it returns its report).
EXPECTED: dict[str, int | str] = {
    "authorizer/request.json": "Allow",
    "rollup/scheduled_event.json": "completes",
    "rollup/scheduler_input.json": "completes",
    "health/get.json": 200,
    "dashboard/get_config.json": 200,
    "ingest/post_event.json": 201,
    "ingest/post_batch.json": 200,
    "ingest/post_event_invalid.json": 422,
    "query/get_user_events.json": 200,
    "tenants/create_tenant.json": 201,
    "tenants/list_tenants.json": 200,
    "tenants/update_tenant.json": 200,
    "tenants/create_key.json": 201,
    "tenants/revoke_key.json": 204,
    "stats/user_activity.json": 200,
    "stats/daily.json": 200,
    "stats/top_users.json": 200,
    "stats/trend.json": 200,
    "stats/frequency.json": 200,
    "stats/action_daily.json": 200,
    "stats/user_points.json": 200,
    "stats/user_points_range.json": 200,
    "stats/top_users_by_points.json": 200,
    "stats/property_daily.json": 200,
    "stats/violations.json": 200,
    "erasure/delete_user.json": 202,
    "erasure/get_erasure.json": 200,
    "erase_worker/erase.json": "completes",
    "auth_token/create_token.json": 200,
    "cors/preflight.json": 204,
    "ingest/post_event_blocked.json": 422,
    "tenants/update_validation.json": 200,
    "event_types/create.json": 201,
    "event_types/list.json": 200,
    "event_types/get.json": 200,
    "event_types/update.json": 200,
    "event_types/delete.json": 204,
    "profiles/put_profile.json": 201,
    "profiles/patch_profile.json": 200,
    "profiles/get_profile.json": 200,
    "profiles/delete_profile.json": 204,
    "profiles/find_profiles.json": 200,
    "exports/create_export.json": 202,
    "exports/get_export.json": 200,
    "export_worker/export.json": "completes",
    "ws_connect/connect.json": "completes",
    "ws_default/subscribe.json": "completes",
    "ws_disconnect/disconnect.json": "completes",
    "broadcaster/stream_insert.json": "completes",
}
NOT_EVENTS = {"env.json"}
SAMPLE_FILES = sorted(
    str(path.relative_to(EVENTS_DIR))
    for path in EVENTS_DIR.rglob("*.json")
    if str(path.relative_to(EVENTS_DIR)) not in NOT_EVENTS
)


def seed_sample_state(template: Template, client: Any) -> dict[str, Any]:
    """The sample tenant, its key (the authorizer event's x-api-key), one event of the sample user and
    the event type ``purchase`` of its catalog."""
    tenant_id = sample_event("tenants/update_tenant.json")["pathParameters"]["tenant_id"]
    key_id = sample_event("tenants/revoke_key.json")["pathParameters"]["key_id"]
    api_key = sample_event("authorizer/request.json")["headers"]["x-api-key"]
    query = sample_event("query/get_user_events.json")
    user_id = query["pathParameters"]["user_id"]
    now = datetime.now(UTC)
    tenant_store(template, client).create_tenant(
        TenantRecord(tenant_id=tenant_id, name="Sample tenant", timezone="UTC", active=True, created_at=now),
        ApiKeyRecord(key_id=key_id, key_hash=hash_api_key(api_key), role="tenant", tenant_id=tenant_id, created_at=now),
    )
    occurred_at = query["queryStringParameters"]["from"]
    record = prepare_event(
        {"event_id": "evt_seeded_0001", "user_id": user_id, "action": "login", "occurred_at": occurred_at},
        tenant_id,
        now,
    )
    event_store(template, client).put_new(record)
    erasure_id = sample_event("erase_worker/erase.json")["erasure_id"]
    create_pending_erasure(template, client, tenant_id, erasure_id, "user-to-erase", now)
    seed_profile_and_export(template, client, tenant_id, user_id, now)
    register_workers(template)
    DynamoEventTypeStore(
        client, template.functions["EventTypesFunction"].environment["CATALOG_TABLE"]
    ).create_event_type(
        EventTypeRecord(
            tenant_id=tenant_id,
            name="purchase",
            description="When someone buys",
            points=10,
            properties={"amount": PropertyRule(type="number", required=True), "sku": PropertyRule(type="string")},
            created_at=now,
            updated_at=now,
        )
    )
    return {"tenant_id": tenant_id, "key_id": key_id, "user_id": user_id}


def seed_profile_and_export(template: Template, client: Any, tenant_id: str, user_id: str, now: datetime) -> None:
    """The sample user's profile, and the export the export samples name (pending)."""
    store = DynamoProfileStore(client, template.functions["ProfilesFunction"].environment["PROFILES_TABLE"])
    fields = {"email": "grace@example.com", "first_name": "Grace", "phone": "+380441234567"}
    profile = ProfileRecord(tenant_id=tenant_id, user_id=user_id, fields=fields, created_at=now, updated_at=now)
    assert store.save_profile(profile, None, None)
    export_id = sample_event("export_worker/export.json")["export_id"]
    store.create_export(
        ExportRecord(
            tenant_id=tenant_id,
            export_id=export_id,
            user_id=user_id,
            status="pending",
            events=0,
            created_at=now,
            updated_at=now,
        )
    )


def register_workers(template: Template) -> None:
    """The workers the erasure and exports functions hand off to, as functions moto accepts asynchronous
    invocations of."""
    role = boto3.client("iam").create_role(RoleName="worker", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return event\n")
    for function, variable in (
        ("ErasureFunction", "ERASE_WORKER_FUNCTION"),
        ("ExportsFunction", "EXPORT_WORKER_FUNCTION"),
    ):
        boto3.client("lambda").create_function(
            FunctionName=template.functions[function].environment[variable],
            Runtime="python3.11",
            Role=role,
            Handler="app.lambda_handler",
            Code={"ZipFile": code.getvalue()},
        )


def test_every_sample_event_has_an_expected_answer() -> None:
    assert sorted(EXPECTED) == SAMPLE_FILES


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_a_sample_event_gives_its_expected_answer(
    name: str, functions: Functions, template: Template, dynamodb: Any
) -> None:
    # Given the sample state in the store
    seeded = seed_sample_state(template, dynamodb)
    event = sample_event(name)
    assert name in EXPECTED, f"events/{name} has no expected answer in EXPECTED"
    # When the event is invoked on the function the template routes it to
    if EXPECTED[name] == "completes":
        report = functions.invoke(functions.function_for(event), event)
        # Then the scheduled function returns its report
        assert isinstance(report, dict)
        assert report
        return
    if EXPECTED[name] in {"Allow", "Deny"}:
        answer = functions.invoke(functions.function_for(event), event)
        # Then the authorizer's policy has the expected effect on the route asked for
        assert allows(answer, event["methodArn"]) == (EXPECTED[name] == "Allow"), answer
        assert answer["context"]["tenant_id"] == seeded["tenant_id"]
        return
    answer_http = functions.http(event)
    # Then it answers with the expected status (an error in the contract's shape)
    assert answer_http.status == EXPECTED[name], answer_http.body
    if answer_http.status >= 400:
        assert set(answer_http.body["error"]) == {"code", "message", "details"}
    else:
        assert answer_http.status == 204 or answer_http.headers["content-type"].startswith("application/json")


def test_the_sample_batch_stores_the_good_events_and_rejects_the_bad_one(
    functions: Functions, template: Template, dynamodb: Any
) -> None:
    seed_sample_state(template, dynamodb)
    event = sample_event("ingest/post_batch.json")
    sent = json.loads(event["body"])["events"]
    answer = functions.http(event)
    assert answer.status == 200
    assert answer.body["rejected"] == 1
    assert answer.body["accepted"] == len(sent) - 1
    assert [result["status"] for result in answer.body["results"]][-1] == "rejected"


def test_the_sample_query_finds_the_sample_users_events(
    functions: Functions, template: Template, dynamodb: Any
) -> None:
    seeded = seed_sample_state(template, dynamodb)
    event = sample_event("query/get_user_events.json")
    # The path is percent-encoded and the path parameter decoded, as API Gateway sends them
    assert "%2F" in event["path"]
    assert "/" in event["pathParameters"]["user_id"]
    answer = functions.http(event)
    assert answer.status == 200
    assert [item["event_id"] for item in answer.body["items"]] == ["evt_seeded_0001"]
    assert answer.body["items"][0]["user_id"] == seeded["user_id"]


def test_the_sample_post_then_query_round_trip(functions: Functions, template: Template, dynamodb: Any) -> None:
    # Given the sample event posted (twice: the second is a duplicate)
    seed_sample_state(template, dynamodb)
    post = sample_event("ingest/post_event.json")
    assert functions.http(post).status == 201
    assert functions.http(post).body["status"] == "duplicate"
    # When the sample query runs, Then it lists it beside the seeded one
    items = functions.http(sample_event("query/get_user_events.json")).body["items"]
    assert json.loads(post["body"])["event_id"] in [item["event_id"] for item in items]


def test_the_sample_tenant_list_shows_the_sample_tenant_without_keys(
    functions: Functions, template: Template, dynamodb: Any
) -> None:
    seeded = seed_sample_state(template, dynamodb)
    answer = functions.http(sample_event("tenants/list_tenants.json"))
    assert [item["tenant_id"] for item in answer.body["items"]] == [seeded["tenant_id"]]
    assert "api_key" not in json.dumps(answer.body)
    assert answer.body["next_cursor"] is None


# ---------------------------------------------------------------- env.json for sam local invoke

ENDPOINT = "http://host.docker.internal:5000"


def env_file() -> dict[str, dict[str, str]]:
    loaded: dict[str, dict[str, str]] = json.loads((EVENTS_DIR / "env.json").read_text(encoding="utf-8"))
    return loaded


def test_env_json_has_a_section_per_function_of_the_template(template: Template) -> None:
    assert set(env_file()) == {*template.functions, "Parameters"}


def test_env_json_points_every_function_at_the_local_tables_and_emulation(template: Template) -> None:
    env = env_file()
    for logical_id, spec in template.functions.items():
        section = env[logical_id]
        assert section["AWS_ENDPOINT_URL"] == ENDPOINT
        for name, value in spec.environment.items():
            if name.endswith("_TABLE"):
                # The template's table names resolve locally to activity-tracker-local-{LogicalId}
                assert section.get(name) == value, (logical_id, name)
                assert value.startswith("activity-tracker-local-")
    assert env["Parameters"]["AWS_ENDPOINT_URL"] == ENDPOINT


def test_env_json_only_sets_variables_the_template_declares(template: Template) -> None:
    # sam local invoke applies --env-vars only to variables declared in the function's Environment
    # (samcli/local/lambdafn/env_vars.py, EnvironmentVariables.resolve): anything else is silently dropped.
    env = env_file()
    undeclared = {
        f"{logical_id}.{name}"
        for logical_id, spec in template.functions.items()
        for name in env[logical_id]
        if name not in spec.environment
    }
    assert undeclared == set(), "template.yaml must declare these for --env-vars to reach the functions"
