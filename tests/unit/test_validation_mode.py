"""A tenant's tracking plan mode: set by the admin's PATCH, handed to ingest by the authorizer."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tracker.tenant_models import TenantPatch

from .support import Admin


def test_a_new_tenant_does_not_validate(admin: Admin) -> None:
    created = admin.create()
    assert created.validation == "off"
    assert admin.authenticate(created.api_key).context()["validation"] == "off"


@pytest.mark.parametrize("mode", ["flag", "block", "off"])
def test_the_mode_set_by_patch_is_in_the_tenant_and_in_the_authorizer_context(admin: Admin, mode: str) -> None:
    # Given a tenant, When its mode is set
    created = admin.create()
    answer = admin.patch(created.tenant_id, {"validation": mode})
    # Then the answer, the stored tenant and the key's context all carry it
    assert answer.validation == mode
    assert admin.store.tenants[created.tenant_id].validation == mode
    assert admin.authenticate(created.api_key).context()["validation"] == mode


def test_other_fields_of_a_patch_leave_the_mode_alone(admin: Admin) -> None:
    created = admin.create()
    admin.patch(created.tenant_id, {"validation": "block"})
    assert admin.patch(created.tenant_id, {"active": True}).validation == "block"
    assert admin.patch(created.tenant_id, {"rate_limit": None}).validation == "block"


@pytest.mark.parametrize("value", [None, "strict", "BLOCK", True, 1, ""])
def test_an_unknown_mode_is_refused(value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        TenantPatch.model_validate({"validation": value})
    assert [error["loc"] for error in caught.value.errors()] == [("validation",)]
