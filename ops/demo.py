"""A demo tenant with a few weeks of realistic activity on a running local stack (``make run``).

    ADMIN_API_KEY=... python -m ops.demo [--api http://127.0.0.1:3000] [--lambda-api http://127.0.0.1:3001]

It creates a tenant, sends its history through the batch route (events with an explicit
``occurred_at`` in the past: several hundred users, a dozen actions, a daily and a weekly rhythm, a
few heavy users), runs the rollup through the Lambda Invoke API until it has counted them, and
prints the dashboard's URL and the tenant's key. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

BATCH = 500  # the contract's largest batch
ROLLUP_PATH = "/2015-03-31/functions/RollupFunction/invocations"
RETRIES = 10
ROLLUP_TIMEOUT_SECONDS = 600
HTTP_TIMEOUT_SECONDS = 120
ROLLUP_CALL_TIMEOUT_SECONDS = 330  # the rollup function's own timeout (300 s) and a margin

# Relative frequency of each action within a session (after its login).
ACTIONS = {
    "view_item": 30.0,
    "search": 14.0,
    "add_to_cart": 8.0,
    "checkout.started": 4.0,
    "purchase": 3.0,
    "remove_from_cart": 2.0,
    "share.link": 2.0,
    "review.posted": 1.0,
    "profile.updated": 1.0,
    "support.ticket": 0.5,
    "logout": 4.0,
}
# Sessions by local hour: quiet nights, a late-morning and an evening peak.
HOURLY = [1, 0.5, 0.3, 0.3, 0.4, 0.8, 2, 4, 6, 7, 8, 8, 7, 6, 6, 6, 6, 7, 9, 11, 12, 10, 6, 3]
# Monday .. Sunday: a working-week product, quieter at weekends.
WEEKLY = [1.0, 1.05, 1.05, 1.0, 0.9, 0.55, 0.5]
HEAVY_USERS = 4
HEAVY_FACTOR = 6.0


class DemoError(RuntimeError):
    """The stack answered something the demo cannot go on from."""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


def call(
    url: str, method: str = "GET", body: Any = None, key: str | None = None, timeout: float = HTTP_TIMEOUT_SECONDS
) -> Reply:
    headers = {"content-type": "application/json"}
    if key:
        headers["x-api-key"] = key
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - a URL the user gave
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310  # nosec B310
            status, reply_headers, payload = answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        status, reply_headers, payload = error.code, dict(error.headers), error.read()
    return Reply(status, {name.lower(): value for name, value in reply_headers.items()}, json.loads(payload or b"null"))


def call_patiently(url: str, method: str, body: Any, key: str | None) -> Reply:
    """A 429 or 503 is waited out (its Retry-After) and sent again."""
    for _ in range(RETRIES):
        reply = call(url, method, body, key)
        if reply.status not in {429, 503}:
            return reply
        time.sleep(float(reply.headers.get("retry-after", "1")))
    raise DemoError(f"{method} {url}: still {reply.status} after {RETRIES} tries: {reply.body}")


# ---------------------------------------------------------------- the history


def history(now: datetime, days: int, users: int, timezone: str, seed: int) -> list[dict[str, Any]]:
    """Sessions of ``users`` users over the last ``days`` days, oldest first: each opens with a login,
    then actions by their frequency; more on weekdays and at peak hours, a slow growth over the weeks."""
    pick = random.Random(seed)  # noqa: S311 - demo data, not secrets
    zone = ZoneInfo(timezone)
    # Sessions a day per user: most users come now and then, a few every day, the heavy ones all day.
    rates = sorted((pick.lognormvariate(-2.6, 0.9) for _ in range(users)), reverse=True)
    rates[:HEAVY_USERS] = [rate * HEAVY_FACTOR for rate in rates[:HEAVY_USERS]]
    names = [f"user-{index:04d}" for index in range(1, users + 1)]
    pick.shuffle(names)
    actions, weights = list(ACTIONS), list(ACTIONS.values())
    today = now.astimezone(zone).date()
    events: list[dict[str, Any]] = []
    for back in range(days - 1, -1, -1):
        day = today - timedelta(days=back)
        growth = 0.75 + 0.35 * (days - back) / days
        for user, rate in zip(names, rates, strict=True):
            for _ in range(_poisson(pick, rate * WEEKLY[day.weekday()] * growth)):
                hour = pick.choices(range(24), weights=HOURLY)[0]
                start = datetime(
                    day.year, day.month, day.day, hour, pick.randrange(60), pick.randrange(60), tzinfo=zone
                )
                steps = ["login", *pick.choices(actions, weights=weights, k=1 + int(pick.expovariate(0.35)))]
                for step, action in enumerate(steps):
                    occurred = start + timedelta(seconds=45 * step + pick.randrange(40))
                    if occurred < now - timedelta(seconds=5):
                        events.append(_event(user, action, occurred, pick))
    events.sort(key=lambda event: str(event["occurred_at"]))
    return events


def _poisson(pick: random.Random, mean: float) -> int:
    """Knuth's method (the means here are small)."""
    limit, count, product = math.exp(-mean), 0, pick.random()
    while product > limit:
        count += 1
        product *= pick.random()
    return count


