"""Starting another function asynchronously (the erasure and export workers); the only Lambda client."""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING

import boto3

from tracker.adapters.clients import client_config, translated_errors
from tracker.settings import require_settings

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

    from tracker.profile_models import ExportRecord
    from tracker.records import ErasureRecord


@cache
def lambda_client() -> LambdaClient:
    return boto3.client("lambda", config=client_config())


def _invoke_async(function: str, payload: dict[str, str]) -> None:
    with translated_errors("Lambda"):
        lambda_client().invoke(FunctionName=function, InvocationType="Event", Payload=json.dumps(payload).encode())


def start_erasure_worker(record: ErasureRecord) -> None:
    """Hands the erasure to the worker function (an asynchronous invocation, retried by Lambda)."""
    payload = {"tenant_id": record.tenant_id, "erasure_id": record.erasure_id}
    _invoke_async(require_settings("erase_worker_function").erase_worker_function, payload)


def start_export_worker(record: ExportRecord) -> None:
    """Hands the export to the worker function (again, to resume it); asynchronous, retried by Lambda."""
    payload = {"tenant_id": record.tenant_id, "export_id": record.export_id}
    _invoke_async(require_settings("export_worker_function").export_worker_function, payload)
