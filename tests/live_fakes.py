"""In-memory stand-ins for the live-activity interfaces (``ConnectionStore``, ``LivePusher``).

They keep the promises of ``tracker.adapters.connections_table`` and of API Gateway's management
API: a connection belongs to one tenant, holds at most ``limit`` subscriptions (subscribing again to
one it has is a no-op), and a connection that left answers Gone.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import datetime

from tracker.interfaces import ConnectionGone, LiveConnection, TemporarilyUnavailable, TooManySubscriptions


class InMemoryConnectionStore:
    def __init__(self) -> None:
        self.tenants: dict[str, str] = {}
        self.subscriptions: dict[str, set[str | None]] = {}
        self.expires: dict[str, datetime] = {}
        self.down = False
        self._lock = threading.Lock()

    def _check(self) -> None:
        if self.down:
            raise TemporarilyUnavailable("the in-memory connection store is down")

    def add_connection(self, connection_id: str, tenant_id: str, expires_at: datetime) -> None:
        self._check()
        self.tenants[connection_id] = tenant_id
        self.subscriptions[connection_id] = set()
        self.expires[connection_id] = expires_at

    def tenant_of(self, connection_id: str) -> str | None:
        self._check()
        return self.tenants.get(connection_id)

    def subscribe(self, connection_id: str, tenant_id: str, user_id: str | None, limit: int) -> None:
        self._check()
        held = self.subscriptions.get(connection_id)
        if held is None or self.tenants.get(connection_id) != tenant_id:
            return
        if user_id not in held and len(held) >= limit:
            raise TooManySubscriptions(connection_id)
        held.add(user_id)

    def unsubscribe(self, connection_id: str, tenant_id: str, user_id: str | None) -> None:
        self._check()
        if self.tenants.get(connection_id) == tenant_id:
            self.subscriptions[connection_id].discard(user_id)

    def tenant_connections(self, tenant_id: str) -> list[LiveConnection]:
        self._check()
        return [
            LiveConnection(connection_id, tenant_id, frozenset(self.subscriptions[connection_id]))
            for connection_id, owner in self.tenants.items()
            if owner == tenant_id and self.subscriptions[connection_id]
        ]

    def remove_connection(self, connection_id: str, tenant_id: str | None = None) -> None:
        self._check()
        with self._lock:
            if tenant_id is None or self.tenants.get(connection_id) == tenant_id:
                self.tenants.pop(connection_id, None)
                self.subscriptions.pop(connection_id, None)


class RecordingPusher:
    """What API Gateway would deliver: the messages of each connection, in order; some connections gone."""

    def __init__(self) -> None:
        self.sent: dict[str, list[bytes]] = defaultdict(list)
        self.gone: set[str] = set()
        self.busy: set[str] = set()
        """Connections whose posts are throttled (TemporarilyUnavailable after retries)."""
        self._lock = threading.Lock()

    def push(self, connection_id: str, data: bytes) -> None:
        if connection_id in self.gone:
            raise ConnectionGone(connection_id)
        if connection_id in self.busy:
            raise TemporarilyUnavailable("throttled")
        with self._lock:
            self.sent[connection_id].append(data)
