"""tracker.local_calendar: local hours, local days and 1h/4h/1d windows as UTC instants, in any IANA zone."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from tracker.local_calendar import HOUR, Period, dates, day_start, local_date, local_hour_start, local_time, windows
from tracker.models import QueryDateOrTime, QueryTime
from tracker.timefmt import format_utc, parse_utc

KYIV = ZoneInfo("Europe/Kyiv")
NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")
KATHMANDU = ZoneInfo("Asia/Kathmandu")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def spans(start: str, end: str, period: Period, zone: ZoneInfo) -> list[tuple[datetime, datetime]]:
    return list(windows(utc(start), utc(end), period, zone))


def hours_of(window: tuple[datetime, datetime]) -> float:
    return (window[1] - window[0]) / HOUR


# ---------------------------------------------------------------- local hours and days


@pytest.mark.parametrize(
    ("moment", "zone", "expected"),
    [
        ("2025-06-15T04:47:12.345Z", ZoneInfo("UTC"), "2025-06-15T04:00:00Z"),
        # 10:17 in Kolkata (+05:30): its local hour began at 10:00, 04:30Z.
        ("2025-06-15T04:47:00Z", KOLKATA, "2025-06-15T04:30:00Z"),
        ("2025-06-15T04:29:59.999Z", KOLKATA, "2025-06-15T03:30:00Z"),
        # 10:32 in Kathmandu (+05:45): its local hour began at 10:00, 04:15Z.
        ("2025-06-15T04:47:00Z", KATHMANDU, "2025-06-15T04:15:00Z"),
        ("2025-06-15T04:14:59.999Z", KATHMANDU, "2025-06-15T03:15:00Z"),
        # Kyiv falls back at 04:00 EEST (01:00Z): 03:30 happens twice, each in its own hour.
        ("2025-10-26T00:30:00Z", KYIV, "2025-10-26T00:00:00Z"),
        ("2025-10-26T01:30:00Z", KYIV, "2025-10-26T01:00:00Z"),
        # New York springs forward at 02:00 EST (07:00Z) to 03:00 EDT.
        ("2025-03-09T06:59:59Z", NEW_YORK, "2025-03-09T06:00:00Z"),
        ("2025-03-09T07:00:00Z", NEW_YORK, "2025-03-09T07:00:00Z"),
        # New York falls back at 02:00 EDT (06:00Z): 01:30 EDT and 01:30 EST are different hours.
        ("2025-11-02T05:30:00Z", NEW_YORK, "2025-11-02T05:00:00Z"),
        ("2025-11-02T06:30:00Z", NEW_YORK, "2025-11-02T06:00:00Z"),
    ],
)
def test_local_hour_start_is_the_utc_instant_the_local_hour_began(moment: str, zone: ZoneInfo, expected: str) -> None:
    # Given an instant in a zone / When its local hour start is asked / Then it is that hour's first instant
    assert local_hour_start(utc(moment), zone) == utc(expected)


@pytest.mark.parametrize(
    ("moment", "zone", "expected"),
    [
        ("2025-06-14T18:29:59.999Z", KOLKATA, date(2025, 6, 14)),
        ("2025-06-14T18:30:00Z", KOLKATA, date(2025, 6, 15)),
        ("2025-06-14T18:14:59.999Z", KATHMANDU, date(2025, 6, 14)),
        ("2025-06-14T18:15:00Z", KATHMANDU, date(2025, 6, 15)),
        ("2025-10-25T20:59:59.999Z", KYIV, date(2025, 10, 25)),
        ("2025-10-25T21:00:00Z", KYIV, date(2025, 10, 26)),
        ("2025-11-03T04:59:59Z", NEW_YORK, date(2025, 11, 2)),
    ],
)
def test_local_date_changes_at_local_midnight(moment: str, zone: ZoneInfo, expected: date) -> None:
    assert local_date(utc(moment), zone) == expected


@pytest.mark.parametrize(
    ("day", "zone", "start", "hours"),
    [
        (date(2025, 3, 30), KYIV, "2025-03-29T22:00:00Z", 23),
        (date(2025, 10, 26), KYIV, "2025-10-25T21:00:00Z", 25),
        (date(2025, 6, 15), KYIV, "2025-06-14T21:00:00Z", 24),
        (date(2025, 3, 9), NEW_YORK, "2025-03-09T05:00:00Z", 23),
        (date(2025, 11, 2), NEW_YORK, "2025-11-02T04:00:00Z", 25),
        (date(2025, 6, 15), KOLKATA, "2025-06-14T18:30:00Z", 24),
        (date(2025, 6, 15), KATHMANDU, "2025-06-14T18:15:00Z", 24),
    ],
)
def test_a_local_day_starts_at_local_midnight_and_lasts_23_24_or_25_hours(
    day: date, zone: ZoneInfo, start: str, hours: int
) -> None:
    # When the day's bounds are computed
    begins, ends = day_start(day, zone), day_start(day + timedelta(days=1), zone)
    # Then it starts at local midnight and is as long as the clock says
    assert begins == utc(start)
    assert ends - begins == timedelta(hours=hours)


def test_local_time_takes_the_earlier_instant_of_a_repeated_hour() -> None:
    # 03:00 happens twice in Kyiv on 2025-10-26 (EEST, then EET)
    assert local_time(date(2025, 10, 26), 3, KYIV) == utc("2025-10-26T00:00:00Z")


# ---------------------------------------------------------------- windows on DST days


@pytest.mark.parametrize(
    ("zone", "day", "count"),
    [(KYIV, "2025-03-30", 23), (KYIV, "2025-10-26", 25), (NEW_YORK, "2025-03-09", 23), (NEW_YORK, "2025-11-02", 25)],
)
def test_hourly_windows_of_a_dst_day_are_23_or_25_real_hours(zone: ZoneInfo, day: str, count: int) -> None:
    # Given a DST day as a range of whole local days
    first = date.fromisoformat(day)
    start, end = day_start(first, zone), day_start(first + timedelta(days=1), zone)
    # When its 1h windows are listed
    result = list(windows(start, end, "1h", zone))
    # Then there is one per real hour, contiguous, each starting at a local hour
    assert len(result) == count
    assert all(hours_of(window) == 1 for window in result)
    assert [window[0] for window in result[1:]] == [window[1] for window in result[:-1]]
    assert all(window[0].astimezone(zone).minute == 0 for window in result)


@pytest.mark.parametrize(
    ("zone", "start", "end", "expected_starts", "expected_hours"),
    [
        (
            KYIV,
            "2025-03-29T22:00:00Z",
            "2025-03-30T21:00:00Z",
            ["22:00", "01:00", "05:00", "09:00", "13:00", "17:00"],
            [3, 4, 4, 4, 4, 4],
        ),
        (
            KYIV,
            "2025-10-25T21:00:00Z",
            "2025-10-26T22:00:00Z",
            ["21:00", "02:00", "06:00", "10:00", "14:00", "18:00"],
            [5, 4, 4, 4, 4, 4],
        ),
        (
            NEW_YORK,
            "2025-03-09T05:00:00Z",
            "2025-03-10T04:00:00Z",
            ["05:00", "08:00", "12:00", "16:00", "20:00", "00:00"],
            [3, 4, 4, 4, 4, 4],
        ),
        (
            NEW_YORK,
            "2025-11-02T04:00:00Z",
            "2025-11-03T05:00:00Z",
            ["04:00", "09:00", "13:00", "17:00", "21:00", "01:00"],
            [5, 4, 4, 4, 4, 4],
        ),
    ],
)
def test_four_hour_windows_follow_the_wall_clock_so_one_is_3_or_5_hours_on_a_dst_day(
    zone: ZoneInfo, start: str, end: str, expected_starts: list[str], expected_hours: list[int]
) -> None:
    # When the 4h windows of a DST day are listed
    result = spans(start, end, "4h", zone)
    # Then they start at local 00:00, 04:00 ... 20:00 and the DST change lengthens or shortens one
    assert [window[0].strftime("%H:%M") for window in result] == expected_starts
    assert [hours_of(window) for window in result] == expected_hours
    assert [window[0].astimezone(zone).hour for window in result] == [0, 4, 8, 12, 16, 20]
    assert result[-1][1] == utc(end)


def test_daily_windows_are_local_days_of_23_24_and_25_hours() -> None:
    # Given a Kyiv range around the fall-back day
    result = spans("2025-10-24T21:00:00Z", "2025-10-27T22:00:00Z", "1d", KYIV)
    # Then each window is one local day
    assert [window[0] for window in result] == [
        utc("2025-10-24T21:00:00Z"),
        utc("2025-10-25T21:00:00Z"),
        utc("2025-10-26T22:00:00Z"),
    ]
    assert [hours_of(window) for window in result] == [24, 25, 24]


@pytest.mark.parametrize(
    ("zone", "first_start"),
    [(KOLKATA, "2025-06-14T18:30:00Z"), (KATHMANDU, "2025-06-14T18:15:00Z")],
)
def test_windows_in_half_and_quarter_hour_zones_start_at_local_boundaries(zone: ZoneInfo, first_start: str) -> None:
    # Given one local day in a +05:30 or +05:45 zone
    start = day_start(date(2025, 6, 15), zone)
    end = day_start(date(2025, 6, 16), zone)
    # When its windows of each period are listed
    hourly = list(windows(start, end, "1h", zone))
    four_hourly = list(windows(start, end, "4h", zone))
    daily = list(windows(start, end, "1d", zone))
    # Then all start at local :00 (at :30 or :15 UTC)
    assert hourly[0][0] == four_hourly[0][0] == daily[0][0] == utc(first_start)
    assert len(hourly) == 24
    assert [w[0].astimezone(zone).hour for w in four_hourly] == [0, 4, 8, 12, 16, 20]
    assert daily == [(start, end)]
    assert all(w[0].astimezone(zone).minute == 0 for w in hourly + four_hourly)


def test_windows_overlapping_a_range_include_the_partial_first_and_last() -> None:
    # Given a range that starts and ends inside 4h windows (UTC)
    result = spans("2025-06-15T05:10:00Z", "2025-06-15T13:00:00.001Z", "4h", ZoneInfo("UTC"))
    # Then every window overlapping [from, to) is listed, whole
    assert [w[0].hour for w in result] == [4, 8, 12]


def test_a_window_starting_at_the_end_of_the_range_is_not_listed() -> None:
    result = spans("2025-06-15T04:00:00Z", "2025-06-15T08:00:00Z", "4h", ZoneInfo("UTC"))
    assert result == [(utc("2025-06-15T04:00:00Z"), utc("2025-06-15T08:00:00Z"))]


def test_hourly_windows_follow_local_hours_across_a_half_hour_dst_change() -> None:
    """Lord Howe Island moves its clocks by 30 minutes. On 2025-04-06 local 01:30-02:00 happens twice
    (+11:00, then +10:30), so the local hour 01:00 lasts 90 minutes and every later local hour starts
    at :30 UTC. The contract: 1h windows start at local 00:00, 01:00 ... (as the hour buckets do)."""
    # Given the Lord Howe fall-back night, from local 00:00 (13:00Z) to local 04:00 (17:30Z)
    result = spans("2025-04-05T13:00:00Z", "2025-04-05T17:30:00Z", "1h", LORD_HOWE)
    # Then each window starts where a local hour starts, as local_hour_start() buckets events
    assert [w[0] for w in result] == [
        utc("2025-04-05T13:00:00Z"),  # 00:00 +11
        utc("2025-04-05T14:00:00Z"),  # 01:00 +11 (lasts until 02:00 +10:30)
        utc("2025-04-05T15:30:00Z"),  # 02:00 +10:30
        utc("2025-04-05T16:30:00Z"),  # 03:00 +10:30
    ]
    assert all(local_hour_start(w[0], LORD_HOWE) == w[0] for w in result)


def test_dates_lists_every_day_between_both_ends_included() -> None:
    assert dates(date(2024, 2, 27), date(2024, 3, 1)) == [
        date(2024, 2, 27),
        date(2024, 2, 28),
        date(2024, 2, 29),
        date(2024, 3, 1),
    ]
    assert dates(date(2025, 1, 1), date(2025, 1, 1)) == [date(2025, 1, 1)]


# ---------------------------------------------------------------- properties, any zone and range

# Zones with whole-hour DST changes (one at local midnight: Santiago), a 30-minute one (Lord Howe),
# and :30/:45 offsets.
ZONES = [
    "Australia/Lord_Howe",
    "UTC",
    "Europe/Kyiv",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "America/Santiago",
    "Australia/Adelaide",
]
instants = st.integers(
    min_value=int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000),
    max_value=int(datetime(2026, 12, 31, tzinfo=UTC).timestamp() * 1000),
).map(lambda ms: datetime.fromtimestamp(ms / 1000, tz=UTC))


def window_of(moment: datetime, period: str, zone: ZoneInfo) -> datetime:
    """Independently: the start of the window holding ``moment``, from its local wall clock."""
    local = moment.astimezone(zone)
    if period == "1h":
        return local_hour_start(moment, zone)
    if period == "1d":
        return day_start(local.date(), zone)
    return local_time(local.date(), local.hour // 4 * 4, zone)


@settings(max_examples=150, deadline=None)
@given(
    zone_name=st.sampled_from(ZONES),
    start=instants,
    length=st.integers(min_value=1, max_value=10 * 24 * 3600 * 1000),
    period=st.sampled_from(["1h", "4h", "1d"]),
    probes=st.lists(st.floats(min_value=0, max_value=1, exclude_max=True), min_size=1, max_size=8),
)
def test_windows_tile_the_range_and_each_instant_is_in_its_local_window(
    zone_name: str, start: datetime, length: int, period: Period, probes: list[float]
) -> None:
    # Given any range in any zone
    zone = ZoneInfo(zone_name)
    end = start + timedelta(milliseconds=length)
    # When its windows are listed
    result = list(windows(start, end, period, zone))
    # Then they are contiguous, cover [start, end) and no more
    assert result
    assert result[0][0] <= start < result[0][1]
    assert result[-1][0] < end <= result[-1][1]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(result))
    # And each starts at a local boundary of its period
    for window_start, _ in result:
        assert window_of(window_start, period, zone) == window_start
    # And any instant of the range lies in the window its local time names
    for probe in probes:
        moment = start + (end - start) * probe
        holding = [w for w in result if w[0] <= moment < w[1]]
        assert len(holding) == 1
        assert holding[0][0] == window_of(moment, period, zone)


# ---------------------------------------------------------------- time parameters and RFC 3339 out


@pytest.mark.parametrize(
    ("moment", "written"),
    [
        (datetime(900, 1, 1, tzinfo=UTC), "0900-01-01T00:00:00.000Z"),
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00.000Z"),
        (datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), "9999-12-31T23:59:59.999Z"),
    ],
)
def test_every_time_is_written_with_a_four_digit_year(moment: datetime, written: str) -> None:
    assert format_utc(moment) == written
    assert parse_utc(written) == moment.replace(microsecond=moment.microsecond // 1000 * 1000)


QUERY_TIME: TypeAdapter[datetime] = TypeAdapter(QueryTime)
QUERY_DATE_OR_TIME: TypeAdapter[date | datetime] = TypeAdapter(QueryDateOrTime)


@pytest.mark.parametrize(
    "text",
    [
        "1999-12-31T23:59:59.999Z",
        "2000-01-01T00:30:00+01:00",
        "0900-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:00:00-01:00",
        "9999-12-31T23:59:59.9999999-00:01",
    ],
)
def test_a_time_parameter_outside_the_years_2000_to_9999_is_out_of_range(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        QUERY_TIME.validate_python(text)
    assert caught.value.errors()[0]["type"] == "out_of_range"


@pytest.mark.parametrize(
    "text",
    ["yesterday", "1760121005", "2025-10-10T18:30Z", "2025-10-10T18:30:00", "2025-10-10T24:00:00Z", "2025-02-30"],
)
def test_a_time_parameter_is_rfc3339_with_an_offset(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        QUERY_TIME.validate_python(text)
    assert caught.value.errors()[0]["type"] == "datetime_parsing"


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("2000-01-01T00:00:00Z", datetime(2000, 1, 1, tzinfo=UTC)),
        ("2026-11-01T00:00:00.0009Z", datetime(2026, 11, 1, 0, 0, 0, 1000, tzinfo=UTC)),
        ("2026-11-01T02:00:00.000001+02:00", datetime(2026, 11, 1, 0, 0, 0, 1000, tzinfo=UTC)),
        ("9999-12-31T23:59:59.9999Z", datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)),
        ("2025-10-10 18:30:00 02:00", datetime(2025, 10, 10, 16, 30, tzinfo=UTC)),
    ],
)
def test_a_time_parameter_is_read_in_utc_rounded_up_to_the_millisecond(text: str, read: datetime) -> None:
    assert QUERY_TIME.validate_python(text) == read


@pytest.mark.parametrize(
    ("text", "read"),
    [("2025-10-12", date(2025, 10, 12)), ("9999-12-31", date(9999, 12, 31)), ("2000-01-01", date(2000, 1, 1))],
)
def test_a_date_parameter_is_a_date(text: str, read: date) -> None:
    assert QUERY_DATE_OR_TIME.validate_python(text) == read


@pytest.mark.parametrize("text", ["1999-12-31", "0001-01-01", "0900-06-15"])
def test_a_date_parameter_before_2000_is_out_of_range(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        QUERY_DATE_OR_TIME.validate_python(text)
    assert caught.value.errors()[0]["type"] == "out_of_range"
