"""Profiles and exports through their handlers on moto: the contract's routes, field rules, the email
lookup, exports (whole, empty, twice at once, resumed by a next invocation), and erasure."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from local_stack.template import Template
from tracker.events import prepare_event
from tracker.profile_models import MAX_EMAIL_CHARS

from .support import Functions, HttpAnswer, api_event, assert_error_shape, event_store, tenant_context

TENANT = "ten_profiles00000001"
OTHER_TENANT = "ten_profiles00000002"
USER = "user/42 é"
PROFILE_PATH = "/v1/users/{user_id}/profile"
ADA = {
    "email": "Ada.Lovelace@Example.COM",
    "username": "ada",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "phone": "+380441234567",
    "traits": {"plan": "pro", "seats": 5, "tags": ["a", "b"]},
}


def call(
    functions: Functions,
    method: str,
    resource: str,
    tenant: str = TENANT,
    *,
    user: str = USER,
    body: Any = None,
    raw_body: str | None = None,
    query: dict[str, str] | None = None,
    path: dict[str, str] | None = None,
) -> HttpAnswer:
    parameters = path if path is not None else ({"user_id": user} if "{user_id}" in resource else None)
    event = api_event(
        method,
        resource,
        authorizer=tenant_context(tenant),
        path_parameters=parameters,
        body=body,
        raw_body=raw_body,
        query=query,
    )
    return functions.http(event)


def find(functions: Functions, email: str, tenant: str = TENANT) -> HttpAnswer:
    return call(functions, "GET", "/v1/profiles", tenant, query={"email": email})


@pytest.fixture
def exports_in_process(functions: Functions, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, str]]:
    """The exports function and the worker start the worker in-process; the starts are recorded."""
    started: list[dict[str, str]] = []

    def start(record: Any) -> None:
        started.append({"tenant_id": record.tenant_id, "export_id": record.export_id})

    monkeypatch.setattr(functions.modules["ExportsFunction"], "start_export_worker", start)
    monkeypatch.setattr(functions.modules["ExportWorkerFunction"], "start_export_worker", start)
    return started


def run_workers(functions: Functions, started: list[dict[str, str]]) -> list[Any]:
    """Runs every started worker invocation, and those they start, in order; their results."""
    results = []
    while started:
        results.append(functions.invoke("ExportWorkerFunction", started.pop(0)))
    return results


def download(template: Template, boto_session: Any, url: str) -> list[dict[str, Any]]:
    """The NDJSON lines behind a download URL (moto's in-process S3 stands in for the HTTP GET)."""
    bucket = template.functions["ExportsFunction"].environment["EXPORTS_BUCKET"]
    parts = urlsplit(url)
    key = unquote(parts.path).split(f"{bucket}/", 1)[1] if bucket in parts.path else unquote(parts.path)[1:]
    body = boto_session.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    assert body == "" or body.endswith("\n")
    return [json.loads(line) for line in body.splitlines()]


def add_events(template: Template, dynamodb: Any, user: str, count: int, metadata_bytes: int = 0) -> list[str]:
    """``count`` events of the user, stored out of order; their ids oldest first."""
    store = event_store(template, dynamodb)
    start = datetime(2025, 10, 1, tzinfo=UTC)
    ids = []
    for index in reversed(range(count)):
        event = {
            "event_id": f"evt-{index:06d}",
            "user_id": user,
            "action": "login",
            "occurred_at": (start + timedelta(seconds=index)).isoformat(),
            "metadata": {"pad": "x" * metadata_bytes} if metadata_bytes else None,
        }
        store.put_new(prepare_event(event, TENANT, start + timedelta(days=1)))
        ids.append(event["event_id"])
    return list(reversed(ids))


# ---------------------------------------------------------------- profiles


def test_put_creates_then_replaces_and_get_patch_delete_follow_the_contract(functions: Functions) -> None:
    # Given no profile, When one is PUT, Then it is created (201) with its times
    created = call(functions, "PUT", PROFILE_PATH, body=ADA)
    assert created.status == 201, created.body
    assert {key: created.body[key] for key in ADA} == ADA
    assert created.body["user_id"] == USER
    assert created.body["created_at"] == created.body["updated_at"]
    # When it is PUT again with fewer fields, Then it is replaced (200), created_at kept
    replaced = call(functions, "PUT", PROFILE_PATH, body={"username": "countess"})
    assert replaced.status == 200, replaced.body
    assert replaced.body["username"] == "countess"
    assert replaced.body["email"] is None
    assert replaced.body["traits"] is None
    assert replaced.body["created_at"] == created.body["created_at"]
    # When fields are PATCHed, Then they merge and null removes one
    patched = call(functions, "PATCH", PROFILE_PATH, body={"first_name": "Ada", "username": None})
    assert patched.status == 200, patched.body
    assert (patched.body["first_name"], patched.body["username"]) == ("Ada", None)
    assert call(functions, "GET", PROFILE_PATH).body == patched.body
    # When it is deleted, Then GET and PATCH are 404 and DELETE again is still 204
    assert call(functions, "DELETE", PROFILE_PATH).status == 204
    assert_error_shape(call(functions, "GET", PROFILE_PATH), 404, "not_found")
    assert_error_shape(call(functions, "PATCH", PROFILE_PATH, body={"username": "x"}), 404, "not_found")
    assert call(functions, "DELETE", PROFILE_PATH).status == 204


def test_patch_on_a_missing_profile_is_404_and_creates_nothing(functions: Functions) -> None:
    assert_error_shape(call(functions, "PATCH", PROFILE_PATH, body={"email": "a@b.example"}), 404, "not_found")
    assert_error_shape(call(functions, "GET", PROFILE_PATH), 404, "not_found")
    assert find(functions, "a@b.example").body == {"items": []}


def test_lookup_by_email_is_exact_and_case_insensitive_and_per_tenant(functions: Functions) -> None:
    # Given Ada in two tenants, and another user whose email only looks alike
    assert call(functions, "PUT", PROFILE_PATH, body=ADA).status == 201
    assert call(functions, "PUT", PROFILE_PATH, OTHER_TENANT, body=ADA).status == 201
    lookalike = {"email": "ada.lovelace@example.co"}
    assert call(functions, "PUT", PROFILE_PATH, user="other", body=lookalike).status == 201
    # When the email is looked up in another letter case, Then Ada alone is found, her email as given
    found = find(functions, "ada.LOVELACE@example.com")
    assert found.status == 200, found.body
    assert [(item["user_id"], item["email"]) for item in found.body["items"]] == [(USER, ADA["email"])]
    # And a prefix, or another tenant's view, finds only what is theirs
    assert find(functions, "ada.lovelace@example.c").body == {"items": []}
    assert [item["user_id"] for item in find(functions, ADA["email"], OTHER_TENANT).body["items"]] == [USER]
    # When Ada changes her email, Then the old one finds nothing
    assert call(functions, "PATCH", PROFILE_PATH, body={"email": "ada@new.example"}).status == 200
    assert find(functions, ADA["email"]).body == {"items": []}
    assert len(find(functions, "ADA@new.example").body["items"]) == 1
    # When the email is removed, Then nothing finds her
    assert call(functions, "PATCH", PROFILE_PATH, body={"email": None}).status == 200
    assert find(functions, "ada@new.example").body == {"items": []}


def test_two_users_with_one_email_are_both_found(functions: Functions) -> None:
    for user in ("b-user", "a-user"):
        assert call(functions, "PUT", PROFILE_PATH, user=user, body={"email": "shared@example.com"}).status == 201
    assert [item["user_id"] for item in find(functions, "SHARED@example.com").body["items"]] == ["a-user", "b-user"]


def test_the_email_is_in_no_key_and_no_index(functions: Functions, template: Template, dynamodb: Any) -> None:
    # Given a profile with an email
    assert call(functions, "PUT", PROFILE_PATH, body=ADA).status == 201
    table = template.tables["ProfilesTable"].name
    description = dynamodb.describe_table(TableName=table)["Table"]
    # Then the only index projects keys only, and no key attribute holds the email in any case
    assert [index["Projection"] for index in description["GlobalSecondaryIndexes"]] == [{"ProjectionType": "KEYS_ONLY"}]
    key_names = {attribute["AttributeName"] for attribute in description["AttributeDefinitions"]}
    (item,) = dynamodb.scan(TableName=table)["Items"]
    keys = " ".join(item[name]["S"] for name in key_names if name in item)
    for form in (ADA["email"], ADA["email"].lower(), ADA["email"].split("@")[0].lower()):
        assert form.lower() not in keys.lower()
    assert item["email_key"]["S"].startswith(f"{TENANT}#")
    assert len(item["email_key"]["S"].split("#", 1)[1]) == 64  # HMAC-SHA256, hex


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "a" * (MAX_EMAIL_CHARS - len("@example.com") + 1) + "@example.com"),  # 255 characters
        ("email", "ada\n@example.com"),
        ("email", "ada@example.com\n"),
        ("email", "adé@example.com"),
        ("email", "no-at-sign.example.com"),
        ("email", "two@@example.com"),
        ("email", 42),
        ("phone", "12345"),
        ("phone", "+3804412345678901"),
        ("phone", "380441234567"),
        ("phone", "+0441234567"),
        ("phone", 380441234567),
        ("first_name", "x" * 129),
        ("username", "ada\tlovelace"),
        ("last_name", ""),
        ("traits", ["a", "list"]),
        ("traits", "text"),
        ("traits", {"a": "x" * (9 * 1024)}),
        ("traits", json.loads('{"a":' * 40 + "1" + "}" * 40)),  # over traits' 32 levels (a body over 64 is a 400)
        ("nickname", "not a field"),
    ],
)
def test_a_bad_field_is_a_422_naming_it(functions: Functions, field: str, value: Any) -> None:
    for method in ("PUT", "PATCH"):
        if method == "PATCH":
            assert call(functions, "PUT", PROFILE_PATH, body={"username": "ada"}).status in {200, 201}
        answer = call(functions, method, PROFILE_PATH, body={field: value})
        assert_error_shape(answer, 422, "validation_error")
        assert field in {detail["field"].split(".")[0] for detail in answer.body["error"]["details"]}, answer.body
    assert call(functions, "GET", PROFILE_PATH).body["username"] == "ada"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "a" * (MAX_EMAIL_CHARS - len("@example.com")) + "@example.com"),  # 254 characters
        ("email", '"ada lovelace"@[192.0.2.1]'),
        ("email", "o'brien+tag@sub.example.co.uk"),
        ("phone", "+12345678"),
        ("phone", "+123456789012345"),
        ("first_name", "Ада " + "x" * 124),
        ("traits", {}),
        ("traits", {"a": "x" * (8 * 1024 - 8)}),
        ("traits", json.loads('{"a":' * 32 + "1" + "}" * 32)),
    ],
)
def test_a_field_at_its_limit_is_accepted(functions: Functions, field: str, value: Any) -> None:
    answer = call(functions, "PUT", PROFILE_PATH, body={field: value})
    assert answer.status == 201, answer.body
    assert answer.body[field] == value


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        ("[]", 422, "validation_error"),
        ("{not json", 400, "bad_request"),
        ('{"traits": ' + json.dumps({"a": "x" * (17 * 1024)}) + "}", 413, "payload_too_large"),
    ],
)
def test_a_bad_body_is_a_4xx(functions: Functions, raw: str, status: int, code: str) -> None:
    assert_error_shape(call(functions, "PUT", PROFILE_PATH, raw_body=raw), status, code)


