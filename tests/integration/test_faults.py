"""Fault injection through the real handlers on moto: throttling, 5xx and connection errors that go
through botocore's real retries (``before-send`` hooks on the functions' own client), items DynamoDB
hands back unprocessed, a Lambda running out of time in the middle of a batch, a function killed
right after its write, rollups that crash or are throttled half way. Whatever happens, the answers
tell the truth, nothing is lost and nothing is stored or counted twice.

botocore's retry sleeps are recorded instead of slept (its retry decisions and delays are its own),
and so are ``tracker.adapters.dynamodb.batch_write``'s: no test waits out a real backoff.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import botocore.endpoint
import pytest

from local_stack.emulator import moto_skips_answered_requests
from local_stack.lambdas import LambdaContext
from local_stack.template import Template
from tests.rollup_fakes import LEASE, Crash, FaultyStore
from tests.support import function_environment
from tracker.adapters import dynamodb as tracker_dynamodb
from tracker.adapters.aggregates_table import DynamoRollupAggregates, rollup_aggregates
from tracker.adapters.dynamodb import (
    BACKOFF_ATTEMPTS,
    BACKOFF_BASE_SECONDS,
    BACKOFF_CAP_SECONDS,
    batch_write,
    dynamodb_client,
)
from tracker.interfaces import RollupStore, TemporarilyUnavailable
from tracker.rollup import RollupReport, run_rollup
from tracker.settings import Settings, get_settings
from tracker.timefmt import format_utc, parse_utc, utc_now

from . import support
from .faults import (
    LAMBDA_TIMEOUT,
    LEDGER,
    ROLLUP_CRASH,
    STORE_FAULTS,
    THROTTLING,
    Injector,
    Killed,
)
from .support import Functions, api_event, assert_error_shape, create_pending_erasure, tenant_context

TENANT = "ten_faults0000000001"
ACTIONS = ("login", "view", "edit")
API_GATEWAY_TIMEOUT_SECONDS = 29
# botocore's standard retry mode sleeps rand(0, 1) * min(base * 2**i, 20 s) before retry i (0-based):
# base 1 s after a throttling error, 25 ms after any other error for DynamoDB (botocore.retries.standard).
THROTTLING_BACKOFF_BASE_SECONDS = 1.0
OTHER_BACKOFF_BASE_SECONDS = 0.025
MAX_BACKOFF_SECONDS = 20.0


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def _summary() -> Iterator[None]:
    yield
    print(f"\n{LEDGER.summary()}")


@pytest.fixture
def client(functions: Functions) -> Iterator[Any]:
    """The functions' own cached DynamoDB client, made afresh for this test: hooks and botocore's
    retry quota do not leak from one test to the next."""
    dynamodb_client.cache_clear()
    yield dynamodb_client()
    dynamodb_client.cache_clear()


@pytest.fixture
def retry_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays botocore's retry handler asked for, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=slept.append))
    return slept


@pytest.fixture(autouse=True)
def _ledger(request: pytest.FixtureRequest) -> Iterator[list[Injector]]:
    """Counts the faults a test injected as survived only when the test passed."""
    injectors: list[Injector] = []
    failed_before = request.session.testsfailed
    yield injectors
    LEDGER.close_test(injectors, passed=request.session.testsfailed == failed_before)


@pytest.fixture
def faults(client: Any, retry_sleeps: list[float], _ledger: list[Injector]) -> Iterator[Injector]:
    injector = Injector(client)
    _ledger.append(injector)
    with moto_skips_answered_requests():
        yield injector
    injector.clear()


@dataclass
class Backoff:
    """What ``tracker.adapters.dynamodb.batch_write`` drew (the bound of each jittered delay) and slept."""

    bounds: list[float] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)


@pytest.fixture
def backoff(monkeypatch: pytest.MonkeyPatch, faults: Injector) -> Backoff:
    recorded = Backoff()
    jitter = random.Random(20251010)  # noqa: S311 - the jitter of a test, not a secret

    def uniform(low: float, high: float) -> float:
        recorded.bounds.append(high)
        return jitter.uniform(low, high)

    def sleep(seconds: float) -> None:
        recorded.delays.append(seconds)
        faults.timeline.append("sleep")

    monkeypatch.setattr(tracker_dynamodb, "random", SimpleNamespace(uniform=uniform))
    monkeypatch.setattr(tracker_dynamodb, "time", SimpleNamespace(sleep=sleep))
    return recorded


# ---------------------------------------------------------------- helpers


OCCURRED_AT = format_utc(utc_now() - timedelta(minutes=5))


def new_event(number: int, user: str = "user-1", action: str = "login") -> dict[str, Any]:
    return {"event_id": f"evt-{number:04d}", "user_id": user, "action": action, "occurred_at": OCCURRED_AT}


def post_event(body: dict[str, Any]) -> dict[str, Any]:
    return api_event("POST", "/v1/events", authorizer=tenant_context(TENANT), body=body)


def post_batch(events: list[dict[str, Any]]) -> dict[str, Any]:
    return api_event("POST", "/v1/events/batch", authorizer=tenant_context(TENANT), body={"events": events})


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [event["event_id"] for event in events]


def events_table(template: Template) -> str:
    return template.functions["IngestFunction"].environment["EVENTS_TABLE"]


def stored_event_ids(dynamodb: Any, template: Template) -> list[str]:
    """The id of every event item of the tenant in the Events table (a test-only Scan), repeats included."""
    found = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=events_table(template)):
        found += [item["event_id"]["S"] for item in page["Items"] if item.get("tenant_id", {}).get("S") == TENANT]
    return found


def assert_stored_once(dynamodb: Any, template: Template, sent: list[str]) -> None:
    """Every event sent is stored, once, and nothing else is."""
    stored = stored_event_ids(dynamodb, template)
    missing, repeated = LEDGER.stored_once(sent, stored)
    assert not missing, f"lost: {sorted(missing)}"
    assert not repeated, f"stored more than once: {repeated}"
    assert sorted(stored) == sorted(set(sent))


def results_by_status(answer: support.HttpAnswer) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {"accepted": [], "duplicate": [], "rejected": []}
    for result in answer.body["results"]:
        grouped[result["status"]].append(result)
    return grouped


def ingest_settings(template: Template) -> Settings:
    """The settings the ingest function reads from the environment the template gives it."""
    with function_environment(template.functions["IngestFunction"]):
        return get_settings()


def rollup_store(template: Template) -> DynamoRollupAggregates:
    """The rollup function's store: the template's tables, the functions' client."""
    with function_environment(template.functions["RollupFunction"]):
        return rollup_aggregates()


