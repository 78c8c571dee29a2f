"""POST /v1/auth/token: a short-lived bearer token (JWT) for the key that calls it."""

from typing import Literal

from pydantic import BaseModel, Field

from tracker import tokens
from tracker.adapters.signing_keys import signing_keys
from tracker.rest import authorizer_context, create_app, documented, lambda_entry
from tracker.settings import require_settings
from tracker.timefmt import utc_now

require_settings("token_signing_secret")  # fail at init, naming what is missing

app = create_app()


# Only this function builds its answer, so the model is defined here (no other function pays for it).
class AccessToken(BaseModel):
    access_token: str = Field(description="A signed JWT; send it as `Authorization: Bearer <token>`.")
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - a scheme name, not a secret
    expires_in: int = Field(description="Seconds until it expires.")


@app.post(
    "/v1/auth/token",
    summary="Exchange the API key in x-api-key for a bearer token valid 15 minutes",
    tags=["auth"],
    responses=documented(AccessToken, 401, 403, 429, 503),
)
def create_token() -> AccessToken:
    context = authorizer_context(app)
    token, lifetime = tokens.issue(
        signing_keys(), str(context["key_id"]), str(context.get("tenant_id") or ""), context["role"], utc_now()
    )
    return AccessToken(access_token=token, expires_in=lifetime)


lambda_handler = lambda_entry(app)
