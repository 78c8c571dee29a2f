"""Event types through the real handlers on moto: the catalog routes, the tenant's validation mode,
the authorizer's context and the tracking plan at ingest (api.md, "Event types")."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any
from urllib.parse import quote

import pytest

from local_stack.template import Template
from tracker.adapters.catalog_table import DynamoEventTypeStore
from tracker.adapters.events_table import event_from_item
from tracker.interfaces import EventTypeChanges
from tracker.records import EventRecord, TenantRecord

from .support import (
    Functions,
    HttpAnswer,
    admin_context,
    api_event,
    assert_error_shape,
    authorizer_event,
    create_tenant,
    patch_tenant,
    tenant_context,
    tenant_store,
)

TENANT = "ten_eventtypes000001"
OTHER = "ten_eventtypes000002"
COLLECTION = "/v1/event-types"
ITEM = "/v1/event-types/{name}"
PURCHASE = {
    "name": "purchase",
    "description": "When someone buys",
    "points": 10,
    "properties": {"amount": {"type": "number", "required": True}, "sku": {"type": "string"}},
}


@pytest.fixture(autouse=True)
def fresh_catalog_cache(function_modules: dict[str, ModuleType]) -> Iterator[None]:
    """Each test starts with a cold ingest environment: no event type cached from another test's moto."""
    function_modules["IngestFunction"].CATALOG.clear()
    yield
    function_modules["IngestFunction"].CATALOG.clear()


def call(
    functions: Functions,
    method: str,
    name: str | None = None,
    body: Any = None,
    query: dict[str, str] | None = None,
    tenant: str = TENANT,
    raw_body: str | None = None,
) -> HttpAnswer:
    resource = COLLECTION if name is None else ITEM
    return functions.http(
        api_event(
            method,
            resource,
            authorizer=tenant_context(tenant),
            path_parameters=None if name is None else {"name": name},
            query=query,
            body=body,
            raw_body=raw_body,
        )
    )


def create(functions: Functions, body: dict[str, Any], tenant: str = TENANT) -> HttpAnswer:
    return call(functions, "POST", body=body, tenant=tenant)


# ---------------------------------------------------------------- the catalog routes


def test_create_read_change_delete(functions: Functions) -> None:
    # Given a new event type
    created = create(functions, PURCHASE)
    assert created.status == 201, created.body
    assert {key: created.body[key] for key in PURCHASE} == {
        **PURCHASE,
        "properties": {"amount": {"type": "number", "required": True}, "sku": {"type": "string", "required": False}},
    }
    assert created.body["created_at"] == created.body["updated_at"]
    assert created.body["created_at"].endswith("Z")
    # When it is read, changed, listed and deleted
    assert call(functions, "GET", "purchase").body == created.body
    changed = call(functions, "PATCH", "purchase", {"points": 20, "description": "Bought"})
    assert changed.status == 200, changed.body
    assert (changed.body["points"], changed.body["description"]) == (20, "Bought")
    assert changed.body["properties"] == created.body["properties"]
    assert changed.body["created_at"] == created.body["created_at"]
    listed = call(functions, "GET")
    assert listed.status == 200
    assert listed.body == {"items": [changed.body], "next_cursor": None}
    deleted = call(functions, "DELETE", "purchase")
    assert deleted.status == 204
    assert deleted.body is None
    # Then it is gone
    assert_error_shape(call(functions, "GET", "purchase"), 404, "not_found")
    assert_error_shape(call(functions, "DELETE", "purchase"), 404, "not_found")
    assert_error_shape(call(functions, "PATCH", "purchase", {"points": 1}), 404, "not_found")


def test_a_duplicate_name_is_409(functions: Functions) -> None:
    assert create(functions, PURCHASE).status == 201
    assert_error_shape(create(functions, {**PURCHASE, "points": 1}), 409, "conflict")
    assert call(functions, "GET", "purchase").body["points"] == 10


