"""Tenant isolation over HTTP: every route of the API, attacked with another tenant's key and ids.

Tenant A has data (a user's events, a page cursor, statistics from a rollup, an erasure, a profile
and a completed export with its download URL); tenant B has only its key. Every route of the
OpenAPI document (and of ``template.yaml``, so that a route missing from the document is attacked
all the same) is called with B's key and A's user id, cursor, erasure id, export id, email, event
ids and tenant id, with no key, an unknown, a revoked and an inactive tenant's key, with a tenant
key on the admin routes and the admin key on the tenant routes. No answer may carry A's data;
afterwards A's data, profile, export and statistics are exactly what they were.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from local_stack.template import load_template
from tests.e2e.conftest import ROOT, Reply, Stack, rfc3339, run_rollup, send
from tracker.cursor import encode_cursor
from tracker.event_reads import EventFilter

pytestmark = pytest.mark.e2e

VICTIM = "victim"
OTHER_USER = "other-user"
A_ACTION = "a-secret-action"
A_TYPE = "a-secret-type"
A_PROPERTY = "amount"
A_POINTS = 5
ERASURE_TIMEOUT_SECONDS = 60
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})
TENANT_ROUTES_PHASES = ("read", "erase", "write")

# What A's tenant id looks like to a handler that would (wrongly) read it from the request.
TENANT_HINT_HEADER = "x-tenant-id"


# ---------------------------------------------------------------- helpers


def wait_for_erasure(stack: Stack, key: str, erasure_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + ERASURE_TIMEOUT_SECONDS
    while True:
        reply = send(stack, "GET", f"/v1/erasures/{erasure_id}", key=key)
        assert reply.status == 200, reply.body
        if reply.body["status"] in {"completed", "failed"}:
            return dict(reply.body)
        assert time.monotonic() < deadline, f"erasure {erasure_id} still {reply.body['status']}"
        time.sleep(0.3)


def all_events(stack: Stack, key: str, user: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        reply = send(stack, "GET", f"/v1/users/{quote(user, safe='')}/events?{urlencode(query)}", key=key)
        assert reply.status == 200, reply.body
        items += reply.body["items"]
        cursor = reply.body["next_cursor"]
        if cursor is None:
            return items


# ---------------------------------------------------------------- the two tenants


@dataclass
class World:
    """Tenant A with data, tenant B with a key, and the other keys the attacks use."""

    stack: Stack
    a: dict[str, Any]
    b: dict[str, Any]
    a_second_key: dict[str, Any]
    revoked_key: str
    inactive_key: str
    unknown_key: str
    marker: str
    since: datetime
    a_events: list[dict[str, Any]]
    a_cursor: str
    a_cursor_query: str
    a_erasure_id: str
    a_types: list[dict[str, Any]] = field(default_factory=list)
    a_types_cursor: str = ""
    a_stats: dict[str, Any] = field(default_factory=dict)
    a_email: str = ""
    a_export_id: str = ""
    a_download_url: str = ""

    @property
    def a_id(self) -> str:
        return str(self.a["tenant_id"])

    @property
    def a_key(self) -> str:
        return str(self.a["api_key"])

    @property
    def b_key(self) -> str:
        return str(self.b["api_key"])

    def secrets_of_a(self) -> list[str]:
        """What no answer to anyone but A may hold."""
        return [
            self.marker,
            self.a_id,
            self.a_key,
            str(self.a["key_id"]),
            str(self.a_second_key["api_key"]),
            str(self.a_second_key["key_id"]),
            self.a_email.lower(),
            self.a_download_url,
        ]

    def stats_paths(self) -> dict[str, str]:
        """The statistics requests whose answers are compared before and after the attacks."""
        window = urlencode(
            {
                "period": "1h",
                "from": rfc3339(self.since - timedelta(hours=1)),
                "to": rfc3339(self.since + timedelta(hours=2)),
            }
        )
        days = urlencode(
            {"from": (self.since - timedelta(days=1)).date(), "to": (self.since + timedelta(days=1)).date()}
        )
        return {
            "activity": f"/v1/users/{VICTIM}/activity?{window}",
            "daily": "/v1/stats/daily?days=2",
            "top-users": "/v1/stats/top-users?hours=24&limit=100",
            "trend": f"/v1/stats/trend?{days}",
            "frequency": f"/v1/stats/frequency?{days}",
            "action-daily": f"/v1/stats/actions/{A_ACTION}/daily?{days}",
            "points": f"/v1/users/{VICTIM}/points",
            "points-range": f"/v1/users/{VICTIM}/points?{days}",
            "top-users-points": "/v1/stats/top-users?hours=24&limit=100&by=points",
            "property-daily": f"/v1/stats/actions/{A_ACTION}/properties/{A_PROPERTY}/daily?{days}",
            "violations": f"/v1/stats/violations?{days}",
        }

    def read_types(self, key: str) -> list[dict[str, Any]]:
        reply = send(self.stack, "GET", "/v1/event-types?limit=100", key=key)
        assert reply.status == 200, reply.body
        return list(reply.body["items"])

    def read_stats(self, key: str) -> dict[str, Any]:
        answers = {}
        for name, path in self.stats_paths().items():
            reply = send(self.stack, "GET", path, key=key)
            assert reply.status == 200, (path, reply.body)
            answers[name] = reply.body["items"] if "items" in reply.body else reply.body["by_action"]
        return answers


def a_event(event_id: str, user: str, occurred: datetime, marker: str | None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": event_id,
        "user_id": user,
        "action": A_ACTION,
        "occurred_at": rfc3339(occurred),
    }
    if marker is not None:
        event["metadata"] = {"marker": marker, "card": "4111-1111-1111-1111", A_PROPERTY: 12.5}
    return event


@pytest.fixture(scope="module")
def world(stack: Stack) -> World:
    a, b = stack.new_tenant(), stack.new_tenant()
    inactive = stack.new_tenant()
    patched = send(stack, "PATCH", f"/v1/tenants/{inactive['tenant_id']}", {"active": False}, stack.admin_key)
    assert patched.status == 200, patched.body
    # A has a second key that stays live, and a third one, revoked
    second = send(stack, "POST", f"/v1/tenants/{a['tenant_id']}/keys", key=stack.admin_key)
    third = send(stack, "POST", f"/v1/tenants/{a['tenant_id']}/keys", key=stack.admin_key)
    assert (second.status, third.status) == (201, 201), (second.body, third.body)
    revoked = send(stack, "DELETE", f"/v1/tenants/{a['tenant_id']}/keys/{third.body['key_id']}", key=stack.admin_key)
    assert revoked.status == 204, revoked.body
    # Everything received so far is counted, so that the next rollup only reads what A sends now
    run_rollup(stack, datetime.now(UTC))
    marker = f"A-SECRET-{secrets.token_hex(8)}"
    # A's action earns points and has a required number property; A's plan flags what breaks it
    a_action_type = {
        "name": A_ACTION,
        "description": f"{marker} action",
        "points": A_POINTS,
        "properties": {A_PROPERTY: {"type": "number", "required": True}},
    }
    assert send(stack, "POST", "/v1/event-types", a_action_type, a["api_key"]).status == 201
    flagging = send(stack, "PATCH", f"/v1/tenants/{a['tenant_id']}", {"validation": "flag"}, stack.admin_key)
    assert flagging.status == 200, flagging.body
    now = datetime.now(UTC).replace(microsecond=0)
    since = now - timedelta(minutes=40)
    events = [
        a_event("victim-1", VICTIM, now - timedelta(minutes=30), marker),
        a_event("victim-2", VICTIM, now - timedelta(minutes=20), marker),
        a_event("victim-3", VICTIM, now - timedelta(minutes=10), None),
        a_event("other-1", OTHER_USER, now - timedelta(minutes=5), marker),
    ]
    batch = send(stack, "POST", "/v1/events/batch", {"events": events}, a["api_key"])
    assert batch.status == 200, batch.body
    assert batch.body["accepted"] == len(events), batch.body
    first_page = send(stack, "GET", f"/v1/users/{VICTIM}/events?limit=1", key=a["api_key"])
    assert first_page.status == 200, first_page.body
    assert first_page.body["next_cursor"], first_page.body
    run_rollup(stack, datetime.now(UTC))
    erasure = send(stack, "DELETE", f"/v1/users/{OTHER_USER}", key=a["api_key"])
    assert erasure.status == 202, erasure.body
    assert wait_for_erasure(stack, a["api_key"], erasure.body["erasure_id"])["status"] == "completed"
    world = World(
        stack=stack,
        a=a,
        b=b,
        a_second_key=dict(second.body),
        revoked_key=str(third.body["api_key"]),
        inactive_key=str(inactive["api_key"]),
        unknown_key="atk_" + secrets.token_urlsafe(32),
        marker=marker,
        since=since,
        a_events=all_events(stack, a["api_key"], VICTIM),
        a_cursor=str(first_page.body["next_cursor"]),
        a_cursor_query="limit=1",
        a_erasure_id=str(erasure.body["erasure_id"]),
    )
    # A's catalog (its marker in the descriptions), paged, and its tracking plan in block mode
    for name in (A_TYPE, f"{A_TYPE}-2"):
        body = {"name": name, "description": f"{marker} type", "points": 7, "properties": {"card": {"type": "string"}}}
        created = send(stack, "POST", "/v1/event-types", body, a["api_key"])
        assert created.status == 201, created.body
    types_page = send(stack, "GET", "/v1/event-types?limit=1", key=a["api_key"])
    assert types_page.status == 200, types_page.body
    assert types_page.body["next_cursor"], types_page.body
    world.a_types_cursor = str(types_page.body["next_cursor"])
    world.a_types = world.read_types(world.a_key)
    assert [item["name"] for item in world.a_types] == [A_ACTION, A_TYPE, f"{A_TYPE}-2"]
    blocking = send(stack, "PATCH", f"/v1/tenants/{a['tenant_id']}", {"validation": "block"}, stack.admin_key)
    assert blocking.status == 200, blocking.body
    # A itself sees its data: the attacks below have something to steal
    assert [event["event_id"] for event in world.a_events] == ["victim-1", "victim-2", "victim-3"]
    assert world.a_events[0]["metadata"]["marker"] == marker
    world.a_stats = world.read_stats(world.a_key)
    assert {"user_id": VICTIM, "count": 3} in world.a_stats["top-users"], world.a_stats
    assert sum(window["count"] for window in world.a_stats["activity"]) == 3, world.a_stats
    assert world.a_stats["points"] == {A_ACTION: {"count": 3, "points": 3 * A_POINTS}}, world.a_stats
    assert {"user_id": VICTIM, "points": 3 * A_POINTS, "count": 3} in world.a_stats["top-users-points"]
    assert sum(day["count"] for day in world.a_stats["property-daily"]) == 3, world.a_stats  # other-1's stays
    assert [(v["action"], v["kind"], v["count"]) for v in world.a_stats["violations"]] == [
        (A_ACTION, "required_missing", 1)
    ], world.a_stats
    give_a_profile_and_an_export(world)
    return world


def a_profile(w: World) -> dict[str, Any]:
    return {"email": w.a_email, "first_name": w.marker, "traits": {"marker": w.marker}}


def give_a_profile_and_an_export(w: World) -> None:
    """A's victim has a profile (A's marker in it) and a completed export with its download URL."""
    w.a_email = f"Victim-{secrets.token_hex(6)}@A.example"
    assert send(w.stack, "PUT", f"/v1/users/{VICTIM}/profile", a_profile(w), w.a_key).status == 201
    export = send(w.stack, "POST", f"/v1/users/{VICTIM}/exports", key=w.a_key)
    assert export.status == 202, export.body
    w.a_export_id = str(export.body["export_id"])
    deadline = time.monotonic() + ERASURE_TIMEOUT_SECONDS
    while True:
        done = send(w.stack, "GET", f"/v1/exports/{w.a_export_id}", key=w.a_key)
        if done.body["status"] == "completed":
            break
        assert done.body["status"] != "failed", done.body
        assert time.monotonic() < deadline, done.body
        time.sleep(0.3)
    w.a_download_url = str(done.body["download_url"])


# ---------------------------------------------------------------- attacks

Check = Callable[[Any], str | None]


@dataclass(frozen=True)
class Attack:
    kind: str
    method: str
    path: str
    key: str | None
    expect: int
    body: Any = None
    headers: dict[str, str] | None = None
    check: Check | None = None
    phase: str = "read"


def expect_empty_events(body: Any) -> str | None:
    return None if body.get("items") == [] and body.get("next_cursor") is None else "events were returned"


def expect_zero_activity(body: Any) -> str | None:
    windows = body.get("items")
    if not windows or any(w["count"] != 0 or w["by_action"] for w in windows):
        return "a window of the victim's activity is not zero"
    return None


def expect_zero_days(body: Any) -> str | None:
    days = body.get("items")
    if not days or any(day["count"] != 0 or day["users"] != 0 for day in days):
        return "a day is not zero"
    return None


def expect_no_top_users(body: Any) -> str | None:
    return None if body.get("items") == [] else "top users listed"


def expect_no_points(body: Any) -> str | None:
    return None if (body.get("total"), body.get("by_action")) == (0, {}) else "points were counted"


def expect_zero_property(body: Any) -> str | None:
    days = body.get("items")
    empty = {"count": 0, "sum": 0, "avg": None, "min": None, "max": None}
    return None if days and all({**day, **empty} == day for day in days) else "a property was counted"


def expect_no_violations(body: Any) -> str | None:
    return None if body.get("items") == [] else "violations were counted"


def expect_empty_trend(body: Any) -> str | None:
    days = body.get("items")
    return None if days and all(day["counts"] == {} for day in days) else "trend counts"


def expect_no_frequency(body: Any) -> str | None:
    return None if body.get("items") in ([], [{"action": A_ACTION, "total": 0}]) else "frequencies counted"


def expect_accepted(body: Any) -> str | None:
    return None if body.get("status") == "accepted" else f"not accepted as a new event of B: {body}"


def expect_batch_accepted(count: int) -> Check:
    def check(body: Any) -> str | None:
        counts = (body.get("accepted"), body.get("duplicates"), body.get("rejected"))
        return None if counts == (count, 0, 0) else f"A's event ids were not new to B: {counts}"

    return check


def expect_pending(body: Any) -> str | None:
    return None if body.get("status") == "pending" and body.get("erasure_id") else "no pending erasure"


def expect_no_key_in_body(body: Any) -> str | None:
    return "an api_key was returned" if "api_key" in json.dumps(body) else None


def with_tenant_hint(path: str, a_id: str) -> str:
    return f"{path}{'&' if '?' in path else '?'}{urlencode({'tenant_id': a_id, 'tenant': a_id})}"


def with_hint(w: World, attack: Attack) -> Attack:
    """The same request with A's tenant id in the query and in a header, as a handler reading it from
    the request would."""
    return replace(
        attack,
        kind="B key, A tenant id in query/header",
        path=with_tenant_hint(attack.path, w.a_id),
        headers={**(attack.headers or {}), TENANT_HINT_HEADER: w.a_id},
    )


def hinted_attack(
    w: World, method: str, path: str, expect: int, check: Check | None = None, body: Any = None
) -> Attack:
    """B's key on ``path`` with A's tenant id in the query and in a header."""
    return with_hint(w, Attack("", method, path, w.b_key, expect, body, check=check))


def plain_and_hinted(w: World, attack: Attack) -> list[Attack]:
    """B's attack on A's ids, then the same with A's tenant id in the query and a header: one answer."""
    return [attack, with_hint(w, attack)]


