"""The embedded AWS emulation: a moto server, the template's tables and usage plan, and the env vars
that point boto3 at it.

``create_tables`` takes any DynamoDB client, so the integration tests use it with moto's in-process
``mock_aws`` exactly as the local stack uses it with the moto server.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, Any

from local_stack.template import DEFAULT_REGION, Template

if TYPE_CHECKING:
    from local_stack.emulator import Emulator

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
FAKE_CREDENTIALS = "testing"


def check_port_free(port: int, host: str = HOST, variable: str | None = None) -> None:
    """Raises OSError naming the port (and the variable that sets it) when something already listens on it,
    before anything is started."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            hint = f": set {variable} to another port (e.g. {variable}={port + 10})" if variable else ""
            raise OSError(error.errno, f"Port {port} on {host} is already in use{hint}") from error


def start_moto(port: int, host: str = HOST) -> Emulator:
    """The AWS emulation (moto, serialised: see ``local_stack.emulator``) on ``port``; 0 picks a free one."""
    from local_stack.emulator import Emulator  # noqa: PLC0415 - heavy, and never needed by a Lambda worker

    check_port_free(port, host)
    server = Emulator(host, port)
    server.start()
    return server


def moto_endpoint(server: Emulator) -> str:
    return server.endpoint


def emulation_env(
    endpoint: str | int, region: str = DEFAULT_REGION, lambda_endpoint: str | None = None
) -> dict[str, str]:
    """Environment variables that point boto3 (and the AWS CLI) at the emulation, with fake credentials.

    ``endpoint`` is a URL or a port on 127.0.0.1; ``lambda_endpoint`` (the local Invoke API) takes the
    Lambda calls: moto's Lambda needs Docker.
    """
    env = {
        "AWS_ENDPOINT_URL": endpoint if isinstance(endpoint, str) else f"http://{HOST}:{endpoint}",
        "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS,
        "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    }
    if lambda_endpoint is not None:
        env["AWS_ENDPOINT_URL_LAMBDA"] = lambda_endpoint
    return env


def create_tables(dynamodb_client: Any, template: Template) -> list[str]:
    """Creates every DynamoDB table of the template that does not exist yet; returns the names created.

    ``dynamodb_client`` is a boto3 DynamoDB client (moto server or ``mock_aws``).
    """
    created = []
    for table in template.tables.values():
        try:
            dynamodb_client.create_table(**table.create_kwargs)
        except dynamodb_client.exceptions.ResourceInUseException:
            logger.debug("Table %s exists already", table.name)
            continue
        dynamodb_client.get_waiter("table_exists").wait(TableName=table.name, WaiterConfig={"Delay": 1})
        ttl = table.time_to_live
        if ttl and ttl.get("Enabled"):
            dynamodb_client.update_time_to_live(
                TableName=table.name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
        created.append(table.name)
    return created


def create_usage_plan(apigateway_client: Any, template: Template) -> str | None:
    """Creates the API's usage plan (SAM's ``Auth.UsagePlan``) unless it exists; returns its id, if any.

    ``apigateway_client`` is a boto3 API Gateway client (moto server or ``mock_aws``).
    """
    api = template.api
    if api is None or api.usage_plan is None:
        return None
    plan = api.usage_plan
    for page in apigateway_client.get_paginator("get_usage_plans").paginate():
        for existing in page.get("items", []):
            if existing.get("name") == plan.name:
                return str(existing["id"])
    arguments: dict[str, Any] = {"name": plan.name, "apiStages": [{"apiId": api.api_id, "stage": api.stage}]}
    if plan.throttle:
        arguments["throttle"] = plan.throttle
    if plan.quota:
        arguments["quota"] = plan.quota
    return str(apigateway_client.create_usage_plan(**arguments)["id"])


def client(service: str, endpoint: str, region: str = DEFAULT_REGION, config: Any = None) -> Any:
    """A boto3 client of the emulation, with the fake credentials (and a botocore ``Config``, if given)."""
    import boto3  # noqa: PLC0415 - heavy, and never needed by a Lambda worker

    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=FAKE_CREDENTIALS,
        aws_secret_access_key=FAKE_CREDENTIALS,
        config=config,
    )


def provision(endpoint: str, template: Template) -> None:
    """What CloudFormation would create before the functions run: the tables, the usage plan, keys,
    secrets and buckets."""
    from local_stack.resources import create_resources  # noqa: PLC0415 - with boto3, never needed by a worker

    create_tables(client("dynamodb", endpoint, template.region), template)
    create_usage_plan(client("apigateway", endpoint, template.region), template)
    create_resources(lambda service: client(service, endpoint, template.region), template)
