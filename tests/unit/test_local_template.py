"""The local stack's reading of intrinsic functions: the ones ``template.yaml`` uses, and a clear
error naming any other."""

from __future__ import annotations

from typing import Any

import pytest

from local_stack.template import Resolver, TemplateError

PSEUDO = {"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
DOCUMENT: dict[str, Any] = {
    "Conditions": {
        "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
        "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]},
    },
    "Resources": {"EventsTable": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "events"}}},
}


@pytest.fixture
def resolver() -> Resolver:
    return Resolver(DOCUMENT, {"Stage": "dev"}, PSEUDO)


def test_every_function_the_template_uses_is_resolved(resolver: Resolver) -> None:
    assert resolver.resolve({"Ref": "Stage"}) == "dev"
    assert resolver.resolve({"Fn::Sub": "${Stage}-${AWS::Region}"}) == "dev-eu-west-1"
    assert resolver.resolve({"Fn::Sub": ["${Name}!", {"Name": {"Ref": "Stage"}}]}) == "dev!"
    assert (
        resolver.resolve({"Fn::GetAtt": ["EventsTable", "Arn"]})
        == "arn:aws:dynamodb:eu-west-1:123456789012:table/events"
    )
    assert resolver.resolve({"Fn::Equals": [{"Ref": "Stage"}, "dev"]}) is True
    assert (resolver.condition("IsProd"), resolver.condition("NotProd")) == (False, True)


@pytest.mark.parametrize("function", ["Fn::If", "Fn::Join", "Fn::FindInMap", "Fn::ImportValue", "Fn::Base64"])
def test_a_function_the_template_does_not_use_is_an_error_naming_it(resolver: Resolver, function: str) -> None:
    with pytest.raises(TemplateError, match=function):
        resolver.resolve({"Properties": {"Name": {function: ["a", "b", "c"]}}})