def roll_up(store: RollupStore, lease_expired: bool = False) -> RollupReport:
    """One scheduled run over everything received so far (settle 0), tenants in UTC; with
    ``lease_expired``, as if it ran once the lease of a dead run had run out."""
    now = utc_now() + timedelta(milliseconds=1)
    return run_rollup(
        store,
        lambda _tenant: ZoneInfo("UTC"),
        now=now,
        settle=timedelta(0),
        initial_lookback=timedelta(hours=1),
        lease_for=LEASE,
        wall_clock=lambda: now + (LEASE if lease_expired else timedelta(0)),
    )


def assert_counted_once(functions: Functions, sent: list[dict[str, Any]]) -> None:
    """The statistics (through the stats handler) count each distinct event sent exactly once."""
    distinct = {event["event_id"]: event for event in sent}
    daily = functions.http(api_event("GET", "/v1/stats/daily", authorizer=tenant_context(TENANT), query={"days": "2"}))
    assert daily.status == 200, daily.body
    total = sum(item["count"] for item in daily.body["items"])
    users = sum(item["users"] for item in daily.body["items"])
    frequency = functions.http(api_event("GET", "/v1/stats/frequency", authorizer=tenant_context(TENANT)))
    assert frequency.status == 200, frequency.body
    by_action = {item["action"]: item["total"] for item in frequency.body["items"]}
    expected_by_action = Counter(event["action"] for event in distinct.values())
    LEDGER.counted_once(len(distinct), total)
    for action in expected_by_action.keys() | by_action.keys():
        LEDGER.counted_once(expected_by_action[action], by_action.get(action, 0))
    assert total == len(distinct)
    assert users == len({event["user_id"] for event in distinct.values()})
    assert by_action == dict(expected_by_action)


