"""The template's KMS keys, Secrets Manager secrets and S3 buckets, made in the emulation as
CloudFormation would make them (tables and the usage plan are ``local_stack.aws``'s).

A secret's ``GenerateSecretString`` becomes a random value of its length; a bucket or secret is
named as the template names it, so the functions' environment (resolved from the same template)
finds it. Each ``create_*`` takes any boto3 client (moto server or ``mock_aws``) and skips what
exists already.
"""

from __future__ import annotations

import secrets
from typing import Any

from local_stack.template import Template

KEY_TYPE = "AWS::KMS::Key"
SECRET_TYPE = "AWS::SecretsManager::Secret"  # noqa: S105 - a resource type, not a password
BUCKET_TYPE = "AWS::S3::Bucket"


def _resources(template: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    """Each resource of the type: its logical id -> (``name``, resolved properties but the key policy)."""
    resolver = template.resolver()
    found = {}
    for logical_id, resource in resolver.resources.items():
        if resource.get("Type") != resource_type or not resolver.exists(logical_id):
            continue
        properties = {
            name: resolver.resolve(value)
            for name, value in (resource.get("Properties") or {}).items()
            if name not in {"KeyPolicy", "KmsKeyId"}  # roles and keys that exist only in the cloud
        }
        found[logical_id] = {"name": resolver.physical_id(logical_id), **properties}
    return found


def create_keys(kms_client: Any, template: Template) -> list[str]:
    """A key per ``AWS::KMS::Key`` (nothing local calls KMS; DynamoDB and S3 in moto do not encrypt)."""
    existing = {key["KeyId"] for key in kms_client.list_keys()["Keys"]}
    descriptions = {kms_client.describe_key(KeyId=key_id)["KeyMetadata"].get("Description") for key_id in existing}
    created = []
    for logical_id in _resources(template, KEY_TYPE):
        description = f"{template.stack_name} {logical_id}"
        if description not in descriptions:
            created.append(kms_client.create_key(Description=description)["KeyMetadata"]["KeyId"])
    return created


def create_secrets(secretsmanager_client: Any, template: Template) -> list[str]:
    created = []
    for properties in _resources(template, SECRET_TYPE).values():
        name = str(properties.get("Name") or properties["name"])
        generate = properties.get("GenerateSecretString") or {}
        value = properties.get("SecretString") or secrets.token_hex(int(generate.get("PasswordLength", 32)) // 2)
        try:
            secretsmanager_client.create_secret(Name=name, SecretString=value)
        except secretsmanager_client.exceptions.ResourceExistsException:
            continue
        created.append(name)
    return created


def create_buckets(s3_client: Any, template: Template) -> list[str]:
    existing = {bucket["Name"] for bucket in s3_client.list_buckets().get("Buckets", [])}
    created = []
    for properties in _resources(template, BUCKET_TYPE).values():
        name = str(properties["name"])
        if name not in existing:
            s3_client.create_bucket(Bucket=name)
            created.append(name)
    return created


def create_resources(client: Any, template: Template) -> None:
    """``client(service)``: a boto3 client of the emulation for that service."""
    create_keys(client("kms"), template)
    create_secrets(client("secretsmanager"), template)
    create_buckets(client("s3"), template)