def test_a_patch_renaming_the_type_is_422(functions: Functions) -> None:
    create(functions, PURCHASE)
    answer = call(functions, "PATCH", "purchase", {"name": "buy"})
    assert_error_shape(answer, 422, "validation_error")
    assert answer.body["error"]["details"][0]["field"] == "name"
    assert call(functions, "GET", "purchase").status == 200
    assert call(functions, "GET", "buy").status == 404


BAD_BODIES: dict[str, tuple[dict[str, Any], str]] = {
    "name with spaces": ({"name": "has space"}, "name"),
    "name of 65 chars": ({"name": "x" * 65}, "name"),
    "points -1": ({"name": "ok", "points": -1}, "points"),
    "points 1.5": ({"name": "ok", "points": 1.5}, "points"),
    "points 10^12": ({"name": "ok", "points": 10**12}, "points"),
    "points a string": ({"name": "ok", "points": "10"}, "points"),
    "points true": ({"name": "ok", "points": True}, "points"),
    "51 properties": ({"name": "ok", "properties": {f"p{i}": {"type": "number"} for i in range(51)}}, "properties"),
    "property type date": ({"name": "ok", "properties": {"when": {"type": "date"}}}, "properties.when.type"),
    "required not a boolean": ({"name": "ok", "properties": {"a": {"type": "number", "required": 1}}}, "properties"),
    "unknown field": ({"name": "ok", "colour": "red"}, "colour"),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_event_types_are_422_naming_the_field(functions: Functions, case: str) -> None:
    body, field = BAD_BODIES[case]
    answer = create(functions, body)
    assert_error_shape(answer, 422, "validation_error")
    assert any(detail["field"].startswith(field) for detail in answer.body["error"]["details"]), answer.body
    # and a PATCH with the same fields (without the name) is refused the same way
    create(functions, {"name": "ok"})
    patch = {key: value for key, value in body.items() if key != "name"}
    if patch:
        assert_error_shape(call(functions, "PATCH", "ok", patch), 422, "validation_error")


@pytest.mark.parametrize(
    ("raw", "status"),
    [("{not json", 400), ('{"name": "a", "name": "b"}', 400), ('{"name": "a", "points": 1e400}', 422)],
)
def test_unreadable_bodies_are_4xx(functions: Functions, raw: str, status: int) -> None:
    assert call(functions, "POST", raw_body=raw).status == status


@pytest.mark.parametrize("name", ["has space", "x" * 65, "x" * 3000, "é"])
def test_impossible_names_in_the_path_are_404_not_500(functions: Functions, name: str) -> None:
    for method, body in [("GET", None), ("PATCH", {"points": 1}), ("DELETE", None)]:
        assert_error_shape(call(functions, method, name, body), 404, "not_found")


def test_search_is_literal_case_insensitive_and_anywhere(functions: Functions) -> None:
    for name, description in {
        "purchase": "When someone BUYS",
        "refund": "100% back",
        "login": "regex .* is literal",
        "signup": "Kyiv Київ Straße",
    }.items():
        assert create(functions, {"name": name, "description": description}).status == 201
    create(functions, {"name": "buy-elsewhere"}, tenant=OTHER)

    def search(text: str) -> list[str]:
        answer = call(functions, "GET", query={"search": text})
        assert answer.status == 200, answer.body
        return [item["name"] for item in answer.body["items"]]

    assert search("buy") == ["purchase"]
    assert search("UP") == ["signup"]
    assert search("%") == ["refund"]
    assert search(".*") == ["login"]
    assert search("КИЇВ") == ["signup"]
    assert search("STRASSE") == ["signup"]
    assert search("x" * 1000) == []
    assert search("") == ["login", "purchase", "refund", "signup"]


@pytest.mark.parametrize(
    ("search", "status"), [("x" * 1025, 422), ("a\x00b", 422), ("tab\there", 422), ("lone \ud800", 422)]
)
def test_bad_searches_are_4xx(functions: Functions, search: str, status: int) -> None:
    assert_error_shape(call(functions, "GET", query={"search": search}), status, "validation_error")


def test_pages_follow_the_cursor_and_a_foreign_cursor_is_400(functions: Functions) -> None:
    for index in range(7):
        create(functions, {"name": f"type-{index}", "description": "odd" if index % 2 else "even"})
    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = {"limit": "2", "search": "ODD", **({"cursor": cursor} if cursor else {})}
        answer = call(functions, "GET", query=query)
        assert answer.status == 200, answer.body
        seen += [item["name"] for item in answer.body["items"]]
        cursor = answer.body["next_cursor"]
        if cursor is None:
            break
        foreign = call(functions, "GET", query={**query, "cursor": cursor}, tenant=OTHER)
        assert_error_shape(foreign, 400, "bad_request")
        other_search = call(functions, "GET", query={"limit": "2", "cursor": cursor})
        assert_error_shape(other_search, 400, "bad_request")
    assert seen == ["type-1", "type-3", "type-5"]


def test_another_tenant_sees_nothing_of_the_catalog(functions: Functions) -> None:
    create(functions, PURCHASE)
    assert call(functions, "GET", tenant=OTHER).body == {"items": [], "next_cursor": None}
    assert call(functions, "GET", "purchase", tenant=OTHER).status == 404
    assert call(functions, "PATCH", "purchase", {"points": 0}, tenant=OTHER).status == 404
    assert call(functions, "DELETE", "purchase", tenant=OTHER).status == 404
    assert create(functions, PURCHASE, tenant=OTHER).status == 201
    assert call(functions, "GET", "purchase").body["points"] == 10


def test_an_admin_key_is_refused(functions: Functions) -> None:
    answer = functions.http(api_event("GET", COLLECTION, authorizer=admin_context()))
    assert_error_shape(answer, 403, "forbidden")


# ---------------------------------------------------------------- the tenant's validation mode


def test_validation_set_by_the_admin_reaches_the_authorizer_context(
    functions: Functions, template: Template, dynamodb: Any
) -> None:
    # Given a tenant with a key
    created = create_tenant(functions, "Plan")
    assert created["validation"] == "off"
    tenant_id = created["tenant_id"]
    # When the admin sets block, Then the tenant says so and the authorizer passes it with the key
    patched = patch_tenant(functions, tenant_id, {"validation": "block"})
    assert patched.status == 200, patched.body
    assert patched.body["validation"] == "block"
    policy = functions.invoke("AuthorizerFunction", authorizer_event(created["api_key"]))
    assert policy["context"]["validation"] == "block"
    stored = tenant_store(template, dynamodb).get_tenant(tenant_id)
    assert isinstance(stored, TenantRecord)
    assert stored.validation == "block"
    # and a bad mode is a 422
    assert_error_shape(patch_tenant(functions, tenant_id, {"validation": "strict"}), 422, "validation_error")


# ---------------------------------------------------------------- the plan at ingest


def ingest(functions: Functions, path: str, body: Any, mode: str | None) -> HttpAnswer:
    context = tenant_context(TENANT)
    if mode is not None:
        context["validation"] = mode
    return functions.http(api_event("POST", path, authorizer=context, body=body))


def good_purchase(event_id: str) -> dict[str, Any]:
    return {"event_id": event_id, "user_id": "u1", "action": "purchase", "metadata": {"amount": 50, "sku": "A"}}


@pytest.mark.parametrize(
    ("metadata", "kind"),
    [
        ({"amount": "50"}, "type_mismatch"),
        ({"amount": True}, "type_mismatch"),
        ({"amount": "NaN"}, "type_mismatch"),
        ({"sku": "no amount"}, "required_missing"),
        ({"amount": None}, "required_missing"),
    ],
)
def test_block_rejects_a_single_event_that_breaks_its_type(
    functions: Functions, template: Template, dynamodb: Any, metadata: dict[str, Any], kind: str
) -> None:
    create(functions, PURCHASE)
    event = {"event_id": "e1", "user_id": "u1", "action": "purchase", "metadata": metadata}
    answer = ingest(functions, "/v1/events", event, "block")
    assert_error_shape(answer, 422, "validation_error")
    assert [(d["field"], d["type"]) for d in answer.body["error"]["details"]] == [("metadata.amount", kind)]
    assert stored_event(template, dynamodb, "e1") is None


def test_a_number_sent_as_1e400_is_refused_not_stored_as_infinity(functions: Functions) -> None:
    create(functions, PURCHASE)
    raw = '{"event_id": "e1", "user_id": "u1", "action": "purchase", "metadata": {"amount": 1e400}}'
    for mode in ("off", "block"):
        context = {**tenant_context(TENANT), "validation": mode}
        answer = functions.http(api_event("POST", "/v1/events", authorizer=context, raw_body=raw))
        assert 400 <= answer.status < 500, (mode, answer.status, answer.body)


def test_block_rejects_an_unplanned_action_and_off_stores_it(functions: Functions) -> None:
    event = {"event_id": "e1", "user_id": "u1", "action": "teleport"}
    blocked = ingest(functions, "/v1/events", event, "block")
    assert_error_shape(blocked, 422, "validation_error")
    assert blocked.body["error"]["details"][0]["type"] == "unplanned_action"
    assert ingest(functions, "/v1/events", event, "off").status == 201
    assert ingest(functions, "/v1/events", {**event, "event_id": "e2"}, None).status == 201


def stored_event(template: Template, dynamodb: Any, event_id: str) -> EventRecord | None:
    table = template.functions["IngestFunction"].environment["EVENTS_TABLE"]
    item = dynamodb.get_item(TableName=table, Key={"pk": {"S": f"{TENANT}#{event_id}"}}).get("Item")
    return event_from_item(item) if item else None


def test_flag_stores_the_event_with_its_violations(functions: Functions, template: Template, dynamodb: Any) -> None:
    create(functions, PURCHASE)
    event = {"event_id": "e1", "user_id": "u1", "action": "purchase", "metadata": {"amount": "50"}}
    assert ingest(functions, "/v1/events", event, "flag").status == 201
    stored = stored_event(template, dynamodb, "e1")
    assert stored is not None
    assert [(v.kind, v.field) for v in stored.violations] == [("type_mismatch", "metadata.amount")]
    # a retry is a duplicate, flagged or not; a clean event carries no violations attribute
    again = ingest(functions, "/v1/events", event, "flag")
    assert (again.status, again.body["status"]) == (200, "duplicate")
    assert ingest(functions, "/v1/events", good_purchase("e2"), "flag").status == 201
    table = template.functions["IngestFunction"].environment["EVENTS_TABLE"]
    item = dynamodb.get_item(TableName=table, Key={"pk": {"S": f"{TENANT}#e2"}})["Item"]
    assert "violations" not in item


def test_block_with_a_batch_of_500_rejects_exactly_the_250_bad_events(
    functions: Functions, template: Template, dynamodb: Any
) -> None:
    # Given a catalog, and a batch of 500 where every other event breaks it
    create(functions, PURCHASE)
    create(functions, {"name": "login"})
    bad_kinds = [
        ({"action": "teleport"}, "unplanned_action"),
        ({"action": "purchase", "metadata": {"sku": "A"}}, "required_missing"),
        ({"action": "purchase", "metadata": {"amount": "50"}}, "type_mismatch"),
        ({"action": "purchase", "metadata": {"amount": True}}, "type_mismatch"),
    ]
    events = []
    for index in range(500):
        if index % 2 == 0:
            good = good_purchase(f"e{index:03d}")
            events.append(good if index % 4 else {**good, "action": "login"})
        else:
            fields, _ = bad_kinds[(index // 2) % 4]
            events.append({"event_id": f"e{index:03d}", "user_id": "u1", **fields})
    started = time.perf_counter()
    # When it is sent in block mode
    answer = ingest(functions, "/v1/events/batch", {"events": events}, "block")
    elapsed = time.perf_counter() - started
    # Then exactly those 250 are rejected, each with its violation, and the 250 others stored
    assert answer.status == 200, answer.body
    assert (answer.body["accepted"], answer.body["duplicates"], answer.body["rejected"]) == (250, 0, 250)
    for result in answer.body["results"]:
        index = result["index"]
        assert result["event_id"] == f"e{index:03d}"
        if index % 2 == 0:
            assert result["status"] == "accepted"
        else:
            assert result["status"] == "rejected"
            assert result["error"]["code"] == "validation_error"
            assert [d["type"] for d in result["error"]["details"]] == [bad_kinds[(index // 2) % 4][1]]
    table = template.functions["IngestFunction"].environment["EVENTS_TABLE"]
    stored = {item["event_id"]["S"] for item in dynamodb.scan(TableName=table)["Items"]}
    assert stored == {f"e{index:03d}" for index in range(0, 500, 2)}
    print(f"\nbatch of 500 in block mode through the handler on moto: {elapsed:.2f} s")


def test_the_catalog_is_read_once_per_action_per_cache_period(
    functions: Functions, function_modules: dict[str, ModuleType]
) -> None:
    # Given a catalog and a warm ingest environment that read it
    create(functions, PURCHASE)
    assert ingest(functions, "/v1/events", good_purchase("e1"), "block").status == 201
    cache = function_modules["IngestFunction"].CATALOG
    assert cache.ttl_seconds == 30
    # When the type is deleted, Then the environment keeps its copy until the cache period ends
    assert call(functions, "DELETE", "purchase").status == 204
    assert ingest(functions, "/v1/events", good_purchase("e2"), "block").status == 201
    cache.clear()  # as the period running out does
    answer = ingest(functions, "/v1/events", good_purchase("e3"), "block")
    assert_error_shape(answer, 422, "validation_error")
    assert answer.body["error"]["details"][0]["type"] == "unplanned_action"


def test_names_with_any_percent_encoding_reach_the_handler_decoded(functions: Functions) -> None:
    create(functions, {"name": "a:b"})
    event = api_event("GET", ITEM, authorizer=tenant_context(TENANT), path_parameters={"name": "a:b"})
    assert quote("a:b", safe="") in event["path"]
    assert functions.http(event).status == 200
    assert json.loads(json.dumps(functions.http(event).body))["name"] == "a:b"


def test_the_store_keeps_declarations_and_applies_a_change_only_to_its_version(
    functions: Functions, template: Template, dynamodb: Any
) -> None:
    # Given a type created, then patched with a new property
    store = DynamoEventTypeStore(dynamodb, template.functions["EventTypesFunction"].environment["CATALOG_TABLE"])
    create(functions, PURCHASE)
    created = store.get_event_type(TENANT, "purchase")
    assert created is not None
    assert created.version == 0
    properties = {**PURCHASE["properties"], "coupon": {"type": "string"}}
    assert call(functions, "PATCH", "purchase", {"properties": properties}).status == 200
    patched = store.get_event_type(TENANT, "purchase")
    assert patched is not None
    # Then the kept properties keep their declaration, the new one has the patch's, and the version moved
    assert patched.version == 1
    assert patched.properties["amount"].declared_at == created.properties["amount"].declared_at
    assert patched.properties["coupon"].declared_at == patched.updated_at
    # And a change computed from version 0 is refused by the store
    stale = EventTypeChanges(None, 5, {}, patched.updated_at, expected_version=0)
    assert store.update_event_type(TENANT, "purchase", stale) is None
    assert store.get_event_type(TENANT, "purchase") == patched
