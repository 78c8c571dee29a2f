"""GET /v1/health: 200 when the store answers, 503 when it does not. No key needed."""

from tracker.dynamodb import event_store
from tracker.http import create_app, documented, lambda_entry
from tracker.models import Health

app = create_app()


@app.get("/v1/health", summary="Is the service up?", tags=["health"], responses=documented(Health, 503), security=[])
def get_health() -> Health:
    event_store().ping()
    return Health(status="ok")


lambda_handler = lambda_entry(app)