def resigned_cursor(world: World) -> str:
    """A's cursor position, signed again by B for B's own query: the digest has no secret, anyone can sign."""
    encoded_position = world.a_cursor.split(".", 1)[0]
    position = base64.urlsafe_b64decode(encoded_position + "=" * (-len(encoded_position) % 4)).decode()
    binding = EventFilter(start=None, end=None, action=None, descending=False, limit=1).binding(
        str(world.b["tenant_id"]), VICTIM
    )
    return encode_cursor(position, binding)


def user_events_attacks(w: World) -> list[Attack]:
    path = f"/v1/users/{VICTIM}/events"
    resigned = f"{path}?limit=1&cursor={resigned_cursor(w)}"
    return [
        Attack("B key, A user id", "GET", path, w.b_key, 200, check=expect_empty_events),
        Attack("B key, A user id", "GET", f"{path}?{w.a_cursor_query}", w.b_key, 200, check=expect_empty_events),
        hinted_attack(w, "GET", path, 200, expect_empty_events),
        Attack("B key, A cursor", "GET", f"{path}?{w.a_cursor_query}&cursor={w.a_cursor}", w.b_key, 400),
        Attack("B key, A cursor", "GET", f"{path}?cursor={w.a_cursor}", w.b_key, 400),
        Attack("B key, A cursor", "GET", f"/v1/users/{OTHER_USER}/events?limit=1&cursor={w.a_cursor}", w.b_key, 400),
        Attack("B key, A cursor re-signed by B", "GET", resigned, w.b_key, 200, check=expect_empty_events),
    ]