def worst_case_call_seconds(config: Any) -> float:
    """The longest one DynamoDB call can take with this client: every attempt waits out its connect
    and read timeouts, and every retry sleeps the longest throttling backoff."""
    attempts = config.retries["total_max_attempts"]
    backoff = sum(min(THROTTLING_BACKOFF_BASE_SECONDS * 2**i, MAX_BACKOFF_SECONDS) for i in range(attempts - 1))
    return float(attempts * (config.connect_timeout + config.read_timeout) + backoff)


# ---------------------------------------------------------------- 1. retries and timeouts on purpose


def test_the_functions_client_has_the_retry_mode_attempts_and_timeouts_of_the_settings(
    template: Template, client: Any
) -> None:
    # Given the settings the ingest function reads from its environment in template.yaml
    settings = ingest_settings(template)
    # When the functions make their DynamoDB client
    config = client.meta.config
    # Then it retries in standard mode (backoff with jitter on throttling, 5xx and connection errors)
    assert config.retries["mode"] == "standard"
    # And it gives up connecting and reading after the settings' timeouts
    assert config.connect_timeout == settings.aws_connect_timeout_seconds
    assert config.read_timeout == settings.aws_read_timeout_seconds
    # And it makes as many attempts per call as the settings say (botocore's Config counts
    # ``max_attempts`` as retries after the first attempt, ``total_max_attempts`` as attempts)
    assert config.retries.get("total_max_attempts") == settings.aws_max_attempts, (
        f"settings.aws_max_attempts={settings.aws_max_attempts} but the client makes "
        f"{config.retries.get('total_max_attempts')} attempts per call"
    )


def test_a_call_that_fails_every_attempt_ends_before_the_ingest_timeout_and_api_gateway(
    template: Template, functions: Functions, client: Any, faults: Injector, retry_sleeps: list[float]
) -> None:
    # Given a store that throttles every attempt
    faults.fail("PutItem", THROTTLING)
    attempts = client.meta.config.retries["total_max_attempts"]
    # When one event is posted
    answer = functions.http(post_event(new_event(1)))
    # Then botocore made every attempt, sleeping within its backoff bounds between them
    assert_error_shape(answer, 503, "unavailable")
    assert faults.calls["PutItem"] == attempts
    assert len(retry_sleeps) == attempts - 1
    for i, slept in enumerate(retry_sleeps):
        assert 0 <= slept <= min(THROTTLING_BACKOFF_BASE_SECONDS * 2**i, MAX_BACKOFF_SECONDS)
    # And the worst case of one call (every attempt timing out, every backoff at its longest) ends
    # inside the ingest function's timeout and API Gateway's 29 s, so the client gets a clean 503
    worst = worst_case_call_seconds(client.meta.config)
    timeout = template.functions["IngestFunction"].timeout
    assert worst < API_GATEWAY_TIMEOUT_SECONDS
    assert worst < timeout, f"one call may take {worst} s, the ingest function times out after {timeout} s"


def test_a_batch_write_started_just_above_the_deadline_margin_ends_before_the_function_times_out(
    template: Template, client: Any
) -> None:
    # Given a batch that starts one more write with just over the deadline margin left
    settings = ingest_settings(template)
    # When that write meets the worst case (every attempt timing out, every backoff at its longest)
    worst_ms = worst_case_call_seconds(client.meta.config) * 1000
    # Then it still ends before the function's timeout, so the batch answers (rather than Lambda
    # killing it and API Gateway answering 502 with no per-event results)
    assert worst_ms <= settings.ingest_deadline_margin_ms, (
        f"a write started with {settings.ingest_deadline_margin_ms} ms left may take {worst_ms:.0f} ms"
    )


