"""User profiles: PUT/GET/PATCH/DELETE /v1/users/{user_id}/profile and GET /v1/profiles?email=."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from tracker.adapters.lookup_secret import lookup_key_source
from tracker.adapters.profiles_table import profile_store
from tracker.errors import BadRequest, field_error
from tracker.models import UserId
from tracker.profile_models import Email, ProfileIn, ProfileList, ProfileOut
from tracker.profiles import Profiles
from tracker.rest import (
    create_app,
    documented,
    error_responses,
    lambda_entry,
    model_response,
    tenant_id_of,
)
from tracker.settings import require_settings

require_settings("profiles_table", "profile_lookup_secret")  # fail at init, naming what is missing

app = create_app()
PROFILE_PATH = "/v1/users/{user_id}/profile"
MAX_PROFILE_BODY_BYTES = 16 * 1024
ERRORS = (400, 401, 403, 413, 422, 429, 503)
READ_ERRORS = (401, 403, 404, 422, 429, 503)
UserIdParam = Annotated[UserId, Path()]


def profiles() -> Profiles:
    return Profiles(profile_store(), lookup_key_source())


@app.put(
    "/v1/users/<user_id>/profile",
    summary="Create or replace a user's profile",
    tags=["profiles"],
    responses={
        200: {"description": "Replaced", "content": {"application/json": {"model": ProfileOut}}},
        201: {"description": "Created", "content": {"application/json": {"model": ProfileOut}}},
        **error_responses(409, 415, *ERRORS),
    },
)
def put_profile(user_id: UserIdParam, profile: Annotated[ProfileIn, Body()]) -> Response[ProfileOut]:
    saved, created = profiles().put(tenant_id_of(app), user_id, profile)
    return model_response(201 if created else 200, saved)


@app.patch(
    "/v1/users/<user_id>/profile",
    summary="Merge fields into a user's profile (null removes a field)",
    tags=["profiles"],
    responses=documented(ProfileOut, 404, 409, 415, *ERRORS),
)
def patch_profile(user_id: UserIdParam, change: Annotated[ProfileIn, Body()]) -> ProfileOut:
    return profiles().patch(tenant_id_of(app), user_id, change)


@app.get(
    "/v1/users/<user_id>/profile",
    summary="A user's profile",
    tags=["profiles"],
    responses=documented(ProfileOut, *READ_ERRORS),
)
def get_profile(user_id: UserIdParam) -> ProfileOut:
    return profiles().get(tenant_id_of(app), user_id)


@app.delete(
    "/v1/users/<user_id>/profile",
    summary="Delete a user's profile (events stay; erase the user to remove everything)",
    tags=["profiles"],
    responses={204: {"description": "Deleted (or there was none)"}, **error_responses(401, 403, 422, 429, 503)},
)
def delete_profile(user_id: UserIdParam) -> Response[None]:
    profiles().delete(tenant_id_of(app), user_id)
    return Response(status_code=204)


@app.get(
    "/v1/profiles",
    summary="Find profiles by email: exact match, case-insensitive",
    tags=["profiles"],
    responses=documented(ProfileList, 400, 401, 403, 422, 429, 503),
)
def find_profiles(email: Annotated[Email, Query(description="The email address, in any letter case")]) -> ProfileList:
    given = (app.current_event.multi_value_query_string_parameters or {}).get("email") or []
    if len(given) > 1:
        raise BadRequest("Give one email parameter.", [field_error("email", "given more than once", "duplicate")])
    return ProfileList(items=profiles().find_by_email(tenant_id_of(app), email))


lambda_handler = lambda_entry(
    app,
    body_limits={f"PUT {PROFILE_PATH}": MAX_PROFILE_BODY_BYTES, f"PATCH {PROFILE_PATH}": MAX_PROFILE_BODY_BYTES},
)
