"""API Gateway's reading of an authorizer's IAM policy, for the tests of the authorizer."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any


def method_arn(api_arn: str, stage: str, method: str, path: str) -> str:
    """``arn:aws:execute-api:{region}:{account}:{api}/{stage}/{METHOD}/{path}`` (path without its leading /)."""
    return f"{api_arn}/{stage}/{method}/{path.lstrip('/')}"


def allows(answer: dict[str, Any], arn: str) -> bool:
    """Whether the policy lets the key call ``arn``: an explicit Deny wins, then an Allow; nothing matching denies.

    In execute-api resources ``*`` matches any run of characters, ``/`` included.
    """
    effects = {
        statement["Effect"]
        for statement in answer["policyDocument"]["Statement"]
        if "execute-api:Invoke" in _as_list(statement["Action"])
        and any(fnmatchcase(arn, resource) for resource in _as_list(statement["Resource"]))
    }
    return "Allow" in effects and "Deny" not in effects


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
