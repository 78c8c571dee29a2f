"""The statistics routes through the real stats handler (functions/stats/app.py) on moto: events
stored by the real ingest code and counted by the real rollup, answers compared with a brute-force
count, the contract's 400s and 422s, and a request count that does not grow with the raw events."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from moto import mock_aws

from local_stack.aws import create_tables
from local_stack.template import REPO_ROOT, Template
from tests.rollup_fakes import Reference, StoredEvent
from tests.support import function_environment, lambda_context
from tracker.adapters import dynamodb
from tracker.adapters.aggregates_table import rollup_aggregates
from tracker.adapters.events_table import event_store
from tracker.events import ingest_batch, prepare_event
from tracker.local_calendar import local_date
from tracker.rollup import run_rollup
from tracker.timefmt import format_utc, parse_utc

from .support import with_request

SAMPLES = REPO_ROOT / "events" / "stats"
SAMPLE_NAMES = ["user_activity", "daily", "top_users", "trend", "frequency", "action_daily"]
KYIV = ZoneInfo("Europe/Kyiv")
# The handler's clock: 12:00 in Kyiv on Monday 2025-10-27, the day after the clocks fell back.
NOW = datetime.fromisoformat("2025-10-27T10:00:00+00:00")
AS_OF = NOW - timedelta(minutes=1)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# (user, action, occurred_at): around Kyiv's 25-hour day 2025-10-26, one event four days late.
EVENTS = [
    ("alice", "login", "2025-10-25T21:30:00Z"),  # 00:30 on the 26th, local
    ("alice", "view", "2025-10-26T00:30:00Z"),  # 03:30 EEST
    ("alice", "view", "2025-10-26T01:30:00Z"),  # 03:30 EET, an hour later
    ("bob", "login", "2025-10-26T08:00:00Z"),
    ("bob", "edit", "2025-10-26T08:10:00Z"),
    ("carol", "login", "2025-10-27T06:00:00Z"),
    ("alice", "login", "2025-10-27T09:30:00Z"),
    ("carol", "view", "2025-10-27T09:58:00Z"),
    ("bob", "login", "2025-10-23T12:00:00Z"),  # arrives four days after it occurred
]


# ---------------------------------------------------------------- the emulated stack and the handler


@pytest.fixture(scope="module")
def stats_app(function_modules: dict[str, ModuleType]) -> ModuleType:
    return function_modules["StatsFunction"]


class Api:
    """Calls the stats handler as API Gateway would, starting from the sample events."""

    def __init__(self, template: Template, module: ModuleType, tenant_zone: str = "Europe/Kyiv") -> None:
        self.spec = template.functions["StatsFunction"]
        self.module = module
        self.zone = tenant_zone

    def call(self, event: dict[str, Any]) -> dict[str, Any]:
        """The handler, in the function's environment and with its Lambda context."""
        with function_environment(self.spec):
            answer: dict[str, Any] = self.module.lambda_handler(event, lambda_context(self.spec))
        return answer

    def get(self, sample: str, params: dict[str, str] | None = None, **path: str) -> tuple[int, Any]:
        event = with_request(sample_event(sample), params, path)
        event["requestContext"]["authorizer"]["timezone"] = self.zone
        answer = self.call(event)
        return answer["statusCode"], json.loads(answer["body"])


