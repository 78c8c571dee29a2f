"""The aggregates the rollup keeps: their keys, their values, and how a snapshot of them is read.

Aggregates table items (``pk`` / ``sk``), every one scoped by tenant:

===============================  ====================  ==========================================
``{t}#U#{user}``                  ``H#{hour}``          a user's count per local hour, by action
``{t}#U#{user}``                  ``D#{date}``          a user's count per local day, by action and hour
``{t}#U#{user}``                  ``P``                 a user's lifetime count and points, by action
``{t}#DU#{date}``                 ``{user}``            a user's count and points that day, by hour (top users)
``{t}#D``                         ``{date}``            the tenant's count and distinct users per day
``{t}#A``                         ``{date}#{action}``   count, distinct users, numeric properties and
                                                        violations per day per action
``ROLLUP``                        ``PROGRESS``          the committed snapshot, the lease, the fence
``ROLLUP``                        ``JOURNAL#{token}#n`` the keys a run part is about to write
===============================  ====================  ==========================================

A value is a flat set of named counters (``Counters``): ``count``, ``users``, ``a:{action}``,
``h:{minutes after local midnight}``, ``p:{action}`` (points), ``ph:{minutes}`` (points per local
hour), ``points`` (a top-users twin's day total), and per numeric property ``n:{prop}``,
``s:{prop}``, ``mn:{prop}``, ``mx:{prop}`` (count, sum, min, max), per violation kind ``v:{kind}``
(events that broke the tracking plan that way). ``Tally.add`` says what an event adds to each,
``merge`` combines them (``mn:``/``mx:`` take the minimum/maximum, every other name adds up),
readers use the accessors of ``Aggregate`` rather than the names.

Numbers: counts and points are ``int``; a property's sum, min and max are ``int`` while every value
was a JSON integer, a ``Decimal`` once a JSON float took part (its shortest decimal text, as stored,
is taken exactly). Sums are done in ``EXACT``, a context of 1,000 digits that traps ``Inexact``:
the values counted lie between 1e-324 and 1.8e308 in magnitude with at most 17 significant digits
(the decimal texts of doubles; larger integers are not counted), so an exact sum of any number of
them needs under 700 digits and the trap never fires.

Snapshots: an item holds ``committed`` (its value as of the run ``base``) and ``pending`` (its
value once the run part ``tag`` is committed). A reader that knows the tenant's committed token
``R`` takes ``pending`` when ``tag <= R``, ``committed`` when ``base <= R < tag``; the progress
record flips ``R`` in one conditional write, so a reader sees a whole run part or none of it.
Values with many counters are split into parts (``{sk}~{n}``) of at most ``MAX_FIELDS_PER_PART``
counters and ``MAX_PART_BYTES`` of JSON: an item (both snapshots) stays under 65 KB whatever the
names and the sums, under 40 KB with ASCII names of 64 characters.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from tracker.local_calendar import day_start, local_date, local_hour_start
from tracker.timefmt import format_utc, parse_utc

COUNT = "count"
USERS = "users"
POINTS = "points"
ACTION_PREFIX = "a:"
HOUR_PREFIX = "h:"
POINTS_PREFIX = "p:"
HOUR_POINTS_PREFIX = "ph:"
PROPERTY_COUNT_PREFIX = "n:"
PROPERTY_SUM_PREFIX = "s:"
MIN_PREFIX = "mn:"
MAX_PREFIX = "mx:"
VIOLATION_PREFIX = "v:"
LIFETIME_SORT_KEY = "P"
PART_SEPARATOR = "~"
MAX_FIELDS_PER_PART = 250
"""250 counters of at most 66 + 12 bytes of JSON each, twice (committed and pending): under 40 KB."""
MAX_PART_BYTES = 32_000
"""Of JSON per snapshot of a part: long non-ASCII property names and long exact sums weigh more."""
RECEIVED_AT_LENGTH = len("2025-10-10T18:30:00.000Z")
EXACT = Context(prec=1_000, traps=[Inexact, InvalidOperation, Overflow])
"""Where property sums are done: see the module docstring for why 1,000 digits are always enough."""
LARGEST_NUMBER = Decimal(sys.float_info.max)
"""A property value counts up to the magnitude of the largest double (a larger JSON integer does not)."""

AggregateKey = tuple[str, str]
Number = int | Decimal
Counters = dict[str, Number]


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


def lifetime_key(tenant_id: str, user_id: str) -> AggregateKey:
    """The item of everything a user ever did and earned."""
    return (user_partition(tenant_id, user_id), LIFETIME_SORT_KEY)


def tenant_of(key: AggregateKey) -> str:
    """Every aggregate partition starts with its tenant id (which holds no ``#``)."""
    return key[0].split("#", 1)[0]


def part_key(key: AggregateKey, part: int) -> AggregateKey:
    return key if part == 0 else (key[0], f"{key[1]}{PART_SEPARATOR}{part}")


def logical_key(key: AggregateKey) -> AggregateKey:
    """The key of the value a part belongs to. Top-users twins are never split (their sort key is a
    user id, which may hold ``~``); no other sort key holds ``~`` but a part's."""
    partition, sort_key = key
    if partition.split("#", 2)[1:2] == ["DU"]:
        return key
    return (partition, sort_key.split(PART_SEPARATOR, 1)[0])


def hour_field(hour: datetime, day: date, zone: ZoneInfo) -> str:
    """A local hour as a counter name: minutes from the local midnight of its day (23-25 hours a day)."""
    return f"{HOUR_PREFIX}{int((hour - day_start(day, zone)) / timedelta(minutes=1))}"


def hour_of_field(name: str, day: date, zone: ZoneInfo) -> datetime:
    return day_start(day, zone) + timedelta(minutes=int(name[len(HOUR_PREFIX) :]))


def _add(one: Number, other: Number) -> Number:
    if isinstance(one, int) and isinstance(other, int):
        return one + other
    return EXACT.add(one, other)


def _combined(name: str, one: Number, other: Number) -> Number:
    if name.startswith(MIN_PREFIX):
        return min(one, other)
    if name.startswith(MAX_PREFIX):
        return max(one, other)
    return _add(one, other)


def _is_extreme(name: str) -> bool:
    return name.startswith((MIN_PREFIX, MAX_PREFIX))


def merge(*values: Mapping[str, Number]) -> Counters:
    """The values combined: ``mn:``/``mx:`` names take the minimum/maximum, others add up. An additive
    counter at zero is left out; a minimum or maximum of 0 is a value and stays."""
    total: Counters = {}
    for value in values:
        for name, amount in value.items():
            total[name] = _combined(name, total[name], amount) if name in total else amount
    return {name: amount for name, amount in total.items() if amount or _is_extreme(name)}


def prefixed(value: Mapping[str, Number], prefix: str) -> dict[str, Number]:
    """``{"login": 3}`` from ``{"a:login": 3, "count": 3}`` and ``ACTION_PREFIX``."""
    return {name[len(prefix) :]: amount for name, amount in value.items() if name.startswith(prefix)}


def _counts(value: Mapping[str, Number], prefix: str) -> dict[str, int]:
    """The integer counters of a kind (counts, points): never a Decimal."""
    return {name: int(amount) for name, amount in prefixed(value, prefix).items()}


@lru_cache(maxsize=65_536)
def _name_bytes(name: str) -> int:
    return len(json.dumps(name))


def _counter_bytes(name: str, amount: Number) -> int:
    """What a counter weighs in the stored JSON (a Decimal is a string: two quotes more)."""
    return _name_bytes(name) + len(str(amount)) + (4 if isinstance(amount, Decimal) else 2)


def split(value: Mapping[str, Number]) -> list[Counters]:
    """A value as parts of at most ``MAX_FIELDS_PER_PART`` counters and ``MAX_PART_BYTES`` of JSON,
    in name order (an empty value is one empty part)."""
    parts: list[Counters] = [{}]
    size = 0
    for name in sorted(value):
        weight = _counter_bytes(name, value[name])
        if parts[-1] and (len(parts[-1]) >= MAX_FIELDS_PER_PART or size + weight > MAX_PART_BYTES):
            parts.append({})
            size = 0
        parts[-1][name] = value[name]
        size += weight
    return parts


def day_users_value(user_day: Mapping[str, Number]) -> Counters:
    """What the top-users item of a user-day holds: its count and points, both by hour."""
    value = {
        name: n for name, n in user_day.items() if name == COUNT or name.startswith((HOUR_PREFIX, HOUR_POINTS_PREFIX))
    }
    points = sum(_counts(user_day, POINTS_PREFIX).values())
    return {**value, POINTS: points} if points else value


def property_number(value: Any) -> Number | None:
    """A metadata value as a property statistic counts it: a JSON integer or float (parsed as
    ``Decimal``) up to the largest double in magnitude; None for anything else (a bool, a string)."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    if isinstance(value, Decimal) and not value.is_finite():
        return None
    if abs(Decimal(value)) > LARGEST_NUMBER:
        return None
    return EXACT.plus(value) if isinstance(value, Decimal) else value  # plus: -0.0 is 0.0


@dataclass(frozen=True)
class ReceivedEvent:
    """What the rollup reads of an event: the ``by_received_v2`` index projection."""

    received_key: str
    tenant_id: str
    user_id: str
    action: str
    occurred_at: datetime
    metadata: Mapping[str, Any] | None = None
    """JSON floats as ``Decimal``: the stored decimal text, exactly."""
    violations: tuple[str, ...] = ()
    """The kinds of the tracking-plan violations stored with the event (``flag`` mode)."""

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

    @property
    def lifetime(self) -> AggregateKey:
        """The user's lifetime item."""
        return (self.user_day[0], LIFETIME_SORT_KEY)

    @property
    def points_hour(self) -> str:
        """The event's local hour as a points counter name of its user-day."""
        return HOUR_POINTS_PREFIX + self.hour[len(HOUR_PREFIX) :]


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


@dataclass(frozen=True)
class Scoring:
    """What the tenant's catalog says an action's events earn when they are counted: ``points``, and
    the properties declared ``number`` with the instant each was declared (events received from then
    on count)."""

    points: int = 0
    numbers: Mapping[str, datetime] = field(default_factory=dict)

    def numbers_of(self, event: ReceivedEvent) -> dict[str, Number]:
        """The event's values of the declared number properties it counts in."""
        if not self.numbers or not event.metadata:
            return {}
        counted: dict[str, Number] = {}
        received_at = event.received_at
        for name, declared_at in self.numbers.items():
            number = property_number(event.metadata.get(name))
            if number is not None and received_at >= declared_at:
                counted[name] = number
        return counted


UNSCORED = Scoring()
"""An action the catalog does not know: no points, no property."""


@dataclass
class Tally:
    """What the events of one run part add to each aggregate (before distinct users are derived)."""

    deltas: dict[AggregateKey, Counters] = field(default_factory=dict)
    events: int = 0

    def _add(self, key: AggregateKey, name: str, amount: Number) -> None:
        value = self.deltas.setdefault(key, {})
        value[name] = _combined(name, value[name], amount) if name in value else amount

    def add(self, event: ReceivedEvent, where: Buckets, scoring: Scoring = UNSCORED) -> None:
        for key in (where.user_hour, where.user_day, where.tenant_day, where.action_day, where.lifetime):
            self._add(key, COUNT, 1)
        for key in (where.user_hour, where.user_day, where.lifetime):
            self._add(key, ACTION_PREFIX + event.action, 1)
        self._add(where.user_day, where.hour, 1)
        if scoring.points:
            for key in (where.user_hour, where.user_day, where.lifetime):
                self._add(key, POINTS_PREFIX + event.action, scoring.points)
            self._add(where.user_day, where.points_hour, scoring.points)
        for name, number in scoring.numbers_of(event).items():
            self._add(where.action_day, PROPERTY_COUNT_PREFIX + name, 1)
            for prefix in (PROPERTY_SUM_PREFIX, MIN_PREFIX, MAX_PREFIX):
                self._add(where.action_day, prefix + name, number)
        for kind in sorted(set(event.violations)):
            self._add(where.action_day, VIOLATION_PREFIX + kind, 1)
        self.events += 1

    def user_days(self) -> list[AggregateKey]:
        return [key for key in self.deltas if key[1].startswith("D#")]


def new_users(
    user_day: AggregateKey, before: Mapping[str, Number], delta: Mapping[str, Number]
) -> dict[AggregateKey, int]:
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
        return int(self.value.get(COUNT, 0))

    @property
    def users(self) -> int:
        return int(self.value.get(USERS, 0))

    @property
    def actions(self) -> dict[str, int]:
        """Events by action (user items)."""
        return _counts(self.value, ACTION_PREFIX)

    @property
    def hours(self) -> dict[int, int]:
        """Events by local hour, as minutes after local midnight (user-days, top-users twins)."""
        return {int(minutes): n for minutes, n in _counts(self.value, HOUR_PREFIX).items()}

    @property
    def points_by_action(self) -> dict[str, int]:
        """Points by action (user-hours, user-days, the lifetime item)."""
        return _counts(self.value, POINTS_PREFIX)

    @property
    def points(self) -> int:
        """The points of a user item, or of a top-users twin."""
        if POINTS in self.value:
            return int(self.value[POINTS])
        return sum(self.points_by_action.values())

    @property
    def hour_points(self) -> dict[int, int]:
        """Points by local hour, as minutes after local midnight (user-days, top-users twins)."""
        return {int(minutes): n for minutes, n in _counts(self.value, HOUR_POINTS_PREFIX).items()}

    @property
    def properties(self) -> list[str]:
        """The numeric properties counted in this action-day, by name."""
        return sorted(prefixed(self.value, PROPERTY_COUNT_PREFIX))

    def property_stats(self, name: str) -> PropertyStats | None:
        """Count, sum, min and max of a numeric property in this action-day; None when not counted."""
        count = int(self.value.get(PROPERTY_COUNT_PREFIX + name, 0))
        if not count:
            return None
        return PropertyStats(
            count=count,
            sum=self.value.get(PROPERTY_SUM_PREFIX + name, 0),
            min=self.value[MIN_PREFIX + name],
            max=self.value[MAX_PREFIX + name],
        )

    @property
    def violations(self) -> dict[str, int]:
        """Events of this action-day that broke the tracking plan, by violation kind."""
        return _counts(self.value, VIOLATION_PREFIX)


@dataclass(frozen=True)
class PropertyStats:
    """A numeric property over the events of an action-day: exact (``int`` or ``Decimal``)."""

    count: int
    sum: Number
    min: Number
    max: Number


def assemble(items: Iterable[StoredAggregate], token: int) -> list[Aggregate] | None:
    """The values as of ``token``, parts merged, in key order; None if any item moved past it."""
    values: dict[AggregateKey, Counters] = {}
    for item in items:
        value = item.value_at(token)
        if value is None:
            return None
        key = logical_key(item.key)
        values[key] = merge(values.get(key, {}), value)
    return [Aggregate(pk, sk, value) for (pk, sk), value in sorted(values.items()) if value]
