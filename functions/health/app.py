"""GET /v1/health: 200 when the store answers, 503 when it does not. No key needed."""

from typing import Literal

from pydantic import BaseModel

from tracker.adapters.events_table import event_store
from tracker.rest import create_app, documented, lambda_entry
from tracker.settings import require_settings

require_settings("events_table")  # fail at init, naming what is missing

app = create_app()


# Only this function builds its answer, so the model is defined here (no other function pays for it).
class Health(BaseModel):
    status: Literal["ok"]


@app.get("/v1/health", summary="Is the service up?", tags=["health"], responses=documented(Health, 503), security=[])
def get_health() -> Health:
    event_store().ping()
    return Health(status="ok")


lambda_handler = lambda_entry(app)
