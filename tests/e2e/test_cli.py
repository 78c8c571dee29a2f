"""The ``activity-tracker`` CLI against a local stack of its own, over HTTP: tenants and keys, imports of
files with bad lines (rejects file, exit status, second run all duplicates), a server that is down for the
first 30 s, Ctrl-C half way (a re-run completes it), export, and the statistics tables.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from activity_tracker.cli import main
from tests.e2e.conftest import ROOT, Stack, free_port, rfc3339, run_rollup, send, start_stack, stop_stack
from tests.e2e.fault_proxy import FaultProxy

pytestmark = [pytest.mark.e2e, pytest.mark.local_only]  # a local stack of its own (or its emulation)

SERVER_DOWN_SECONDS = 30


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """A stack of this module's own: the thousands of events it imports slow no other module's stack."""
    running = start_stack()
    # A function's first request on a fresh stack starts its worker; on a busy machine that can outlast the
    # function's timeout (a 503 the CLI rightly does not retry on a POST): warm the tenants function first.
    warmed = send(running, "POST", "/v1/tenants", {"name": "CLI warm-up"}, running.admin_key)
    assert warmed.status == 201, warmed.body
    yield running
    stop_stack(running)


def cli(stack: Stack, key: str, *arguments: str, endpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI's ``main`` in this process, with its environment, output and exit status as a command would have.

    What these tests check is the CLI's logic over HTTP; starting an interpreter per call only cost time. The
    command itself (``python -m activity_tracker``, a process) is what the tests that interrupt an import or
    start it before the server run.
    """
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(stdout), redirect_stderr(stderr):
        for name, value in cli_environment(stack.api if endpoint is None else endpoint, key).items():
            patch.setenv(name, value)
        try:
            status = main(list(arguments))
        except SystemExit as exit_:  # argparse's usage errors
            status = exit_.code if isinstance(exit_.code, int) else 1
    return subprocess.CompletedProcess(["activity-tracker", *arguments], status, stdout.getvalue(), stderr.getvalue())


def cli_environment(endpoint: str, key: str) -> dict[str, str]:
    return {
        "PYTHONPATH": str(ROOT / "clients/python/src"),
        "ACTIVITY_TRACKER_ENDPOINT": endpoint,
        "ACTIVITY_TRACKER_API_KEY": key,
    }


def write_ndjson(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(event) + "\n" for event in events), encoding="utf-8")
    return path


def recent_events(count: int, users: int, prefix: str) -> list[dict[str, Any]]:
    start = datetime.now(UTC) - timedelta(hours=2)
    return [
        {
            "user_id": f"{prefix}-{index % users}",
            "action": ("login", "view", "buy")[index % 3],
            "occurred_at": rfc3339(start + timedelta(milliseconds=index)),
            "metadata": {"seq": index},
        }
        for index in range(count)
    ]


def exported(stack: Stack, key: str, users: list[str]) -> list[dict[str, Any]]:
    events = []
    for user in users:
        answer = cli(stack, key, "events", "export", user)
        assert answer.returncode == 0, answer.stderr
        events += [json.loads(line) for line in answer.stdout.splitlines()]
    return events


def summary_counts(output: str) -> dict[str, int]:
    line = next(line for line in output.splitlines() if ": accepted " in line)
    counts = {}
    for part in line.split(": ", 1)[1].split(", "):
        words = part.rsplit(" ", 1)
        counts[words[0]] = int(words[1])
    return counts


@pytest.mark.timeout(900)
def test_cli_tenants_and_keys(stack: Stack) -> None:
    admin = stack.admin_key
    created = cli(stack, admin, "tenants", "create", "--name", "CLI shop", "--timezone", "Europe/Kyiv")
    assert created.returncode == 0, created.stderr
    tenant = json.loads(created.stdout)
    assert "shown once" in created.stderr
    listed = cli(stack, admin, "tenants", "list")
    assert tenant["tenant_id"] in listed.stdout
    assert listed.stdout.splitlines()[0].split() == ["tenant_id", "name", "timezone", "active", "created_at"]
    updated = cli(stack, admin, "tenants", "update", tenant["tenant_id"], "--rate", "5", "--burst", "10")
    assert json.loads(updated.stdout)["rate_limit"] == {"rate": 5, "burst": 10}
    key = json.loads(cli(stack, admin, "keys", "create", tenant["tenant_id"]).stdout)
    assert cli(stack, key["api_key"], "events", "export", "nobody").returncode == 0
    revoked = cli(stack, admin, "keys", "revoke", tenant["tenant_id"], key["key_id"])
    assert revoked.returncode == 0, revoked.stderr
    # A revoked key: the API's message, exit status 1
    refused = cli(stack, key["api_key"], "events", "export", "nobody")
    assert refused.returncode == 1
    assert "(401 unauthorized)" in refused.stderr
    # A tenant key on an admin route; nothing to update; no endpoint
    assert "(403 forbidden)" in cli(stack, tenant["api_key"], "tenants", "list").stderr
    assert cli(stack, admin, "tenants", "update", tenant["tenant_id"]).returncode == 2
    assert cli(stack, admin, "tenants", "list", endpoint="").returncode == 2


