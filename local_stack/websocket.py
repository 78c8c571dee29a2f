"""The WebSocket API of the template (``AWS::ApiGatewayV2::Api``, ``ProtocolType: WEBSOCKET``), served locally.

- ``ws://127.0.0.1:WS_PORT/?api_key=...``: each handshake runs the ``$connect`` route's function with
  API Gateway's ``CONNECT`` event; a non-2xx answer refuses the handshake with that status and body.
  Each message runs ``$default`` (``MESSAGE``), one at a time per connection; its ``body`` goes back to
  the client when the route has a route response, as in API Gateway. Closing runs ``$disconnect``.
- ``http://127.0.0.1:WS_MANAGEMENT_PORT/{stage}/@connections/{id}``: the management API
  (``POST`` a message, ``GET`` the connection, ``DELETE`` it; 410 Gone for an unknown one), which the
  functions reach through boto3's ``apigatewaymanagementapi`` client at ``management_url``.
- The template's DynamoDB stream mappings run through ``local_stack.streams``.

A client that does not read: each connection has an outbox of ``OUTBOX_LIMIT`` messages in front of
a write buffer of ``WRITE_LIMIT_BYTES``; when both are full, the next post closes the connection
(1008, "client does not read") and answers 410 Gone, so memory stays bounded and the broadcaster
forgets the connection. Messages from a client are at most ``MAX_MESSAGE_BYTES`` (1009 above); the
function refuses far smaller ones with an error message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from local_stack.httpserver import HttpRequest, HttpResponse, make_server, serve_in_thread
from local_stack.lambdas import InvokeResult
from local_stack.streams import StreamPoller
from local_stack.template import Template, TemplateError

logger = logging.getLogger(__name__)

OUTBOX_LIMIT = 1000
WRITE_LIMIT_BYTES = 256 * 1024
MAX_MESSAGE_BYTES = 1024 * 1024
MAX_POST_BYTES = 128 * 1024  # API Gateway's limit on one posted message
INVOKE_THREADS = 32
CLOSE_TIMEOUT_SECONDS = 1.0
HANDSHAKE_TIMEOUT_SECONDS = 29.0
POST_TIMEOUT_SECONDS = 5.0
_MANAGEMENT_PATH = re.compile(r"^(?:/[^/]+)?/@connections/([^/]+)$")

Invoke = Callable[[str, Any], InvokeResult]


# ---------------------------------------------------------------- template


@dataclass(frozen=True)
class WebSocketSpec:
    logical_id: str
    api_id: str
    stage: str
    routes: dict[str, str]
    """Route key (``$connect``, ``$default``, ``$disconnect``, or an action) -> function logical id."""
    answering_routes: frozenset[str]
    """Routes whose function's answer is sent back to the client (``RouteResponseSelectionExpression``)."""


def websocket_spec(template: Template) -> WebSocketSpec | None:
    """The template's one WebSocket API, its stage and the function behind each route; None when it has none."""
    resolver = template.resolver()
    resources = resolver.resources

    def of_type(resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in resources.items()
            if resource.get("Type") == resource_type and resolver.exists(logical_id)
        }

    apis = [
        logical_id
        for logical_id, resource in of_type("AWS::ApiGatewayV2::Api").items()
        if resolver.resolve((resource.get("Properties") or {}).get("ProtocolType")) == "WEBSOCKET"
    ]
    if not apis:
        return None
    if len(apis) > 1:
        raise TemplateError(f"The local stack serves one WebSocket API; the template has {', '.join(apis)}")
    (api,) = apis

    def belongs(resource: dict[str, Any]) -> bool:
        return (resource.get("Properties") or {}).get("ApiId") == {"Ref": api}

    function_by_arn = {spec.arn: logical_id for logical_id, spec in template.functions.items()}
    integrations = {}
    for logical_id, resource in of_type("AWS::ApiGatewayV2::Integration").items():
        if belongs(resource):
            uri = str(resolver.resolve(resource["Properties"].get("IntegrationUri", "")))
            function = next((name for arn, name in function_by_arn.items() if f"/functions/{arn}/" in uri), None)
            if function is None:
                raise TemplateError(
                    f"{logical_id}: the local stack runs Lambda proxy integrations of its functions only"
                )
            integrations[f"integrations/{resolver.physical_id(logical_id)}"] = function
    routes, answering = {}, set()
    for logical_id, resource in of_type("AWS::ApiGatewayV2::Route").items():
        if belongs(resource):
            properties = resolver.resolve(resource["Properties"])
            if properties.get("Target") not in integrations:
                raise TemplateError(f"{logical_id}: its Target is not an integration of {api}")
            routes[str(properties["RouteKey"])] = integrations[properties["Target"]]
            if properties.get("RouteResponseSelectionExpression"):
                answering.add(str(properties["RouteKey"]))
    stages = [
        str(resolver.resolve(resource["Properties"]["StageName"]))
        for resource in of_type("AWS::ApiGatewayV2::Stage").values()
        if belongs(resource)
    ]
    return WebSocketSpec(
        logical_id=api,
        api_id=resolver.physical_id(api),
        stage=stages[0] if stages else "$default",
        routes=routes,
        answering_routes=frozenset(answering),
    )


