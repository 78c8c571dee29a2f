"""Drive a stack with concurrent clients, then check that the store and the rollup hold exactly what was accepted.

The load phase: ``clients`` threads for ``seconds``, a share of them (``keep_alive_ratio``) each on
its own keep-alive connection and the others on a new connection per request, send single events
(``POST /v1/events``) and batches (``POST /v1/events/batch``), mixed with reads of a user's events
and statistics (which must answer 200), each event with a unique ``event_id``, and now and then an
event sent before with the same content (which must come back ``duplicate`` and never be counted twice).
429/503 are retried after ``Retry-After`` (capped), connection errors on a new connection (and reported
as problems: a connection refused or reset, like a 5xx other than a 503 with ``Retry-After``, is one),
always with the same events; a batch's events rejected as
``unavailable``/``throttled`` are sent again. Every event the server called ``accepted`` or
``duplicate`` is recorded; an event called ``accepted`` twice was stored twice.

The checks: each user's events, paged with cursors, are exactly the recorded ones (none lost, none
extra, none twice, same action and ``occurred_at``); then the rollup runs (the Lambda Invoke API) until
its ``as_of`` covers the end of the load, and every statistic route counts the recorded events
exactly: frequency, daily, trend, per action per day, top users, each user's activity.
"""

from __future__ import annotations

import json
import math
import random
import secrets
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from loadtest.client import Answer, Attempt, Client, Outcome

ACTIONS = ("login", "view", "click", "purchase", "logout", "search.query", "doc:edit")
# Events a batch rejects this way were not stored: sending them again is the contract.
RESEND_CODES = frozenset({"unavailable", "throttled"})
ROLLUP_FUNCTION = "RollupFunction"
MAX_PAGE = 1000
TOP_USERS_LIMIT = 100


