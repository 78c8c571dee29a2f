"""API Gateway's reading of an authorizer's IAM policy, for the tests of the authorizer: the local
gateway's own evaluation (``local_stack.gateway.evaluate_policy``), so the tests and the local stack
can never disagree about what a policy allows."""

from __future__ import annotations

from typing import Any

from local_stack.gateway import ALLOW, evaluate_policy


def method_arn(api_arn: str, stage: str, method: str, path: str) -> str:
    """``arn:aws:execute-api:{region}:{account}:{api}/{stage}/{METHOD}/{path}`` (path without its leading /)."""
    return f"{api_arn}/{stage}/{method}/{path.lstrip('/')}"


def allows(answer: dict[str, Any], arn: str) -> bool:
    """Whether the authorizer's answer lets the key call ``arn``: an explicit Deny wins, then an Allow;
    nothing matching denies."""
    return evaluate_policy(answer["policyDocument"], arn) == ALLOW
