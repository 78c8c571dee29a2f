"""Starting another function asynchronously (the erasure worker); the only Lambda client."""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tracker.records import ErasureRecord
from tracker.settings import get_settings
from tracker.storage import StoreUnavailable

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient


@cache
def lambda_client() -> LambdaClient:
    settings = get_settings()
    config = Config(
        retries={"mode": "standard", "max_attempts": settings.aws_max_attempts},
        connect_timeout=settings.aws_connect_timeout_seconds,
        read_timeout=settings.aws_read_timeout_seconds,
    )
    return boto3.client("lambda", config=config)


def start_erasure_worker(record: ErasureRecord) -> None:
    """Hands the erasure to the worker function (an asynchronous invocation, retried by Lambda)."""
    payload = {"tenant_id": record.tenant_id, "erasure_id": record.erasure_id}
    try:
        lambda_client().invoke(
            FunctionName=get_settings().erase_worker_function,
            InvocationType="Event",
            Payload=json.dumps(payload).encode(),
        )
    except (BotoCoreError, ClientError) as error:
        raise StoreUnavailable(f"Could not start the erasure: {error}") from error