def utc_text(instant: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, the form the API answers with."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (which need not be sorted); 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class LoadConfig:
    base_url: str
    admin_key: str
    lambda_url: str | None = None
    clients: int = 16
    seconds: float = 30.0
    batch_size: int = 25
    single_ratio: float = 0.5
    read_ratio: float = 0.1
    """The share of requests that read (a user's events, or a statistic) instead of sending."""
    keep_alive_ratio: float = 0.5
    duplicate_ratio: float = 0.05
    users: int = 40
    timezone: str = "UTC"
    rate: float | None = None
    burst: int | None = None
    max_retry_after: float = 5.0
    grace_seconds: float = 120.0
    verify_timeout: float = 180.0
    warm_up: bool = True
    seed: int | None = None


@dataclass(frozen=True)
class SentEvent:
    event_id: str
    user_id: str
    action: str
    occurred_at: str
    metadata: dict[str, Any]

    def body(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "user_id": self.user_id,
            "action": self.action,
            "occurred_at": self.occurred_at,
            "metadata": self.metadata,
        }


@dataclass
class LoadResult:
    """Everything measured and every problem found; ``ok`` when there is none."""

    clients: int
    seconds: float
    events_sent: int = 0
    events_confirmed: int = 0
    events_measured: int = 0  # confirmed, sent in the measured time (not in the warm-up)
    resent_duplicates: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    lost: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    listed_twice: list[str] = field(default_factory=list)
    accepted_twice: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)
    content_mismatches: list[str] = field(default_factory=list)
    unexpected_answers: list[str] = field(default_factory=list)
    contract_violations: list[str] = field(default_factory=list)
    stats_mismatches: list[str] = field(default_factory=list)
    rollup_runs: int = 0
    rollup_failures: list[str] = field(default_factory=list)
    rollup_as_of: str | None = None

    @property
    def server_errors(self) -> int:
        return sum(n for counts in self.statuses.values() for status, n in counts.items() if status.startswith("5"))

    @property
    def events_per_second(self) -> float:
        return self.events_measured / self.seconds if self.seconds else 0.0

    def problems(self) -> list[str]:
        found = []
        for name in (
            "lost",
            "extra",
            "listed_twice",
            "accepted_twice",
            "unconfirmed",
            "content_mismatches",
            "unexpected_answers",
            "contract_violations",
            "stats_mismatches",
        ):
            items = getattr(self, name)
            if items:
                shown = "; ".join(str(item) for item in items[:5])
                found.append(f"{name}: {len(items)} ({shown}{' ...' if len(items) > 5 else ''})")
        connection_errors = {
            kind: {outcome: n for outcome, n in counts.items() if outcome.startswith("conn:")}
            for kind, counts in self.statuses.items()
        }
        for kind, errors in connection_errors.items():
            if errors:
                found.append(f"connection errors on {kind}: {dict(errors)}")
        unretried_5xx = {
            kind: {status: n for status, n in counts.items() if status.startswith("5") and status != "503"}
            for kind, counts in self.statuses.items()
        }
        for kind, counts in unretried_5xx.items():
            if counts:
                found.append(f"5xx on {kind}: {dict(counts)}")
        return found

    @property
    def ok(self) -> bool:
        return not self.problems()

    def report(self) -> str:
        lines = [
            f"Load: {self.clients} clients for {self.seconds:.1f} s: {self.events_measured} distinct events "
            f"accepted ({self.events_per_second:.1f} events/s; {self.events_confirmed} with the warm-up), "
            f"{self.resent_duplicates} resent duplicates, "
            f"{sum(self.requests[k] for k in ('single', 'batch'))} ingest requests "
            f"({sum(self.requests[k] for k in ('single', 'batch')) / self.seconds if self.seconds else 0:.1f}/s).",
            "",
            f"{'kind':<10}{'tries':>8}{'ok':>8}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}   statuses",
        ]
        for kind in sorted(self.statuses):
            ok = self.latencies.get(kind, [])
            lines.append(
                f"{kind:<10}{sum(self.statuses[kind].values()):>8}{len(ok):>8}"
                f"{percentile(ok, 0.50) * 1000:>10.1f}{percentile(ok, 0.95) * 1000:>10.1f}"
                f"{percentile(ok, 0.99) * 1000:>10.1f}   {dict(sorted(self.statuses[kind].items()))}"
            )
        errors: Counter[str] = Counter()
        for counts in self.statuses.values():
            errors.update({status: n for status, n in counts.items() if not status.startswith("2")})
        lines += ["", f"Errors by status (every try, retries included): {dict(sorted(errors.items())) or 'none'}"]
        lines.append(
            f"Rollup: {self.rollup_runs} run(s) ({len(self.rollup_failures)} failed), as_of {self.rollup_as_of}; "
            f"lost {len(self.lost)}, extra {len(self.extra)}, listed twice {len(self.listed_twice)}, "
            f"accepted twice {len(self.accepted_twice)}, unconfirmed {len(self.unconfirmed)}, "
            f"statistics mismatches {len(self.stats_mismatches)}."
        )
        lines += [f"  rollup run failed (retried): {failure}" for failure in self.rollup_failures[:3]]
        problems = self.problems()
        lines.append("OK: nothing lost, nothing counted twice, no 5xx." if not problems else "PROBLEMS:")
        lines += [f"  - {problem}" for problem in problems]
        return "\n".join(lines)


class Recorder:
    """Thread-safe record of answers: what was confirmed, what each try gave and took."""

    def __init__(self, result: LoadResult) -> None:
        self.result = result
        self.lock = threading.Lock()
        self.confirmed: dict[str, SentEvent] = {}
        self.accepted: Counter[str] = Counter()

    def attempt(self, attempt: Attempt) -> None:
        with self.lock:
            self.result.statuses[attempt.kind][attempt.outcome] += 1
            if attempt.outcome.startswith("2"):
                self.result.latencies[attempt.kind].append(attempt.seconds)

    def request(self, kind: str, outcome: Outcome) -> None:
        with self.lock:
            self.result.requests[kind] += 1
            self.result.contract_violations.extend(outcome.contract_violations)

    def confirm(self, event: SentEvent, status: str) -> None:
        with self.lock:
            if status == "accepted":
                self.accepted[event.event_id] += 1
                if self.accepted[event.event_id] == 2:
                    self.result.accepted_twice.append(event.event_id)
            self.confirmed[event.event_id] = event

    def unexpected(self, text: str) -> None:
        with self.lock:
            self.result.unexpected_answers.append(text)

    def unconfirmed(self, events: Iterable[SentEvent]) -> None:
        with self.lock:
            self.result.unconfirmed.extend(event.event_id for event in events)