def activity_attacks(w: World) -> list[Attack]:
    path = w.stats_paths()["activity"]
    return plain_and_hinted(w, Attack("B key, A user id", "GET", path, w.b_key, 200, check=expect_zero_activity))


def stats_attacks(name: str, check: Check) -> Callable[[World], list[Attack]]:
    def attacks(w: World) -> list[Attack]:
        path = w.stats_paths()[name]
        return plain_and_hinted(w, Attack("B key, A action/user ids", "GET", path, w.b_key, 200, check=check))

    return attacks


def points_attacks(w: World) -> list[Attack]:
    return [
        *stats_attacks("points", expect_no_points)(w),
        *stats_attacks("points-range", expect_no_points)(w),
    ]


def top_users_attacks(w: World) -> list[Attack]:
    return [
        *stats_attacks("top-users", expect_no_top_users)(w),
        *stats_attacks("top-users-points", expect_no_top_users)(w),
    ]


def frequency_attacks(w: World) -> list[Attack]:
    of_a_action = f"/v1/stats/frequency?action={A_ACTION}"
    return [
        *stats_attacks("frequency", expect_no_frequency)(w),
        Attack("B key, A action/user ids", "GET", of_a_action, w.b_key, 200, check=expect_no_frequency),
    ]


def erase_user_attacks(w: World) -> list[Attack]:
    # B erasing "victim" erases B's victim (nobody), never A's: checked after the attacks.
    path = f"/v1/users/{VICTIM}"
    return plain_and_hinted(
        w, Attack("B key, A user id", "DELETE", path, w.b_key, 202, check=expect_pending, phase="erase")
    )


