"""Who may read profiles, as ``template.yaml`` says it: IAM policies of every function, the key
policy of the profile key, the lookup secret, and the exports bucket's protections.

The policies are read from the template with the local stack's resolver, so ``!Sub`` and ``!GetAtt``
strings are compared as CloudFormation would build them.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

import pytest

from local_stack.template import DEFAULT_TEMPLATE, Resolver, load_template, read_yaml

ALLOWED_READERS = {"ProfilesFunction", "ExportsFunction", "ExportWorkerFunction", "EraseWorkerFunction"}
KEY_USE = {"kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:GenerateDataKey"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return read_yaml(DEFAULT_TEMPLATE)


@pytest.fixture(scope="module")
def resolver(document: dict[str, Any]) -> Resolver:
    template = load_template()
    pseudo = {
        "AWS::Region": template.region,
        "AWS::AccountId": template.account_id,
        "AWS::StackName": template.stack_name,
        "AWS::Partition": template.partition,
    }
    return Resolver(document, template.parameters, pseudo)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def function_statements(document: dict[str, Any], resolver: Resolver) -> dict[str, list[dict[str, Any]]]:
    """Every function's IAM statements (SAM ``Policies``), resolved."""
    found = {}
    for logical_id, resource in document["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        statements = []
        for policy in resource["Properties"].get("Policies") or []:
            assert isinstance(policy, dict), f"{logical_id}: only inline statements are reviewed here"
            statements += resolver.resolve(policy["Statement"])
        found[logical_id] = statements
    return found


def grants(statement: dict[str, Any], action: str, resource: str) -> bool:
    """Whether an Allow statement lets ``action`` on ``resource`` (IAM wildcards in both)."""
    return (
        statement["Effect"] == "Allow"
        and any(fnmatchcase(action, pattern) for pattern in as_list(statement["Action"]))
        and any(fnmatchcase(resource, pattern) for pattern in as_list(statement["Resource"]))
    )


def test_only_the_profile_export_and_erasure_functions_can_read_the_profiles_table(
    document: dict[str, Any], resolver: Resolver
) -> None:
    table_arn = resolver.arn("ProfilesTable")
    readers = {
        logical_id
        for logical_id, statements in function_statements(document, resolver).items()
        for statement in statements
        for action in ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchGetItem")
        for resource in (table_arn, f"{table_arn}/index/by_email")
        if grants(statement, action, resource)
    }
    assert readers == ALLOWED_READERS


def test_a_wildcard_can_never_reach_the_profiles_table(document: dict[str, Any], resolver: Resolver) -> None:
    # Given an action no function is meant to have on it, no statement of any function grants it
    table_arn = resolver.arn("ProfilesTable")
    for logical_id, statements in function_statements(document, resolver).items():
        for statement in statements:
            assert not grants(statement, "dynamodb:Scan", table_arn), logical_id
            assert not grants(statement, "dynamodb:DeleteTable", table_arn), logical_id


def test_only_the_profile_function_reads_the_lookup_secret(document: dict[str, Any], resolver: Resolver) -> None:
    name = resolver.resolve(document["Resources"]["ProfileLookupSecret"]["Properties"]["Name"])
    secret_arn = f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf"
    readers = {
        logical_id
        for logical_id, statements in function_statements(document, resolver).items()
        if any(grants(statement, "secretsmanager:GetSecretValue", secret_arn) for statement in statements)
    }
    assert readers == {"ProfilesFunction"}


def test_the_profile_key_is_used_only_by_the_profile_functions_through_their_services(
    document: dict[str, Any],
) -> None:
    key = document["Resources"]["ProfilesKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    users: set[str] = set()
    for statement in key["KeyPolicy"]["Statement"]:
        actions = set(as_list(statement["Action"]))
        if not actions & KEY_USE:
            continue
        principals = as_list(statement["Principal"].get("AWS"))
        via = statement.get("Condition", {}).get("StringEquals", {}).get("kms:ViaService")
        assert via, f"{statement['Sid']}: key use outside a service"
        roles = [p["Fn::GetAtt"][0] for p in principals if isinstance(p, dict) and "Fn::GetAtt" in p]
        if roles:
            users |= {role.removesuffix("Role") for role in roles}
        else:
            # The account itself: only through Secrets Manager, for the lookup secret alone, never to re-encrypt
            assert statement["Sid"] == "CreateLookupSecret"
            assert actions == {"kms:GenerateDataKey", "kms:Decrypt"}
            assert "secretsmanager" in str(via)
            assert "profile-lookup" in str(statement["Condition"]["StringLike"]["kms:EncryptionContext:SecretARN"])
    assert users == ALLOWED_READERS


def test_the_profiles_table_is_encrypted_with_the_profile_key_and_recoverable(document: dict[str, Any]) -> None:
    table = document["Resources"]["ProfilesTable"]["Properties"]
    assert table["SSESpecification"] == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": {"Fn::GetAtt": ["ProfilesKey", "Arn"]},
    }
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}


def test_the_exports_bucket_is_encrypted_private_tls_only_and_expires_files(document: dict[str, Any]) -> None:
    bucket = document["Resources"]["ExportsBucket"]["Properties"]
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": ["ProfilesKey", "Arn"]},
    }
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    (expiry,) = [rule for rule in bucket["LifecycleConfiguration"]["Rules"] if rule["Status"] == "Enabled"]
    assert expiry["ExpirationInDays"] == 7
    (tls,) = document["Resources"]["ExportsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert (tls["Effect"], tls["Principal"], tls["Action"]) == ("Deny", "*", "s3:*")
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_export_worker_has_a_dead_letter_queue_and_retries(document: dict[str, Any]) -> None:
    worker = document["Resources"]["ExportWorkerFunction"]["Properties"]
    assert worker["EventInvokeConfig"]["MaximumRetryAttempts"] == 2
    assert worker["DeadLetterQueue"] == {"Type": "SQS", "TargetArn": {"Fn::GetAtt": ["ExportWorkerDeadLetters", "Arn"]}}