class Worker(threading.Thread):
    """One client: singles and batches until the end of the load phase."""

    def __init__(
        self, index: int, config: LoadConfig, *, api_key: str, run_id: str, users: list[str], recorder: Recorder
    ) -> None:
        super().__init__(name=f"load-client-{index}", daemon=True)
        self.index = index
        self.config = config
        self.run_id = run_id
        self.users = users
        self.recorder = recorder
        seed = (config.seed if config.seed is not None else secrets.randbits(32)) + index
        self.rng = random.Random(seed)  # noqa: S311 - a load mix, not security
        self.client = Client(
            config.base_url,
            api_key,
            max_retry_after=config.max_retry_after,
            rng=self.rng,
            on_attempt=recorder.attempt,
            keep_alive=index < round(config.clients * config.keep_alive_ratio),
        )
        self.sequence = 0
        self.mine: list[SentEvent] = []  # confirmed events of this client, to resend as duplicates
        self.sent = 0
        self.resent = 0
        self.end = float("inf")
        self.give_up = float("inf")
        self.warm_up: threading.Barrier | None = None
        self.warm_ids: set[str] = set()

    def new_event(self) -> SentEvent:
        self.sequence += 1
        now = datetime.now(UTC)
        occurred = now - timedelta(seconds=self.rng.uniform(0, 3000))
        self.sent += 1
        return SentEvent(
            event_id=f"lt-{self.run_id}-{self.index}-{self.sequence}",
            user_id=self.rng.choice(self.users),
            action=self.rng.choice(ACTIONS),
            occurred_at=utc_text(occurred),
            metadata={"client": self.index, "seq": self.sequence, "note": "load test"},
        )

    def pick_event(self) -> SentEvent:
        if self.mine and self.rng.random() < self.config.duplicate_ratio:
            self.resent += 1
            return self.rng.choice(self.mine)
        return self.new_event()

    def run(self) -> None:
        try:
            if self.warm_up is not None:
                self.warm(self.warm_up)
            while time.monotonic() < self.end:
                draw = self.rng.random()
                if draw < self.config.read_ratio:
                    self.read()
                elif draw < self.config.read_ratio + (1 - self.config.read_ratio) * self.config.single_ratio:
                    self.send_single(self.pick_event())
                else:
                    events = {}
                    for _ in range(self.config.batch_size):
                        event = self.pick_event()
                        events[event.event_id] = event  # an id twice in one batch is a different test
                    self.send_batch(list(events.values()))
        except Exception as error:  # a bug of the load client: reported, not hidden in a dead thread
            self.recorder.unexpected(f"client {self.index} crashed: {error!r}")
        finally:
            self.client.close()

    def warm(self, barrier: threading.Barrier) -> None:
        """Starts the function workers (cold starts) outside the measured time; these events are checked too."""
        self.give_up = time.monotonic() + self.config.grace_seconds
        try:
            self.send_single(self.new_event(), kind="warmup")
            self.send_batch([self.new_event() for _ in range(self.config.batch_size)], kind="warmup")
            self.warm_ids = {f"lt-{self.run_id}-{self.index}-{n}" for n in range(1, self.sequence + 1)}
        finally:
            barrier.wait()

    def read(self) -> None:
        """A read among the writes: a user's latest events, or a statistic; either must answer 200."""
        if self.rng.random() < 0.5:
            kind, path = "query", f"/v1/users/{quote(self.rng.choice(self.users), safe='')}/events?limit=50"
        else:
            kind, path = "stats", self.rng.choice(("/v1/stats/daily?days=2", "/v1/stats/frequency"))
        outcome = self.client.request("GET", path, kind=kind, deadline=self.give_up)
        self.recorder.request(kind, outcome)
        answer = outcome.answer
        if answer is not None and answer.status != 200 and answer.status not in {429, 503}:
            self.recorder.unexpected(f"GET {path} -> {answer.status} {str(answer.body)[:300]}")

    def send_single(self, event: SentEvent, kind: str = "single") -> None:
        outcome = self.client.request("POST", "/v1/events", event.body(), kind=kind, deadline=self.give_up)
        self.recorder.request(kind, outcome)
        answer = outcome.answer
        if answer is None or answer.status in {429, 503}:
            self.recorder.unconfirmed([event])
            return
        body = answer.body if isinstance(answer.body, dict) else {}
        expected_status = {201: "accepted", 200: "duplicate"}.get(answer.status)
        if expected_status is None or body.get("status") != expected_status or body.get("event_id") != event.event_id:
            self.recorder.unexpected(f"POST /v1/events {event.event_id} -> {answer.status} {str(answer.body)[:300]}")
            return
        self.recorder.confirm(event, expected_status)
        if expected_status == "accepted":
            self.mine.append(event)

    def send_batch(self, events: list[SentEvent], kind: str = "batch") -> None:
        pending = events
        while pending:
            outcome = self.client.request(
                "POST", "/v1/events/batch", {"events": [e.body() for e in pending]}, kind=kind, deadline=self.give_up
            )
            self.recorder.request(kind, outcome)
            answer = outcome.answer
            if answer is None or answer.status in {429, 503}:
                self.recorder.unconfirmed(pending)
                return
            if answer.status != 200 or not isinstance(answer.body, dict):
                self.recorder.unexpected(
                    f"POST /v1/events/batch ({len(pending)}) -> {answer.status} {answer.body!r:.300}"
                )
                return
            pending = self._batch_results(pending, answer)
            if pending and time.monotonic() >= self.give_up:
                self.recorder.unconfirmed(pending)
                return

    def _batch_results(self, events: list[SentEvent], answer: Answer) -> list[SentEvent]:
        """Records a batch's results; returns the events to send again."""
        body = answer.body
        results = body.get("results")
        if not isinstance(results, list) or len(results) != len(events):
            self.recorder.unexpected(f"batch of {len(events)}: results {str(results)[:300]}")
            return []
        counts = Counter(str(result.get("status")) for result in results)
        if (body.get("accepted"), body.get("duplicates"), body.get("rejected")) != (
            counts["accepted"],
            counts["duplicate"],
            counts["rejected"],
        ):
            self.recorder.unexpected(f"batch totals {body.get('accepted')}/{body.get('duplicates')} != {counts}")
        again = []
        for position, result in enumerate(results):
            index = result.get("index")
            event = events[index] if isinstance(index, int) and 0 <= index < len(events) else None
            if event is None or index != position or result.get("event_id") != event.event_id:
                self.recorder.unexpected(f"batch result {position} does not match its event: {result}")
                continue
            status = result.get("status")
            if status in {"accepted", "duplicate"}:
                self.recorder.confirm(event, status)
                if status == "accepted":
                    self.mine.append(event)
            elif status == "rejected" and (result.get("error") or {}).get("code") in RESEND_CODES:
                again.append(event)
            else:
                self.recorder.unexpected(f"batch event {event.event_id} -> {result}")
        return again