# ---------------------------------------------------------------- 2. throttling, then success


@pytest.mark.parametrize("kind", STORE_FAULTS)
def test_a_write_that_fails_twice_then_succeeds_answers_201_and_is_stored_once(
    template: Template, functions: Functions, dynamodb: Any, faults: Injector, retry_sleeps: list[float], kind: str
) -> None:
    # Given a store that fails the first two attempts of a write, then recovers
    faults.fail("PutItem", kind, first=2)
    event = new_event(1)
    # When one event is posted
    answer = functions.http(post_event(event))
    # Then the answer is a plain 201: botocore's retries absorbed the faults
    assert answer.status == 201, answer.body
    assert answer.body["status"] == "accepted"
    # And it took three attempts, with a backoff sleep before each retry
    assert faults.calls["PutItem"] == 3
    base = THROTTLING_BACKOFF_BASE_SECONDS if kind == THROTTLING else OTHER_BACKOFF_BASE_SECONDS
    assert len(retry_sleeps) == 2
    assert all(0 <= slept <= base * 2**i for i, slept in enumerate(retry_sleeps))
    # And the event is stored once
    assert_stored_once(dynamodb, template, [event["event_id"]])


# ---------------------------------------------------------------- 3. faults that outlast the retries


@pytest.mark.parametrize("kind", STORE_FAULTS)
def test_a_single_event_the_store_keeps_refusing_is_a_503_with_retry_after_and_is_not_stored(
    template: Template, functions: Functions, dynamodb: Any, client: Any, faults: Injector, kind: str
) -> None:
    # Given a store that fails every attempt of every write
    faults.fail("PutItem", kind)
    event = new_event(1)
    # When one event is posted
    answer = functions.http(post_event(event))
    # Then the answer is the contract's 503 `unavailable`, with Retry-After
    assert_error_shape(answer, 503, "unavailable")
    assert int(answer.headers["retry-after"]) >= 1
    # And botocore's retries ran to their end before it gave up
    assert faults.calls["PutItem"] == client.meta.config.retries["total_max_attempts"]
    # And nothing was stored
    assert stored_event_ids(dynamodb, template) == []
    # When the store recovers and the client sends the event again, as Retry-After tells it
    faults.clear()
    again = functions.http(post_event({**event, "sent_at": format_utc(utc_now())}))
    # Then it is accepted and stored once
    assert again.status == 201, again.body
    assert_stored_once(dynamodb, template, [event["event_id"]])


@pytest.mark.parametrize("kind", STORE_FAULTS)
def test_a_batch_rejects_only_the_events_the_store_refused_and_their_resend_stores_each_once(
    template: Template, functions: Functions, dynamodb: Any, faults: Injector, kind: str
) -> None:
    # Given a store that keeps failing the writes of two events of a batch of six
    events = [new_event(i, user=f"user-{i % 3}", action=ACTIONS[i % 3]) for i in range(6)]
    refused = {events[1]["event_id"], events[4]["event_id"]}
    faults.fail("PutItem", kind, when=lambda body: body["Item"]["event_id"]["S"] in refused)
    # When the batch is posted
    answer = functions.http(post_batch(events))
    # Then the batch answers 200 with those two rejected as `unavailable` and the others accepted
    assert answer.status == 200, answer.body
    outcome = results_by_status(answer)
    assert {r["event_id"] for r in outcome["rejected"]} == refused
    assert all(r["error"]["code"] == "unavailable" for r in outcome["rejected"])
    assert {r["event_id"] for r in outcome["accepted"]} == set(ids(events)) - refused
    assert (answer.body["accepted"], answer.body["duplicates"], answer.body["rejected"]) == (4, 0, 2)
    # And what the answer says was stored is stored, and what it says failed is not
    assert sorted(stored_event_ids(dynamodb, template)) == sorted(r["event_id"] for r in outcome["accepted"])
    # When the store recovers and the client resends exactly the rejected events
    faults.clear()
    resend = [events[r["index"]] for r in outcome["rejected"]]
    again = functions.http(post_batch(resend))
    # Then they are accepted, and every event of the batch is stored exactly once
    assert (again.body["accepted"], again.body["duplicates"], again.body["rejected"]) == (2, 0, 0)
    assert_stored_once(dynamodb, template, ids(events))


