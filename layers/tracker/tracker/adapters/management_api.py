"""The API Gateway management API of the WebSocket API: posting a message to one connection."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import ClientError

from tracker.adapters.clients import client_config, error_code, translated_errors
from tracker.interfaces import ConnectionGone, TemporarilyUnavailable
from tracker.settings import get_settings, require_settings

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient

# The management API's own throttling error (429), on top of the codes every client treats as transient.
THROTTLED = "LimitExceededException"


@cache
def management_client(endpoint: str) -> ApiGatewayManagementApiClient:
    """One client per endpoint and process; the endpoint is the API's stage URL."""
    pool = get_settings().broadcast_concurrency + 4
    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint, config=client_config(pool))


class ManagementApiPusher:
    def __init__(self, client: ApiGatewayManagementApiClient) -> None:
        self._client = client

    def push(self, connection_id: str, data: bytes) -> None:
        try:
            with translated_errors("API Gateway's management API"):
                self._client.post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as error:
            code = error_code(error)
            if code == "GoneException":
                raise ConnectionGone(connection_id) from None
            if code == THROTTLED:
                raise TemporarilyUnavailable(f"API Gateway throttled a post: {error}") from error
            raise


def management_pusher() -> ManagementApiPusher:
    return ManagementApiPusher(management_client(require_settings("websocket_management_url").websocket_management_url))
