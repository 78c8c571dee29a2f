"""Live activity over WebSocket: who may connect, what a client may ask, and what is pushed to whom.

A connection belongs to the tenant of the key it connected with, never to anything the client
says later; a subscription is to every user of that tenant (``user_id`` absent) or to one user.
The broadcaster hands each new event of a tenant to that tenant's connections whose
subscriptions cover it, in the order the stream gave them, once each.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from tracker.auth import authenticate
from tracker.errors import (
    ApiError,
    Forbidden,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
    ValidationFailed,
    field_error,
    pydantic_details,
)
from tracker.event_reads import event_out
from tracker.interfaces import (
    ConnectionGone,
    ConnectionStore,
    LiveConnection,
    LivePusher,
    TemporarilyUnavailable,
    TenantStore,
    TooManySubscriptions,
)
from tracker.models import UserId
from tracker.records import EventRecord, RateLimitRecord
from tracker.request_body import parse_json

MAX_SUBSCRIPTIONS = 100
"""Subscriptions one connection may hold at once (the tenant-wide one counts as one)."""
MAX_MESSAGE_BYTES = 4096
"""A client message is a small command; anything larger is refused without being parsed."""
CONNECTION_LIFETIME = timedelta(hours=2, minutes=10)
"""API Gateway closes a WebSocket after 2 hours; a connection whose $disconnect was lost is
forgotten (DynamoDB TTL) a little after that."""


class LiveMessage(BaseModel):
    """What a client sends: ``{"action": "subscribe"|"unsubscribe", "user_id"?: "..."}``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    action: Literal["subscribe", "unsubscribe"]
    user_id: UserId | None = None


def connect(
    connections: ConnectionStore,
    tenants: TenantStore,
    *,
    api_key: str | None,
    connection_id: str,
    now: datetime,
    default_limit: RateLimitRecord,
) -> str:
    """Registers the connection for the key's tenant and returns the tenant id.

    Unauthorized for a missing, unknown or revoked key; Forbidden for a key that is not a tenant's
    secret key (an admin or ingest key) or whose tenant is inactive.
    """
    if not api_key:
        raise Unauthorized("Connect with the tenant key in the api_key query parameter.")
    try:
        principal = authenticate(tenants, [api_key], default_limit)
    except Unauthorized:
        raise Unauthorized("The api_key is not a valid key: unknown or revoked.") from None
    if principal.tenant_id is None or principal.role != "tenant":
        raise Forbidden("Only a tenant key may watch live activity.")
    if not principal.active:
        raise Forbidden("This tenant is inactive.")
    connections.add_connection(connection_id, principal.tenant_id, now + CONNECTION_LIFETIME)
    return principal.tenant_id


def read_message(raw: bytes) -> LiveMessage:
    """The client's command, or the ApiError that says what is wrong with it."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise PayloadTooLarge(f"A message is at most {MAX_MESSAGE_BYTES} bytes.")
    value = parse_json(raw)
    if not isinstance(value, dict):
        raise ValidationFailed(
            'Send a JSON object such as {"action": "subscribe"}.',
            [field_error("body", "must be a JSON object", "object_type")],
        )
    try:
        return LiveMessage.model_validate(value)
    except ValidationError as error:
        raise ValidationFailed("The message is not a valid command.", pydantic_details(error.errors())) from None


def handle_message(connections: ConnectionStore, connection_id: str, raw: bytes) -> dict[str, Any]:
    """Applies one client message; the answer to send back (``subscribed``, ``unsubscribed`` or ``error``)."""
    try:
        message = read_message(raw)
        tenant_id = connections.tenant_of(connection_id)
        if tenant_id is None:
            raise Unauthorized("This connection is not registered; connect again.")
        if message.action == "subscribe":
            connections.subscribe(connection_id, tenant_id, message.user_id, MAX_SUBSCRIPTIONS)
        else:
            connections.unsubscribe(connection_id, tenant_id, message.user_id)
    except ApiError as error:
        return error_message(error)
    except TooManySubscriptions:
        return error_message(
            ValidationFailed(
                f"A connection holds at most {MAX_SUBSCRIPTIONS} subscriptions; unsubscribe from one first.",
                [field_error("user_id", f"at most {MAX_SUBSCRIPTIONS} subscriptions", "too_many_subscriptions")],
            )
        )
    except TemporarilyUnavailable:
        return error_message(Unavailable("The connection store is busy; send the message again."))
    return {"type": f"{message.action}d", "user_id": message.user_id}


def error_message(error: ApiError) -> dict[str, Any]:
    return {"type": "error", **error.body()}


def event_message(record: EventRecord) -> bytes:
    """The message a subscriber receives: ``{"type": "event", "event": {event out}}``."""
    event = event_out(record).model_dump(mode="json")
    return json.dumps({"type": "event", "event": event}, ensure_ascii=False).encode()


# ---------------------------------------------------------------- broadcast


@dataclass
class BroadcastResult:
    pushed: int = 0
    """Messages handed to API Gateway."""
    gone: int = 0
    """Connections that had left (410) and were forgotten."""
    failed: int = 0
    """Messages not delivered for another reason (throttling after retries, a timeout)."""


def deliveries(events: Sequence[EventRecord], connections: Iterable[LiveConnection]) -> dict[str, list[EventRecord]]:
    """The events each connection of one tenant is to receive, in their order."""
    wanted: dict[str, list[EventRecord]] = {}
    for connection in connections:
        every_user = None in connection.subscriptions
        mine = [event for event in events if every_user or event.user_id in connection.subscriptions]
        if mine:
            wanted[connection.connection_id] = mine
    return wanted


def broadcast(
    events: Sequence[EventRecord], connections: ConnectionStore, pusher: LivePusher, concurrency: int
) -> BroadcastResult:
    """Pushes each event to the subscribed connections of its own tenant.

    Connections are served in parallel, each one's events in order. A connection that answers
    Gone is forgotten and gets nothing more. Reading the subscriptions may raise
    TemporarilyUnavailable (the batch is then retried); a push that fails is counted, not
    retried: the events are stored, and a second delivery to the others would be a duplicate.
    """
    by_tenant: dict[str, list[EventRecord]] = defaultdict(list)
    for event in events:
        by_tenant[event.tenant_id].append(event)
    work = [
        (tenant_id, connection_id, mine)
        for tenant_id, tenant_events in by_tenant.items()
        for connection_id, mine in deliveries(tenant_events, connections.tenant_connections(tenant_id)).items()
    ]
    result = BroadcastResult()
    if not work:
        return result

    def deliver(item: tuple[str, str, list[EventRecord]]) -> BroadcastResult:
        tenant_id, connection_id, mine = item
        outcome = BroadcastResult()
        for event in mine:
            try:
                pusher.push(connection_id, event_message(event))
            except ConnectionGone:
                outcome.gone += 1
                try:
                    connections.remove_connection(connection_id, tenant_id)
                except TemporarilyUnavailable:  # its TTL forgets it later; nothing is pushed to it now
                    outcome.failed += 1
                return outcome
            except TemporarilyUnavailable:
                # A connection that cannot take a message now loses the rest of this batch, so
                # that one slow client cannot hold the batch (and every other tenant) back.
                outcome.failed += len(mine) - outcome.pushed
                return outcome
            outcome.pushed += 1
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(work)))) as pool:
        for outcome in pool.map(deliver, work):
            result.pushed += outcome.pushed
            result.gone += outcome.gone
            result.failed += outcome.failed
    return result