@pytest.mark.timeout(900)
def test_cli_import_rejects_bad_lines_alone_and_a_second_run_is_all_duplicates(stack: Stack, tmp_path: Path) -> None:
    key = stack.new_tenant()["api_key"]
    when = rfc3339(datetime.now(UTC) - timedelta(hours=1))
    # Given a CSV with a BOM and CRLF endings, a row short of a field, bad UTF-8, a 10 MB line, an invalid action
    rows = [
        b"\xef\xbb\xbfuser_id,action,occurred_at,city",
        f"csv-a,login,{when},Kyiv".encode(),
        f"csv-a,view,{when}".encode(),
        f"csv-b,view,{when},caf".encode() + b"\xe9",
        b"csv-b,view," + b"x" * 10_000_000,
        f"csv-b,not allowed!,{when},Lviv".encode(),
        f"csv-b,buy,{when},Lviv".encode(),
    ]
    source = tmp_path / "history.csv"
    source.write_bytes(b"\r\n".join(rows) + b"\r\n")
    # When it is imported
    first = cli(stack, key, "events", "import", str(source), "--no-progress")
    # Then 2 rows are stored, 4 rejected and copied to history.rejected.csv (with the header), exit status 1
    assert first.returncode == 1, first.stderr
    assert summary_counts(first.stdout) == {"accepted": 2, "duplicates": 0, "rejected": 4}
    rejected = (tmp_path / "history.rejected.csv").read_bytes()
    assert rejected.startswith(rows[0] + b"\r\n")
    assert rejected.count(b"\r\n") == 5
    assert len(rejected) > 10_000_000
    log = (tmp_path / "history.rejected.log").read_text()
    assert "line 3: validation_error: The row has 3 fields" in log
    assert "line 6: validation_error: The event is not valid. (action:" in log
    # And a second run stores nothing again
    second = cli(stack, key, "events", "import", str(source), "--no-progress")
    assert summary_counts(second.stdout) == {"accepted": 0, "duplicates": 2, "rejected": 4}
    stored = exported(stack, key, ["csv-a", "csv-b"])
    assert sorted((e["user_id"], e["action"], e["metadata"]) for e in stored) == [
        ("csv-a", "login", {"city": "Kyiv"}),
        ("csv-b", "buy", {"city": "Lviv"}),
    ]
    # An NDJSON line that is not an object is rejected alone
    lines = tmp_path / "mixed.ndjson"
    lines.write_text('[1, 2]\n{"user_id": "nd", "action": "login"}\n"text"\n', encoding="utf-8")
    mixed = cli(stack, key, "events", "import", str(lines), "--no-progress")
    assert summary_counts(mixed.stdout) == {"accepted": 1, "duplicates": 0, "rejected": 2}
    assert (tmp_path / "mixed.rejected.ndjson").read_text() == '[1, 2]\n"text"\n'


