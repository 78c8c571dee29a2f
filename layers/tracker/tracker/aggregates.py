"""The aggregates the rollup keeps, their keys, and the deltas a run of events adds to them.

Aggregates table items (``pk`` / ``sk``), every one scoped by tenant:

===============================  ====================  ==========================================
``{t}#U#{user}``                  ``H#{hour}``          a user's count per local hour, by action
``{t}#U#{user}``                  ``D#{date}``          a user's count per local day, by action
``{t}#H#{hour}``                  ``{user}``            who was active in an hour (top users)
``{t}#D``                         ``{date}``            the tenant's count and distinct users per day
``{t}#A``                         ``{date}#{action}``   count and distinct users per day per action
``ROLLUP``                        ``PROGRESS``          how far the rollup has counted (``as_of``)
===============================  ====================  ==========================================

A user's items share one partition, so erasing a user is one query. Counts per action are
top-level attributes ``a:{action}`` because DynamoDB cannot ADD inside a map that may not exist.
The user-day item says which actions a user did that day, which is what makes the distinct
user counts exact without reading any raw event again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from tracker.local_calendar import local_date, local_hour_start
from tracker.timefmt import format_utc, parse_utc

ACTION_PREFIX = "a:"
RECEIVED_AT_LENGTH = len("2025-10-10T18:30:00.000Z")

AggregateKey = tuple[str, str]
UserDayActions = frozenset[str] | None
"""The actions already counted for a user on a day; None when the user had none that day."""


def user_partition(tenant_id: str, user_id: str) -> str:
    return f"{tenant_id}#U#{user_id}"


def hour_sort_key(hour: datetime) -> str:
    return f"H#{format_utc(hour)}"


def day_sort_key(day: date) -> str:
    return f"D#{day.isoformat()}"


def hour_users_partition(tenant_id: str, hour: datetime) -> str:
    return f"{tenant_id}#H#{format_utc(hour)}"


def tenant_days_partition(tenant_id: str) -> str:
    return f"{tenant_id}#D"


def tenant_actions_partition(tenant_id: str) -> str:
    return f"{tenant_id}#A"


def action_day_sort_key(day: date, action: str) -> str:
    return f"{day.isoformat()}#{action}"


@dataclass(frozen=True)
class ReceivedEvent:
    """What the rollup reads of an event: the ``by_received`` index projection."""

    received_key: str
    tenant_id: str
    user_id: str
    action: str
    occurred_at: datetime

    @property
    def received_at(self) -> datetime:
        return parse_utc(self.received_key[:RECEIVED_AT_LENGTH])


@dataclass(frozen=True)
class Buckets:
    """Where one event is counted, in its tenant's time zone."""

    user_hour: AggregateKey
    user_day: AggregateKey
    hour_users: AggregateKey
    tenant_day: AggregateKey
    action_day: AggregateKey

    def all(self) -> set[AggregateKey]:
        return {self.user_hour, self.user_day, self.hour_users, self.tenant_day, self.action_day}


def buckets(event: ReceivedEvent, zone: ZoneInfo) -> Buckets:
    hour = local_hour_start(event.occurred_at, zone)
    day = local_date(event.occurred_at, zone)
    tenant, user = event.tenant_id, event.user_id
    return Buckets(
        user_hour=(user_partition(tenant, user), hour_sort_key(hour)),
        user_day=(user_partition(tenant, user), day_sort_key(day)),
        hour_users=(hour_users_partition(tenant, hour), user),
        tenant_day=(tenant_days_partition(tenant), day.isoformat()),
        action_day=(tenant_actions_partition(tenant), action_day_sort_key(day, event.action)),
    )


@dataclass
class Delta:
    """What to add to one aggregate item."""

    count: int = 0
    users: int = 0
    actions: Counter[str] = field(default_factory=Counter)


@dataclass
class Chunk:
    """The deltas of consecutive events, committed together in one transaction."""

    deltas: dict[AggregateKey, Delta] = field(default_factory=dict)
    user_days: dict[AggregateKey, frozenset[str]] = field(default_factory=dict)
    """The user-day action sets as they will be once this chunk is committed."""
    last_event: ReceivedEvent | None = None
    events: int = 0

    def keys_with(self, event_buckets: Buckets) -> int:
        return len(self.deltas.keys() | event_buckets.all())

    def add(self, event: ReceivedEvent, event_buckets: Buckets, known: Mapping[AggregateKey, UserDayActions]) -> None:
        """Counts ``event``; ``known`` holds the committed action set of its user-day."""
        before = self.user_days.get(event_buckets.user_day, known[event_buckets.user_day])
        self.user_days[event_buckets.user_day] = (before or frozenset()) | {event.action}
        for key in event_buckets.all():
            self.deltas.setdefault(key, Delta()).count += 1
        for key in (event_buckets.user_hour, event_buckets.user_day):
            self.deltas[key].actions[event.action] += 1
        if before is None:
            self.deltas[event_buckets.tenant_day].users += 1
        if before is None or event.action not in before:
            self.deltas[event_buckets.action_day].users += 1
        self.last_event = event
        self.events += 1


def action_counts(attributes: Iterable[tuple[str, int]]) -> dict[str, int]:
    """``{"login": 3}`` from an item's ``a:login`` attributes."""
    return {name[len(ACTION_PREFIX) :]: value for name, value in attributes if name.startswith(ACTION_PREFIX)}