def _event(user: str, action: str, occurred: datetime, pick: random.Random) -> dict[str, Any]:
    metadata: dict[str, Any] = {"device": pick.choice(["ios", "android", "web", "web"])}
    if action in {"view_item", "add_to_cart", "purchase"}:
        metadata["sku"] = f"sku-{pick.randrange(1, 120):03d}"
    if action == "purchase":
        metadata["amount"] = round(pick.uniform(5, 240), 2)
    return {
        "event_id": f"demo-{pick.getrandbits(64):016x}",
        "user_id": user,
        "action": action,
        "occurred_at": occurred.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "metadata": metadata,
    }


# ---------------------------------------------------------------- the stack


def create_tenant(api: str, admin_key: str, timezone: str) -> dict[str, Any]:
    name = f"Demo shop {datetime.now(UTC):%Y-%m-%d %H:%M:%S}"
    reply = call_patiently(f"{api}/v1/tenants", "POST", {"name": name, "timezone": timezone}, admin_key)
    if reply.status != 201:
        raise DemoError(f"Creating the demo tenant: {reply.status} {reply.body}")
    return dict(reply.body)


def ingest(api: str, key: str, events: list[dict[str, Any]]) -> None:
    """Every event stored, in batches; events refused as unavailable are sent again."""
    for offset in range(0, len(events), BATCH):
        pending = events[offset : offset + BATCH]
        for _ in range(RETRIES):
            reply = call_patiently(f"{api}/v1/events/batch", "POST", {"events": pending}, key)
            if reply.status != 200:
                raise DemoError(f"Sending events: {reply.status} {reply.body}")
            refused = [result for result in reply.body["results"] if result["status"] == "rejected"]
            if any(result["error"]["code"] != "unavailable" for result in refused):
                raise DemoError(f"Events rejected: {refused[:3]}")
            pending = [pending[result["index"]] for result in refused]
            if not pending:
                break
        else:
            raise DemoError(f"{len(pending)} events still unavailable after {RETRIES} tries")


def roll_up(lambda_api: str, received_by: datetime) -> dict[str, Any]:
    """Invokes the rollup until it has counted everything received before ``received_by``."""
    deadline = time.monotonic() + ROLLUP_TIMEOUT_SECONDS
    report: dict[str, Any] = {}
    while time.monotonic() < deadline:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        reply = call(f"{lambda_api}{ROLLUP_PATH}", "POST", {"time": now}, timeout=ROLLUP_CALL_TIMEOUT_SECONDS)
        report = dict(reply.body or {})
        failed = reply.status != 200 or "x-amz-function-error" in reply.headers
        as_of = report.get("as_of")
        if not failed and report.get("finished") and as_of and datetime.fromisoformat(as_of) >= received_by:
            return report
        # A failed run commits nothing half way and a conflicting one (the scheduled run) leaves the work to
        # the other: the next one resumes, or waits out ROLLUP_SETTLE_SECONDS.
        print(f"  rollup: {report.get('errorMessage') or report}", flush=True)
        time.sleep(1)
    raise DemoError(f"The rollup did not catch up within {ROLLUP_TIMEOUT_SECONDS} s: {report}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", default=f"http://127.0.0.1:{os.environ.get('PORT', '3000')}")
    parser.add_argument("--lambda-api", default=f"http://127.0.0.1:{os.environ.get('LAMBDA_PORT', '3001')}")
    parser.add_argument("--admin-key", default=os.environ.get("ADMIN_API_KEY"), help="default: ADMIN_API_KEY")
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--timezone", default="Europe/Kyiv")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args(argv)
    if not args.admin_key:
        parser.error("the admin key is needed: ADMIN_API_KEY=... (printed by `make run`) or --admin-key")
    started = time.monotonic()
    try:
        tenant = create_tenant(args.api, args.admin_key, args.timezone)
        events = history(datetime.now(UTC), args.days, args.users, args.timezone, args.seed)
        print(f"Sending {len(events)} events of {args.users} users over {args.days} days ...", flush=True)
        ingest(args.api, tenant["api_key"], events)
        sent_by = datetime.now(UTC)
        print(f"Sent in {time.monotonic() - started:.0f} s; running the rollup ...", flush=True)
        report = roll_up(args.lambda_api, sent_by)
    except (DemoError, OSError) as error:
        print(f"The demo stopped: {error}", file=sys.stderr)
        return 1
    print(
        f"\nDemo tenant {tenant['name']!r} ({tenant['tenant_id']}, {args.timezone}) ready in "
        f"{time.monotonic() - started:.0f} s; statistics up to {report['as_of']}.\n"
        f"  Dashboard:  {args.api}/dashboard\n"
        f"  Tenant key: {tenant['api_key']}   (paste it into the page; shown once)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