def erasure_attacks(w: World) -> list[Attack]:
    return foreign_id_attacks("B key, A erasure id", f"/v1/erasures/{w.a_erasure_id}", w)


def foreign_id_attacks(kind: str, path: str, w: World) -> list[Attack]:
    """B's key on a resource of A's by its id: 404, as if there were none."""
    return plain_and_hinted(w, Attack(kind, "GET", path, w.b_key, 404))


def post_event_attacks(w: World) -> list[Attack]:
    copy = next(event for event in w.a_events if event["event_id"] == "victim-3")
    same_content = {key: copy[key] for key in ("event_id", "user_id", "action", "occurred_at")}
    return [
        # The same event id and content as A's: new to B (not a duplicate answering A's received_at)
        Attack(
            "B key, A event id (+ A tenant id in body)",
            "POST",
            "/v1/events",
            w.b_key,
            201,
            body={**same_content, "tenant_id": w.a_id},
            headers={TENANT_HINT_HEADER: w.a_id},
            check=expect_accepted,
            phase="write",
        ),
        # The same event id with other content: new to B (not a 409 telling that A has it)
        Attack(
            "B key, A event id (+ A tenant id in body)",
            "POST",
            "/v1/events",
            w.b_key,
            201,
            body={"event_id": "victim-1", "user_id": VICTIM, "action": "b-action", "tenant_id": w.a_id},
            check=expect_accepted,
            phase="write",
        ),
    ]


