"""Access tokens, the ingest role's policy and CORS headers: domain logic with an in-memory secret."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from tests.iam import allows
from tracker import tokens
from tracker.auth import Principal, bearer_token, policy
from tracker.cors import preflight_headers, response_headers
from tracker.errors import Unauthorized

ARN = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/dev"


class FakeSigningKeys:
    """A secret with a current and (after ``rotate``) a previous version, as Secrets Manager keeps them."""

    def __init__(self) -> None:
        self.versions = [("v1", b"first-secret-of-64-characters-0000000000000000000000000000000000")]

    def rotate(self, secret: bytes) -> None:
        self.versions = [(f"v{len(self.versions) + 1}", secret), *self.versions][:2]

    def current(self) -> tuple[str, bytes]:
        return self.versions[0]

    def verifying(self, version_id: str) -> bytes | None:
        return next((secret for found, secret in self.versions if found == version_id), None)


def now() -> datetime:
    return datetime.now(UTC)


def issued(keys: FakeSigningKeys, role: str = "tenant", at: datetime | None = None) -> str:
    token, _ = tokens.issue(keys, "key_0123456789abcdef", "ten_0123456789abcdef", role, at or now())  # type: ignore[arg-type]
    return token


def test_a_token_carries_its_key_tenant_and_role_and_expires_in_15_minutes() -> None:
    keys = FakeSigningKeys()
    token, lifetime = tokens.issue(keys, "key_1", "ten_1", "ingest", now())
    assert lifetime == 900
    claims = tokens.verify(keys, token)
    assert claims == {"sub": "key_1", "tenant_id": "ten_1", "role": "ingest"}
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    assert header["kid"] == "v1"


def test_a_token_a_second_past_its_expiry_is_refused() -> None:
    keys = FakeSigningKeys()
    token = issued(keys, at=now() - timedelta(seconds=901))
    with pytest.raises(Unauthorized):
        tokens.verify(keys, token)


SECOND_SECRET = b"second-secret-of-64-characters-000000000000000000000000000000000"
OTHER_SECRET = b"an-attackers-secret-of-64-characters-0000000000000000000000000000"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(token: str) -> dict[str, object]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def _resign(token: str, secret: bytes, kid: str = "v1", algorithm: str = "HS256", **changes: object) -> str:
    claims = {name: value for name, value in {**_claims(token), **changes}.items() if value is not None}
    return jwt.encode(claims, secret, algorithm=algorithm, headers={"kid": kid})


FORGERIES = {
    "alg none": lambda token, _secret: f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': 'v1'})}.{token.split('.')[1]}.",
    "re-signed with another key": lambda token, _secret: _resign(token, OTHER_SECRET),
    "claims altered": lambda token, _secret: ".".join(
        [token.split(".")[0], _b64({**_claims(token), "tenant_id": "ten_other"}), token.split(".")[2]]
    ),
    "signature altered": lambda token, _secret: token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"),
    "another audience": lambda token, secret: _resign(token, secret, aud="someone-else"),
    "another issuer": lambda token, secret: _resign(token, secret, iss="elsewhere"),
    "no expiry": lambda token, secret: _resign(token, secret, exp=None),
    "no tenant": lambda token, secret: _resign(token, secret, tenant_id=None),
    "unknown key version": lambda token, secret: _resign(token, secret, kid="v9"),
    "another algorithm": lambda token, secret: _resign(token, secret, algorithm="HS512"),
    "garbage": lambda _token, _secret: "not.a.token",
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_forged_or_altered_token_is_refused(forgery: str) -> None:
    keys = FakeSigningKeys()
    forged = FORGERIES[forgery](issued(keys), keys.current()[1])
    with pytest.raises(Unauthorized):
        tokens.verify(keys, forged)


def test_after_a_rotation_tokens_signed_before_still_verify_until_a_second_rotation() -> None:
    keys = FakeSigningKeys()
    before = issued(keys)
    keys.rotate(SECOND_SECRET)
    after = issued(keys)
    assert jwt.get_unverified_header(after)["kid"] == "v2"
    assert tokens.verify(keys, before)["sub"] == tokens.verify(keys, after)["sub"]
    keys.rotate(OTHER_SECRET)
    with pytest.raises(Unauthorized):
        tokens.verify(keys, before)
    assert tokens.verify(keys, after)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        (None, None),
    ],
)
def test_the_bearer_token_is_read_from_the_authorization_header(header: str | None, expected: str | None) -> None:
    assert bearer_token(header) == expected


def test_an_ingest_key_may_only_add_events_and_make_a_token() -> None:
    principal = Principal(key_id="key_1", role="ingest", tenant_id="ten_1", active=True)
    answer = policy(principal, f"{ARN}/POST/v1/events")
    assert allows(answer, f"{ARN}/POST/v1/events")
    assert allows(answer, f"{ARN}/POST/v1/events/batch")
    assert allows(answer, f"{ARN}/POST/v1/auth/token")
    for denied in (
        "GET/v1/users/6/events",
        "GET/v1/stats/daily",
        "DELETE/v1/users/6",
        "POST/v1/tenants",
        "GET/v1/events",
    ):
        assert not allows(answer, f"{ARN}/{denied}"), denied


def test_the_allowed_origins_reach_the_handlers_in_the_authorizer_context() -> None:
    principal = Principal(
        key_id="key_1",
        role="ingest",
        tenant_id="ten_1",
        active=True,
        allowed_origins=("https://a.example", "http://b.example:8080"),
    )
    assert (
        policy(principal, f"{ARN}/POST/v1/events")["context"]["allowed_origins"]
        == "https://a.example http://b.example:8080"
    )


def test_cors_headers_answer_only_an_allowed_origin() -> None:
    allowed = "https://shop.example http://localhost:8080"
    assert response_headers("https://shop.example", allowed)["Access-Control-Allow-Origin"] == "https://shop.example"
    assert response_headers("https://SHOP.example", allowed)["Access-Control-Allow-Origin"] == "https://SHOP.example"
    assert response_headers("https://evil.example", allowed) == {}
    assert response_headers("https://shop.example.evil.example", allowed) == {}
    assert response_headers(None, allowed) == {}
    assert response_headers("https://shop.example", "") == {}
    preflight = preflight_headers("https://shop.example")
    assert "x-api-key" in preflight["Access-Control-Allow-Headers"]
    assert "content-type" in preflight["Access-Control-Allow-Headers"]