def management_url(spec: WebSocketSpec, host: str, management_port: int) -> str:
    return f"http://{host}:{management_port}/{spec.stage}"


def management_environment(template: Template, host: str, ports: tuple[int, int]) -> dict[str, str]:
    """Function variables that name the WebSocket API get the local one: its management endpoint for
    a template value of ``https://{api}.execute-api.{region}.amazonaws.com/{stage}``, the socket
    itself (``ws://{host}:{WS_PORT}``, for the dashboard's live feed) for ``wss://{api}.execute-api...``.
    """
    spec = websocket_spec(template)
    if spec is None:
        return {}
    socket_port, management_port = ports
    local = {"https": management_url(spec, host, management_port), "wss": f"ws://{host}:{socket_port}"}
    return {
        name: local[scheme]
        for function in template.functions.values()
        for name, value in function.environment.items()
        for scheme in local
        if value.startswith(f"{scheme}://{spec.api_id}.execute-api.")
    }


# ---------------------------------------------------------------- server


def connection_id() -> str:
    """An id shaped like API Gateway's (16 characters, URL-safe)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(11)).decode()


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class _Client:
    connection_id: str
    websocket: ServerConnection
    source_ip: str
    user_agent: str
    connected_at: float = field(default_factory=time.time)
    last_active: float = field(default_factory=time.time)
    outbox: asyncio.Queue[str | bytes] = field(default_factory=lambda: asyncio.Queue(OUTBOX_LIMIT))


class LocalWebSocketApi:
    """The WebSocket API on its own asyncio loop (in a thread); functions run through ``invoke``."""

    def __init__(self, spec: WebSocketSpec, invoke: Invoke, host: str, port: int) -> None:
        self.spec = spec
        self._invoke = invoke
        self._host, self._port = host, port
        self._clients: dict[str, _Client] = {}
        self._handshakes: dict[uuid.UUID, tuple[str, dict[str, Any]]] = {}
        self._invokers = ThreadPoolExecutor(max_workers=INVOKE_THREADS, thread_name_prefix="websocket-invoke")
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="websocket", daemon=True)
        self._closing = False

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result()

    async def _serve(self) -> Server:
        return await serve(
            self._session,
            self._host,
            self._port,
            process_request=self._handshake,
            max_size=MAX_MESSAGE_BYTES,
            write_limit=WRITE_LIMIT_BYTES,
            close_timeout=CLOSE_TIMEOUT_SECONDS,
            # The handshake waits for $connect: a cold start and a queue of busy workers, as API
            # Gateway waits for its integration (29 s).
            open_timeout=HANDSHAKE_TIMEOUT_SECONDS,
            server_header="local-stack",
        )

    def stop(self) -> None:
        """Closes every connection (1001, going away) without running ``$disconnect``: the stack is stopping.

        A client that does not read cannot take the close frame: its connection is aborted after
        ``CLOSE_TIMEOUT_SECONDS``.
        """
        self._closing = True
        if self._server is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(self._server), self._loop).result(
                    timeout=CLOSE_TIMEOUT_SECONDS * 5
                )
            except TimeoutError:
                logger.warning("The WebSocket server did not stop in time")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._invokers.shutdown(wait=False, cancel_futures=True)

    async def _shutdown(self, server: Server) -> None:
        server.close(close_connections=True)
        try:
            await asyncio.wait_for(server.wait_closed(), CLOSE_TIMEOUT_SECONDS * 2)
        except TimeoutError:
            for connection in list(server.connections):
                connection.transport.abort()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    # ------------------------------------------------------------ routes

    def _context(self, route_key: str, event_type: str, connection: str, client_ip: str, agent: str) -> dict[str, Any]:
        now = _now_ms()
        return {
            "routeKey": route_key,
            "eventType": event_type,
            "messageDirection": "IN",
            "stage": self.spec.stage,
            "connectedAt": now,
            "requestTimeEpoch": now,
            "requestTime": datetime.now(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestId": secrets.token_urlsafe(12),
            "extendedRequestId": secrets.token_urlsafe(12),
            "identity": {"sourceIp": client_ip, "userAgent": agent},
            "domainName": self._host,
            "connectionId": connection,
            "apiId": self.spec.api_id,
        }

    async def _run_route(self, route_key: str, event: dict[str, Any]) -> dict[str, Any] | None:
        """The function's answer; None when the route has no function; a 500 answer for a function error."""
        function = self.spec.routes.get(route_key) or self.spec.routes.get("$default")
        if function is None:
            return None
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._invokers, self._invoke, function, event)
        if result.function_error:
            logger.warning("%s failed on %s: %.300s", function, route_key, result.payload)
            return {"statusCode": 500, "body": json.dumps({"message": "Internal server error"})}
        answer = result.json()
        return answer if isinstance(answer, dict) else {"statusCode": 200}

    async def _handshake(self, websocket: ServerConnection, request: Request) -> Response | None:
        client_ip = str(websocket.remote_address[0]) if websocket.remote_address else "127.0.0.1"
        agent = request.headers.get("User-Agent", "")
        connection = connection_id()
        query = parse_qs(urlsplit(request.path).query, keep_blank_values=True)
        headers = dict(request.headers.raw_items())
        event = {
            "headers": headers,
            "multiValueHeaders": {name: request.headers.get_all(name) for name in headers},
            "queryStringParameters": {name: values[-1] for name, values in query.items()} or None,
            "multiValueQueryStringParameters": query or None,
            "requestContext": self._context("$connect", "CONNECT", connection, client_ip, agent),
            "isBase64Encoded": False,
        }
        answer = await self._run_route("$connect", event)
        status = int((answer or {}).get("statusCode", 200))
        if 200 <= status < 300:
            self._handshakes[websocket.id] = (connection, {"ip": client_ip, "agent": agent})
            return None
        body = str((answer or {}).get("body") or "")
        response_headers = Headers({"Content-Type": "application/json", "Content-Length": str(len(body.encode()))})
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Refused"
        return Response(status, reason, response_headers, body.encode())

    async def _session(self, websocket: ServerConnection) -> None:
        connection, origin = self._handshakes.pop(websocket.id)
        client = _Client(connection, websocket, origin["ip"], origin["agent"])
        self._clients[connection] = client
        sender = asyncio.create_task(self._send_outbox(client))
        try:
            async for message in websocket:
                client.last_active = time.time()
                await self._on_message(client, message)
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()
            self._clients.pop(connection, None)
            if not self._closing:
                event = {
                    "headers": {},
                    "requestContext": {
                        **self._context("$disconnect", "DISCONNECT", connection, client.source_ip, client.user_agent),
                        "disconnectStatusCode": websocket.close_code or 1006,
                        "disconnectReason": websocket.close_reason or "",
                    },
                    "isBase64Encoded": False,
                }
                await self._run_route("$disconnect", event)

    async def _on_message(self, client: _Client, message: str | bytes) -> None:
        binary = isinstance(message, bytes)
        event = {
            "requestContext": self._context(
                "$default", "MESSAGE", client.connection_id, client.source_ip, client.user_agent
            ),
            "body": base64.b64encode(message).decode() if isinstance(message, bytes) else message,
            "isBase64Encoded": binary,
        }
        answer = await self._run_route("$default", event)
        if answer is not None and "$default" in self.spec.answering_routes and answer.get("body") is not None:
            self._enqueue(client, str(answer["body"]))

    async def _send_outbox(self, client: _Client) -> None:
        try:
            while True:
                await client.websocket.send(await client.outbox.get())
        except ConnectionClosed:
            pass

    def _enqueue(self, client: _Client, message: str | bytes) -> None:
        """Queues a message; a client whose outbox is full does not read: it is closed."""
        try:
            client.outbox.put_nowait(message)
        except asyncio.QueueFull:
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        if self._clients.pop(client.connection_id, None) is not None:
            asyncio.get_running_loop().create_task(client.websocket.close(1008, "client does not read"))

    # ------------------------------------------------------------ management API (called from HTTP threads)

    def _on_loop(self, operation: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return operation()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=POST_TIMEOUT_SECONDS)

    def post(self, connection: str, data: bytes) -> bool:
        """Sends ``data`` (text when it is UTF-8, as API Gateway does); False when the connection is gone.

        Answers at once, without waiting for the event loop (a slow answer would make the caller's
        SDK time out and post again: a duplicate); the loop queues the message when it gets to it.
        """
        try:
            message: str | bytes = data.decode("utf-8")
        except UnicodeDecodeError:
            message = data
        client = self._clients.get(connection)
        if client is None:
            return False
        if client.outbox.qsize() >= OUTBOX_LIMIT:
            self._loop.call_soon_threadsafe(self._drop, client)
            return False
        self._loop.call_soon_threadsafe(self._enqueue, client, message)
        return True

    def describe(self, connection: str) -> dict[str, Any] | None:
        client = self._clients.get(connection)
        if client is None:
            return None
        return {
            "connectedAt": _iso(client.connected_at),
            "lastActiveAt": _iso(client.last_active),
            "identity": {"sourceIp": client.source_ip, "userAgent": client.user_agent},
        }

    def disconnect(self, connection: str) -> bool:
        def close() -> bool:
            client = self._clients.get(connection)
            if client is None:
                return False
            asyncio.get_running_loop().create_task(client.websocket.close(1000, "closed by the management API"))
            return True

        return bool(self._on_loop(close))

    @property
    def connections(self) -> int:
        return len(self._clients)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ManagementApi:
    """The ``@connections`` API as an ``HttpApp`` (served by ``local_stack.httpserver``)."""

    def __init__(self, websockets: LocalWebSocketApi) -> None:
        self._websockets = websockets

    def handle(self, request: HttpRequest) -> HttpResponse:
        match = _MANAGEMENT_PATH.match(request.path)
        if match is None:
            return _json(404, {"message": "Not Found"}, "NotFoundException")
        connection = unquote(match.group(1))
        answer: HttpResponse | None = None
        if request.method == "POST":
            if request.too_large:
                answer = _json(413, {"message": "Payload too large"}, "PayloadTooLargeException")
            elif self._websockets.post(connection, request.body):
                answer = HttpResponse(200)
        elif request.method == "GET":
            described = self._websockets.describe(connection)
            answer = None if described is None else _json(200, described)
        elif request.method == "DELETE":
            answer = HttpResponse(204) if self._websockets.disconnect(connection) else None
        else:
            answer = _json(405, {"message": "Method Not Allowed"}, "BadRequestException")
        return answer or _json(410, {"message": "Gone"}, "GoneException")

    def protocol_error(self, status: int, message: str) -> HttpResponse:
        return _json(status, {"message": message}, "BadRequestException")


