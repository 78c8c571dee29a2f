"""``python -m loadtest [--clients 64] [--seconds 60] [--batch-size 500] [--base-url URL --admin-key KEY]``.

Without ``--base-url`` a local stack is started for the run (``tests.e2e.conftest.start_stack``, free
ports, ``ROLLUP_SETTLE_SECONDS=0``) and stopped afterwards. Against a running stack, give its API URL,
an admin key, and ``--lambda-url`` (the Lambda Invoke API, ``http://127.0.0.1:3001`` for ``make run``)
to run the rollup at once; without it the check waits for the scheduled rollup.

Exit status 0 when nothing was lost, nothing counted twice, no 5xx and every statistic matched; 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from loadtest.runner import LoadConfig, run_load, to_json

if TYPE_CHECKING:
    from tests.e2e.conftest import Stack


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64, help="concurrent client threads (default 64)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the load lasts (default 60)")
    parser.add_argument("--batch-size", type=int, default=500, help="events per batch request, 1-500 (default 500)")
    parser.add_argument("--single-ratio", type=float, default=0.5, help="share of writes that are single events")
    parser.add_argument("--read-ratio", type=float, default=0.1, help="share of requests that are queries/statistics")
    parser.add_argument(
        "--keep-alive-ratio", type=float, default=0.5, help="share of clients on one keep-alive connection"
    )
    parser.add_argument(
        "--duplicate-ratio", type=float, default=0.05, help="share of events that resend an accepted one"
    )
    parser.add_argument("--users", type=int, default=40, help="distinct user ids (default 40)")
    parser.add_argument("--timezone", default="UTC", help="the load tenant's timezone (default UTC)")
    parser.add_argument("--rate", type=float, help="override the load tenant's rate limit (requests/s)")
    parser.add_argument("--burst", type=int, help="override the load tenant's burst")
    parser.add_argument("--max-retry-after", type=float, default=5.0, help="cap on a Retry-After wait (s)")
    parser.add_argument(
        "--verify-timeout", type=float, default=180.0, help="how long the rollup may take to catch up (s)"
    )
    parser.add_argument("--seed", type=int, help="seed of the load mix")
    parser.add_argument("--base-url", default=os.environ.get("LOAD_API_URL"), help="API of a running stack")
    parser.add_argument("--admin-key", default=os.environ.get("LOAD_ADMIN_KEY"), help="its admin key")
    parser.add_argument("--lambda-url", default=os.environ.get("LOAD_LAMBDA_URL"), help="its Lambda Invoke API")
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    args = parser.parse_args(argv)
    if args.base_url and not args.admin_key:
        parser.error("--base-url needs --admin-key (or LOAD_ADMIN_KEY)")
    if not 1 <= args.batch_size <= 500:
        parser.error("--batch-size must be 1-500")
    if args.clients < 1 or args.seconds <= 0:
        parser.error("--clients and --seconds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = LoadConfig(
        base_url=args.base_url or "",
        admin_key=args.admin_key or "",
        lambda_url=args.lambda_url,
        clients=args.clients,
        seconds=args.seconds,
        batch_size=args.batch_size,
        single_ratio=args.single_ratio,
        read_ratio=args.read_ratio,
        keep_alive_ratio=args.keep_alive_ratio,
        duplicate_ratio=args.duplicate_ratio,
        users=args.users,
        timezone=args.timezone,
        rate=args.rate,
        burst=args.burst,
        max_retry_after=args.max_retry_after,
        verify_timeout=args.verify_timeout,
        seed=args.seed,
    )
    stack = None
    if not args.base_url:
        from tests.e2e.conftest import start_stack  # noqa: PLC0415 - only when no stack is given

        print("Starting a local stack ...", flush=True)
        stack = start_stack()
        config = replace(config, base_url=stack.api, admin_key=stack.admin_key, lambda_url=stack.lambda_api)
    try:
        result = run_load(config, log=lambda line: print(line, flush=True))
        print()
        print(result.report(), flush=True)
        if args.json:
            args.json.write_text(to_json(result) + "\n", encoding="utf-8")
    finally:
        if stack is not None:
            _stop(stack)
    return 0 if result.ok and result.server_errors == 0 else 1


def _stop(stack: Stack) -> None:
    from tests.e2e.conftest import stop_stack  # noqa: PLC0415

    try:
        stop_stack(stack)
    except subprocess.TimeoutExpired:
        print("The local stack did not stop within 30 s of SIGINT; killed.", file=sys.stderr)
        stack.process.kill()
        stack.process.wait()


if __name__ == "__main__":
    sys.exit(main())
