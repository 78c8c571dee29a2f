"""DELETE /v1/users/{user_id} and GET /v1/erasures/{erasure_id}: erasure of a user's data."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path

from tracker import erasure
from tracker.adapters.lambda_invoke import start_erasure_worker
from tracker.adapters.tenants_table import erasure_store
from tracker.erasure_models import ErasureAccepted, ErasureOut
from tracker.models import ResourceId, UserId
from tracker.rest import (
    create_app,
    documented,
    lambda_entry,
    model_response,
    tenant_id_of,
)
from tracker.settings import require_settings

require_settings("tenants_table", "erase_worker_function")  # fail at init, naming what is missing

app = create_app()


@app.delete(
    "/v1/users/<user_id>",
    summary="Erase every event and per-user statistic of a user (in the background)",
    tags=["erasure"],
    responses=documented(ErasureAccepted, 401, 403, 422, 429, 503, status=202, description="Erasure started"),
)
def delete_user(user_id: Annotated[UserId, Path()]) -> Response[ErasureAccepted]:
    accepted = erasure.request_erasure(erasure_store(), tenant_id_of(app), user_id, start_erasure_worker)
    return model_response(202, accepted)


@app.get(
    "/v1/erasures/<erasure_id>",
    summary="The progress of an erasure",
    tags=["erasure"],
    responses=documented(ErasureOut, 401, 403, 404, 422, 429, 503),
)
def get_erasure(erasure_id: Annotated[ResourceId, Path()]) -> ErasureOut:
    return erasure.get_erasure(erasure_store(), tenant_id_of(app), erasure_id)


lambda_handler = lambda_entry(app)