# ---------------------------------------------------------------- 4. UnprocessedItems


def expected_bounds(rounds: int) -> list[float]:
    return [min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**i) for i in range(rounds)]


def test_batch_write_resends_unprocessed_items_after_growing_jittered_capped_delays(
    template: Template, client: Any, dynamodb: Any, faults: Injector, backoff: Backoff
) -> None:
    # Given 30 writes (two BatchWriteItem groups) and a DynamoDB that, for its first 7 answers,
    # processes 3 items and hands the rest back as UnprocessedItems
    table = events_table(template)
    keys = [f"bw-{i:02d}" for i in range(30)]
    requests = [{"PutRequest": {"Item": {"pk": {"S": key}}}} for key in keys]
    faults.unprocessed(dynamodb, rounds=7, keep=3)
    # When batch_write runs
    batch_write(client, table, requests)
    # Then every resend came after a sleep (no tight loop), and the second group started afresh
    assert faults.timeline == ["call BatchWriteItem", "sleep"] * 7 + ["call BatchWriteItem"] * 2
    # And the delays were drawn under bounds that double up to the cap
    assert backoff.bounds == expected_bounds(7)
    assert backoff.bounds[-1] == BACKOFF_CAP_SECONDS
    assert all(later >= earlier for earlier, later in zip(backoff.bounds, backoff.bounds[1:], strict=False))
    # And they are jittered: each somewhere under its bound, not all the same
    assert all(0 <= delay <= bound for delay, bound in zip(backoff.delays, backoff.bounds, strict=True))
    assert len(set(backoff.delays)) == len(backoff.delays)
    # And every item is written
    written = [item["pk"]["S"] for item in dynamodb.scan(TableName=table)["Items"]]
    assert sorted(written) == keys


def test_batch_write_gives_up_with_store_unavailable_when_items_stay_unprocessed(
    template: Template, client: Any, dynamodb: Any, faults: Injector, backoff: Backoff
) -> None:
    # Given a DynamoDB that never processes anything
    faults.unprocessed(dynamodb, rounds=None, keep=0)
    requests = [{"PutRequest": {"Item": {"pk": {"S": f"bw-{i}"}}}} for i in range(5)]
    # When batch_write runs, then it raises TemporarilyUnavailable after its last backoff, not forever
    with pytest.raises(TemporarilyUnavailable):
        batch_write(client, events_table(template), requests)
    assert faults.calls["BatchWriteItem"] == BACKOFF_ATTEMPTS + 1
    assert backoff.bounds == expected_bounds(BACKOFF_ATTEMPTS)
    assert len(backoff.delays) == BACKOFF_ATTEMPTS


def _user_to_erase(functions: Functions, dynamodb: Any, template: Template) -> tuple[str, list[str], list[str]]:
    """30 events of the user to erase and 2 of another user, through the ingest handler; an erasure
    record as DELETE /v1/users/{user_id} writes it."""
    gone = [new_event(i, user="gone") for i in range(30)]
    kept = [new_event(100 + i, user="kept") for i in range(2)]
    answer = functions.http(post_batch(gone + kept))
    assert answer.body["accepted"] == 32, answer.body
    erasure_id = "era_faults00000000001"
    now = utc_now()
    create_pending_erasure(template, dynamodb, TENANT, erasure_id, "gone", now)
    return erasure_id, ids(gone), ids(kept)