def test_a_lookup_needs_exactly_one_valid_email(functions: Functions) -> None:
    assert_error_shape(call(functions, "GET", "/v1/profiles"), 422, "validation_error")
    assert_error_shape(find(functions, "not-an-email"), 422, "validation_error")
    event = api_event("GET", "/v1/profiles", authorizer=tenant_context(TENANT), query={"email": "b@example.com"})
    event["multiValueQueryStringParameters"] = {"email": ["a@example.com", "b@example.com"]}
    assert_error_shape(functions.http(event), 400, "bad_request")


# ---------------------------------------------------------------- exports


def test_an_export_has_the_profile_then_every_event_oldest_first(
    functions: Functions,
    template: Template,
    dynamodb: Any,
    boto_session: Any,
    exports_in_process: list[dict[str, str]],
) -> None:
    # Given a profile and 25 events of the user, and an event of another user
    assert call(functions, "PUT", PROFILE_PATH, body=ADA).status == 201
    ids = add_events(template, dynamodb, USER, 25)
    add_events(template, dynamodb, "someone-else", 1)
    # When an export is requested, Then it is pending until the worker runs
    accepted = call(functions, "POST", "/v1/users/{user_id}/exports")
    assert accepted.status == 202, accepted.body
    assert set(accepted.body) == {"export_id", "status"}
    assert accepted.body["status"] == "pending"
    export_path = {"export_id": accepted.body["export_id"]}
    pending = call(functions, "GET", "/v1/exports/{export_id}", path=export_path)
    assert (pending.body["status"], pending.body["download_url"], pending.body["expires_at"]) == ("pending", None, None)
    assert [result["outcome"] for result in run_workers(functions, exports_in_process)] == ["completed"]
    # Then it is completed with a URL valid 15 minutes
    done = call(functions, "GET", "/v1/exports/{export_id}", path=export_path)
    assert done.status == 200, done.body
    assert (done.body["status"], done.body["events"], done.body["user_id"]) == ("completed", 25, USER)
    expires = datetime.fromisoformat(done.body["expires_at"])
    assert timedelta(minutes=14) < expires - datetime.now(UTC) <= timedelta(minutes=15)
    assert "X-Amz-Expires=900" in done.body["download_url"]
    # And the file holds the profile line first, then the user's events oldest first, in the event-out shape
    lines = download(template, boto_session, done.body["download_url"])
    assert lines[0]["type"] == "profile"
    assert {key: lines[0][key] for key in ADA} == ADA
    assert [line["event_id"] for line in lines[1:]] == ids
    assert set(lines[1]) == {"type", "event_id", "user_id", "action", "occurred_at", "received_at", "metadata"}
    assert {line["type"] for line in lines[1:]} == {"event"}