def batch_attacks(w: World) -> list[Attack]:
    events = [
        {"event_id": "victim-2", "user_id": VICTIM, "action": "b-action", "tenant_id": w.a_id},
        {"event_id": "other-1", "user_id": OTHER_USER, "action": "b-action", "tenant_id": w.a_id},
    ]
    return [
        Attack(
            "B key, A event id (+ A tenant id in body)",
            "POST",
            "/v1/events/batch",
            w.b_key,
            200,
            body={"events": events, "tenant_id": w.a_id},
            headers={TENANT_HINT_HEADER: w.a_id},
            check=expect_batch_accepted(len(events)),
            phase="write",
        )
    ]


def health_attacks(w: World) -> list[Attack]:
    def ok(body: Any) -> str | None:
        return None if body == {"status": "ok"} else f"health says more than ok: {body}"

    return [
        Attack("no key (public route)", "GET", "/v1/health", None, 200, check=ok),
        hinted_attack(w, "GET", "/v1/health", 200, ok),
    ]


def dashboard_attacks(path: str) -> Callable[[World], list[Attack]]:
    """The dashboard's files are the same for everyone: no tenant, key or data of anyone in them."""

    def attacks(w: World) -> list[Attack]:
        def nothing_of_a_tenant(body: Any) -> str | None:
            text = body if isinstance(body, str) else json.dumps(body)
            leaked = [value for value in (w.a_id, w.a_key, w.b_key, w.marker) if value in text]
            return f"the dashboard's {path} holds {leaked}" if leaked else None

        return [
            Attack("no key (public route)", "GET", path, None, 200, check=nothing_of_a_tenant),
            hinted_attack(w, "GET", path, 200, nothing_of_a_tenant),
        ]

    return attacks


def preflight_attacks(path: str) -> Callable[[World], list[Attack]]:
    """A preflight carries no key: it answers 204 whoever asks, and names no tenant."""

    def attacks(w: World) -> list[Attack]:
        def nothing(body: Any) -> str | None:
            return None if body in (None, "") else f"a preflight answered a body: {body}"

        hint = {TENANT_HINT_HEADER: w.a_id, "Origin": "https://evil.example"}
        return [Attack("no key, another origin", "OPTIONS", path, None, 204, headers=hint, check=nothing)]

    return attacks


def token_attacks(w: World) -> list[Attack]:
    """B's key asking for a token with A's tenant id in the request: the token is B's."""

    def bs_own_token(body: Any) -> str | None:
        payload = str(body.get("access_token", "")).split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return None if claims.get("tenant_id") == w.b["tenant_id"] else f"a token of another tenant: {claims}"

    return [hinted_attack(w, "POST", "/v1/auth/token", 200, bs_own_token)]


def admin_attacks(w: World, method: str, route: str) -> list[Attack]:
    """B's key (and A's own live key) on an admin route aimed at A: 403, A untouched."""
    path, body = concrete(w, method, route)
    return [
        Attack("tenant key on admin route", method, path, w.b_key, 403, body=body, check=expect_no_key_in_body),
        Attack("tenant key on admin route", method, path, w.a_key, 403, body=body, check=expect_no_key_in_body),
    ]


def expect_no_types(body: Any) -> str | None:
    return None if body.get("items") == [] and body.get("next_cursor") is None else "event types were listed"


def expect_b_own_type(body: Any) -> str | None:
    return None if body.get("name") == A_TYPE and body.get("points") == 1 else f"not B's own new type: {body}"


def event_types_attacks(w: World) -> list[Attack]:
    path = "/v1/event-types"
    return [
        Attack("B key, A catalog", "GET", path, w.b_key, 200, check=expect_no_types),
        Attack("B key, A catalog", "GET", f"{path}?search={w.marker}", w.b_key, 200, check=expect_no_types),
        Attack("B key, A catalog", "GET", f"{path}?search={A_TYPE}", w.b_key, 200, check=expect_no_types),
        hinted_attack(w, "GET", path, 200, expect_no_types),
        Attack("B key, A cursor", "GET", f"{path}?limit=1&cursor={w.a_types_cursor}", w.b_key, 400),
    ]


def create_event_type_attacks(w: World) -> list[Attack]:
    # A's type name is free in B's catalog: a 201 of B's own (not a 409 telling that A has it)
    body = {"name": A_TYPE, "points": 1, "tenant_id": w.a_id}
    return [
        Attack("B key, A type name", "POST", "/v1/event-types", w.b_key, 422, body=body, phase="write"),
        Attack(
            "B key, A type name (+ A tenant id in header)",
            "POST",
            "/v1/event-types",
            w.b_key,
            201,
            body={"name": A_TYPE, "points": 1},
            headers={TENANT_HINT_HEADER: w.a_id},
            check=expect_b_own_type,
            phase="write",
        ),
    ]


def event_type_attacks(method: str) -> Callable[[World], list[Attack]]:
    """B's key on A's event type, before B has one of that name: 404, as for a name nobody has."""

    def attacks(w: World) -> list[Attack]:
        path = f"/v1/event-types/{A_TYPE}"
        body = {"points": 0, "description": "taken over"} if method == "PATCH" else None
        return plain_and_hinted(w, Attack("B key, A type name", method, path, w.b_key, 404, body=body))

    return attacks


def expect_no_profiles(body: Any) -> str | None:
    return None if body == {"items": []} else "profiles were returned"


def expect_new_profile_of_b(body: Any) -> str | None:
    return None if body.get("user_id") == VICTIM and body.get("traits") == {"b": 1} else f"not B's own: {body}"


