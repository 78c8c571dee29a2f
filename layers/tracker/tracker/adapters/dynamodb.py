"""The DynamoDB client of the functions and what every table adapter shares: attribute values,
batch writes with backoff. Clients are made on first use, never at import."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3

from tracker.adapters.clients import client_config, translated_errors
from tracker.interfaces import TemporarilyUnavailable
from tracker.settings import get_settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Item = dict[str, Any]


@cache
def dynamodb_client() -> DynamoDBClient:
    """One client per process, with the retry mode and timeouts of the settings."""
    return boto3.client("dynamodb", config=client_config(get_settings().ingest_concurrency + 4))


def attr_s(value: str) -> Item:
    return {"S": value}


BATCH_WRITE_LIMIT = 25
BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 2.0
BACKOFF_ATTEMPTS = 8


def backoff_delays() -> Iterator[float]:
    """Capped exponential backoff with full jitter, for work DynamoDB hands back unprocessed."""
    for attempt in range(BACKOFF_ATTEMPTS):
        yield random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))  # noqa: S311 - jitter, not a secret  # nosec B311


def batch_write(client: DynamoDBClient, table: str, requests: Sequence[Item]) -> None:
    """BatchWriteItem in groups of 25; unprocessed items are sent again after a backoff, not at once."""
    for offset in range(0, len(requests), BATCH_WRITE_LIMIT):
        pending: Any = {table: list(requests[offset : offset + BATCH_WRITE_LIMIT])}
        delays = backoff_delays()
        while pending:
            with translated_errors():
                pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or None
            if pending:
                delay = next(delays, None)
                if delay is None:
                    raise TemporarilyUnavailable("DynamoDB kept items unprocessed after every retry.")
                time.sleep(delay)