def sample_event(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8")))


TENANT = sample_event("daily")["requestContext"]["authorizer"]["tenant_id"]


class Data:
    """Events ingested by the real ingest code, counted by the real rollup (settle 0, ``now`` = AS_OF)."""

    def __init__(self, template: Template) -> None:
        self.ingest_function = template.functions["IngestFunction"]
        self.rollup_function = template.functions["RollupFunction"]
        create_tables(dynamodb.dynamodb_client(), template)
        self.stored: list[StoredEvent] = []
        self.sent = 0

    def ingest(self, events: list[tuple[str, str, str]], received_at: datetime, tenant: str = TENANT) -> None:
        raws = []
        for user, action, occurred in events:
            self.sent += 1
            raws.append(
                {"event_id": f"evt-{self.sent:05d}", "user_id": user, "action": action, "occurred_at": occurred}
            )
        with function_environment(self.ingest_function):
            result = ingest_batch(event_store(), raws, tenant, received_at, concurrency=1)
        assert result.accepted == len(raws)
        for raw in raws:
            record = prepare_event(raw, tenant, received_at)
            self.stored.append(StoredEvent(tenant, record.user_id, record.action, record.occurred_at, received_at))

    def rollup(self, now: datetime, zone: ZoneInfo = KYIV) -> None:
        with function_environment(self.rollup_function):
            report = run_rollup(
                rollup_aggregates(), lambda _t: zone, now=now, settle=timedelta(0), initial_lookback=timedelta(hours=2)
            )
        assert report.finished

    def reference(self, zone: ZoneInfo = KYIV) -> Reference:
        return Reference(self.stored, TENANT, zone, AS_OF)


@pytest.fixture
def api(template: Template, stats_app: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Api:
    monkeypatch.setattr(stats_app, "utc_now", lambda: NOW)
    return Api(template, stats_app)


@pytest.fixture
def no_tables() -> Iterator[None]:
    """moto without tables: a request refused before it reads anything needs none (and would fail if it read)."""
    with mock_aws():
        yield


@pytest.fixture
def empty(template: Template) -> Iterator[Data]:
    with mock_aws():
        yield Data(template)


@pytest.fixture
def data(empty: Data) -> Data:
    """The sample tenant's events: received 5 minutes before AS_OF and rolled up to it."""
    empty.ingest(EVENTS, AS_OF - timedelta(minutes=5))
    empty.rollup(AS_OF)
    return empty


def windows_of(body: dict[str, Any]) -> list[tuple[datetime, datetime]]:
    return [(parse_utc(item["start"]), parse_utc(item["end"])) for item in body["items"]]


# ---------------------------------------------------------------- each route, against brute force


def test_user_activity_lists_every_window_with_zeros_and_counts_each_event_once(api: Api, data: Data) -> None:
    # When alice's hourly activity over the fall-back night is asked with times
    status, body = api.get(
        "user_activity", {"period": "1h", "from": "2025-10-25T20:00:00Z", "to": "2025-10-26T03:00:00Z"}, user_id="alice"
    )
    # Then every hour is listed, zeros included, each with exactly the events that occurred in it
    assert status == 200
    assert (body["user_id"], body["period"], body["as_of"]) == ("alice", "1h", format_utc(AS_OF))
    spans = windows_of(body)
    assert len(spans) == 7
    assert [(i["count"], i["by_action"]) for i in body["items"]] == data.reference().activity("alice", spans)
    assert [i["count"] for i in body["items"]] == [0, 1, 0, 0, 1, 1, 0]
    assert body["items"][0]["by_action"] == {}


def test_user_activity_with_dates_covers_whole_local_days_in_four_hour_windows(api: Api, data: Data) -> None:
    # When alice's 4h activity of the 25-hour local day 2025-10-26 is asked with dates
    status, body = api.get("user_activity", {"period": "4h", "from": "2025-10-26", "to": "2025-10-26"}, user_id="alice")
    # Then the six windows run from local midnight to local midnight; the first lasts 5 hours
    assert status == 200
    spans = windows_of(body)
    assert spans[0][0] == utc("2025-10-25T21:00:00Z")
    assert spans[-1][1] == utc("2025-10-26T22:00:00Z")
    assert [(end - start) / timedelta(hours=1) for start, end in spans] == [5, 4, 4, 4, 4, 4]
    assert [i["count"] for i in body["items"]] == [3, 0, 0, 0, 0, 0]
    assert body["items"][0]["by_action"] == {"login": 1, "view": 2}


def test_user_activity_per_day_defaults_to_the_last_seven_days(api: Api, data: Data) -> None:
    # When bob's daily activity is asked with no range
    status, body = api.get("user_activity", {"period": "1d"}, user_id="bob")
    # Then the days up to now are listed, and the late event sits on the day it occurred
    assert status == 200
    spans = windows_of(body)
    assert spans[0][0] <= NOW - timedelta(days=7) < spans[0][1]
    assert spans[-1][0] <= NOW < spans[-1][1]
    assert [(i["count"], i["by_action"]) for i in body["items"]] == data.reference().activity("bob", spans)
    assert {i["start"][:10]: i["count"] for i in body["items"] if i["count"]} == {"2025-10-22": 1, "2025-10-25": 2}


def test_user_activity_defaults_to_four_hour_windows(api: Api, data: Data) -> None:
    status, body = api.get("user_activity", {}, user_id="carol")
    assert status == 200
    assert body["period"] == "4h"
    assert 42 <= len(body["items"]) <= 43
    assert sum(i["count"] for i in body["items"]) == 2


def test_user_activity_of_an_unknown_user_is_all_zeros(api: Api, data: Data) -> None:
    status, body = api.get("user_activity", {"period": "1d", "from": "2025-10-20", "to": "2025-10-27"}, user_id="a/b é")
    assert status == 200
    assert body["user_id"] == "a/b é"
    assert [i["count"] for i in body["items"]] == [0] * 8


def test_daily_lists_the_last_days_up_to_today_with_counts_and_distinct_users(api: Api, data: Data) -> None:
    # When the last 6 days are asked
    status, body = api.get("daily", {"days": "6"})
    # Then they end today (local), zero-filled, in the tenant's zone
    assert status == 200
    assert body["timezone"] == "Europe/Kyiv"
    assert body["as_of"] == format_utc(AS_OF)
    listed = [date.fromisoformat(i["date"]) for i in body["items"]]
    assert listed[-1] == date(2025, 10, 27)
    assert len(listed) == 6
    expected = data.reference().daily(listed)
    assert [(date.fromisoformat(i["date"]), i["count"], i["users"]) for i in body["items"]] == expected
    assert [(i["count"], i["users"]) for i in body["items"]] == [(0, 0), (1, 1), (0, 0), (0, 0), (5, 2), (3, 2)]


def test_top_users_rank_by_count_then_user_id(api: Api, data: Data) -> None:
    # When the top 2 of the last 48 hours are asked
    status, body = api.get("top_users", {"hours": "48", "limit": "2"})
    # Then bob and carol tie on 2 and bob comes first; the range is 48 local hours up to this one's end
    assert status == 200
    assert body["to"] == "2025-10-27T11:00:00.000Z"
    assert body["from"] == "2025-10-25T11:00:00.000Z"
    assert body["items"] == [{"user_id": "alice", "count": 4}, {"user_id": "bob", "count": 2}]
    reference = data.reference().top_users(parse_utc(body["from"]), parse_utc(body["to"]), 2)
    assert [(u["user_id"], u["count"]) for u in body["items"]] == reference


def test_trend_gives_each_local_day_its_counts_per_action(api: Api, data: Data) -> None:
    status, body = api.get("trend", {"from": "2025-10-23", "to": "2025-10-27"})
    assert status == 200
    days = [date.fromisoformat(i["date"]) for i in body["items"]]
    assert days == [date(2025, 10, d) for d in range(23, 28)]
    assert [(date.fromisoformat(i["date"]), i["counts"]) for i in body["items"]] == data.reference().trend(days)
    assert body["items"][1]["counts"] == {}


def test_trend_with_times_lists_the_local_days_they_touch(api: Api, data: Data) -> None:
    # 2025-10-25T21:30Z is 00:30 on the 26th in Kyiv; 2025-10-26T22:00Z is midnight of the 27th (excluded)
    status, body = api.get("trend", {"from": "2025-10-25T21:30:00Z", "to": "2025-10-26T22:00:00Z"})
    assert status == 200
    assert [i["date"] for i in body["items"]] == ["2025-10-26"]
    assert body["items"][0]["counts"] == {"edit": 1, "login": 2, "view": 2}


def test_frequency_ranks_actions_and_filters_one(api: Api, data: Data) -> None:
    days = [date(2025, 10, d) for d in range(20, 28)]
    status, body = api.get("frequency", {"from": "2025-10-20", "to": "2025-10-27"})
    assert status == 200
    assert [(a["action"], a["total"]) for a in body["items"]] == data.reference().frequency(days)
    assert body["items"][0] == {"action": "login", "total": 5}
    status, body = api.get("frequency", {"from": "2025-10-20", "to": "2025-10-27", "action": "view"})
    assert (status, body["items"]) == (200, [{"action": "view", "total": 3}])
    status, body = api.get("frequency", {"from": "2025-10-20", "to": "2025-10-27", "action": "never.done"})
    assert (status, body["items"]) == (200, [{"action": "never.done", "total": 0}])


def test_action_daily_gives_count_distinct_users_and_average(api: Api, data: Data) -> None:
    status, body = api.get("action_daily", {"from": "2025-10-25", "to": "2025-10-27"}, action="login")
    assert status == 200
    days = [date.fromisoformat(i["date"]) for i in body["items"]]
    got = [(date.fromisoformat(i["date"]), i["count"], i["users"], i["avg_per_user"]) for i in body["items"]]
    assert got == data.reference().action_daily(days, "login")
    assert [(i["count"], i["users"], i["avg_per_user"]) for i in body["items"]] == [(0, 0, 0), (2, 2, 1.0), (2, 2, 1.0)]


def test_days_and_windows_follow_a_quarter_hour_zone(
    template: Template, stats_app: ModuleType, monkeypatch: pytest.MonkeyPatch, empty: Data
) -> None:
    # Given a tenant in Kathmandu (+05:45), whose day starts at 18:15Z
    zone = ZoneInfo("Asia/Kathmandu")
    monkeypatch.setattr(stats_app, "utc_now", lambda: NOW)
    kathmandu = Api(template, stats_app, "Asia/Kathmandu")
    empty.ingest(
        [("u", "login", "2025-10-26T18:14:59.999Z"), ("u", "login", "2025-10-26T18:15:00Z")], AS_OF - timedelta(hours=1)
    )
    empty.rollup(AS_OF, zone)
    # When daily and 4h activity are asked
    _, daily = kathmandu.get("daily", {"days": "3"})
    _, activity = kathmandu.get(
        "user_activity", {"period": "4h", "from": "2025-10-27", "to": "2025-10-27"}, user_id="u"
    )
    # Then each event is on its local day, and windows start at local 00:00, 04:00 ...
    assert [(i["date"], i["count"]) for i in daily["items"]] == [
        ("2025-10-25", 0),
        ("2025-10-26", 1),
        ("2025-10-27", 1),
    ]
    assert activity["items"][0]["start"] == "2025-10-26T18:15:00.000Z"
    assert [i["start"][11:16] for i in activity["items"]] == ["18:15", "22:15", "02:15", "06:15", "10:15", "14:15"]
    assert [i["count"] for i in activity["items"]] == [1, 0, 0, 0, 0, 0]
    assert [(i["count"], i["by_action"]) for i in activity["items"]] == empty.reference(zone).activity(
        "u", windows_of(activity)
    )


def test_statistics_are_as_of_the_rollup_not_of_the_request(api: Api, empty: Data) -> None:
    # Given one event counted, and one received at the rollup's as_of (not counted yet)
    empty.ingest([("u", "login", "2025-10-27T09:00:00Z")], AS_OF - timedelta(minutes=1))
    empty.ingest([("u", "login", "2025-10-27T09:00:00Z")], AS_OF)
    empty.rollup(AS_OF)
    # When daily is asked
    _, body = api.get("daily", {"days": "1"})
    # Then it says as_of and counts exactly what was received before it
    assert body["as_of"] == format_utc(AS_OF)
    assert (body["items"][0]["count"], body["items"][0]["users"]) == (1, 1)


# ---------------------------------------------------------------- every sample event, and as_of


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_each_sample_event_is_answered_with_as_of(api: Api, empty: Data, name: str) -> None:
    # Given no rollup ever ran
    # When the sample event is sent as is
    event = sample_event(name)
    answer = api.call(event)
    # Then it is a 200 with as_of (the epoch: nothing counted yet) and zero-filled items
    assert answer["statusCode"] == 200
    body = json.loads(answer["body"])
    assert body["as_of"] == "1970-01-01T00:00:00.000Z"
    assert all(item.get("count", 0) == 0 for item in body["items"])
    assert event["requestContext"]["authorizer"] == {
        "tenant_id": "ten_sample0000000001",
        "role": "tenant",
        "key_id": "key_sample000000001",
        "timezone": "Europe/Kyiv",
        "principalId": "key_sample000000001",
    }


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("sample", "params", "path", "field"),
    [
        ("user_activity", {"period": "2h"}, {}, "period"),
        (
            "user_activity",
            {"period": "1h", "from": "2025-09-15T00:00:00Z", "to": "2025-10-26T16:00:00.001Z"},
            {},
            "period",
        ),
        ("user_activity", {"period": "1d", "from": "2024-10-01", "to": "2025-10-02"}, {}, "to"),
        ("user_activity", {"from": "2025-10-26T10:00:00Z", "to": "2025-10-26T09:00:00Z"}, {}, "from"),
        ("user_activity", {"from": "2025-10-26T10:00:00Z", "to": "2025-10-26T10:00:00Z"}, {}, "from"),
        ("user_activity", {"from": "2025-10-28T00:00:00Z"}, {}, "from"),
        ("daily", {"days": "0"}, {}, "days"),
        ("daily", {"days": "367"}, {}, "days"),
        ("top_users", {"hours": "0"}, {}, "hours"),
        ("top_users", {"hours": "721"}, {}, "hours"),
        ("top_users", {"limit": "0"}, {}, "limit"),
        ("trend", {"from": "2025-10-27", "to": "2025-10-26"}, {}, "from"),
        ("trend", {"from": "2024-01-01", "to": "2025-01-01"}, {}, "to"),
        ("frequency", {"from": "2025-10-27T00:00:00Z", "to": "2025-10-20T00:00:00Z"}, {}, "from"),
        ("frequency", {"action": "not an action!"}, {}, "action"),
        ("action_daily", {"from": "2024-06-01", "to": "2025-06-02"}, {}, "to"),
        ("action_daily", {}, {"action": "bad action"}, "action"),
    ],
)
def test_out_of_range_parameters_are_a_422_naming_the_field(
    api: Api, no_tables: None, sample: str, params: dict[str, str], path: dict[str, str], field: str
) -> None:
    status, body = api.get(sample, params, **path)
    assert status == 422
    assert body["error"]["code"] == "validation_error"
    assert field in {detail["field"] for detail in body["error"]["details"]}


@pytest.mark.parametrize(
    ("sample", "params"),
    [
        ("daily", {"days": "abc"}),
        ("daily", {"days": "1.5"}),
        ("top_users", {"hours": "a day"}),
        ("top_users", {"limit": "ten"}),
        ("user_activity", {"from": "yesterday"}),
        ("user_activity", {"to": "2025-13-45"}),
        ("trend", {"from": "10/12/2025"}),
        ("frequency", {"to": "noon"}),
        ("action_daily", {"from": "2025-10-32"}),
    ],
)
def test_unparseable_parameters_are_a_400(api: Api, no_tables: None, sample: str, params: dict[str, str]) -> None:
    status, body = api.get(sample, params)
    assert status == 400
    assert body["error"]["code"] == "bad_request"


def test_a_range_of_exactly_366_days_or_1000_windows_is_accepted(api: Api, empty: Data) -> None:
    status, body = api.get("trend", {"from": "2024-10-01", "to": "2025-10-01"})
    assert (status, len(body["items"])) == (200, 366)
    start = "2025-09-15T00:00:00Z"
    status, body = api.get("user_activity", {"period": "1h", "from": start, "to": "2025-10-26T16:00:00Z"}, user_id="u")
    assert (status, len(body["items"])) == (200, 1000)


def test_a_366_day_date_range_is_accepted_across_a_dst_change(api: Api, empty: Data) -> None:
    """2025-10-25 .. 2026-10-25 in Kyiv is 366 whole local days (as /daily?days=366 may list), but it
    starts in summer time (+03:00) and ends in winter time (+02:00): 366 days and one hour of real time."""
    status, body = api.get("trend", {"from": "2025-10-25", "to": "2026-10-25"})
    assert status == 200, body
    assert len(body["items"]) == 366


def test_an_offset_sent_unencoded_in_the_query_string_is_understood(api: Api, data: Data) -> None:
    # "+03:00" arrives as " 03:00" when the client did not encode the "+"
    status, body = api.get(
        "user_activity",
        {"period": "1h", "from": "2025-10-26T11:00:00 03:00", "to": "2025-10-26T12:00:00 03:00"},
        user_id="bob",
    )
    assert status == 200
    assert [(i["start"], i["count"]) for i in body["items"]] == [("2025-10-26T08:00:00.000Z", 2)]


# ---------------------------------------------------------------- cost: independent of the raw events


class RequestCounter:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, event_name: str, **_: Any) -> None:
        self.calls.append(event_name.rsplit(".", 1)[-1])


