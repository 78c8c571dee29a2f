"""Live activity: who may connect, what a client may say, and who receives which event.

The broadcast is compared with a brute-force answer (Hypothesis): each connection receives
exactly the events of its own tenant that its subscriptions cover, in stream order, once each.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.live_fakes import InMemoryConnectionStore, RecordingPusher
from tracker import live
from tracker.errors import Forbidden, Unauthorized
from tracker.events import prepare_event
from tracker.records import EventRecord
from tracker.tenants import create_admin_key, create_key, revoke_key

from .support import DEFAULT_LIMIT, OTHER_TENANT, RECEIVED, TENANT, Admin

CONNECTION = "L0SM9cOFvHcCIhw="


def event(tenant_id: str, user_id: str, event_id: str) -> EventRecord:
    return prepare_event({"event_id": event_id, "user_id": user_id, "action": "login"}, tenant_id, RECEIVED)


def connected(store: InMemoryConnectionStore, connection_id: str, tenant_id: str, *users: str | None) -> None:
    store.add_connection(connection_id, tenant_id, RECEIVED + live.CONNECTION_LIFETIME)
    for user in users:
        store.subscribe(connection_id, tenant_id, user, live.MAX_SUBSCRIPTIONS)


def received(pusher: RecordingPusher, connection_id: str) -> list[str]:
    return [json.loads(message)["event"]["event_id"] for message in pusher.sent[connection_id]]


# ---------------------------------------------------------------- connect


def connect(admin: Admin, store: InMemoryConnectionStore, api_key: str | None) -> str:
    return live.connect(
        store, admin.store, api_key=api_key, connection_id=CONNECTION, now=RECEIVED, default_limit=DEFAULT_LIMIT
    )


def test_a_tenant_key_connects_its_tenant_until_the_connection_expires(admin: Admin) -> None:
    # Given a tenant, When it connects with its key
    tenant = admin.create()
    store = InMemoryConnectionStore()
    # Then the connection is its tenant's, forgotten a little after API Gateway's 2 hours
    assert connect(admin, store, tenant.api_key) == tenant.tenant_id
    assert store.tenant_of(CONNECTION) == tenant.tenant_id
    assert store.expires[CONNECTION] - RECEIVED > timedelta(hours=2)


@pytest.mark.parametrize("api_key", [None, "", "atk_not_a_key", "x" * 10_000])
def test_a_missing_or_unknown_key_is_refused(admin: Admin, api_key: str | None) -> None:
    store = InMemoryConnectionStore()
    with pytest.raises(Unauthorized):
        connect(admin, store, api_key)
    assert store.tenants == {}


def test_a_revoked_key_is_refused(admin: Admin) -> None:
    tenant = admin.create()
    second = create_key(admin.store, tenant.tenant_id, now=RECEIVED)
    revoke_key(admin.store, tenant.tenant_id, second.key_id)
    with pytest.raises(Unauthorized):
        connect(admin, InMemoryConnectionStore(), second.api_key)


def test_an_inactive_tenant_is_forbidden(admin: Admin) -> None:
    tenant = admin.create()
    admin.patch(tenant.tenant_id, {"active": False})
    store = InMemoryConnectionStore()
    with pytest.raises(Forbidden):
        connect(admin, store, tenant.api_key)
    assert store.tenants == {}


def test_an_admin_key_is_forbidden(admin: Admin) -> None:
    store = InMemoryConnectionStore()
    with pytest.raises(Forbidden):
        connect(admin, store, create_admin_key(admin.store, now=RECEIVED).api_key)
    assert store.tenants == {}


# ---------------------------------------------------------------- messages


def answer(store: InMemoryConnectionStore, text: str | bytes) -> dict[str, Any]:
    raw = text if isinstance(text, bytes) else text.encode()
    return live.handle_message(store, CONNECTION, raw)


def test_subscribe_and_unsubscribe_are_acknowledged() -> None:
    store = InMemoryConnectionStore()
    connected(store, CONNECTION, TENANT)
    assert answer(store, '{"action": "subscribe"}') == {"type": "subscribed", "user_id": None}
    assert answer(store, '{"action": "subscribe", "user_id": "6"}') == {"type": "subscribed", "user_id": "6"}
    assert store.subscriptions[CONNECTION] == {None, "6"}
    assert answer(store, '{"action": "unsubscribe", "user_id": "6"}') == {"type": "unsubscribed", "user_id": "6"}
    assert store.subscriptions[CONNECTION] == {None}


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("not json", "bad_request"),
        ("", "bad_request"),
        (b"\xff\xfe", "bad_request"),
        ('{"action": "subscribe", "action": "unsubscribe"}', "bad_request"),
        ('{"action": NaN}', "bad_request"),
        ("[]", "validation_error"),
        ('[{"action": "subscribe"}]', "validation_error"),
        ('"subscribe"', "validation_error"),
        ("{}", "validation_error"),
        ('{"action": "subscribe", "user_id": ""}', "validation_error"),
        ('{"action": "subscribe", "user_id": 6}', "validation_error"),
        ('{"action": "subscribe", "user_id": "a\\u0000b"}', "validation_error"),
        ('{"action": "subscribe", "user_id": "' + "u" * 129 + '"}', "validation_error"),
        ('{"action": "subscribe", "tenant_id": "ten_other"}', "validation_error"),
        ('{"action": "publish"}', "validation_error"),
        ("x" * 200_000, "payload_too_large"),
        ('{"action": "subscribe", "user_id": "' + "u" * live.MAX_MESSAGE_BYTES + '"}', "payload_too_large"),
    ],
)
def test_a_bad_message_gets_an_error_in_the_contract_shape(message: str | bytes, code: str) -> None:
    store = InMemoryConnectionStore()
    connected(store, CONNECTION, TENANT)
    reply = answer(store, message)
    assert reply["type"] == "error"
    assert set(reply["error"]) == {"code", "message", "details"}
    assert reply["error"]["code"] == code
    assert store.subscriptions[CONNECTION] == set()


def test_a_message_at_the_size_limit_is_read() -> None:
    store = InMemoryConnectionStore()
    connected(store, CONNECTION, TENANT)
    padding = live.MAX_MESSAGE_BYTES - len('{"action": "subscribe", "user_id": "6"}')
    exact = '{"action": "subscribe", "user_id": "6"' + " " * padding + "}"
    assert len(exact.encode()) == live.MAX_MESSAGE_BYTES
    assert answer(store, exact)["type"] == "subscribed"


def test_a_connection_holds_a_bounded_number_of_subscriptions() -> None:
    # Given a connection at the limit
    store = InMemoryConnectionStore()
    connected(store, CONNECTION, TENANT)
    for user in range(live.MAX_SUBSCRIPTIONS):
        assert answer(store, json.dumps({"action": "subscribe", "user_id": str(user)}))["type"] == "subscribed"
    # When it subscribes to one more, Then it is told so; one it holds is still fine
    refused = answer(store, '{"action": "subscribe"}')
    assert refused["error"]["details"][0]["type"] == "too_many_subscriptions"
    assert answer(store, '{"action": "subscribe", "user_id": "0"}')["type"] == "subscribed"
    # And unsubscribing frees a place
    answer(store, '{"action": "unsubscribe", "user_id": "0"}')
    assert answer(store, '{"action": "subscribe"}')["type"] == "subscribed"
    assert len(store.subscriptions[CONNECTION]) == live.MAX_SUBSCRIPTIONS


def test_an_unregistered_connection_is_told_to_connect_again() -> None:
    reply = answer(InMemoryConnectionStore(), '{"action": "subscribe"}')
    assert reply["error"]["code"] == "unauthorized"


def test_a_store_outage_is_an_unavailable_error_not_a_crash() -> None:
    store = InMemoryConnectionStore()
    connected(store, CONNECTION, TENANT)
    store.down = True
    assert answer(store, '{"action": "subscribe"}')["error"]["code"] == "unavailable"


# ---------------------------------------------------------------- broadcast


def test_an_event_message_has_the_event_out_shape() -> None:
    record = event(TENANT, "6", "evt-1").model_copy(update={"metadata": {"plan": "pro"}})
    message = json.loads(live.event_message(record))
    assert message == {
        "type": "event",
        "event": {
            "event_id": "evt-1",
            "user_id": "6",
            "action": "login",
            "occurred_at": "2025-10-10T12:00:00.000Z",
            "received_at": "2025-10-10T12:00:00.000Z",
            "metadata": {"plan": "pro"},
        },
    }


def test_tenants_sharing_user_ids_never_see_each_others_events() -> None:
    # Given two tenants with a user "6" each, and watchers of the tenant and of user 6 on both sides
    store, pusher = InMemoryConnectionStore(), RecordingPusher()
    connected(store, "a-all", TENANT, None)
    connected(store, "a-six", TENANT, "6")
    connected(store, "b-all", OTHER_TENANT, None)
    connected(store, "b-six", OTHER_TENANT, "6")
    events = [event(TENANT, "6", "a1"), event(OTHER_TENANT, "6", "b1"), event(TENANT, "7", "a2")]
    # When the batch is broadcast
    result = live.broadcast(events, store, pusher, concurrency=4)
    # Then each receives its own tenant's events only
    assert received(pusher, "a-all") == ["a1", "a2"]
    assert received(pusher, "a-six") == ["a1"]
    assert received(pusher, "b-all") == ["b1"]
    assert received(pusher, "b-six") == ["b1"]
    assert result == live.BroadcastResult(pushed=5)


@pytest.mark.parametrize(
    ("failure", "still_subscribed", "expected"),
    [
        # A gone connection is forgotten
        ("gone", None, live.BroadcastResult(pushed=2, gone=1)),
        # A throttled one loses the rest of the batch only
        ("busy", TENANT, live.BroadcastResult(pushed=2, failed=2)),
    ],
)
def test_a_failing_connection_does_not_stop_the_others(
    failure: str, still_subscribed: str | None, expected: live.BroadcastResult
) -> None:
    # Given two connections of a tenant, one of them gone or throttled
    store, pusher = InMemoryConnectionStore(), RecordingPusher()
    connected(store, "failing", TENANT, None)
    connected(store, "healthy", TENANT, None)
    getattr(pusher, failure).add("failing")
    # When a batch of two is broadcast
    result = live.broadcast([event(TENANT, "6", "e1"), event(TENANT, "6", "e2")], store, pusher, concurrency=2)
    # Then the other receives it all; the failing one is forgotten only when it is gone
    assert received(pusher, "healthy") == ["e1", "e2"]
    assert store.tenant_of("failing") == still_subscribed
    assert result == expected


def test_a_subscription_store_outage_fails_the_batch_before_anything_is_pushed() -> None:
    store, pusher = InMemoryConnectionStore(), RecordingPusher()
    connected(store, "watcher", TENANT, None)
    store.down = True
    with pytest.raises(live.TemporarilyUnavailable):
        live.broadcast([event(TENANT, "6", "e1")], store, pusher, concurrency=2)
    assert pusher.sent == {}


TENANTS = [TENANT, OTHER_TENANT]
USERS = ["6", "7", "a#b"]


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(st.tuples(st.sampled_from(TENANTS), st.sampled_from(USERS)), max_size=30),
    watchers=st.lists(
        st.tuples(st.sampled_from(TENANTS), st.sets(st.sampled_from([None, *USERS]), min_size=1)), max_size=6
    ),
)
def test_each_connection_receives_exactly_its_subscriptions_events_in_order(
    events: list[tuple[str, str]], watchers: list[tuple[str, set[str | None]]]
) -> None:
    store, pusher = InMemoryConnectionStore(), RecordingPusher()
    for index, (tenant_id, users) in enumerate(watchers):
        connected(store, f"c{index}", tenant_id, *users)
    records = [event(tenant_id, user, f"e{index}") for index, (tenant_id, user) in enumerate(events)]
    live.broadcast(records, store, pusher, concurrency=3)
    for index, (tenant_id, users) in enumerate(watchers):
        expected = [r.event_id for r in records if r.tenant_id == tenant_id and (None in users or r.user_id in users)]
        assert received(pusher, f"c{index}") == expected
