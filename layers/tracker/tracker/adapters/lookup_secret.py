"""The secret key of the email lookup's HMAC, from Secrets Manager (made by the stack)."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import boto3

from tracker.adapters.clients import client_config, translated_errors
from tracker.settings import require_settings

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


@cache
def secretsmanager_client() -> SecretsManagerClient:
    return boto3.client("secretsmanager", config=client_config())


class SecretsManagerLookupKey:
    """Read once per process: the key never changes (a new one would orphan every stored hash)."""

    def __init__(self, client: SecretsManagerClient, secret_id: str) -> None:
        self._client = client
        self._secret_id = secret_id
        self._key: bytes | None = None

    def lookup_key(self) -> bytes:
        if self._key is None:
            with translated_errors("The lookup secret"):
                self._key = self._client.get_secret_value(SecretId=self._secret_id)["SecretString"].encode()
        return self._key


@cache
def lookup_key_source() -> SecretsManagerLookupKey:
    return SecretsManagerLookupKey(
        secretsmanager_client(), require_settings("profile_lookup_secret").profile_lookup_secret
    )
