"""``activity-tracker``: tenants, keys, event import and export, statistics, from the command line.

``--endpoint`` and ``--key`` come from the flags or from ``ACTIVITY_TRACKER_ENDPOINT`` and
``ACTIVITY_TRACKER_API_KEY``. An API error is printed as the API's message; the exit status is then 1.
Exit statuses: 0 done; 1 an API error, or some imported lines rejected; 2 bad usage or an unreadable file;
3 an import stopped because the API could not be reached within the retry budget; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from activity_tracker import __version__
from activity_tracker._http import NETWORK_ERRORS, ApiClient, ApiError, user_path
from activity_tracker._retry import RETRYABLE_STATUSES, RetryPolicy, parse_retry_after
from activity_tracker.cli.tables import render

ENDPOINT_VARIABLE = "ACTIVITY_TRACKER_ENDPOINT"
KEY_VARIABLE = "ACTIVITY_TRACKER_API_KEY"
MIN_PAGE = 50
EXIT_API_ERROR, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 1, 2, 3, 130


class UsageError(Exception):
    pass


class Api:
    """The client, with retries for requests that are safe to repeat (reads; and anything answered 429)."""

    def __init__(self, client: ApiClient, policy: RetryPolicy) -> None:
        self.client = client
        self._policy = policy
        self._rng = random.Random()  # noqa: S311 - jitter

    def __call__(
        self,
        method: str,
        path: str,
        payload: Any = None,
        query: Mapping[str, Any] | None = None,
        *,
        retry_unavailable: bool = True,
    ) -> Any:
        safe = method == "GET"
        deadline = time.monotonic() + self._policy.budget_seconds
        attempt = 0
        while True:
            attempt += 1
            try:
                return self.client.call(method, path, payload, query)
            except ApiError as error:
                # A 429 was refused before anything ran: any request may be sent again.
                if not (error.status == 429 or (safe and error.status in RETRYABLE_STATUSES)):
                    raise
                if error.status == 503 and not retry_unavailable:
                    raise
                retry_after = parse_retry_after(error.retry_after)
                failure: Exception = error
            except NETWORK_ERRORS as error:
                if not safe:
                    raise
                retry_after, failure = None, error
            delay = self._policy.delay(attempt, retry_after, self._rng)
            if time.monotonic() + delay > deadline:
                raise failure
            time.sleep(delay)

    def pages(self, path: str, query: Mapping[str, Any], limit: int) -> Iterator[dict[str, Any]]:
        """Every item of a paged list. A 503 (the store timed out on a large page) halves the page size."""
        cursor = None
        while True:
            try:
                page = self(
                    GET, path, query={**query, "limit": limit, "cursor": cursor}, retry_unavailable=limit <= MIN_PAGE
                )
            except ApiError as error:
                if error.status != 503 or limit <= MIN_PAGE:
                    raise
                limit = max(MIN_PAGE, limit // 2)
                continue
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return


GET = "GET"


def retry_policy(args: argparse.Namespace) -> RetryPolicy:
    """Short waits (at most 5 s: a person is watching), for as long as ``--retry-budget`` allows."""
    return RetryPolicy(base_seconds=0.25, cap_seconds=5.0, budget_seconds=args.retry_budget)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


# ---------------------------------------------------------------------------------------------- commands


def tenants_create(api: Api, args: argparse.Namespace) -> int:
    tenant = api("POST", "/v1/tenants", {"name": args.name, "timezone": args.timezone})
    _print_json(tenant)
    print("The api_key above is shown once: keep it now.", file=sys.stderr)
    return 0


def tenants_list(api: Api, args: argparse.Namespace) -> int:
    tenants = list(api.pages("/v1/tenants", {}, limit=100))
    if args.json:
        _print_json(tenants)
    else:
        columns = ("tenant_id", "name", "timezone", "active", "created_at")
        print(render(columns, [[tenant.get(column) for column in columns] for tenant in tenants]))
    return 0


def tenants_update(api: Api, args: argparse.Namespace) -> int:
    change: dict[str, Any] = {}
    if args.active is not None:
        change["active"] = args.active
    if args.default_rate_limit:
        change["rate_limit"] = None
    elif args.rate is not None or args.burst is not None:
        if args.rate is None or args.burst is None:
            raise UsageError("--rate and --burst go together")
        change["rate_limit"] = {"rate": args.rate, "burst": args.burst}
    if args.validation is not None:
        change["validation"] = args.validation
    if args.allowed_origins is not None:
        change["allowed_origins"] = [origin for origin in args.allowed_origins.split(",") if origin]
    if not change:
        raise UsageError(
            "nothing to change: give --active/--inactive, --rate/--burst, --validation or --allowed-origins"
        )
    _print_json(api("PATCH", f"/v1/tenants/{user_path(args.tenant_id)}", change))
    return 0


def keys_create(api: Api, args: argparse.Namespace) -> int:
    body = {"role": args.role} if args.role else None
    _print_json(api("POST", f"/v1/tenants/{user_path(args.tenant_id)}/keys", body))
    print("The api_key above is shown once: keep it now.", file=sys.stderr)
    return 0


def keys_revoke(api: Api, args: argparse.Namespace) -> int:
    api("DELETE", f"/v1/tenants/{user_path(args.tenant_id)}/keys/{user_path(args.key_id)}")
    print(f"Revoked {args.key_id}.", file=sys.stderr)
    return 0


def events_export(api: Api, args: argparse.Namespace) -> int:
    query = {"from": args.start, "to": args.end, "action": args.action, "order": args.order}
    try:
        for event in api.pages(f"/v1/users/{user_path(args.user_id)}/events", query, limit=args.page_size):
            sys.stdout.write(json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def events_import(api: Api, args: argparse.Namespace) -> int:
    # Only this command needs them (and tqdm): the other commands start faster without.
    from activity_tracker.cli.importer import Importer, Summary, count_lines  # noqa: PLC0415
    from activity_tracker.cli.records import FileError  # noqa: PLC0415

    source = Path(args.file)
    if not source.is_file():
        raise UsageError(f"{source} is not a file")
    file_format = args.format or ("csv" if source.suffix.lower() == ".csv" else "ndjson")
    progress = None
    if not args.no_progress:
        from tqdm import tqdm  # noqa: PLC0415

        total = count_lines(source) - (1 if file_format == "csv" else 0)
        progress = tqdm(
            total=max(total, 0),
            unit=" events",
            unit_scale=True,
            file=sys.stderr,
            dynamic_ncols=True,
            smoothing=0.1,
            mininterval=0.5,
        )
    importer = Importer(
        api.client,
        source,
        file_format=file_format,
        concurrency=args.concurrency,
        retry=retry_policy(args),
        compress=not args.no_gzip,
        progress=progress,
    )
    interrupted = False
    try:
        summary: Summary = importer.run()
    except KeyboardInterrupt:
        interrupted = True
        summary = importer.summary
    except FileError as error:
        raise UsageError(str(error)) from None
    finally:
        if progress is not None:
            progress.close()
    _print_summary(summary, source, interrupted)
    if interrupted:
        return EXIT_INTERRUPTED
    if summary.stopped_because:
        return EXIT_UNREACHABLE
    return EXIT_API_ERROR if summary.rejected else 0


def _print_summary(summary: Any, source: Path, interrupted: bool) -> None:
    lines = [
        f"{source}: accepted {summary.accepted}, duplicates {summary.duplicates}, rejected {summary.rejected}"
        + (f", not confirmed {summary.unconfirmed}" if summary.unconfirmed else "")
        + (f", read but not sent {summary.not_sent}" if summary.not_sent else "")
    ]
    if summary.rejects_path is not None:
        lines.append(f"rejected lines: {summary.rejects_path} (reasons in {summary.rejects_path.with_suffix('.log')})")
        lines += [f"  {error}" for error in summary.errors]
    if summary.stopped_because:
        lines.append(
            f"stopped after line {summary.last_line_read}: {summary.stopped_because}. Run the same command again to "
            "complete the import: the events already stored come back as duplicates."
        )
    print("\n".join(lines), file=sys.stderr if interrupted else sys.stdout)
    sys.stdout.flush()


def _stats_table(answer: dict[str, Any], columns: Sequence[str], notes: str) -> None:
    print(render(columns, [[item.get(column) for column in columns] for item in answer["items"]]))
    print(f"\n{notes}as of {answer.get('as_of')}")


def stats_daily(api: Api, args: argparse.Namespace) -> int:
    answer = api(GET, "/v1/stats/daily", query={"days": args.days})
    if args.json:
        _print_json(answer)
    else:
        _stats_table(answer, ("date", "count", "users"), f"timezone {answer.get('timezone')}, ")
    return 0


def stats_top(api: Api, args: argparse.Namespace) -> int:
    answer = api(GET, "/v1/stats/top-users", query={"hours": args.hours, "limit": args.limit, "by": args.by})
    if args.json:
        _print_json(answer)
    else:
        columns = ("user_id", "count", "points") if args.by == "points" else ("user_id", "count")
        _stats_table(answer, columns, f"from {answer.get('from')} to {answer.get('to')}, ")
    return 0


def stats_trend(api: Api, args: argparse.Namespace) -> int:
    answer = api(GET, "/v1/stats/trend", query={"from": args.start, "to": args.end})
    if args.json:
        _print_json(answer)
        return 0
    actions = sorted({action for item in answer["items"] for action in item["counts"]})
    rows = [[item["date"], *(item["counts"].get(action, 0) for action in actions)] for item in answer["items"]]
    print(render(("date", *actions), rows))
    print(f"\nas of {answer.get('as_of')}")
    return 0


# ---------------------------------------------------------------------------------------------- arguments


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _tenant_commands(groups: Any) -> None:
    tenants = groups.add_parser("tenants", help="tenants (admin key)").add_subparsers(dest="command", required=True)
    create = tenants.add_parser("create", help="create a tenant; prints its first key")
    create.add_argument("--name", required=True)
    create.add_argument("--timezone", default="UTC", help="IANA name, fixed after creation (default UTC)")
    create.set_defaults(run=tenants_create)
    listing = tenants.add_parser("list", help="every tenant")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=tenants_list)
    update = tenants.add_parser("update", help="change a tenant")
    update.add_argument("tenant_id")
    active = update.add_mutually_exclusive_group()
    active.add_argument("--active", dest="active", action="store_const", const=True, default=None)
    active.add_argument("--inactive", dest="active", action="store_const", const=False)
    update.add_argument("--rate", type=_positive, help="requests per second (with --burst)")
    update.add_argument("--burst", type=_positive)
    update.add_argument("--default-rate-limit", action="store_true", help="back to the default rate limit")
    update.add_argument("--validation", choices=("off", "flag", "block"))
    update.add_argument("--allowed-origins", help="comma-separated origins for browsers (empty: none)")
    update.set_defaults(run=tenants_update)

    keys = groups.add_parser("keys", help="API keys of a tenant (admin key)").add_subparsers(
        dest="command", required=True
    )
    key_create = keys.add_parser("create", help="a new key (the old ones keep working until revoked)")
    key_create.add_argument("tenant_id")
    key_create.add_argument("--role", choices=("tenant", "ingest"))
    key_create.set_defaults(run=keys_create)
    revoke = keys.add_parser("revoke", help="revoke a key")
    revoke.add_argument("tenant_id")
    revoke.add_argument("key_id")
    revoke.set_defaults(run=keys_revoke)


def _event_commands(groups: Any) -> None:
    events = groups.add_parser("events", help="import and export events (tenant key)")
    commands = events.add_subparsers(dest="command", required=True)
    importing = commands.add_parser("import", help="import an NDJSON or CSV file (safe to run again)")
    importing.add_argument("file")
    importing.add_argument("--format", choices=("ndjson", "csv"), help="default: from the file name (.csv or NDJSON)")
    importing.add_argument("--concurrency", type=_positive, default=4, help="batches on the wire at once (default 4)")
    importing.add_argument("--no-progress", action="store_true")
    importing.add_argument("--no-gzip", action="store_true", help="send the batches uncompressed")
    importing.set_defaults(run=events_import)
    export = commands.add_parser("export", help="a user's events as NDJSON on stdout")
    export.add_argument("user_id")
    export.add_argument("--from", dest="start")
    export.add_argument("--to", dest="end")
    export.add_argument("--action")
    export.add_argument("--order", choices=("asc", "desc"), default="asc")
    export.add_argument("--page-size", type=_positive, default=500, help="events per request, 1-1000 (default 500)")
    export.set_defaults(run=events_export)


def _stats_commands(groups: Any) -> None:
    stats = groups.add_parser("stats", help="statistics as tables (tenant key)")
    commands = stats.add_subparsers(dest="command", required=True)
    daily = commands.add_parser("daily", help="events and users per day")
    daily.add_argument("--days", type=_positive, default=7)
    daily.set_defaults(run=stats_daily)
    top = commands.add_parser("top", help="the most active users")
    top.add_argument("--hours", type=_positive, default=24)
    top.add_argument("--limit", type=_positive, default=10)
    top.add_argument("--by", choices=("events", "points"), default="events")
    top.set_defaults(run=stats_top)
    trend = commands.add_parser("trend", help="events per day per action")
    trend.add_argument("--from", dest="start")
    trend.add_argument("--to", dest="end")
    trend.set_defaults(run=stats_trend)
    for command in (daily, top, trend):
        command.add_argument("--json", action="store_true", help="the API's answer as JSON")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="activity-tracker", description=(__doc__ or "").split("\n\n")[0])
    root.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    root.add_argument(
        "--endpoint", default=os.environ.get(ENDPOINT_VARIABLE), help=f"the API's base URL (${ENDPOINT_VARIABLE})"
    )
    root.add_argument("--key", default=os.environ.get(KEY_VARIABLE), help=f"an API key (${KEY_VARIABLE})")
    root.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default %(default)s)")
    root.add_argument(
        "--retry-budget",
        type=float,
        default=300.0,
        help="seconds to keep retrying a request, or a batch of an import (default %(default)s)",
    )
    groups = root.add_subparsers(dest="group", required=True)
    _tenant_commands(groups)
    _event_commands(groups)
    _stats_commands(groups)
    return root


def _error(message: str) -> None:
    print(f"activity-tracker: error: {message}", file=sys.stderr)


def _connect(args: argparse.Namespace) -> ApiClient:
    if not args.endpoint:
        raise UsageError(f"no endpoint: give --endpoint or set {ENDPOINT_VARIABLE}")
    if not args.key:
        raise UsageError(f"no API key: give --key or set {KEY_VARIABLE}")
    try:
        return ApiClient(args.endpoint, args.key, timeout=args.timeout)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _run(args: argparse.Namespace, client: ApiClient) -> int:
    try:
        return int(args.run(Api(client, retry_policy(args)), args))
    except UsageError as error:
        _error(str(error))
        return EXIT_USAGE
    except ApiError as error:
        _error(str(error))
        for detail in error.details:
            where = detail.get("field", "") if isinstance(detail, dict) else ""
            what = detail.get("message", detail) if isinstance(detail, dict) else detail
            print(f"  {where}: {what}" if where else f"  {what}", file=sys.stderr)
        return EXIT_API_ERROR
    except NETWORK_ERRORS as error:
        _error(f"cannot reach {args.endpoint}: {type(error).__name__}: {error}")
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser()
    args = arguments.parse_args(argv)
    try:
        client = _connect(args)
    except UsageError as error:
        arguments.print_usage(sys.stderr)
        _error(str(error))
        return EXIT_USAGE
    try:
        return _run(args, client)
    finally:
        client.close()
