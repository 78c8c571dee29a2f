"""Short-lived access tokens: a JWT exchanged for an API key, accepted as ``Authorization: Bearer``.

HS256 with a secret of the stack (Secrets Manager): the algorithm is pinned, so a token with
``alg: none`` or any other algorithm is refused, and there is no public key to confuse it with.
``kid`` names the secret's version, so a rotated secret keeps verifying the tokens it signed
until they expire (the previous version), and no older ones.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tracker.errors import Unauthorized
from tracker.interfaces import SigningKeys
from tracker.records import Role

ALGORITHM = "HS256"
ISSUER = "activity-tracker"
AUDIENCE = "activity-tracker-api"
LIFETIME = timedelta(seconds=900)
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub", "tenant_id", "role")


def issue(keys: SigningKeys, key_id: str, tenant_id: str, role: Role, now: datetime) -> tuple[str, int]:
    """A token for the key ``key_id`` of ``tenant_id``, and its lifetime in seconds."""
    import jwt  # noqa: PLC0415 - only where tokens are made or checked: the authorizer's cold start

    version, secret = keys.current()
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": key_id,
        "tenant_id": tenant_id,
        "role": role,
        "iat": int(now.timestamp()),
        "exp": int((now + LIFETIME).timestamp()),
    }
    token = jwt.encode(claims, secret, algorithm=ALGORITHM, headers={"kid": version})
    return token, int(LIFETIME.total_seconds())


def verify(keys: SigningKeys, token: str) -> dict[str, str]:
    """The claims of a valid, unexpired token (``sub`` the key id, ``tenant_id``, ``role``); Unauthorized otherwise."""
    import jwt  # noqa: PLC0415 - see issue()

    refused = Unauthorized("The bearer token is not valid or has expired.")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise refused from None
    secret = keys.verifying(str(header.get("kid", ""))) if header.get("alg") == ALGORITHM else None
    if secret is None:
        raise refused
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.InvalidTokenError:
        raise refused from None
    if not all(isinstance(claims.get(name), str) and claims[name] for name in ("sub", "tenant_id", "role")):
        raise refused
    return {name: str(claims[name]) for name in ("sub", "tenant_id", "role")}
