"""GET /v1/health: 200 when the store answers, 503 when it does not. No key needed."""

from tracker.adapters.events_table import event_store
from tracker.models import Health
from tracker.rest import create_app, documented, lambda_entry
from tracker.settings import require_settings

require_settings("events_table")  # fail at init, naming what is missing

app = create_app()


@app.get("/v1/health", summary="Is the service up?", tags=["health"], responses=documented(Health, 503), security=[])
def get_health() -> Health:
    event_store().ping()
    return Health(status="ok")


lambda_handler = lambda_entry(app)
