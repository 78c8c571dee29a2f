"""The REQUEST authorizer: x-api-key (or a bearer token made from one) -> tenant and role, as an IAM policy."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tracker.adapters.signing_keys import signing_keys
from tracker.adapters.tenants_table import tenant_store
from tracker.auth import authenticate, authenticate_token, bearer_token, policy
from tracker.errors import Unauthorized
from tracker.observability import logger, metrics, tracer
from tracker.records import RateLimitRecord
from tracker.request_body import header, header_values
from tracker.settings import get_settings, require_settings

require_settings("tenants_table", "token_signing_secret")  # fail at init, naming what is missing


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Lambda's signature
    try:
        settings = get_settings()
        default_limit = RateLimitRecord(rate=settings.default_rate_limit, burst=settings.default_burst_limit)
        api_keys, token = header_values(event, "x-api-key"), bearer_token(header(event, "authorization"))
        if api_keys or token is None:
            principal = authenticate(tenant_store(), api_keys, default_limit)
        else:
            principal = authenticate_token(tenant_store(), signing_keys(), token, default_limit)
    except Unauthorized:
        metrics.add_metric(name="KeysRefused", unit=MetricUnit.Count, value=1)
        # The exact message API Gateway turns into a 401.
        raise Exception("Unauthorized") from None  # noqa: TRY002
    metrics.add_metric(
        name="KeysAccepted" if principal.active else "KeysOfInactiveTenants", unit=MetricUnit.Count, value=1
    )
    logger.append_keys(tenant_id=principal.tenant_id, key_id=principal.key_id)
    return policy(principal, event["methodArn"])
