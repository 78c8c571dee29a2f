"""Starting another function asynchronously (the erasure worker); the only Lambda client."""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING

import boto3

from tracker.adapters.clients import client_config, translated_errors
from tracker.records import ErasureRecord
from tracker.settings import require_settings

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient


@cache
def lambda_client() -> LambdaClient:
    return boto3.client("lambda", config=client_config())


def start_erasure_worker(record: ErasureRecord) -> None:
    """Hands the erasure to the worker function (an asynchronous invocation, retried by Lambda)."""
    payload = {"tenant_id": record.tenant_id, "erasure_id": record.erasure_id}
    with translated_errors("Lambda"):
        lambda_client().invoke(
            FunctionName=require_settings("erase_worker_function").erase_worker_function,
            InvocationType="Event",
            Payload=json.dumps(payload).encode(),
        )