def test_the_erasure_worker_deletes_every_event_when_dynamodb_leaves_items_unprocessed(
    template: Template, functions: Functions, dynamodb: Any, faults: Injector, backoff: Backoff
) -> None:
    # Given a user with 30 events to erase, and a DynamoDB that leaves items unprocessed four times
    erasure_id, _gone, kept = _user_to_erase(functions, dynamodb, template)
    faults.unprocessed(dynamodb, rounds=4, keep=5)
    # When the erasure worker runs
    done = functions.invoke("EraseWorkerFunction", {"tenant_id": TENANT, "erasure_id": erasure_id})
    # Then it completes, having deleted every event of the user and none of the other
    assert (done["status"], done["deleted_events"]) == ("completed", 30)
    assert_stored_once(dynamodb, template, kept)
    # And it backed off between resends, with growing jittered delays
    assert backoff.bounds == expected_bounds(4)
    assert len(backoff.delays) == 4
    assert faults.timeline[:8] == ["call BatchWriteItem", "sleep"] * 4


def test_an_erasure_that_gives_up_on_unprocessed_items_fails_and_completes_when_run_again(
    template: Template, functions: Functions, dynamodb: Any, faults: Injector, backoff: Backoff
) -> None:
    # Given a user with 30 events to erase, and a DynamoDB that processes nothing
    erasure_id, gone, kept = _user_to_erase(functions, dynamodb, template)
    faults.unprocessed(dynamodb, rounds=None, keep=0)
    worker_event = {"tenant_id": TENANT, "erasure_id": erasure_id}
    # When the worker runs, it gives up after its backoffs and the erasure is marked failed
    with pytest.raises(TemporarilyUnavailable):
        functions.invoke("EraseWorkerFunction", worker_event)
    assert len(backoff.delays) == BACKOFF_ATTEMPTS
    status = functions.http(
        api_event(
            "GET",
            "/v1/erasures/{erasure_id}",
            authorizer=tenant_context(TENANT),
            path_parameters={"erasure_id": erasure_id},
        )
    )
    assert (status.body["status"], status.body["deleted_events"]) == ("failed", 0)
    assert sorted(stored_event_ids(dynamodb, template)) == sorted(gone + kept)
    # When DynamoDB recovers and Lambda retries the asynchronous invocation
    faults.clear()
    done = functions.invoke("EraseWorkerFunction", worker_event)
    # Then the erasure completes with every event of the user deleted, once
    assert (done["status"], done["deleted_events"]) == ("completed", 30)
    assert_stored_once(dynamodb, template, kept)


# ---------------------------------------------------------------- 5. a Lambda timeout in the middle of a batch


class Deadline:
    """The function's remaining time: plenty until ``writes`` writes have succeeded, then under the margin."""

    def __init__(self, margin_ms: int, writes: int) -> None:
        self.margin_ms = margin_ms
        self.writes = writes
        self.done = 0
        self.active = True

    def wrote(self, _number: int) -> None:
        self.done += 1

    def remaining_ms(self) -> int:
        if self.active and self.done >= self.writes:
            return self.margin_ms - 1
        return self.margin_ms + 1000