def _json(status: int, body: Any, error_type: str | None = None) -> HttpResponse:
    headers = [("Content-Type", "application/json")]
    if error_type:
        headers.append(("x-amzn-ErrorType", error_type))
    return HttpResponse(status, headers, json.dumps(body).encode())


# ---------------------------------------------------------------- all together


class LiveActivity:
    """The WebSocket API, its management API and the stream mappings of a running local stack."""

    def __init__(
        self, template: Template, invoke: Invoke, aws_endpoint: str, host: str, ports: tuple[int, int]
    ) -> None:
        ws_port, management_port = ports
        self.spec = websocket_spec(template)
        self.urls: list[str] = []
        self._stops: list[Callable[[], None]] = []
        if self.spec is not None:
            websockets = LocalWebSocketApi(self.spec, invoke, host, ws_port)
            websockets.start()
            self._stops.append(websockets.stop)
            server = make_server(ManagementApi(websockets), host, management_port, MAX_POST_BYTES)
            serve_in_thread(server, f"http-{management_port}")
            self._stops += [server.server_close, server.shutdown]
            self.urls = [f"ws://{host}:{ws_port}", management_url(self.spec, host, management_port)]
        # moto runs in this process (ThreadedMotoServer): the poller may tidy its shard iterators.
        streams = StreamPoller(template, aws_endpoint, invoke, forget_iterators=True)
        streams.start()
        self._stops.append(streams.stop)
        self.stream_functions = [mapping.function for mapping in streams.mappings]

    def stop(self) -> None:
        for stop in reversed(self._stops):
            stop()

    def banner(self) -> list[str]:
        lines = []
        if self.urls:
            websocket, management = self.urls
            lines += [
                f"Live activity (WebSocket)    {websocket}/?api_key=$TENANT_KEY   (python -m websockets ...)",
                f"WebSocket management API     {management}/@connections/{{id}}",
            ]
        if self.stream_functions:
            lines.append(f"Stream consumers             {', '.join(self.stream_functions)}")
        return lines