def test_an_export_of_a_user_with_nothing_is_completed_and_empty(
    functions: Functions, template: Template, boto_session: Any, exports_in_process: list[dict[str, str]]
) -> None:
    accepted = call(functions, "POST", "/v1/users/{user_id}/exports", user="nobody")
    run_workers(functions, exports_in_process)
    done = call(functions, "GET", "/v1/exports/{export_id}", path={"export_id": accepted.body["export_id"]})
    assert (done.body["status"], done.body["events"]) == ("completed", 0)
    assert download(template, boto_session, done.body["download_url"]) == []


def test_two_exports_at_once_both_complete_with_the_same_content(
    functions: Functions,
    template: Template,
    dynamodb: Any,
    boto_session: Any,
    exports_in_process: list[dict[str, str]],
) -> None:
    assert call(functions, "PUT", PROFILE_PATH, body=ADA).status == 201
    add_events(template, dynamodb, USER, 5)
    first, second = (call(functions, "POST", "/v1/users/{user_id}/exports") for _ in range(2))
    assert first.body["export_id"] != second.body["export_id"]
    # And a worker invocation delivered twice changes nothing
    exports_in_process.append(dict(exports_in_process[0]))
    outcomes = [result["outcome"] for result in run_workers(functions, exports_in_process)]
    assert outcomes == ["completed", "completed", "finished already"]
    files = []
    for accepted in (first, second):
        done = call(functions, "GET", "/v1/exports/{export_id}", path={"export_id": accepted.body["export_id"]})
        assert (done.body["status"], done.body["events"]) == ("completed", 5)
        files.append(download(template, boto_session, done.body["download_url"]))
    assert files[0] == files[1]