@pytest.fixture
def counter() -> Iterator[RequestCounter]:
    counting = RequestCounter()
    events = dynamodb.dynamodb_client().meta.events
    events.register("before-call.dynamodb.*", counting, unique_id="stats-request-counter")
    yield counting
    events.unregister("before-call.dynamodb.*", unique_id="stats-request-counter")


ROUTE_CALLS = [
    ("user_activity", {"period": "1h", "from": "2025-10-25", "to": "2025-10-27"}, {"user_id": "alice"}),
    ("user_activity", {"period": "1d", "from": "2025-10-01", "to": "2025-10-27"}, {"user_id": "alice"}),
    ("daily", {"days": "30"}, {}),
    ("top_users", {"hours": "24", "limit": "5"}, {}),
    ("trend", {"from": "2025-10-01", "to": "2025-10-27"}, {}),
    ("frequency", {"from": "2025-10-01", "to": "2025-10-27"}, {}),
    ("action_daily", {"from": "2025-10-01", "to": "2025-10-27"}, {"action": "login"}),
]


def _requests_per_route(api: Api, counter: RequestCounter) -> list[int]:
    counts = []
    for sample, params, path in ROUTE_CALLS:
        counter.calls.clear()
        status, _ = api.get(sample, params, **path)
        assert status == 200
        counts.append(len(counter.calls))
    return counts