class Verifier:
    """Reads back the store and the statistics of the load's tenant."""

    def __init__(self, config: LoadConfig, api_key: str, recorder: Recorder, log: Any = print) -> None:
        self.config = config
        self.log = log
        self.recorder = recorder
        self.result = recorder.result
        self.zone = ZoneInfo(config.timezone)
        self.client = Client(
            config.base_url, api_key, max_retry_after=config.max_retry_after, on_attempt=recorder.attempt
        )

    def get(self, path: str, params: dict[str, Any] | None = None, kind: str = "query") -> Any:
        target = path + ("?" + urlencode(params) if params else "")
        outcome = self.client.request("GET", target, kind=kind)
        self.result.contract_violations.extend(outcome.contract_violations)
        answer = outcome.answer
        if answer is None or answer.status != 200:
            status = answer.status if answer else "no answer"
            raise VerificationError(f"GET {target} -> {status} {answer.body if answer else ''!s:.300}")
        return answer.body

    def check_store(self, events: dict[str, SentEvent]) -> None:
        by_user: dict[str, set[str]] = defaultdict(set)
        for event in events.values():
            by_user[event.user_id].add(event.event_id)
        unconfirmed = set(self.result.unconfirmed)
        for user in sorted(set(by_user) | {e.user_id for e in events.values()}):
            seen: Counter[str] = Counter()
            cursor: str | None = None
            while True:
                params: dict[str, Any] = {"limit": MAX_PAGE}
                if cursor:
                    params["cursor"] = cursor
                page = self.get(f"/v1/users/{quote(user, safe='')}/events", params)
                for item in page["items"]:
                    seen[item["event_id"]] += 1
                    sent = events.get(item["event_id"])
                    if sent is not None and (
                        item.get("user_id") != sent.user_id
                        or item.get("action") != sent.action
                        or parse_time(item["occurred_at"]) != parse_time(sent.occurred_at)
                        or item.get("metadata") != sent.metadata
                    ):
                        self.result.content_mismatches.append(f"{item} != {sent}")
                cursor = page.get("next_cursor")
                if not cursor:
                    break
            self.result.lost.extend(sorted(by_user[user] - set(seen)))
            self.result.extra.extend(sorted(set(seen) - by_user[user] - unconfirmed))
            self.result.listed_twice.extend(sorted(event_id for event_id, n in seen.items() if n > 1))

    def run_rollup(self, last_received: datetime | None) -> None:
        """Runs the rollup until its ``as_of`` covers the last event received (or the time runs out)."""
        deadline = time.monotonic() + self.config.verify_timeout
        invoker = Client(self.config.lambda_url, timeout=300) if self.config.lambda_url else None
        try:
            while True:
                if invoker is not None:
                    outcome = invoker.request(
                        "POST",
                        f"/2015-03-31/functions/{ROLLUP_FUNCTION}/invocations",
                        {"time": utc_text(datetime.now(UTC))},
                        kind="rollup",
                        deadline=deadline,
                    )
                    for attempt in outcome.attempts:
                        self.recorder.attempt(attempt)
                    self.result.rollup_runs += 1
                    answer = outcome.answer
                    summary = answer.body if answer is not None and isinstance(answer.body, dict) else {}
                    took = sum(attempt.seconds for attempt in outcome.attempts)
                    self.log(f"Rollup run {self.result.rollup_runs} ({took:.1f} s): {summary!s:.200}")
                    if answer is None or answer.status != 200 or answer.headers.get("x-amz-function-error"):
                        # A failed run is resumed by the next one; it is reported, and the check goes on.
                        self.result.rollup_failures.append(
                            f"{answer.status if answer else 'no answer'} {summary!s:.300}"
                        )
                        if time.monotonic() >= deadline:
                            raise VerificationError(f"the rollup never succeeded: {self.result.rollup_failures[-1]}")
                        time.sleep(2.0)
                        continue
                    if not summary.get("finished", True) or summary.get("conflict"):
                        continue
                as_of = self.get("/v1/stats/daily", {"days": 1}, kind="stats")["as_of"]
                self.result.rollup_as_of = as_of
                if last_received is None or parse_time(as_of) > last_received:
                    return
                if time.monotonic() >= deadline:
                    raise VerificationError(f"the statistics' as_of {as_of} never passed {utc_text(last_received)}")
                time.sleep(1.0 if invoker is not None else 5.0)
        finally:
            if invoker is not None:
                invoker.close()

    def check_stats(self, events: dict[str, SentEvent]) -> None:
        """Every statistic route against the counts of ``events`` (the tenant has no others)."""
        expected = Expected.of(events.values(), self.zone)
        today = datetime.now(self.zone).date()
        first = min(expected.per_day, default=today)
        span = {"from": first.isoformat(), "to": max([*expected.per_day, today]).isoformat()}
        self._check_frequency(expected, span)
        self._check_days(expected, span, (today - first).days + 1)
        self._check_top_users(expected, events)
        for user in sorted(expected.per_user):
            activity = self.get(f"/v1/users/{quote(user, safe='')}/activity", {"period": "1d", **span}, kind="stats")
            count = sum(item["count"] for item in activity["items"])
            by_action: Counter[str] = Counter()
            for item in activity["items"]:
                by_action.update(item["by_action"])
            want = expected.per_user_action[user]
            if count != expected.per_user[user] or +by_action != want:
                self.mismatch(f"activity of {user!r}: {count} {dict(+by_action)} != {expected.per_user[user]} {want}")

    def mismatch(self, text: str) -> None:
        self.result.stats_mismatches.append(text)

    def _check_frequency(self, expected: Expected, span: dict[str, str]) -> None:
        frequency = self.get("/v1/stats/frequency", span, kind="stats")
        got = {item["action"]: item["total"] for item in frequency["items"] if item["total"]}
        if got != dict(expected.per_action):
            self.mismatch(f"frequency {got} != {dict(expected.per_action)}")
        totals = [item["total"] for item in frequency["items"]]
        if totals != sorted(totals, reverse=True):
            self.mismatch(f"frequency is not most frequent first: {totals}")

    def _check_days(self, expected: Expected, span: dict[str, str], days: int) -> None:
        daily = self.get("/v1/stats/daily", {"days": days}, kind="stats")
        got_days = {item["date"]: (item["count"], item["users"]) for item in daily["items"] if item["count"]}
        want_days = {day.isoformat(): (n, len(expected.users_per_day[day])) for day, n in expected.per_day.items()}
        if got_days != want_days:
            self.mismatch(f"daily {got_days} != {want_days}")
        total = sum(item["count"] for item in daily["items"])
        if total != expected.total:
            self.mismatch(f"daily sum {total} != {expected.total} events")

        trend = self.get("/v1/stats/trend", span, kind="stats")
        got_trend = {(item["date"], a): n for item in trend["items"] for a, n in item["counts"].items() if n}
        want_trend = {(day.isoformat(), a): n for (day, a), n in expected.per_day_action.items()}
        if got_trend != want_trend:
            self.mismatch(f"trend {sorted(got_trend.items())} != {sorted(want_trend.items())}")

        for action in sorted(expected.per_action):
            # ":" may stay as it is in a path segment (RFC 3986 pchar); "%3A" is refused (a bug, reported).
            body = self.get(f"/v1/stats/actions/{quote(action, safe=':')}/daily", span, kind="stats")
            got_action = {item["date"]: (item["count"], item["users"]) for item in body["items"] if item["count"]}
            want_action = {
                day.isoformat(): (n, len(expected.users_per_day_action[day, a]))
                for (day, a), n in expected.per_day_action.items()
                if a == action
            }
            if got_action != want_action:
                self.mismatch(f"actions/{action}/daily {got_action} != {want_action}")

    def _check_top_users(self, expected: Expected, events: dict[str, SentEvent]) -> None:
        if not events:
            return
        oldest = min(parse_time(e.occurred_at) for e in events.values())
        hours = min(720, int((datetime.now(UTC) - oldest).total_seconds() // 3600) + 2)
        top = self.get("/v1/stats/top-users", {"hours": hours, "limit": TOP_USERS_LIMIT}, kind="stats")
        got_top = {item["user_id"]: item["count"] for item in top["items"]}
        ranked_users = sorted(expected.per_user.items(), key=lambda entry: (-entry[1], entry[0]))
        want_top = dict(ranked_users[:TOP_USERS_LIMIT])
        if got_top != want_top:
            self.mismatch(f"top-users {got_top} != {want_top}")
        ranked = [(-item["count"], item["user_id"]) for item in top["items"]]
        if ranked != sorted(ranked):
            self.mismatch(f"top-users is not ranked by count then user_id: {top['items']}")


@dataclass
class Expected:
    """What the statistics must say about a set of events, by local day, action and user."""

    total: int = 0
    per_day: Counter[date] = field(default_factory=Counter)
    users_per_day: dict[date, set[str]] = field(default_factory=lambda: defaultdict(set))
    per_day_action: Counter[tuple[date, str]] = field(default_factory=Counter)
    users_per_day_action: dict[tuple[date, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    per_action: Counter[str] = field(default_factory=Counter)
    per_user: Counter[str] = field(default_factory=Counter)
    per_user_action: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    @classmethod
    def of(cls, events: Iterable[SentEvent], zone: ZoneInfo) -> Expected:
        expected = cls()
        for event in events:
            day = parse_time(event.occurred_at).astimezone(zone).date()
            expected.total += 1
            expected.per_day[day] += 1
            expected.users_per_day[day].add(event.user_id)
            expected.per_day_action[day, event.action] += 1
            expected.users_per_day_action[day, event.action].add(event.user_id)
            expected.per_action[event.action] += 1
            expected.per_user[event.user_id] += 1
            expected.per_user_action[event.user_id][event.action] += 1
        return expected


class VerificationError(RuntimeError):
    """A read-back request failed: the checks could not be made."""


def make_users(count: int, rng: random.Random) -> list[str]:
    """User ids, a few of them with the characters a path must encode (``/``, space, ``é``, ``%``)."""
    special = ["team/a b", "é-ü ñ", "50%off", "a+b=c", "dot.user:1"]
    users = [f"user-{n:03d}" for n in range(count)]
    for position, name in enumerate(special[: max(0, count // 8)]):
        users[position] = name
    rng.shuffle(users)
    return users


def create_tenant(config: LoadConfig, run_id: str) -> tuple[str, str]:
    """A tenant of its own for the run (so its statistics are the load's alone): (tenant_id, api_key)."""
    admin = Client(config.base_url, config.admin_key, max_retry_after=config.max_retry_after)
    try:
        outcome = admin.request(
            "POST", "/v1/tenants", {"name": f"Load test {run_id}", "timezone": config.timezone}, kind="admin"
        )
        answer = outcome.answer
        if answer is None or answer.status != 201:
            raise VerificationError(f"POST /v1/tenants -> {answer}")
        tenant_id, api_key = answer.body["tenant_id"], answer.body["api_key"]
        if config.rate is not None or config.burst is not None:
            rate_limit = {"rate": config.rate or 50, "burst": config.burst or 100}
            outcome = admin.request("PATCH", f"/v1/tenants/{tenant_id}", {"rate_limit": rate_limit}, kind="admin")
            if outcome.answer is None or outcome.answer.status != 200:
                raise VerificationError(f"PATCH /v1/tenants/{tenant_id} -> {outcome.answer}")
        return tenant_id, api_key
    finally:
        admin.close()


def run_load(config: LoadConfig, log: Any = print) -> LoadResult:
    """The load phase, then the checks; the result says what was measured and what went wrong."""
    run_id = secrets.token_hex(4)
    rng = random.Random(config.seed)  # noqa: S311 - a load mix, not security
    tenant_id, api_key = create_tenant(config, run_id)
    users = make_users(config.users, rng)
    log(f"Tenant {tenant_id} ({config.timezone}); {config.clients} clients, {config.seconds:g} s, run {run_id}.")

    result = LoadResult(clients=config.clients, seconds=config.seconds)
    recorder = Recorder(result)
    workers = [
        Worker(index, config, api_key=api_key, run_id=run_id, users=users, recorder=recorder)
        for index in range(config.clients)
    ]
    clock: dict[str, float] = {}

    def start_the_clock() -> None:
        clock["started"] = time.monotonic()
        for worker in workers:
            worker.end = clock["started"] + config.seconds
            worker.give_up = worker.end + config.grace_seconds

    if config.warm_up:
        barrier = threading.Barrier(len(workers), action=start_the_clock)
        for worker in workers:
            worker.warm_up = barrier
    else:
        start_the_clock()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    result.seconds = time.monotonic() - clock.get("started", time.monotonic())
    load_ended = datetime.now(UTC)  # every event was received before this instant
    result.events_sent = sum(worker.sent for worker in workers)
    result.resent_duplicates = sum(worker.resent for worker in workers)
    events = dict(recorder.confirmed)
    result.events_confirmed = len(events)
    warm_ids = set().union(*(worker.warm_ids for worker in workers))
    result.events_measured = sum(event_id not in warm_ids for event_id in events)
    log(f"Load done: {len(events)} events confirmed in {result.seconds:.1f} s; checking the store and the rollup.")

    verifier = Verifier(config, api_key, recorder, log)
    try:
        verifier.check_store(events)
        verifier.run_rollup(load_ended if events else None)
        verifier.check_stats(events)
    except VerificationError as error:
        result.stats_mismatches.append(f"could not check: {error}")
    finally:
        verifier.client.close()
    return result


def to_json(result: LoadResult) -> str:
    """The figures as JSON (for a CI artifact)."""
    return json.dumps(
        {
            "clients": result.clients,
            "seconds": round(result.seconds, 2),
            "events_confirmed": result.events_confirmed,
            "events_per_second": round(result.events_per_second, 1),
            "latency_ms": {
                kind: {f"p{int(q * 100)}": round(percentile(values, q) * 1000, 1) for q in (0.5, 0.95, 0.99)}
                for kind, values in result.latencies.items()
            },
            "statuses": {kind: dict(counts) for kind, counts in result.statuses.items()},
            "problems": result.problems(),
        },
        indent=2,
    )