@pytest.mark.parametrize("concurrency", [1, None], ids=["one-writer", "template-concurrency"])
def test_a_batch_out_of_time_rejects_what_it_did_not_write_and_the_resend_is_counted_once(
    template: Template,
    functions: Functions,
    dynamodb: Any,
    faults: Injector,
    monkeypatch: pytest.MonkeyPatch,
    concurrency: int | None,
) -> None:
    # Given a function whose remaining time drops under the deadline margin after 5 writes
    if concurrency is not None:
        monkeypatch.setenv("INGEST_CONCURRENCY", str(concurrency))
    settings = ingest_settings(template)
    deadline = Deadline(settings.ingest_deadline_margin_ms, writes=5)
    faults.after_success("PutItem", deadline.wrote)
    monkeypatch.setattr(LambdaContext, "get_remaining_time_in_millis", lambda _self: deadline.remaining_ms())
    events = [new_event(i, user=f"user-{i % 4}", action=ACTIONS[i % 3]) for i in range(40)]
    # When a batch of 40 is posted
    answer = functions.http(post_batch(events))
    faults.note(LAMBDA_TIMEOUT)
    # Then the first events are accepted and the rest rejected `unavailable`
    assert answer.status == 200, answer.body
    outcome = results_by_status(answer)
    accepted = [r["event_id"] for r in outcome["accepted"]]
    rejected = [r["event_id"] for r in outcome["rejected"]]
    assert all(r["error"]["code"] == "unavailable" for r in outcome["rejected"])
    assert sorted(accepted + rejected) == sorted(ids(events))
    if concurrency == 1:
        assert accepted == ids(events)[:5]
    else:  # writes already started when time ran out finish; no new one starts
        assert 5 <= len(accepted) < len(events)
    # And stored is exactly what was accepted
    assert sorted(stored_event_ids(dynamodb, template)) == sorted(accepted)
    # When the client resends the rejected events to a function with time to spare
    deadline.active = False
    again = functions.http(post_batch([events[r["index"]] for r in outcome["rejected"]]))
    # Then they are accepted, every event is stored once and the rollup counts each once
    assert (again.body["accepted"], again.body["rejected"]) == (len(rejected), 0)
    assert_stored_once(dynamodb, template, ids(events))
    assert roll_up(rollup_store(template)).finished
    assert_counted_once(functions, events)


# ---------------------------------------------------------------- 6. crashes after the write


def test_a_function_killed_right_after_its_write_is_answered_duplicate_on_retry_and_counted_once(
    template: Template, functions: Functions, dynamodb: Any, faults: Injector
) -> None:
    # Given a function that dies right after its PutItem succeeded, before answering
    faults.kill_after_write("PutItem", writes=1)
    event = new_event(1, user="user-crash")
    before = utc_now()
    # When one event is posted, the client gets no answer
    with pytest.raises(Killed):
        functions.http(post_event(event))
    after = utc_now()
    faults.clear()
    # When the client retries the same event (same event_id, its own sent_at)
    retry = functions.http(post_event({**event, "sent_at": format_utc(utc_now())}))
    # Then it is a 200 duplicate with the received_at of the write that landed
    assert retry.status == 200, retry.body
    assert retry.body["status"] == "duplicate"
    assert before <= parse_utc(retry.body["received_at"]) <= after
    # And it is stored once and counted once
    assert_stored_once(dynamodb, template, [event["event_id"]])
    assert roll_up(rollup_store(template)).finished
    assert_counted_once(functions, [event])


def test_a_batch_killed_after_some_writes_is_resent_whole_and_each_event_is_stored_and_counted_once(
    template: Template, functions: Functions, dynamodb: Any, faults: Injector
) -> None:
    # Given a function that dies right after the third write of a batch of 8
    events = [new_event(i, user=f"user-{i % 3}", action=ACTIONS[i % 3]) for i in range(8)]
    faults.kill_after_write("PutItem", writes=3)
    # When the batch is posted, the client gets no answer
    with pytest.raises(Killed):
        functions.http(post_batch(events))
    landed = stored_event_ids(dynamodb, template)
    assert len(landed) >= 3
    faults.clear()
    # When the client resends the whole batch
    again = functions.http(post_batch(events))
    # Then what landed is a duplicate, the rest accepted, and every event stored and counted once
    outcome = results_by_status(again)
    assert sorted(r["event_id"] for r in outcome["duplicate"]) == sorted(landed)
    assert sorted(r["event_id"] for r in outcome["accepted"]) == sorted(set(ids(events)) - set(landed))
    assert_stored_once(dynamodb, template, ids(events))
    assert roll_up(rollup_store(template)).finished
    assert_counted_once(functions, events)