def test_a_long_export_stops_near_its_deadline_and_the_next_invocation_resumes_it(
    functions: Functions,
    template: Template,
    dynamodb: Any,
    boto_session: Any,
    exports_in_process: list[dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given parts of 5 MiB, a worker that stops after every part, and ~11 MiB of events
    spec = template.functions["ExportWorkerFunction"]
    monkeypatch.setitem(spec.environment, "EXPORT_PART_BYTES", str(5 * 1024 * 1024))
    monkeypatch.setitem(spec.environment, "EXPORT_DEADLINE_MARGIN_MS", str(10_000_000))
    ids = add_events(template, dynamodb, USER, 700, metadata_bytes=16_000)
    # When the export runs
    accepted = call(functions, "POST", "/v1/users/{user_id}/exports")
    outcomes = [result["outcome"] for result in run_workers(functions, exports_in_process)]
    # Then it took three invocations, each resuming after the last part, and the file is whole
    assert outcomes == ["resume", "resume", "completed"]
    done = call(functions, "GET", "/v1/exports/{export_id}", path={"export_id": accepted.body["export_id"]})
    assert (done.body["status"], done.body["events"]) == ("completed", 700)
    assert [line["event_id"] for line in download(template, boto_session, done.body["download_url"])] == ids


def test_another_tenants_export_id_is_404(functions: Functions, exports_in_process: list[dict[str, str]]) -> None:
    accepted = call(functions, "POST", "/v1/users/{user_id}/exports")
    path = {"export_id": accepted.body["export_id"]}
    assert_error_shape(call(functions, "GET", "/v1/exports/{export_id}", OTHER_TENANT, path=path), 404, "not_found")
    assert_error_shape(
        call(functions, "GET", "/v1/exports/{export_id}", path={"export_id": "exp_unknown"}), 404, "not_found"
    )


# ---------------------------------------------------------------- erasure


def test_erasure_removes_the_profile_and_the_users_export_files(
    functions: Functions,
    template: Template,
    dynamodb: Any,
    boto_session: Any,
    exports_in_process: list[dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a profile, events and a completed export of the user
    assert call(functions, "PUT", PROFILE_PATH, body=ADA).status == 201
    add_events(template, dynamodb, USER, 3)
    export = call(functions, "POST", "/v1/users/{user_id}/exports")
    run_workers(functions, exports_in_process)
    export_path = {"export_id": export.body["export_id"]}
    url = call(functions, "GET", "/v1/exports/{export_id}", path=export_path).body["download_url"]
    assert download(template, boto_session, url)
    monkeypatch.setattr(
        functions.modules["ErasureFunction"],
        "start_erasure_worker",
        lambda record: functions.invoke(
            "EraseWorkerFunction", {"tenant_id": record.tenant_id, "erasure_id": record.erasure_id}
        ),
    )
    # When the user is erased
    erasure = call(functions, "DELETE", "/v1/users/{user_id}")
    assert erasure.status == 202, erasure.body
    status = call(functions, "GET", "/v1/erasures/{erasure_id}", path={"erasure_id": erasure.body["erasure_id"]})
    # Then the erasure counts the profile, and the profile, its lookup and the export file are gone
    assert (status.body["status"], status.body["deleted_events"], status.body["deleted_profiles"]) == (
        "completed",
        3,
        1,
    )
    assert_error_shape(call(functions, "GET", PROFILE_PATH), 404, "not_found")
    assert find(functions, ADA["email"]).body == {"items": []}
    gone = call(functions, "GET", "/v1/exports/{export_id}", path=export_path)
    assert (gone.body["status"], gone.body["download_url"], gone.body["error"]["code"]) == ("failed", None, "erased")
    bucket = template.functions["ExportsFunction"].environment["EXPORTS_BUCKET"]
    assert boto_session.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@pytest.mark.parametrize("user", ["x" * 129, "a\nb", "x" * 3000])
def test_a_bad_user_id_in_the_path_is_a_422(functions: Functions, user: str) -> None:
    for method, resource, body in (
        ("PUT", PROFILE_PATH, ADA),
        ("PATCH", PROFILE_PATH, ADA),
        ("GET", PROFILE_PATH, None),
        ("DELETE", PROFILE_PATH, None),
        ("POST", "/v1/users/{user_id}/exports", None),
    ):
        assert_error_shape(call(functions, method, resource, user=user, body=body), 422, "validation_error")


@pytest.mark.parametrize("export_id", ["x" * 3000, "exp_" + "0" * 20, "../exp", "exp_ABCDEF0123456789abcd"])
def test_an_unknown_or_malformed_export_id_is_a_404(functions: Functions, export_id: str) -> None:
    path = {"export_id": export_id}
    assert_error_shape(call(functions, "GET", "/v1/exports/{export_id}", path=path), 404, "not_found")
