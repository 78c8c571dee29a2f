"""The catalog of event types (api.md, "Event types"): create, read, change, delete, search; in-memory store."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.fakes import InMemoryEventTypeStore
from tracker import catalog
from tracker.catalog_models import EventTypeIn, EventTypePage, EventTypePatch
from tracker.errors import BadRequest, Conflict, NotFound, ValidationFailed
from tracker.interfaces import EventTypeChanges

from .support import OTHER_TENANT, RECEIVED, TENANT

LATER = RECEIVED + timedelta(minutes=5)


def purchase(**fields: Any) -> EventTypeIn:
    body: dict[str, Any] = {
        "name": "purchase",
        "description": "When someone buys",
        "points": 10,
        "properties": {"amount": {"type": "number", "required": True}, "sku": {"type": "string"}},
    }
    body.update(fields)
    return EventTypeIn.model_validate(body)


@pytest.fixture
def store() -> InMemoryEventTypeStore:
    return InMemoryEventTypeStore()


# ---------------------------------------------------------------- create, read, change, delete


def test_a_created_type_reads_back_with_its_times(store: InMemoryEventTypeStore) -> None:
    # Given a new event type
    created = catalog.create_event_type(store, TENANT, purchase(), now=RECEIVED)
    # When it is read
    read = catalog.get_event_type(store, TENANT, "purchase")
    # Then it is what was sent, with created_at = updated_at
    assert read == created
    assert read.points == 10
    assert read.properties["amount"].required is True
    assert read.properties["sku"].required is False
    assert read.created_at == read.updated_at == RECEIVED


def test_defaults_are_no_description_no_points_no_properties(store: InMemoryEventTypeStore) -> None:
    created = catalog.create_event_type(store, TENANT, EventTypeIn.model_validate({"name": "login"}))
    assert (created.description, created.points, created.properties) == ("", 0, {})


def test_the_same_name_again_is_a_conflict_and_changes_nothing(store: InMemoryEventTypeStore) -> None:
    catalog.create_event_type(store, TENANT, purchase(), now=RECEIVED)
    with pytest.raises(Conflict):
        catalog.create_event_type(store, TENANT, purchase(points=99), now=LATER)
    assert catalog.get_event_type(store, TENANT, "purchase").points == 10


def test_names_differ_by_case_and_by_tenant(store: InMemoryEventTypeStore) -> None:
    catalog.create_event_type(store, TENANT, purchase())
    catalog.create_event_type(store, TENANT, purchase(name="Purchase"))
    catalog.create_event_type(store, OTHER_TENANT, purchase(points=1))
    assert catalog.get_event_type(store, OTHER_TENANT, "purchase").points == 1
    assert catalog.get_event_type(store, TENANT, "purchase").points == 10


@pytest.mark.parametrize("name", ["unknown", "with space", "x" * 65, "x" * 2000, "é", ""])
def test_an_unknown_or_impossible_name_is_404_and_impossible_ones_never_reach_the_store(
    store: InMemoryEventTypeStore, name: str
) -> None:
    # Given a store that would fail if it were asked
    store.down = name != "unknown"
    # Then reading, changing or deleting the name is a 404
    with pytest.raises(NotFound):
        catalog.get_event_type(store, TENANT, name)
    with pytest.raises(NotFound):
        catalog.update_event_type(store, TENANT, name, EventTypePatch.model_validate({"points": 1}))
    with pytest.raises(NotFound):
        catalog.delete_event_type(store, TENANT, name)


def test_a_patch_changes_only_what_it_sends(store: InMemoryEventTypeStore) -> None:
    catalog.create_event_type(store, TENANT, purchase(), now=RECEIVED)
    # When only points are sent
    changed = catalog.update_event_type(store, TENANT, "purchase", EventTypePatch(points=20), now=LATER)
    # Then description and properties stay, updated_at moves, created_at does not
    assert changed.points == 20
    assert changed.description == "When someone buys"
    assert set(changed.properties) == {"amount", "sku"}
    assert (changed.created_at, changed.updated_at) == (RECEIVED, LATER)
    assert catalog.get_event_type(store, TENANT, "purchase") == changed


def test_a_patch_of_properties_replaces_the_map(store: InMemoryEventTypeStore) -> None:
    catalog.create_event_type(store, TENANT, purchase())
    patch = EventTypePatch.model_validate({"properties": {"quantity": {"type": "number"}}, "description": ""})
    changed = catalog.update_event_type(store, TENANT, "purchase", patch)
    assert set(changed.properties) == {"quantity"}
    assert changed.description == ""
    assert changed.points == 10


def test_a_patch_renaming_the_type_is_422_and_its_own_name_is_fine(store: InMemoryEventTypeStore) -> None:
    catalog.create_event_type(store, TENANT, purchase())
    with pytest.raises(ValidationFailed) as caught:
        catalog.update_event_type(store, TENANT, "purchase", EventTypePatch.model_validate({"name": "buy"}))
    assert [(d["field"], d["type"]) for d in caught.value.details] == [("name", "immutable")]
    assert catalog.get_event_type(store, TENANT, "purchase").name == "purchase"
    with pytest.raises(NotFound):
        catalog.get_event_type(store, TENANT, "buy")
    same = EventTypePatch.model_validate({"name": "purchase", "points": 3})
    assert catalog.update_event_type(store, TENANT, "purchase", same).points == 3


def test_a_deleted_type_is_gone_and_deleting_it_again_is_404(store: InMemoryEventTypeStore) -> None:
    catalog.create_event_type(store, TENANT, purchase())
    catalog.delete_event_type(store, TENANT, "purchase")
    with pytest.raises(NotFound):
        catalog.get_event_type(store, TENANT, "purchase")
    with pytest.raises(NotFound):
        catalog.delete_event_type(store, TENANT, "purchase")
    # and the name can be used again
    catalog.create_event_type(store, TENANT, purchase(points=4))


# ---------------------------------------------------------------- bad input (the models the routes use)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "has space"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": ""}, "name"),
        ({"name": "ok", "points": -1}, "points"),
        ({"name": "ok", "points": 1.5}, "points"),
        ({"name": "ok", "points": 10.0}, "points"),
        ({"name": "ok", "points": 10**12}, "points"),
        ({"name": "ok", "points": 1_000_001}, "points"),
        ({"name": "ok", "points": "10"}, "points"),
        ({"name": "ok", "points": True}, "points"),
        ({"name": "ok", "points": None}, "points"),
        ({"name": "ok", "properties": {f"p{i}": {"type": "string"} for i in range(51)}}, "properties"),
        ({"name": "ok", "properties": {"when": {"type": "date"}}}, "properties.when.type"),
        ({"name": "ok", "properties": {"a": {"type": "number", "required": "yes"}}}, "properties.a.required"),
        ({"name": "ok", "properties": {"a": {"type": "number", "unique": True}}}, "properties.a.unique"),
        ({"name": "ok", "properties": {"": {"type": "number"}}}, "properties."),
        ({"name": "ok", "properties": []}, "properties"),
        ({"name": "ok", "description": "x" * 1001}, "description"),
        ({"name": "ok", "description": "nul\x00"}, "description"),
        ({"name": "ok", "colour": "red"}, "colour"),
    ],
)
def test_bad_event_types_are_refused_naming_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        EventTypeIn.model_validate(body)
    fields = {".".join(str(part) for part in error["loc"]) for error in caught.value.errors()}
    assert any(name.startswith(field) for name in fields), fields


def test_the_limits_themselves_are_accepted() -> None:
    body = {
        "name": "x" * 64,
        "points": 1_000_000,
        "description": "line one\nline two\t" + "y" * 982,
        "properties": {f"p{i}": {"type": "boolean", "required": True} for i in range(50)},
    }
    assert len(body["description"]) == 1000
    assert EventTypeIn.model_validate(body).points == 1_000_000
    assert EventTypeIn.model_validate({"name": "a.b:c_d-E9", "points": 0}).points == 0


# ---------------------------------------------------------------- search and pages


def names(page: EventTypePage) -> list[str]:
    return [item.name for item in page.items]


def seed(store: InMemoryEventTypeStore, types: dict[str, str], tenant: str = TENANT) -> None:
    for name, description in types.items():
        catalog.create_event_type(store, tenant, EventTypeIn(name=name, description=description))


CATALOG = {
    "purchase": "When someone BUYS something",
    "refund": "Money back: 100% of the price",
    "signup": "A new account (Straße, Kyiv, Київ)",
    "login": "regex .* is not special",
    "Checkout.Start": "",
}


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("buy", ["purchase"]),
        ("BUY", ["purchase"]),
        ("CHECKOUT.s", ["Checkout.Start"]),
        ("o", ["Checkout.Start", "login", "purchase", "refund", "signup"]),
        ("%", ["refund"]),
        ("100%", ["refund"]),
        (".*", ["login"]),
        ("^purchase$", []),
        ("STRASSE", ["signup"]),
        ("київ", ["signup"]),
        ("КИЇВ", ["signup"]),
        ("x" * 1000, []),
        ("_", []),
    ],
)
def test_search_is_literal_case_insensitive_anywhere_in_name_or_description(
    store: InMemoryEventTypeStore, search: str, expected: list[str]
) -> None:
    seed(store, CATALOG)
    seed(store, {"buy-more": "another tenant's"}, tenant=OTHER_TENANT)
    assert names(catalog.search_event_types(store, TENANT, search, 100, None)) == expected


def test_no_search_lists_the_tenant_by_name(store: InMemoryEventTypeStore) -> None:
    seed(store, CATALOG)
    seed(store, {"zzz": ""}, tenant=OTHER_TENANT)
    assert names(catalog.search_event_types(store, TENANT, None, 100, None)) == sorted(CATALOG)
    assert names(catalog.search_event_types(store, TENANT, "", 100, None)) == sorted(CATALOG)


def test_a_cursor_only_works_for_its_tenant_and_search(store: InMemoryEventTypeStore) -> None:
    seed(store, CATALOG)
    cursor = catalog.search_event_types(store, TENANT, "o", 1, None).next_cursor
    assert cursor
    for tenant, search in [(OTHER_TENANT, "o"), (TENANT, "p"), (TENANT, None)]:
        with pytest.raises(BadRequest):
            catalog.search_event_types(store, tenant, search, 1, cursor)
    # the same search in another letter case is the same search
    assert catalog.search_event_types(store, TENANT, "O", 1, cursor).items


NAME_CHARS = "abAB09._:-"


@settings(max_examples=60, deadline=None)
@given(
    types=st.dictionaries(st.text(NAME_CHARS, min_size=1, max_size=6), st.text("abcAB %.*éÉ", max_size=8), max_size=25),
    search=st.text("abAB%.é", max_size=2),
    limit=st.integers(1, 7),
    budget=st.none() | st.integers(1, 5),
)
def test_pages_of_a_search_are_exactly_the_matching_types_by_name(
    types: dict[str, str], search: str, limit: int, budget: int | None
) -> None:
    # Given a catalog, and a store that may stop early at its read budget
    store = InMemoryEventTypeStore(page_budget=budget)
    seed(store, types)
    # When every page of the search is read
    found: list[str] = []
    cursor = None
    for _ in range(len(types) + 2):
        page = catalog.search_event_types(store, TENANT, search, limit, cursor)
        assert len(page.items) <= limit
        found += names(page)
        cursor = page.next_cursor
        if cursor is None:
            break
    # Then they are the brute-force answer: each match once, by name
    needle = search.casefold()
    expected = sorted(
        (name for name, text in types.items() if needle in name.casefold() or needle in text.casefold()),
        key=str.encode,
    )
    assert cursor is None
    assert found == expected


# ---------------------------------------------------------------- when each property was declared

EVEN_LATER = LATER + timedelta(minutes=5)


def stored(store: InMemoryEventTypeStore, name: str = "purchase") -> Any:
    record = store.get_event_type(TENANT, name)
    assert record is not None
    return record


def test_the_properties_of_a_new_type_are_declared_when_it_is_created(store: InMemoryEventTypeStore) -> None:
    catalog.create_event_type(store, TENANT, purchase(), now=RECEIVED)
    assert {key: rule.declared_at for key, rule in stored(store).properties.items()} == {
        "amount": RECEIVED,
        "sku": RECEIVED,
    }


def test_a_property_keeps_its_declaration_unless_its_type_changes(store: InMemoryEventTypeStore) -> None:
    # Given a type declared at RECEIVED
    catalog.create_event_type(store, TENANT, purchase(), now=RECEIVED)
    # When a patch keeps amount (now optional), turns sku into a number and adds quantity
    properties = {"amount": {"type": "number"}, "sku": {"type": "number"}, "quantity": {"type": "number"}}
    patch = EventTypePatch.model_validate({"properties": properties})
    catalog.update_event_type(store, TENANT, "purchase", patch, now=LATER)
    # Then amount is still declared since RECEIVED; sku and quantity since the patch
    rules = stored(store).properties
    assert {key: rule.declared_at for key, rule in rules.items()} == {
        "amount": RECEIVED,
        "sku": LATER,
        "quantity": LATER,
    }
    assert rules["amount"].required is False
    # And a property dropped and declared again starts again
    catalog.update_event_type(store, TENANT, "purchase", EventTypePatch(properties={}), now=EVEN_LATER)
    catalog.update_event_type(
        store, TENANT, "purchase", EventTypePatch.model_validate({"properties": properties}), now=EVEN_LATER
    )
    assert {rule.declared_at for rule in stored(store).properties.values()} == {EVEN_LATER}


def test_a_patch_without_properties_leaves_the_declarations(store: InMemoryEventTypeStore) -> None:
    catalog.create_event_type(store, TENANT, purchase(), now=RECEIVED)
    catalog.update_event_type(store, TENANT, "purchase", EventTypePatch(points=1), now=LATER)
    assert {rule.declared_at for rule in stored(store).properties.values()} == {RECEIVED}


class MovingStore(InMemoryEventTypeStore):
    """Another writer changes the type between each read and write of a patch, ``moves`` times."""

    def __init__(self, moves: int, delete: bool = False) -> None:
        super().__init__()
        self.moves = moves
        self.delete = delete

    def get_event_type(self, tenant_id: str, name: str) -> Any:
        record = super().get_event_type(tenant_id, name)
        if self.moves > 0 and record is not None:
            self.moves -= 1
            if self.delete:
                self.delete_event_type(tenant_id, name)
            else:
                super().update_event_type(tenant_id, name, EventTypeChanges(None, 99, None, RECEIVED))
        return record


def test_a_patch_of_properties_computed_from_a_stale_version_is_computed_again() -> None:
    store = MovingStore(moves=2)
    catalog.create_event_type(store, TENANT, purchase(), now=RECEIVED)
    patch = EventTypePatch.model_validate({"properties": {"amount": {"type": "string"}}})
    changed = catalog.update_event_type(store, TENANT, "purchase", patch, now=LATER)
    assert changed.properties["amount"].type == "string"
    assert changed.points == 99
    assert stored(store).version == 3


def test_a_type_that_keeps_changing_is_a_409_and_one_deleted_meanwhile_a_404() -> None:
    store = MovingStore(moves=catalog.MAX_EDIT_ATTEMPTS)
    catalog.create_event_type(store, TENANT, purchase(), now=RECEIVED)
    patch = EventTypePatch.model_validate({"properties": {}})
    with pytest.raises(Conflict):
        catalog.update_event_type(store, TENANT, "purchase", patch, now=LATER)
    assert set(stored(store).properties) == {"amount", "sku"}
    deleting = MovingStore(moves=1, delete=True)
    catalog.create_event_type(deleting, TENANT, purchase(), now=RECEIVED)
    with pytest.raises(NotFound):
        catalog.update_event_type(deleting, TENANT, "purchase", patch, now=LATER)
