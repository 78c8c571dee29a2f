"""Who a key is, and the IAM policy API Gateway enforces (and caches) for it.

The policy covers every route the key's role may call, not just the one asked for, because
API Gateway caches one answer per key for all routes. Tenant keys may call everything but
``/v1/tenants``; ingest keys only the two ingest routes; admin keys only ``/v1/tenants``; an
inactive tenant's keys nothing (403). Every role may exchange its key for a bearer token, which
then stands for that key (``tracker.tokens``) until it expires or the key is revoked.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tracker import tokens
from tracker.errors import Unauthorized
from tracker.interfaces import SigningKeys, TenantStore
from tracker.records import ApiKeyRecord, RateLimitRecord, Role, ValidationMode, hash_api_key

ADMIN_PATHS = ("*/v1/tenants", "*/v1/tenants/*")
DATA_PATHS = ("*/v1/*",)
INGEST_PATHS = ("POST/v1/events", "POST/v1/events/batch")
TOKEN_PATHS = ("POST/v1/auth/token",)


@dataclass(frozen=True)
class Principal:
    key_id: str
    role: Role
    tenant_id: str | None
    active: bool
    timezone: str = "UTC"
    usage_key: str | None = None
    rate: float | None = None
    burst: int | None = None
    allowed_origins: tuple[str, ...] = ()
    validation: ValidationMode = "off"
    """The tenant's tracking plan mode, for ingest (read with the key, for every request)."""

    def context(self) -> dict[str, str | float | int]:
        """What the handlers (and the local gateway's rate limiter) read from ``requestContext.authorizer``."""
        context: dict[str, str | float | int] = {
            "tenant_id": self.tenant_id or "",
            "role": self.role,
            "key_id": self.key_id,
            "timezone": self.timezone,
            "validation": self.validation,
        }
        if self.rate is not None and self.burst is not None:
            context.update(rate=self.rate, burst=self.burst)
        if self.allowed_origins:
            # An authorizer's context holds strings and numbers only; an origin has no space.
            context["allowed_origins"] = " ".join(self.allowed_origins)
        return context


def authenticate(store: TenantStore, api_keys: Sequence[str], default_limit: RateLimitRecord) -> Principal:
    """The principal of the request's key (every distinct ``x-api-key`` value it sent, whatever
    the case of the header's name); Unauthorized for none, two different ones, or an unknown or
    revoked key. Two keys would let the gateway's usage plan meter one while this authorizes the other."""
    if len(api_keys) > 1:
        raise Unauthorized("Send one x-api-key header, not several with different values.")
    api_key = api_keys[0] if api_keys else ""
    if not api_key:
        raise Unauthorized("A valid x-api-key header is required.")
    key_hash = hash_api_key(api_key)
    key = store.get_key_by_hash(key_hash)
    # The lookup is by hash; comparing again in constant time keeps timing flat all the same.
    if key is None or not hmac.compare_digest(key.key_hash, key_hash):
        raise Unauthorized("A valid x-api-key header is required.")
    return _principal_of(store, key, default_limit)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (the scheme in any case)."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def authenticate_token(store: TenantStore, keys: SigningKeys, token: str, default_limit: RateLimitRecord) -> Principal:
    """The principal of the key a valid bearer token was made for; Unauthorized once that key is revoked."""
    claims = tokens.verify(keys, token)
    owner = None if claims["role"] == "admin" else claims["tenant_id"]
    key = store.get_key(owner, claims["sub"])
    if key is None or key.role != claims["role"] or (key.tenant_id or "") != (owner or ""):
        raise Unauthorized("The key this token was made for is revoked.")
    return _principal_of(store, key, default_limit)


def _principal_of(store: TenantStore, key: ApiKeyRecord, default_limit: RateLimitRecord) -> Principal:
    if key.tenant_id is None:
        return Principal(key_id=key.key_id, role=key.role, tenant_id=None, active=True)
    tenant = store.get_tenant(key.tenant_id)
    if tenant is None:
        return Principal(key_id=key.key_id, role=key.role, tenant_id=key.tenant_id, active=False)
    limit = tenant.rate_limit or default_limit
    return Principal(
        key_id=key.key_id,
        role=key.role,
        tenant_id=key.tenant_id,
        active=tenant.active,
        timezone=tenant.timezone,
        usage_key=tenant.usage_key,
        rate=limit.rate,
        burst=limit.burst,
        allowed_origins=tuple(tenant.allowed_origins),
        validation=tenant.validation,
    )


def api_arn_prefix(method_arn: str) -> str:
    """``arn:aws:execute-api:region:account:api/stage`` of a method ARN."""
    arn, _, path = method_arn.partition("/")
    stage = path.split("/", 1)[0]
    return f"{arn}/{stage}"


def policy(principal: Principal, method_arn: str) -> dict[str, Any]:
    prefix = api_arn_prefix(method_arn)

    def resources(*paths: str) -> list[str]:
        return [f"{prefix}/{path}" for path in paths]

    statements: list[dict[str, Any]]
    if not principal.active:
        statements = [_statement("Deny", resources("*/*"))]
    elif principal.role == "admin":
        statements = [_statement("Allow", resources(*ADMIN_PATHS, *TOKEN_PATHS))]
    elif principal.role == "ingest":
        statements = [_statement("Allow", resources(*INGEST_PATHS, *TOKEN_PATHS))]
    else:
        statements = [_statement("Allow", resources(*DATA_PATHS)), _statement("Deny", resources(*ADMIN_PATHS))]
    answer: dict[str, Any] = {
        "principalId": principal.key_id,
        "policyDocument": {"Version": "2012-10-17", "Statement": statements},
        "context": principal.context(),
    }
    if principal.usage_key:
        answer["usageIdentifierKey"] = principal.usage_key
    return answer


def _statement(effect: str, resources: list[str]) -> dict[str, Any]:
    return {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resources}