def _seventy_users(functions: Functions) -> list[dict[str, Any]]:
    """70 events of distinct users: 210 aggregates to write."""
    events = [new_event(i, user=f"user-{i:03d}", action=ACTIONS[i % 3]) for i in range(70)]
    answer = functions.http(post_batch(events))
    assert answer.body["accepted"] == 70, answer.body
    return events


@pytest.mark.parametrize(
    ("at", "lose_response"),
    [(2, False), (40, False), (100, True)],
    ids=["journal", "aggregate-40", "aggregate-100-lost"],
)
def test_a_rollup_that_dies_half_way_and_runs_again_after_its_lease_counts_each_event_once(
    template: Template, functions: Functions, faults: Injector, at: int, lose_response: bool
) -> None:
    # Given 70 events of distinct users
    events = _seventy_users(functions)
    store = rollup_store(template)

    def die(number: int, _what: str) -> None:
        if number == at and not lose_response:
            raise Crash(f"died before write {number}")

    # When a rollup dies at its `at`-th write (applied but unanswered, or not applied)
    with pytest.raises(Crash):
        roll_up(FaultyStore(store, die, lose_response_at=at if lose_response else None))
    faults.note(ROLLUP_CRASH)
    # Then nothing of it is visible, and a run before its lease ran out is skipped
    assert store.load_progress().token == 0
    assert roll_up(store).skipped
    # And the run after the lease counts every event exactly once
    report = roll_up(store, lease_expired=True)
    assert report.finished
    assert_counted_once(functions, events)


# ---------------------------------------------------------------- 7. throttled rollups and statistics


def test_a_rollup_whose_aggregate_writes_stay_throttled_sets_the_tenant_apart_and_the_next_run_counts_exactly(
    template: Template, functions: Functions, client: Any, faults: Injector
) -> None:
    # Given 70 events of distinct users, and DynamoDB throttling every write of 5 of the tenant's aggregates
    events = _seventy_users(functions)
    store = rollup_store(template)
    throttled = {f"{TENANT}#U#user-00{i}" for i in range(5)}
    faults.fail("PutItem", THROTTLING, when=lambda body: body["Item"]["pk"]["S"] in throttled)
    # When the rollup runs, it finishes, naming the tenant whose writes failed after botocore's retries
    report = roll_up(store)
    assert report.failed_tenants == (TENANT,)
    assert faults.calls["PutItem"] >= 5 * client.meta.config.retries["total_max_attempts"]
    # And the tenant's statistics stay at the snapshot before it
    progress = store.load_progress()
    assert progress.snapshot(TENANT)[0] == 0
    # When the throttling stops and the schedule runs again
    faults.clear()
    report = roll_up(store)
    # Then it finishes, and every event is counted exactly once
    assert report.finished
    assert report.failed_tenants == ()
    assert_counted_once(functions, events)


@pytest.mark.parametrize("operation", ["GetItem", "Query"], ids=["progress-read", "aggregates-read"])
def test_a_statistics_read_that_stays_throttled_is_a_503_with_retry_after(
    template: Template, functions: Functions, faults: Injector, operation: str
) -> None:
    # Given counted events
    events = [new_event(i, user=f"user-{i}", action=ACTIONS[i % 3]) for i in range(5)]
    assert functions.http(post_batch(events)).body["accepted"] == 5
    assert roll_up(rollup_store(template)).finished
    # And DynamoDB throttling every read of the statistics
    faults.fail(operation, THROTTLING)
    # When the daily statistics are asked for
    answer = functions.http(api_event("GET", "/v1/stats/daily", authorizer=tenant_context(TENANT)))
    # Then the answer is the contract's 503 `unavailable` with Retry-After
    assert_error_shape(answer, 503, "unavailable")
    assert int(answer.headers["retry-after"]) >= 1
    # And once the throttling stops, the same question is answered exactly
    faults.clear()
    assert_counted_once(functions, events)
