"""The one botocore configuration every AWS client of the functions uses (see ``settings``)."""

from __future__ import annotations

from botocore.config import Config

from tracker.settings import get_settings


def client_config(max_pool_connections: int = 10) -> Config:
    """Standard retry mode (backoff with jitter) and the timeouts of the settings."""
    settings = get_settings()
    return Config(
        retries={"mode": "standard", "total_max_attempts": settings.aws_max_attempts},
        connect_timeout=settings.aws_connect_timeout_seconds,
        read_timeout=settings.aws_read_timeout_seconds,
        max_pool_connections=max_pool_connections,
    )
