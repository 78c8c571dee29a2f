"""How every AWS client of the functions is configured, and which of its failures are transient.

Only modules of ``tracker.adapters`` import boto3 or botocore; the domain sees
``TemporarilyUnavailable`` (a 503 with ``Retry-After``) and nothing else of AWS.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from tracker.interfaces import TemporarilyUnavailable
from tracker.settings import get_settings

# Error codes that retrying later can cure: throttling and the services' own 5xx.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceException",
        "TransactionConflictException",
    }
)


def client_config(max_pool_connections: int = 10) -> Config:
    """Standard retry mode (backoff with jitter) and the timeouts of the settings."""
    settings = get_settings()
    return Config(
        retries={"mode": "standard", "total_max_attempts": settings.aws_max_attempts},
        connect_timeout=settings.aws_connect_timeout_seconds,
        read_timeout=settings.aws_read_timeout_seconds,
        max_pool_connections=max_pool_connections,
    )


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def is_transient(error: Exception) -> bool:
    """Throttling, a service's 5xx, a timeout or a lost connection (after botocore's own retries)."""
    if isinstance(error, ClientError):
        return error_code(error) in TRANSIENT_ERROR_CODES
    return isinstance(error, ConnectionError | HTTPClientError)


@contextmanager
def translated_errors(what: str = "The store") -> Iterator[None]:
    """Transient failures become ``TemporarilyUnavailable``; anything else (a missing table, a bad
    parameter, a denied call) is a programming or configuration error and propagates as it is."""
    try:
        yield
    except (ClientError, ConnectionError, HTTPClientError) as error:
        if is_transient(error):
            raise TemporarilyUnavailable(f"{what} is unavailable: {error}") from error
        raise
