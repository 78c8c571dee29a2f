"""``python -m bench [--quick] [--sections imports,ingest,rollup,stats]``: see ``bench/__init__.py``."""

from __future__ import annotations

import sys

from bench.common import PYCACHE_PREFIX

# Before anything heavy is imported: bytecode is cached outside the repository (and reused by later runs).
sys.pycache_prefix = str(PYCACHE_PREFIX)
sys.dont_write_bytecode = False

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from bench.common import RESULTS_PATH, ROOT, load_template, log, use_layers  # noqa: E402
from bench.report import render  # noqa: E402

SECTIONS = ("imports", "ingest", "rollup", "stats", "sdk")
SIZES = {
    "full": {
        "import_rounds": 7,
        "ingest_events": 10_000,
        "rollup_old_events": 100_000,
        "rollup_new_events": 10_000,
        "rollup_check_old_events": 300,
        "rollup_check_new_events": 200,
        "stats_small": 10_000,
        "stats_large": 200_000,
        "stats_users": 200,
        "sdk_import_events": 100_000,
        "sdk_raw_events": 25_000,
        "sdk_fault_events": 100_000,
    },
    "quick": {
        "import_rounds": 3,
        "ingest_events": 2_000,
        "rollup_old_events": 5_000,
        "rollup_new_events": 1_000,
        "rollup_check_old_events": 100,
        "rollup_check_new_events": 100,
        "stats_small": 2_000,
        "stats_large": 20_000,
        "stats_users": 40,
        "sdk_import_events": 5_000,
        "sdk_raw_events": 2_000,
        "sdk_fault_events": 2_000,
    },
}


def _git_commit() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}{' (with uncommitted changes)' if dirty else ''}"


def _versions() -> dict[str, str]:
    found = {}
    for package in ("boto3", "botocore", "moto", "pydantic", "aws-lambda-powertools"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "missing"
    return found


def _run_section(name: str, sizes: dict[str, int]) -> dict[str, Any]:
    template = load_template()
    use_layers(template)
    if name == "imports":
        from bench import imports

        return imports.run(template, sizes["import_rounds"])
    if name == "ingest":
        from bench import ingest

        return ingest.run(sizes["ingest_events"])
    if name == "rollup":
        from bench import rollup_cost

        return rollup_cost.run(
            template,
            old_events=sizes["rollup_old_events"],
            new_events=sizes["rollup_new_events"],
            check_events=(sizes["rollup_check_old_events"], sizes["rollup_check_new_events"]),
        )
    if name == "sdk":
        from bench import sdk

        return sdk.run(sizes["sdk_import_events"], sizes["sdk_raw_events"], sizes["sdk_fault_events"])
    from bench import stats_cost

    return stats_cost.run(template, small=sizes["stats_small"], large=sizes["stats_large"], users=sizes["stats_users"])


def invalid_measurements(results: dict[str, Any]) -> list[str]:
    """Checks whose failure means a figure cannot be trusted (goals missed are findings, not failures)."""
    problems = []
    ingest = results.get("ingest")
    if ingest:
        for phase in ("sequential", "concurrent"):
            if not ingest[phase]["all_stored"]:
                problems.append(f"ingest {phase}: not every event was stored")
    rollup = results.get("rollup")
    if rollup:
        if not rollup["fast_path_check"]["ok"]:
            problems.append("rollup: the moto fast path changed an answer")
        for name in ("A_with_history", "B_without_history", "C_live_events"):
            problems += [f"rollup {name}: {check}" for check, ok in rollup[name]["checks"].items() if not ok]
    stats = results.get("stats")
    if stats:
        for route, measured in stats["routes"].items():
            for size in ("small", "large"):
                if not measured[size]["answer_matches_data"]:
                    problems.append(f"stats {route} ({size}): the answer does not match the data")
    return problems + _sdk_problems(results.get("sdk"))


def _sdk_problems(sdk: dict[str, Any] | None) -> list[str]:
    problems = []
    if sdk and not sdk["cli_import"]["all_stored"]:
        problems.append("sdk: the CLI import did not store every event")
    if sdk and not sdk["exactly_once"]["ok"]:
        problems.append("sdk: under faults, an event was lost or stored twice")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a smoke run of every section")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="the JSON results (default %(default)s)")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    mode = "quick" if args.quick else "full"
    sizes = SIZES[mode]
    results: dict[str, Any] = {
        "meta": {
            "mode": mode,
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": _git_commit(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "versions": _versions(),
            "sizes": sizes,
            "section_seconds": {},
            "errors": {},
        }
    }
    started = time.perf_counter()
    for name in chosen:
        log(f"section {name}")
        section_started = time.perf_counter()
        try:
            results[name] = _run_section(name, sizes)
        except Exception as error:
            log(f"section {name} failed: {error}")
            results["meta"]["errors"][name] = "".join(traceback.format_exception(error))[-3000:]
        results["meta"]["section_seconds"][name] = round(time.perf_counter() - section_started, 1)
    results["meta"]["total_seconds"] = round(time.perf_counter() - started, 1)
    results["meta"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["meta"]["invalid_measurements"] = invalid_measurements(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(render(results))
    print(f"\nJSON: {args.output}")
    return 1 if results["meta"]["errors"] or results["meta"]["invalid_measurements"] else 0


if __name__ == "__main__":
    sys.exit(main())
