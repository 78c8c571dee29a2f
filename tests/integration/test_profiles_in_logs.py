"""A profile never appears in logs, metrics, traces, or any answer but the profile routes' own.

A profile with distinctive values is created, changed, read, looked up (in another letter case),
sent with a bad field, exported and erased, while the same user's events are ingested, queried,
counted and exported. Then every byte the functions wrote (structured logs, other loggers, stdout
and stderr with the EMF metrics), what Tracer hands to X-Ray, and every answer of a route that is not
a profile route are searched for each value, the lowercased email and its keyed hash.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from local_stack.template import Template
from tracker.profiles import email_key

from .support import Functions, api_event, sample_event, tenant_context
from .test_secrets_in_logs import Observed, TraceRecorder, log_stream, traces  # noqa: F401 - fixtures

TENANT = "ten_logsearch0000001"
USER = "user-7"
PROFILE = {
    "email": "Zelda.Quixote-7f3a@Marker.example",
    "username": "zq-username-9c1e",
    "first_name": "Ximenaqz",
    "last_name": "Wolkenstein-b7d2",
    "phone": "+380449876543",
    "traits": {"favourite": "trait-value-5e8b"},
}
PROFILE_ROUTES = {"/v1/users/{user_id}/profile", "/v1/profiles"}


def profile_values(template: Template, boto_session: Any) -> dict[str, str]:
    secret_name = template.functions["ProfilesFunction"].environment["PROFILE_LOOKUP_SECRET"]
    secret = boto_session.client("secretsmanager").get_secret_value(SecretId=secret_name)["SecretString"]
    values = {name: str(value) for name, value in PROFILE.items() if name != "traits"}
    values["the trait"] = PROFILE["traits"]["favourite"]
    values["the lowercased email"] = PROFILE["email"].lower()
    values["the phone's digits"] = PROFILE["phone"][1:]
    values["the email's keyed hash"] = email_key(secret.encode(), TENANT, PROFILE["email"])
    return values


@pytest.fixture
def observed(
    functions: Functions,
    template: Template,
    boto_session: Any,
    log_stream: io.StringIO,  # noqa: F811 - the imported fixture
    traces: TraceRecorder,  # noqa: F811 - the imported fixture
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Observed, Observed]:
    """Runs the scenario; what went to logs, metrics and non-profile answers, and what went to traces."""
    caplog.set_level(logging.INFO)
    outside = Observed()
    workers: list[tuple[str, dict[str, str]]] = []
    monkeypatch.setattr(
        functions.modules["ExportsFunction"],
        "start_export_worker",
        lambda record: workers.append(("ExportWorkerFunction", {"tenant_id": TENANT, "export_id": record.export_id})),
    )
    monkeypatch.setattr(
        functions.modules["ErasureFunction"],
        "start_erasure_worker",
        lambda record: workers.append(("EraseWorkerFunction", {"tenant_id": TENANT, "erasure_id": record.erasure_id})),
    )

    def http(method: str, resource: str, **kwargs: Any) -> Any:
        event = api_event(method, resource, authorizer=tenant_context(TENANT), **kwargs)
        answer = functions.http(event)
        if resource not in PROFILE_ROUTES:
            outside.add(f"the answer to {method} {resource} ({answer.status})", {"h": answer.headers, "b": answer.body})
        return answer

    def run_workers() -> None:
        while workers:
            logical_id, payload = workers.pop(0)
            outside.add(f"the result of {logical_id}", functions.invoke(logical_id, payload))

    user = {"user_id": USER}
    profile = "/v1/users/{user_id}/profile"
    # Given a profile, changed, read and looked up, and a bad field or two
    assert http("PUT", profile, path_parameters=user, body=PROFILE).status == 201
    assert http("PUT", profile, path_parameters=user, body=PROFILE).status == 200
    assert http("PATCH", profile, path_parameters=user, body={"username": PROFILE["username"]}).status == 200
    assert http("PATCH", profile, path_parameters=user, body={"phone": PROFILE["email"]}).status == 422
    assert http("PUT", profile, path_parameters=user, body={"email": PROFILE["phone"]}).status == 422
    assert http("GET", profile, path_parameters=user).status == 200
    assert len(http("GET", "/v1/profiles", query={"email": PROFILE["email"].upper()}).body["items"]) == 1
    # And the user's events, queried, counted and exported
    event = {"event_id": "evt-1", "user_id": USER, "action": "login"}
    assert http("POST", "/v1/events", body=event).status == 201
    assert http("POST", "/v1/events/batch", body={"events": [{**event, "event_id": "evt-2"}]}).status == 200
    assert http("GET", "/v1/users/{user_id}/events", path_parameters=user).status == 200
    functions.invoke("RollupFunction", sample_event("rollup/scheduled_event.json"))
    assert http("GET", "/v1/users/{user_id}/activity", path_parameters=user).status == 200
    assert http("GET", "/v1/stats/top-users").status == 200
    export = http("POST", "/v1/users/{user_id}/exports", path_parameters=user)
    run_workers()
    export_path = {"export_id": export.body["export_id"]}
    assert http("GET", "/v1/exports/{export_id}", path_parameters=export_path).body["status"] == "completed"
    # When the user is erased
    erasure = http("DELETE", "/v1/users/{user_id}", path_parameters=user)
    run_workers()
    erased = http("GET", "/v1/erasures/{erasure_id}", path_parameters={"erasure_id": erasure.body["erasure_id"]})
    assert erased.body["deleted_profiles"] == 1

    captured = capsys.readouterr()
    outside.add("stdout (EMF metrics)", captured.out)
    outside.add("stderr", captured.err)
    outside.add("the structured logs", log_stream.getvalue())
    outside.add("other loggers", caplog.text)
    assert '"_aws"' in captured.out, "no EMF metrics were captured"
    assert "Request handled" in log_stream.getvalue(), "no structured log line was captured"
    in_traces = Observed()
    for subsegment, kind, value in traces.records:
        in_traces.add(f"the trace of {subsegment} ({kind})", value)
    assert in_traces.texts, "no trace was recorded"
    return outside, in_traces


def leaks(observed: Observed, values: dict[str, str]) -> list[str]:
    found = []
    for where, text in observed.texts:
        for name, value in values.items():
            at = text.lower().find(value.lower())
            if at >= 0:
                found.append(f"{name} in {where}: ...{text[max(0, at - 150) : at + 80]}...")
    return found


@pytest.mark.parametrize("where", ["logs, metrics and other answers", "traces"])
def test_no_profile_value_is_there(
    observed: tuple[Observed, Observed], template: Template, boto_session: Any, where: str
) -> None:
    searched = observed[1] if where == "traces" else observed[0]
    problems = leaks(searched, profile_values(template, boto_session))
    assert not problems, "\n".join(problems)


def test_the_search_finds_a_value_where_there_is_one() -> None:
    # The search itself can fail: a value in any letter case is found
    probe = Observed()
    probe.add("a log line", json.dumps({"message": f"hello {PROFILE['email'].upper()}"}))
    assert leaks(probe, {"email": PROFILE["email"]})