def expect_pending_export(body: Any) -> str | None:
    return None if body.get("status") == "pending" and body.get("export_id") else "no pending export"


def profile_attacks(method: str) -> Callable[[World], list[Attack]]:
    """B's key on A's user's profile: nothing to read or change (404); B's PUT and DELETE touch B's own."""
    expected = {"GET": (404, None, "read"), "PATCH": (404, {"traits": {"b": 1}}, "read")}
    expected |= {"PUT": (201, {"traits": {"b": 1}}, "write"), "DELETE": (204, None, "erase")}
    status, body, phase = expected[method]
    check = expect_new_profile_of_b if method == "PUT" else None

    def attacks(w: World) -> list[Attack]:
        path = f"/v1/users/{VICTIM}/profile"
        return [
            plain := Attack("B key, A user id", method, path, w.b_key, status, body=body, check=check, phase=phase),
            # A second PUT replaces B's own profile made by the first
            replace(with_hint(w, plain), expect=200 if method == "PUT" else status),
        ]

    return attacks


def lookup_attacks(w: World) -> list[Attack]:
    paths = [f"/v1/profiles?{urlencode({'email': email})}" for email in (w.a_email, w.a_email.upper())]
    return [
        *(Attack("B key, A email", "GET", path, w.b_key, 200, check=expect_no_profiles) for path in paths),
        hinted_attack(w, "GET", paths[0], 200, expect_no_profiles),
    ]


def create_export_attacks(w: World) -> list[Attack]:
    # B's export of "victim" is B's (of nothing of A's): checked in what B can read afterwards.
    return [
        Attack(
            "B key, A user id",
            "POST",
            f"/v1/users/{VICTIM}/exports",
            w.b_key,
            202,
            headers={TENANT_HINT_HEADER: w.a_id},
            check=expect_pending_export,
            phase="write",
        )
    ]


def export_attacks(w: World) -> list[Attack]:
    return foreign_id_attacks("B key, A export id", f"/v1/exports/{w.a_export_id}", w)


def no_attacks(_w: World) -> list[Attack]:
    return []


# Every route of the API: its kind, and the attacks with another tenant's ids. A route in the
# OpenAPI document or the template that is missing here fails the test.
ROUTES: dict[tuple[str, str], tuple[str, Callable[[World], list[Attack]]]] = {
    ("GET", "/v1/health"): ("public", health_attacks),
    ("GET", "/dashboard"): ("public", dashboard_attacks("/dashboard")),
    ("GET", "/dashboard/{file}"): ("public", dashboard_attacks("/dashboard/config.json")),
    ("OPTIONS", "/v1/events"): ("public", preflight_attacks("/v1/events")),
    ("OPTIONS", "/v1/events/batch"): ("public", preflight_attacks("/v1/events/batch")),
    ("POST", "/v1/auth/token"): ("tenant", token_attacks),
    ("POST", "/v1/events"): ("tenant", post_event_attacks),
    ("POST", "/v1/events/batch"): ("tenant", batch_attacks),
    ("GET", "/v1/users/{user_id}/events"): ("tenant", user_events_attacks),
    ("GET", "/v1/users/{user_id}/activity"): ("tenant", activity_attacks),
    ("GET", "/v1/stats/daily"): ("tenant", stats_attacks("daily", expect_zero_days)),
    ("GET", "/v1/stats/top-users"): ("tenant", top_users_attacks),
    ("GET", "/v1/stats/trend"): ("tenant", stats_attacks("trend", expect_empty_trend)),
    ("GET", "/v1/stats/frequency"): ("tenant", frequency_attacks),
    ("GET", "/v1/stats/actions/{action}/daily"): ("tenant", stats_attacks("action-daily", expect_zero_days)),
    ("GET", "/v1/users/{user_id}/points"): ("tenant", points_attacks),
    ("GET", "/v1/stats/actions/{action}/properties/{property}/daily"): (
        "tenant",
        stats_attacks("property-daily", expect_zero_property),
    ),
    ("GET", "/v1/stats/violations"): ("tenant", stats_attacks("violations", expect_no_violations)),
    ("DELETE", "/v1/users/{user_id}"): ("tenant", erase_user_attacks),
    ("GET", "/v1/erasures/{erasure_id}"): ("tenant", erasure_attacks),
    ("POST", "/v1/event-types"): ("tenant", create_event_type_attacks),
    ("GET", "/v1/event-types"): ("tenant", event_types_attacks),
    ("GET", "/v1/event-types/{name}"): ("tenant", event_type_attacks("GET")),
    ("PATCH", "/v1/event-types/{name}"): ("tenant", event_type_attacks("PATCH")),
    ("DELETE", "/v1/event-types/{name}"): ("tenant", event_type_attacks("DELETE")),
    ("POST", "/v1/tenants"): ("admin", no_attacks),
    ("GET", "/v1/tenants"): ("admin", no_attacks),
    ("PATCH", "/v1/tenants/{tenant_id}"): ("admin", no_attacks),
    ("POST", "/v1/tenants/{tenant_id}/keys"): ("admin", no_attacks),
    ("DELETE", "/v1/tenants/{tenant_id}/keys/{key_id}"): ("admin", no_attacks),
    ("PUT", "/v1/users/{user_id}/profile"): ("tenant", profile_attacks("PUT")),
    ("PATCH", "/v1/users/{user_id}/profile"): ("tenant", profile_attacks("PATCH")),
    ("GET", "/v1/users/{user_id}/profile"): ("tenant", profile_attacks("GET")),
    ("DELETE", "/v1/users/{user_id}/profile"): ("tenant", profile_attacks("DELETE")),
    ("GET", "/v1/profiles"): ("tenant", lookup_attacks),
    ("POST", "/v1/users/{user_id}/exports"): ("tenant", create_export_attacks),
    ("GET", "/v1/exports/{export_id}"): ("tenant", export_attacks),
}