@pytest.mark.timeout(900)
def test_cli_import_waits_for_a_server_that_is_down_for_the_first_30_seconds(stack: Stack, tmp_path: Path) -> None:
    key = stack.new_tenant()["api_key"]
    source = write_ndjson(tmp_path / "late.ndjson", recent_events(1200, 4, "late"))
    port = free_port()
    # Given nothing listens on the endpoint yet
    importing = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "activity_tracker", "events", "import", str(source), "--no-progress"],
        env={**os.environ, **cli_environment(f"http://127.0.0.1:{port}", key)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(SERVER_DOWN_SECONDS)
    assert importing.poll() is None, importing.communicate()
    # When the API comes up after 30 s (a proxy that passes everything through)
    proxy = FaultProxy(int(stack.api.rsplit(":", 1)[1]), fates={"pass": 1.0})
    proxy.start(port)
    try:
        out, err = importing.communicate(timeout=300)
    finally:
        proxy.stop()
    # Then the import completed: every event stored once (a retried batch whose answer was lost counts duplicates)
    assert importing.returncode == 0, out + err
    counts = summary_counts(out)
    assert (counts["accepted"] + counts["duplicates"], counts["rejected"]) == (1200, 0)


@pytest.mark.timeout(1200)
def test_cli_import_interrupted_reports_what_was_sent_and_a_rerun_completes_it(stack: Stack, tmp_path: Path) -> None:
    key = stack.new_tenant()["api_key"]
    total = 4000
    source = write_ndjson(tmp_path / "big.ndjson", recent_events(total, 3, "intr"))
    # Given an import through a slow proxy (half a second per batch)
    proxy = FaultProxy(int(stack.api.rsplit(":", 1)[1]), fates={"pass": 1.0}, delay_seconds=0.5)
    port = proxy.start()
    importing = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "activity_tracker", "events", "import", str(source), "--concurrency", "2"],
        env={**os.environ, **cli_environment(f"http://127.0.0.1:{port}", key)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while proxy.counts["pass"] < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    # When Ctrl-C arrives half way
    importing.send_signal(signal.SIGINT)
    _out, err = importing.communicate(timeout=120)
    proxy.stop()
    # Then it says what was confirmed, and how to complete it; exit status 130
    assert importing.returncode == 130, err
    first = summary_counts(err)
    assert 0 < first["accepted"] < total
    assert "interrupted (Ctrl-C)" in err
    assert "Run the same command again" in err
    # And running it again (straight to the API) stores the rest, recognising what was stored
    again = cli(stack, key, "events", "import", str(source), "--no-progress")
    assert again.returncode == 0, again.stderr
    second = summary_counts(again.stdout)
    assert second["accepted"] + second["duplicates"] == total
    assert second["duplicates"] >= first["accepted"]
    stored = exported(stack, key, ["intr-0", "intr-1", "intr-2"])
    assert sorted(event["metadata"]["seq"] for event in stored) == list(range(total))


@pytest.mark.timeout(900)
def test_cli_export_pages_through_every_event_of_a_user(stack: Stack, tmp_path: Path) -> None:
    key = stack.new_tenant()["api_key"]
    source = write_ndjson(tmp_path / "one.ndjson", recent_events(1100, 1, "exp"))
    assert cli(stack, key, "events", "import", str(source), "--no-progress").returncode == 0
    # 1,100 events of one user in pages of 500: three pages, oldest first
    export = cli(stack, key, "events", "export", "exp-0", "--page-size", "500")
    assert export.returncode == 0, export.stderr
    assert [json.loads(line)["metadata"]["seq"] for line in export.stdout.splitlines()] == list(range(1100))
    newest = cli(stack, key, "events", "export", "exp-0", "--order", "desc", "--action", "buy")
    assert [json.loads(line)["metadata"]["seq"] for line in newest.stdout.splitlines()] == list(range(1097, -1, -3))


@pytest.mark.timeout(900)
def test_cli_stats_tables(stack: Stack, tmp_path: Path) -> None:
    key = stack.new_tenant()["api_key"]
    source = write_ndjson(tmp_path / "stats.ndjson", recent_events(30, 2, "st"))
    assert cli(stack, key, "events", "import", str(source), "--no-progress").returncode == 0
    run_rollup(stack, datetime.now(UTC))
    daily = cli(stack, key, "stats", "daily", "--days", "2").stdout.splitlines()
    assert daily[0].split() == ["date", "count", "users"]
    assert sum(int(row.split()[1]) for row in daily[2:4]) == 30
    top = cli(stack, key, "stats", "top", "--hours", "24", "--limit", "2").stdout.splitlines()
    assert [row.split() for row in top[2:4]] == [["st-0", "15"], ["st-1", "15"]]
    today = datetime.now(UTC).date()
    trend = cli(
        stack, key, "stats", "trend", "--from", str(today - timedelta(days=1)), "--to", str(today + timedelta(days=1))
    )
    assert trend.stdout.splitlines()[0].split() == ["date", "buy", "login", "view"]
