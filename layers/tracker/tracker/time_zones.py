"""Which time zone names a tenant may have: the IANA tz database's, nothing that depends on the host."""

from __future__ import annotations

from functools import cache
from zoneinfo import available_timezones

# Files of a tz directory that are not zones of the database: the host's own zone (a link that
# differs from machine to machine), the template of POSIX rules, and the "zone unknown" placeholder.
HOST_DEPENDENT = frozenset({"localtime", "posixrules", "Factory"})


@cache
def time_zone_names() -> frozenset[str]:
    """The tz database's zone and link names (``Europe/Kyiv``, ``UTC``, ``US/Eastern``), exactly as spelled."""
    return frozenset(available_timezones() - HOST_DEPENDENT)


def is_time_zone_name(name: str) -> bool:
    return name in time_zone_names()