def document_routes() -> set[tuple[str, str]]:
    document = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    return {
        (method.upper(), path) for path, item in document["paths"].items() for method in item if method in HTTP_METHODS
    }


def template_routes() -> set[tuple[str, str]]:
    return {(route.method.upper(), route.path) for spec in load_template().functions.values() for route in spec.routes}


def concrete(w: World, method: str, route: str) -> tuple[str, Any]:
    """The route with A's ids in its path, and a body that would do harm if it were accepted."""
    path = (
        route.replace("{user_id}", VICTIM)
        .replace("{tenant_id}", w.a_id)
        .replace("{key_id}", str(w.a["key_id"]))
        .replace("{erasure_id}", w.a_erasure_id)
        .replace("{action}", A_ACTION)
        .replace("{property}", A_PROPERTY)
        .replace("{name}", A_TYPE)
        .replace("{export_id}", w.a_export_id)
    )
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/v1/events"): {"event_id": "victim-1", "user_id": VICTIM, "action": "x"},
        ("POST", "/v1/events/batch"): {"events": [{"event_id": "victim-1", "user_id": VICTIM, "action": "x"}]},
        ("POST", "/v1/tenants"): {"name": f"Intruder {secrets.token_hex(4)}", "timezone": "UTC"},
        ("PATCH", "/v1/tenants/{tenant_id}"): {"active": False},
        ("POST", "/v1/event-types"): {"name": A_TYPE, "points": 0},
        ("PATCH", "/v1/event-types/{name}"): {"points": 0},
        ("PUT", "/v1/users/{user_id}/profile"): {"traits": {"intruder": True}},
        ("PATCH", "/v1/users/{user_id}/profile"): {"traits": {"intruder": True}},
    }
    return path, bodies.get((method, route))


def generic_attacks(w: World, method: str, route: str, kind: str) -> list[Attack]:
    """The keys that must not get through, on any route that needs one."""
    path, body = concrete(w, method, route)
    if kind == "public":
        return []
    attacks = [
        Attack("no key", method, path, None, 401, body=body),
        Attack("unknown key", method, path, w.unknown_key, 401, body=body),
        Attack("revoked key", method, path, w.revoked_key, 401, body=body),
        Attack("inactive tenant key", method, path, w.inactive_key, 403, body=body),
    ]
    if kind == "tenant":
        attacks.append(Attack("admin key on tenant route", method, path, w.stack.admin_key, 403, body=body))
    return attacks


def attack_plan(w: World) -> Iterator[tuple[tuple[str, str], Attack]]:
    for (method, route), (kind, specific) in ROUTES.items():
        for attack in generic_attacks(w, method, route, kind):
            yield (method, route), attack
        if kind == "admin":
            for attack in admin_attacks(w, method, route):
                yield (method, route), attack
        for attack in specific(w):
            yield (method, route), attack


# ---------------------------------------------------------------- tests


def test_the_attack_table_covers_every_route_of_the_document_and_the_template() -> None:
    missing = (document_routes() | template_routes()) - set(ROUTES)
    assert not missing, f"routes without attacks (add them to ROUTES): {sorted(missing)}"


def test_the_openapi_document_lists_every_route_of_the_template() -> None:
    # The document is what clients (and this file) enumerate: a route it lacks escapes review.
    assert sorted(template_routes() - document_routes()) == []
    assert sorted(document_routes() - template_routes()) == []


@dataclass
class Outcome:
    failures: list[str] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    leaks: int = 0
    b_erasures: list[str] = field(default_factory=list)


def judge(world: World, label: str, attack: Attack, reply: Reply, outcome: Outcome) -> None:
    text = json.dumps(reply.body)
    leaked = [secret for secret in world.secrets_of_a() if secret in text]
    if leaked:
        outcome.leaks += 1
        outcome.failures.append(f"{label}: the answer holds A's {leaked}: {text[:300]}")
    if reply.status != attack.expect:
        outcome.failures.append(f"{label}: expected {attack.expect}, got {reply.status} {text[:300]}")
        return
    if reply.status >= 400 and not (isinstance(reply.body, dict) and "error" in reply.body):
        outcome.failures.append(f"{label}: {reply.status} without the error shape: {text[:300]}")
    problem = attack.check(reply.body) if attack.check is not None and reply.status < 400 else None
    if problem:
        outcome.failures.append(f"{label}: {problem}: {text[:300]}")
    if attack.method == "DELETE" and reply.status == 202 and attack.key == world.b_key:
        outcome.b_erasures.append(str(reply.body["erasure_id"]))


