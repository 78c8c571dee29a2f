"""The aggregates the rollup keeps: their keys, their values, and how a snapshot of them is read.

Aggregates table items (``pk`` / ``sk``), every one scoped by tenant:

===============================  ====================  ==========================================
``{t}#U#{user}``                  ``H#{hour}``          a user's count per local hour, by action
``{t}#U#{user}``                  ``D#{date}``          a user's count per local day, by action and hour
``{t}#DU#{date}``                 ``{user}``            a user's count that day, by hour (top users)
``{t}#D``                         ``{date}``            the tenant's count and distinct users per day
``{t}#A``                         ``{date}#{action}``   count and distinct users per day per action
``ROLLUP``                        ``PROGRESS``          the committed snapshot, the lease, the fence
``ROLLUP``                        ``JOURNAL#{token}#n`` the keys a run part is about to write
===============================  ====================  ==========================================

A value is a flat set of named counters (``Counters``): ``count``, ``users``, ``a:{action}``,
``h:{minutes after local midnight}``. A new counter (points, a property's sum) is one more name:
``Tally.add`` says what an event adds to it, ``merge`` adds it up, readers pick it by name.

Snapshots: an item holds ``committed`` (its value as of the run ``base``) and ``pending`` (its
value once the run part ``tag`` is committed). A reader that knows the tenant's committed token
``R`` takes ``pending`` when ``tag <= R``, ``committed`` when ``base <= R < tag``; the progress
record flips ``R`` in one conditional write, so a reader sees a whole run part or none of it.
Values with many actions are split into parts (``{sk}~{n}``) of at most ``MAX_FIELDS_PER_PART``
counters: with 64-character actions an item stays under 40 KB whatever the input.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from tracker.local_calendar import day_start, local_date, local_hour_start
from tracker.timefmt import format_utc, parse_utc

COUNT = "count"
USERS = "users"
ACTION_PREFIX = "a:"
HOUR_PREFIX = "h:"
PART_SEPARATOR = "~"
MAX_FIELDS_PER_PART = 250
"""250 counters of at most 66 + 12 bytes of JSON each, twice (committed and pending): under 40 KB."""
RECEIVED_AT_LENGTH = len("2025-10-10T18:30:00.000Z")

AggregateKey = tuple[str, str]
Counters = dict[str, int]


def user_partition(tenant_id: str, user_id: str) -> str:
    return f"{tenant_id}#U#{user_id}"


def hour_sort_key(hour: datetime) -> str:
    return f"H#{format_utc(hour)}"


def day_sort_key(day: date) -> str:
    return f"D#{day.isoformat()}"


def day_users_partition(tenant_id: str, day: date) -> str:
    return f"{tenant_id}#DU#{day.isoformat()}"


def tenant_days_partition(tenant_id: str) -> str:
    return f"{tenant_id}#D"


def tenant_actions_partition(tenant_id: str) -> str:
    return f"{tenant_id}#A"


def action_day_sort_key(day: date, action: str) -> str:
    return f"{day.isoformat()}#{action}"


def tenant_of(key: AggregateKey) -> str:
    """Every aggregate partition starts with its tenant id (which holds no ``#``)."""
    return key[0].split("#", 1)[0]


def part_key(key: AggregateKey, part: int) -> AggregateKey:
    return key if part == 0 else (key[0], f"{key[1]}{PART_SEPARATOR}{part}")


def logical_sort_key(sort_key: str) -> str:
    """The sort key of the value a part belongs to (user ids, which may hold ``~``, are never split)."""
    if sort_key.startswith(("H#", "D#")):
        return sort_key.split(PART_SEPARATOR, 1)[0]
    return sort_key


def hour_field(hour: datetime, day: date, zone: ZoneInfo) -> str:
    """A local hour as a counter name: minutes from the local midnight of its day (23-25 hours a day)."""
    return f"{HOUR_PREFIX}{int((hour - day_start(day, zone)) / timedelta(minutes=1))}"


def hour_of_field(name: str, day: date, zone: ZoneInfo) -> datetime:
    return day_start(day, zone) + timedelta(minutes=int(name[len(HOUR_PREFIX) :]))


def merge(*values: Mapping[str, int]) -> Counters:
    total: Counter[str] = Counter()
    for value in values:
        total.update(value)
    return {name: amount for name, amount in total.items() if amount}


def prefixed(value: Mapping[str, int], prefix: str) -> dict[str, int]:
    """``{"login": 3}`` from ``{"a:login": 3, "count": 3}`` and ``ACTION_PREFIX``."""
    return {name[len(prefix) :]: amount for name, amount in value.items() if name.startswith(prefix)}


def split(value: Mapping[str, int]) -> list[Counters]:
    """A value as parts of at most ``MAX_FIELDS_PER_PART`` counters (an empty value is one empty part)."""
    names = sorted(value)
    chunks = [names[i : i + MAX_FIELDS_PER_PART] for i in range(0, len(names), MAX_FIELDS_PER_PART)] or [[]]
    return [{name: value[name] for name in chunk} for chunk in chunks]


def day_users_value(user_day: Mapping[str, int]) -> Counters:
    """What the top-users item of a user-day holds: its count and its hours."""
    return {name: n for name, n in user_day.items() if name == COUNT or name.startswith(HOUR_PREFIX)}


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
    tenant_day: AggregateKey
    action_day: AggregateKey
    hour: str
    """The event's local hour as a counter name of its user-day."""


def buckets(event: ReceivedEvent, zone: ZoneInfo) -> Buckets:
    hour = local_hour_start(event.occurred_at, zone)
    day = local_date(event.occurred_at, zone)
    tenant, user = event.tenant_id, event.user_id
    return Buckets(
        user_hour=(user_partition(tenant, user), hour_sort_key(hour)),
        user_day=(user_partition(tenant, user), day_sort_key(day)),
        tenant_day=(tenant_days_partition(tenant), day.isoformat()),
        action_day=(tenant_actions_partition(tenant), action_day_sort_key(day, event.action)),
        hour=hour_field(hour, day, zone),
    )


@dataclass
class Tally:
    """What the events of one run part add to each aggregate (before distinct users are derived)."""

    deltas: dict[AggregateKey, Counter[str]] = field(default_factory=dict)
    events: int = 0

    def add(self, event: ReceivedEvent, where: Buckets) -> None:
        for key in (where.user_hour, where.user_day, where.tenant_day, where.action_day):
            self.deltas.setdefault(key, Counter())[COUNT] += 1
        for key in (where.user_hour, where.user_day):
            self.deltas[key][ACTION_PREFIX + event.action] += 1
        self.deltas[where.user_day][where.hour] += 1
        self.events += 1

    def user_days(self) -> list[AggregateKey]:
        return [key for key in self.deltas if key[1].startswith("D#")]


def new_users(user_day: AggregateKey, before: Mapping[str, int], delta: Mapping[str, int]) -> dict[AggregateKey, int]:
    """The distinct-user counts a user-day's delta adds: to its tenant-day if the user is new that
    day, to each action-day whose action is new for the user that day."""
    tenant = tenant_of(user_day)
    day = date.fromisoformat(user_day[1][2:])
    added: dict[AggregateKey, int] = {}
    if not before.get(COUNT):
        added[(tenant_days_partition(tenant), day.isoformat())] = 1
    for action in prefixed(delta, ACTION_PREFIX):
        if not before.get(ACTION_PREFIX + action):
            added[(tenant_actions_partition(tenant), action_day_sort_key(day, action))] = 1
    return added


@dataclass(frozen=True)
class StoredAggregate:
    """One item (or part) as stored: see the module docstring for how a snapshot is read."""

    key: AggregateKey
    committed: Counters
    pending: Counters
    tag: int
    base: int
    parts: int = 1
    """How many parts the value of this key has (on part 0 only)."""

    def value_at(self, token: int) -> Counters | None:
        """The value as of the committed token; None when this item was rewritten since (read again)."""
        if self.tag <= token:
            return self.pending
        if self.base <= token:
            return self.committed
        return None


@dataclass(frozen=True)
class Aggregate:
    """A value as of a snapshot, its parts put together."""

    partition: str
    sort_key: str
    value: Counters

    @property
    def count(self) -> int:
        return self.value.get(COUNT, 0)

    @property
    def users(self) -> int:
        return self.value.get(USERS, 0)

    @property
    def actions(self) -> dict[str, int]:
        return prefixed(self.value, ACTION_PREFIX)


def assemble(items: Iterable[StoredAggregate], token: int) -> list[Aggregate] | None:
    """The values as of ``token``, parts merged, in key order; None if any item moved past it."""
    values: dict[AggregateKey, Counters] = {}
    for item in items:
        value = item.value_at(token)
        if value is None:
            return None
        key = (item.key[0], logical_sort_key(item.key[1]))
        values[key] = merge(values.get(key, {}), value)
    return [Aggregate(pk, sk, value) for (pk, sk), value in sorted(values.items()) if value]
