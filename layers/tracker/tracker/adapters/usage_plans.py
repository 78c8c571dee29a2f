"""Per-tenant rate limits as API Gateway usage plans: the only module that talks to API Gateway.

Every tenant has an API Gateway API key (its "usage key"), which the authorizer returns as
``usageIdentifierKey``; the key sits in the stack's default usage plan, or in a plan of the
tenant's own while its rate limit is overridden.
"""

from __future__ import annotations

import secrets
from contextlib import suppress
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3

from tracker.adapters.clients import client_config, translated_errors
from tracker.records import RateLimitRecord
from tracker.settings import ConfigurationError, require_settings

if TYPE_CHECKING:
    from mypy_boto3_apigateway import APIGatewayClient


@cache
def apigateway_client() -> APIGatewayClient:
    return boto3.client("apigateway", config=client_config())


class ApiGatewayUsagePlans:
    def __init__(self, client: APIGatewayClient, default_plan_name: str) -> None:
        self._client = client
        self._default_name = default_plan_name

    def _plan(self, name: str) -> dict[str, Any] | None:
        for page in self._client.get_paginator("get_usage_plans").paginate():
            for plan in page.get("items", []):
                if plan.get("name") == name:
                    return dict(plan)
        return None

    def _default_plan(self) -> dict[str, Any]:
        plan = self._plan(self._default_name)
        if plan is None:
            raise ConfigurationError(f"The usage plan {self._default_name!r} (USAGE_PLAN_NAME) does not exist.")
        return plan

    def _move_key(self, key_id: str, source: str, target: str) -> None:
        # Either step may have happened already when a move is retried.
        with suppress(self._client.exceptions.NotFoundException):
            self._client.delete_usage_plan_key(usagePlanId=source, keyId=key_id)
        with suppress(self._client.exceptions.ConflictException):
            self._client.create_usage_plan_key(usagePlanId=target, keyId=key_id, keyType="API_KEY")

    def create_tenant_key(self, tenant_id: str) -> tuple[str, str]:
        """A new usage key of the tenant in the default plan: its id and value."""
        value = secrets.token_urlsafe(30)
        with translated_errors("API Gateway"):
            plan = self._default_plan()
            key = self._client.create_api_key(name=tenant_id, enabled=True, value=value)
            self._client.create_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"], keyType="API_KEY")
        return key["id"], value

    def delete_tenant_key(self, key_id: str) -> None:
        with translated_errors("API Gateway"), suppress(self._client.exceptions.NotFoundException):
            self._client.delete_api_key(apiKey=key_id)

    def apply_rate_limit(self, tenant_id: str, key_id: str, limit: RateLimitRecord | None) -> None:
        """Puts the tenant's key in a plan of its own with ``limit``, or back in the default plan."""
        own_name = f"{self._default_name}-{tenant_id}"
        with translated_errors("API Gateway"):
            default, own = self._default_plan(), self._plan(own_name)
            throttle = {"rateLimit": limit.rate, "burstLimit": limit.burst} if limit else None
            if throttle is None:
                if own is not None:
                    self._move_key(key_id, own["id"], default["id"])
                    self._client.delete_usage_plan(usagePlanId=own["id"])
            elif own is None:
                created = self._client.create_usage_plan(
                    name=own_name,
                    apiStages=default.get("apiStages", []),
                    throttle=throttle,  # type: ignore[arg-type]
                )
                self._move_key(key_id, default["id"], created["id"])
            else:
                self._client.update_usage_plan(
                    usagePlanId=own["id"],
                    patchOperations=[
                        {"op": "replace", "path": "/throttle/rateLimit", "value": f"{limit.rate:g}"},  # type: ignore[union-attr]
                        {"op": "replace", "path": "/throttle/burstLimit", "value": str(limit.burst)},  # type: ignore[union-attr]
                    ],
                )


def usage_plans() -> ApiGatewayUsagePlans:
    return ApiGatewayUsagePlans(apigateway_client(), require_settings("usage_plan_name").usage_plan_name)
