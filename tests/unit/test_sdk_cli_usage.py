"""The CLI's usage errors (exit status 2, before any request) and its tables, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from activity_tracker.cli import ENDPOINT_VARIABLE, KEY_VARIABLE, main
from activity_tracker.cli.tables import render


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENDPOINT_VARIABLE, raising=False)
    monkeypatch.delenv(KEY_VARIABLE, raising=False)


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["tenants", "list"], "no endpoint"),
        (["--endpoint", "http://127.0.0.1:9", "tenants", "list"], "no API key"),
        (["--endpoint", "ftp://example", "--key", "k", "tenants", "list"], "http(s) URL"),
        (["--endpoint", "http://127.0.0.1:9", "--key", "k", "tenants", "update", "ten_1"], "nothing to change"),
        (
            ["--endpoint", "http://127.0.0.1:9", "--key", "k", "tenants", "update", "ten_1", "--rate", "5"],
            "go together",
        ),
        (["--endpoint", "http://127.0.0.1:9", "--key", "k", "events", "import", "/no/such/file"], "is not a file"),
    ],
)
def test_usage_errors_exit_2_before_any_request(
    arguments: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(arguments) == 2
    assert words in capsys.readouterr().err


def test_a_csv_without_a_required_column_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "e.csv"
    source.write_text("user_id,when\n6,2025-10-10\n")
    arguments = ["--endpoint", "http://127.0.0.1:9", "--key", "k", "events", "import", str(source), "--no-progress"]
    assert main(arguments) == 2
    assert "no column action" in capsys.readouterr().err


def test_the_key_and_endpoint_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENDPOINT_VARIABLE, "http://127.0.0.1:9")
    monkeypatch.setenv(KEY_VARIABLE, "atk_x")
    assert main(["tenants", "update", "ten_1"]) == 2
    assert "nothing to change" in capsys.readouterr().err


def test_tables_align_numbers_right_and_text_left() -> None:
    table = render(("date", "count", "users"), [["2025-10-12", 1234, 7], ["2025-10-13", 5, None]])
    assert table.splitlines() == [
        "date        count  users",
        "----------  -----  -----",
        "2025-10-12  1,234      7",
        "2025-10-13      5      -",
    ]
