"""Profile logic on an in-memory store: the field rules, PUT/PATCH semantics, the keyed email lookup."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.profile_fakes import InMemoryProfileStore
from tracker.errors import Conflict, NotFound
from tracker.profile_models import ProfileIn
from tracker.profiles import Profiles, email_key

TENANT = "ten_unit"
SECRET = b"s" * 32


class FixedKey:
    def lookup_key(self) -> bytes:
        return SECRET


@pytest.fixture
def store() -> InMemoryProfileStore:
    return InMemoryProfileStore()


@pytest.fixture
def profiles(store: InMemoryProfileStore) -> Profiles:
    return Profiles(store, FixedKey())


@settings(max_examples=200)
@given(st.emails().filter(lambda email: len(email) <= 254))
def test_every_valid_address_is_accepted_and_found_in_any_letter_case(email: str) -> None:
    # Given an address Hypothesis considers valid (RFC 5322 dot-atoms), When it is validated, Then it is kept as given
    assert ProfileIn(email=email).email == email
    # And its keyed hash is the same in any letter case, and differs per tenant
    assert email_key(SECRET, TENANT, email) == email_key(SECRET, TENANT, email.upper())
    assert email_key(SECRET, TENANT, email) == email_key(SECRET, TENANT, email.swapcase())
    assert email_key(SECRET, TENANT, email) != email_key(SECRET, "ten_other", email)
    assert email.lower() not in email_key(SECRET, TENANT, email)


@settings(max_examples=200)
@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=40))
def test_no_text_with_a_control_character_or_non_ascii_is_an_email(text: str) -> None:
    candidate = f"{text}@example.com"
    if any(ord(char) < 0x20 or ord(char) > 0x7E for char in text):
        with pytest.raises(ValidationError):
            ProfileIn(email=candidate)


@pytest.mark.parametrize(
    "body",
    [
        {"phone": "12345"},
        {"phone": "+1234567"},
        {"email": "a@b.example\n"},
        {"traits": [1]},
        {"first_name": "a\x00b"},
        {"unknown": 1},
    ],
)
def test_a_bad_field_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ProfileIn.model_validate(body)


def test_put_then_patch_then_lookup(profiles: Profiles) -> None:
    saved, created = profiles.put(TENANT, "u1", ProfileIn(email="Ada@Example.com", username="ada"))
    assert created
    again, created = profiles.put(TENANT, "u1", ProfileIn(email="Ada@Example.com"))
    assert not created
    assert again.created_at == saved.created_at
    assert again.username is None
    patched = profiles.patch(TENANT, "u1", ProfileIn.model_validate({"first_name": "Ada", "email": None}))
    assert (patched.first_name, patched.email) == ("Ada", None)
    assert profiles.find_by_email(TENANT, "ada@example.com") == []
    with pytest.raises(NotFound):
        profiles.patch(TENANT, "nobody", ProfileIn(username="x"))


def test_a_write_that_keeps_losing_its_race_is_a_conflict(store: InMemoryProfileStore, profiles: Profiles) -> None:
    # Given a store where another write always lands between the read and the write
    profiles.put(TENANT, "u1", ProfileIn(username="ada"))
    store.save_profile = lambda *_args: False  # type: ignore[method-assign]
    # When a PATCH is tried, Then it is a 409 after its attempts, never a silent overwrite
    with pytest.raises(Conflict):
        profiles.patch(TENANT, "u1", ProfileIn(username="countess"))
    assert profiles.get(TENANT, "u1").username == "ada"
