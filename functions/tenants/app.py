"""Admin routes: tenants and their API keys."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from tracker import tenants
from tracker.adapters.tenants_table import tenant_store
from tracker.adapters.usage_plans import usage_plans
from tracker.models import ResourceId
from tracker.rest import create_admin_app, documented, error_responses, lambda_entry, model_response
from tracker.settings import require_settings
from tracker.tenant_models import (
    ApiKeyCreated,
    KeyCreate,
    TenantCreate,
    TenantCreated,
    TenantOut,
    TenantPage,
    TenantPatch,
)

require_settings("tenants_table", "usage_plan_name")  # fail at init, naming what is missing

app = create_admin_app()
ADMIN_ERRORS = (400, 401, 403, 404, 422, 429, 503)
TenantIdParam = Annotated[ResourceId, Path()]


@app.post(
    "/v1/tenants",
    summary="Create a tenant and its first API key (shown once)",
    tags=["tenants"],
    responses=documented(TenantCreated, 409, 415, *ADMIN_ERRORS, status=201, description="Created"),
)
def create_tenant(request: Annotated[TenantCreate, Body()]) -> Response[TenantCreated]:
    return model_response(201, tenants.create_tenant(tenant_store(), usage_plans(), request))


@app.get(
    "/v1/tenants",
    summary="List tenants (never their keys)",
    tags=["tenants"],
    responses=documented(TenantPage, *ADMIN_ERRORS),
)
def list_tenants(
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> TenantPage:
    return tenants.list_tenants(tenant_store(), limit, cursor)


@app.patch(
    "/v1/tenants/<tenant_id>",
    summary="Deactivate or reactivate a tenant; set its rate limit, tracking plan or allowed web origins",
    tags=["tenants"],
    responses=documented(TenantOut, 415, *ADMIN_ERRORS),
)
def update_tenant(tenant_id: TenantIdParam, patch: Annotated[TenantPatch, Body()]) -> TenantOut:
    return tenants.update_tenant(tenant_store(), usage_plans(), tenant_id, patch)


@app.post(
    "/v1/tenants/<tenant_id>/keys",
    summary="Add a tenant key, or a publishable ingest key (rotation: old keys work until revoked)",
    tags=["tenants"],
    responses=documented(ApiKeyCreated, 413, 415, *ADMIN_ERRORS, status=201, description="Created"),
)
def create_key(
    tenant_id: TenantIdParam, request: Annotated[KeyCreate | None, Body()] = None
) -> Response[ApiKeyCreated]:
    role = request.role if request else "tenant"
    return model_response(201, tenants.create_key(tenant_store(), tenant_id, role))


@app.delete(
    "/v1/tenants/<tenant_id>/keys/<key_id>",
    summary="Revoke an API key",
    tags=["tenants"],
    responses={204: {"description": "Revoked"}, **error_responses(*ADMIN_ERRORS)},
)
def revoke_key(tenant_id: TenantIdParam, key_id: Annotated[ResourceId, Path()]) -> Response[None]:
    tenants.revoke_key(tenant_store(), tenant_id, key_id)
    return Response(status_code=204)


ADMIN_BODY_LIMIT = 16 * 1024
NEW_KEY_ROUTE = "POST /v1/tenants/{tenant_id}/keys"
lambda_handler = lambda_entry(
    app,
    body_limits={
        "POST /v1/tenants": ADMIN_BODY_LIMIT,
        "PATCH /v1/tenants/{tenant_id}": ADMIN_BODY_LIMIT,
        NEW_KEY_ROUTE: ADMIN_BODY_LIMIT,
    },
    optional_bodies={NEW_KEY_ROUTE},
)
