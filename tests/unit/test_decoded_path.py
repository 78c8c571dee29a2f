"""The resolver hands routes their path parameters as API Gateway decoded them, under their rules."""

from __future__ import annotations

import json
import unicodedata
from typing import Annotated, Any
from urllib.parse import quote

from aws_lambda_powertools.event_handler.openapi.params import Path
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.models import UserId
from tracker.rest import create_app

RESOURCE = "/v1/users/{user_id}/things/{name}"
app = create_app()


@app.get("/v1/users/<user_id>/things/<name>")
def echo(user_id: Annotated[UserId, Path()], name: str) -> dict[str, str]:
    return {"user_id": user_id, "name": name}


def request(user_id: str, name: str = "thing") -> tuple[int, Any]:
    """A REST proxy event as API Gateway sends it: ``path`` percent-encoded, ``pathParameters`` decoded."""
    path = RESOURCE.replace("{user_id}", quote(user_id, safe="")).replace("{name}", quote(name, safe=""))
    event = {
        "resource": RESOURCE,
        "path": path,
        "httpMethod": "GET",
        "headers": {},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"user_id": user_id, "name": name},
        "requestContext": {"resourcePath": RESOURCE, "httpMethod": "GET", "path": f"/dev{path}", "stage": "dev"},
        "body": None,
        "isBase64Encoded": False,
    }
    answer = app.resolve(event, None)  # type: ignore[arg-type]
    return answer["statusCode"], json.loads(answer["body"])


@settings(max_examples=200, deadline=None)
@given(
    user_id=st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40),
    name=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20),
)
def test_a_route_takes_the_decoded_parameters_under_their_rules(user_id: str, name: str) -> None:
    # Given any user id and name, percent-encoded in the path as a client sends them
    # When the route is called
    status, body = request(user_id, name)
    # Then it took the decoded values: the user id NFC-normalized (the body's rule), the name as it is
    assert (status, body) == (200, {"user_id": unicodedata.normalize("NFC", user_id), "name": name})


def test_a_slash_in_a_user_id_stays_one_segment() -> None:
    # Given a user id with a slash, a space and a percent sign (encoded as %2F, %20 and %25 in the path)
    # When the route is called, Then the handler gets it whole, decoded once
    assert request("a/b c%41") == (200, {"user_id": "a/b c%41", "name": "thing"})


def test_a_user_id_against_the_rule_is_a_422_naming_it() -> None:
    # Given user ids one past the length limit, and with a control character
    for user_id in ("u" * 129, "a\x00b"):
        # When the route is called
        status, body = request(user_id)
        # Then it is a 422 in the contract's shape, naming user_id
        assert status == 422
        assert body["error"]["code"] == "validation_error"
        assert [detail["field"] for detail in body["error"]["details"]] == ["user_id"]


def test_a_user_id_at_the_limit_is_taken() -> None:
    assert request("u" * 128)[0] == 200
