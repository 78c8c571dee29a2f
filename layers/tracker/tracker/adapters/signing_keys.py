"""The access-token signing secret in Secrets Manager: its current version signs, the previous verifies.

Rotating the secret (a new ``AWSCURRENT``; see the README) starts signing with the new version,
while tokens signed before keep verifying with ``AWSPREVIOUS`` until they expire. Versions are
kept for a few minutes in the execution environment; a token naming an unknown version makes
one fresh read, so a rotation is seen at once.
"""

from __future__ import annotations

import time
from functools import cache
from typing import TYPE_CHECKING

import boto3

from tracker.adapters.clients import client_config, translated_errors
from tracker.settings import require_settings

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

CACHE_SECONDS = 300.0
# A token naming an unknown version re-reads the secret at most this often, so that made-up
# ``kid`` values cannot turn every request into a Secrets Manager call.
MIN_REREAD_SECONDS = 10.0
STAGES = ("AWSCURRENT", "AWSPREVIOUS")


@cache
def secretsmanager_client() -> SecretsManagerClient:
    return boto3.client("secretsmanager", config=client_config())


class SecretsManagerSigningKeys:
    def __init__(self, client: SecretsManagerClient, secret_id: str) -> None:
        self._client = client
        self._secret_id = secret_id
        self._versions: dict[str, tuple[str, bytes]] = {}
        self._read_at = float("-inf")

    def _load(self) -> None:
        versions: dict[str, tuple[str, bytes]] = {}
        with translated_errors("Secrets Manager"):
            for stage in STAGES:
                try:
                    answer = self._client.get_secret_value(SecretId=self._secret_id, VersionStage=stage)
                except self._client.exceptions.ResourceNotFoundException:
                    if stage == "AWSCURRENT":
                        raise
                    continue  # never rotated: there is no previous version
                versions[stage] = (answer["VersionId"], answer["SecretString"].encode())
        self._versions, self._read_at = versions, time.monotonic()

    def _fresh(self, force: bool = False) -> dict[str, tuple[str, bytes]]:
        if force or time.monotonic() - self._read_at > CACHE_SECONDS:
            self._load()
        return self._versions

    def current(self) -> tuple[str, bytes]:
        return self._fresh()["AWSCURRENT"]

    def verifying(self, version_id: str) -> bytes | None:
        found = self._find(self._fresh(), version_id)
        if found is None and time.monotonic() - self._read_at > MIN_REREAD_SECONDS:
            found = self._find(self._fresh(force=True), version_id)
        return found

    @staticmethod
    def _find(versions: dict[str, tuple[str, bytes]], version_id: str) -> bytes | None:
        return next((secret for found_id, secret in versions.values() if found_id == version_id), None)


@cache
def signing_keys() -> SecretsManagerSigningKeys:
    """One per execution environment, so that its versions stay cached between invocations."""
    secret = require_settings("token_signing_secret").token_signing_secret
    return SecretsManagerSigningKeys(secretsmanager_client(), secret)