def finish_b_erasures(world: World, outcome: Outcome) -> None:
    """B's erasures end before B writes: they can only have erased B's own (empty) victim."""
    for erasure_id in outcome.b_erasures:
        done = wait_for_erasure(world.stack, world.b_key, erasure_id)
        if (done["status"], done["deleted_events"]) != ("completed", 0):
            outcome.failures.append(f"B's erasure of {VICTIM!r} ended as {done}")


def check_a_untouched_and_b_kept_its_own(world: World, outcome: Outcome) -> None:
    stack = world.stack
    run_rollup(stack, datetime.now(UTC))
    # A: same events, same statistics after another rollup, its keys still work
    if all_events(stack, world.a_key, VICTIM) != world.a_events:
        outcome.failures.append("A's events changed during the attacks")
    a_stats = world.read_stats(world.a_key)
    outcome.failures += [
        f"A's {name} changed: {before} -> {a_stats[name]}"
        for name, before in world.a_stats.items()
        if a_stats[name] != before
    ]
    if world.read_types(world.a_key) != world.a_types:
        outcome.failures.append("A's event types changed during the attacks")
    if send(stack, "GET", "/v1/stats/daily", key=str(world.a_second_key["api_key"])).status != 200:
        outcome.failures.append("A's second key stopped working")
    # A: the same profile, found by its email; the same export, downloadable
    a_profile_now = send(stack, "GET", f"/v1/users/{VICTIM}/profile", key=world.a_key).body
    if {name: a_profile_now.get(name) for name in a_profile(world)} != a_profile(world):
        outcome.failures.append(f"A's profile changed during the attacks: {a_profile_now}")
    found = send(stack, "GET", f"/v1/profiles?{urlencode({'email': world.a_email})}", key=world.a_key).body
    if [item["user_id"] for item in found["items"]] != [VICTIM]:
        outcome.failures.append(f"A's profile is no longer found by its email: {found}")
    if send(stack, "GET", f"/v1/exports/{world.a_export_id}", key=world.a_key).body.get("status") != "completed":
        outcome.failures.append("A's export changed during the attacks")
    # B: what B can read of its own "victim" holds nothing of A's
    b_profile = send(stack, "GET", f"/v1/users/{VICTIM}/profile", key=world.b_key)
    if b_profile.status == 200 and world.marker in json.dumps(b_profile.body):
        outcome.failures.append("B's profile holds A's data")
    # B: its victim has exactly the events B sent, none of A's content or received_at
    b_events = all_events(stack, world.b_key, VICTIM)
    if sorted(event["event_id"] for event in b_events) != ["victim-1", "victim-2", "victim-3"]:
        outcome.failures.append(f"B's victim events are not what B sent: {b_events}")
    if world.marker in json.dumps(b_events):
        outcome.failures.append("B's events hold A's metadata")
    a_received = {event["event_id"]: event["received_at"] for event in world.a_events}
    outcome.failures += [
        f"B's {event['event_id']} has A's received_at: it is A's event"
        for event in b_events
        if event["received_at"] == a_received.get(event["event_id"])
    ]


def test_no_route_gives_one_tenant_anything_of_another(world: World) -> None:
    # Given tenant A with data and tenant B with a key (the world fixture)
    plan = sorted(attack_plan(world), key=lambda entry: TENANT_ROUTES_PHASES.index(entry[1].phase))
    outcome = Outcome()
    phase = "read"
    # When every route is called with every attack: reads, then B's erasures, then B's writes
    for (method, route), attack in plan:
        if phase == "erase" and attack.phase != phase:
            finish_b_erasures(world, outcome)
        phase = attack.phase
        outcome.kinds[attack.kind] += 1
        reply = send(world.stack, attack.method, attack.path, attack.body, attack.key, attack.headers)
        judge(world, f"{method} {route} [{attack.kind}] {attack.method} {attack.path}", attack, reply, outcome)
    # Then A is untouched and what B wrote is B's
    check_a_untouched_and_b_kept_its_own(world, outcome)
    routes = len({route for route, _ in plan})
    print(
        f"\nisolation: {routes} routes x {len(outcome.kinds)} attacks = {len(plan)} requests, "
        f"{outcome.leaks} leaks, {len(outcome.failures)} failures"
    )
    for kind, count in sorted(outcome.kinds.items()):
        print(f"  {count:4d}  {kind}")
    assert not outcome.failures, "\n".join(outcome.failures)


def test_a_cursor_the_caller_signed_itself_is_a_400_not_a_500(world: World) -> None:
    """The cursor digest has no secret, so a client can sign any position for its own query.

    The position must still be checked before use: a malformed one is a bad cursor (400), never a 500.
    """
    binding = EventFilter(start=None, end=None, action=None, descending=False, limit=1).binding(
        str(world.b["tenant_id"]), VICTIM
    )
    cursor = encode_cursor("no-separator", binding)
    reply = send(world.stack, "GET", f"/v1/users/{VICTIM}/events?limit=1&cursor={cursor}", key=world.b_key)
    assert reply.status == 400, (reply.status, reply.body)
    assert reply.body["error"]["code"] == "bad_request", reply.body
