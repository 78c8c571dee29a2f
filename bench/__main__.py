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
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from importlib import import_module, metadata  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from bench.common import RESULTS_PATH, ROOT, load_template, log, use_layers  # noqa: E402
from bench.report import render  # noqa: E402

SECTIONS = ("imports", "ingest", "rollup", "stats", "catalog", "emulator", "export", "live", "sdk")
SIZES: dict[str, dict[str, Any]] = {
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
        "catalog_rounds": 7,
        "emulator_patched": [2_000, 100_000],
        "emulator_unpatched": [2_000, 10_000],
        "export_events": 100_000,
        "live_clients": 100,
        "live_rate": 500,
        "live_seconds": 30,
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
        "catalog_rounds": 3,
        "emulator_patched": [2_000, 20_000],
        "emulator_unpatched": [2_000],
        "export_events": 5_000,
        "live_clients": 20,
        "live_rate": 100,
        "live_seconds": 5,
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


def _run_section(name: str, sizes: dict[str, Any]) -> dict[str, Any]:
    """Imports the section's module only when it runs: each brings its own heavy dependencies."""
    template = load_template()
    use_layers(template)
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "imports": lambda: import_module("bench.imports").run(template, sizes["import_rounds"]),
        "ingest": lambda: import_module("bench.ingest").run(sizes["ingest_events"]),
        "rollup": lambda: import_module("bench.rollup_cost").run(
            template,
            old_events=sizes["rollup_old_events"],
            new_events=sizes["rollup_new_events"],
            check_events=(sizes["rollup_check_old_events"], sizes["rollup_check_new_events"]),
        ),
        "stats": lambda: import_module("bench.stats_cost").run(
            template, small=sizes["stats_small"], large=sizes["stats_large"], users=sizes["stats_users"]
        ),
        "catalog": lambda: import_module("bench.catalog_cost").run(template, rounds=sizes["catalog_rounds"]),
        "emulator": lambda: import_module("bench.emulator_cost").run(
            sizes["emulator_patched"], sizes["emulator_unpatched"]
        ),
        "export": lambda: import_module("bench.export_cost").run(template, sizes["export_events"]),
        "live": lambda: import_module("bench.live").run(
            sizes["live_clients"], sizes["live_rate"], sizes["live_seconds"]
        ),
        "sdk": lambda: import_module("bench.sdk").run(
            sizes["sdk_import_events"], sizes["sdk_raw_events"], sizes["sdk_fault_events"]
        ),
    }
    result: dict[str, Any] = runners[name]()
    return result


def _ingest_problems(ingest: dict[str, Any]) -> list[str]:
    return [
        f"ingest {phase}: not every event was stored"
        for phase in ("sequential", "concurrent", "clients_16")
        if phase in ingest and not ingest[phase]["all_stored"]
    ]


def _rollup_problems(rollup: dict[str, Any]) -> list[str]:
    problems = [] if rollup["fast_path_check"]["ok"] else ["rollup: the moto fast path changed an answer"]
    for name in ("A_with_history", "B_without_history", "C_live_events", "D_points_and_properties"):
        problems += [f"rollup {name}: {check}" for check, ok in rollup[name]["checks"].items() if not ok]
    return problems


def _stats_problems(stats: dict[str, Any]) -> list[str]:
    return [
        f"stats {route} ({size}): the answer does not match the data"
        for route, measured in stats["routes"].items()
        for size in ("small", "large")
        if not measured[size]["answer_matches_data"]
    ]


def _catalog_problems(catalog: dict[str, Any]) -> list[str]:
    problems = (
        [] if catalog["validation"]["outcomes_ok"] else ["catalog: a batch was not stored or rejected as its mode says"]
    )
    return problems + [
        f"catalog search {label}: the answer does not match the data"
        for label, measured in catalog["search"]["calls"].items()
        if not measured["answer_matches_data"]
    ]


def _export_problems(export: dict[str, Any]) -> list[str]:
    return [] if export["complete_and_in_order"] else ["export: the file is not the profile and every event in order"]


def _live_problems(live: dict[str, Any]) -> list[str]:
    return [] if live["all_exact"] else ["live: some client did not receive exactly its user's events"]


def _sdk_problems(sdk: dict[str, Any]) -> list[str]:
    problems = [] if sdk["cli_import"]["all_stored"] else ["sdk: the CLI import did not store every event"]
    if not sdk["exactly_once"]["ok"]:
        problems.append("sdk: under faults, an event was lost or stored twice")
    return problems


CHECKS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "ingest": _ingest_problems,
    "rollup": _rollup_problems,
    "stats": _stats_problems,
    "catalog": _catalog_problems,
    "export": _export_problems,
    "live": _live_problems,
    "sdk": _sdk_problems,
}


def invalid_measurements(results: dict[str, Any]) -> list[str]:
    """Checks whose failure means a figure cannot be trusted (goals missed are findings, not failures)."""
    return [problem for name, check in CHECKS.items() if results.get(name) for problem in check(results[name])]


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