def test_a_statistic_costs_the_same_requests_for_9_events_or_120(
    api: Api, template: Template, counter: RequestCounter
) -> None:
    # Given the sample events, counted
    with mock_aws():
        small = Data(template)
        small.ingest(EVENTS, AS_OF - timedelta(minutes=5))
        small.rollup(AS_OF)
        few = _requests_per_route(api, counter)
    # And, in a fresh store, 120 events of 12 users over the same days
    with mock_aws():
        large = Data(template)
        many = [
            (
                f"user-{i % 12:02d}",
                ("login", "view", "edit")[i % 3],
                format_utc(utc("2025-10-25T10:00:00Z") + timedelta(minutes=12 * i)),
            )
            for i in range(120)
        ]
        large.ingest(many, AS_OF - timedelta(minutes=5))
        large.rollup(AS_OF)
        lots = _requests_per_route(api, counter)
    # Then each route made as many DynamoDB requests either way: it reads aggregates, never raw events
    assert lots == few
    # And that is the progress record (the snapshot) and one query, or one per local day touched for top users
    assert [n for i, n in enumerate(few) if i != 3] == [2, 2, 2, 2, 2, 2]
    assert few[3] == 1 + len({local_date(NOW - timedelta(hours=hour), KYIV) for hour in range(24)})
    assert set(counter.calls) <= {"GetItem", "Query"}
