"""POST /v1/auth/token: a short-lived bearer token (JWT) for the key that calls it."""

from tracker import tokens
from tracker.adapters.signing_keys import signing_keys
from tracker.models import AccessToken
from tracker.rest import authorizer_context, create_app, documented, lambda_entry
from tracker.settings import require_settings
from tracker.timefmt import utc_now

require_settings("token_signing_secret")  # fail at init, naming what is missing

app = create_app()


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
