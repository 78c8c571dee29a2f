"""Data export on request: POST /v1/users/{user_id}/exports and GET /v1/exports/{export_id}."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path

from tracker import exports
from tracker.adapters.exports_bucket import export_files
from tracker.adapters.lambda_invoke import start_export_worker
from tracker.adapters.profiles_table import profile_store
from tracker.models import UserId
from tracker.profile_models import ExportAccepted, ExportOut
from tracker.rest import (
    create_app,
    documented,
    lambda_entry,
    model_response,
    tenant_id_of,
)
from tracker.settings import require_settings

require_settings("profiles_table", "exports_bucket", "export_worker_function")  # fail at init, naming what is missing

app = create_app()


@app.post(
    "/v1/users/<user_id>/exports",
    summary="Export a user's profile and events as one NDJSON file (in the background)",
    tags=["exports"],
    responses=documented(ExportAccepted, 401, 403, 422, 429, 503, status=202, description="Export started"),
)
def create_export(user_id: Annotated[UserId, Path()]) -> Response[ExportAccepted]:
    accepted = exports.request_export(profile_store(), tenant_id_of(app), user_id, start_export_worker)
    return model_response(202, accepted)


@app.get(
    "/v1/exports/<export_id>",
    summary="The progress of an export, and its download URL once completed (valid 15 minutes)",
    tags=["exports"],
    responses=documented(ExportOut, 401, 403, 404, 429, 503),
)
def get_export(export_id: str) -> ExportOut:
    return exports.get_export(profile_store(), export_files(), tenant_id_of(app), export_id)


lambda_handler = lambda_entry(app)
