"""Section 1: cold import of each function's handler module, against boto3 plus a DynamoDB client.

Each sample is a fresh interpreter (``python -I``) that puts the function's CodeUri and layers first on
``sys.path`` (as Lambda does with /var/task and /opt/python), has the function's environment from the
template plus the variables Lambda itself sets (so Powertools' Tracer is on, as with ``Tracing: Active``),
and prints how long ``import app`` took, timed with ``perf_counter`` inside the interpreter. The reference
is ``import boto3; boto3.client("dynamodb")`` in the same kind of interpreter. Bytecode is cached (one
unmeasured warm-up per target), as in Lambda where the runtime and pip-installed layers ship ``.pyc``.
Samples are interleaved, in a rotating order, so that drift of the machine's load hits every target alike.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.common import PYCACHE_PREFIX, log, median

if TYPE_CHECKING:
    from local_stack.template import FunctionSpec, Template

GOAL_RATIO = 1.5
REFERENCE = "boto3 + dynamodb client"
REFERENCE_STATEMENT = 'import boto3; boto3.client("dynamodb", region_name="us-east-1")'
CHILD = """\
import sys, time
sys.path[:0] = {paths!r}
start = time.perf_counter()
{statement}
print(repr((time.perf_counter() - start) * 1000.0))
"""
_IMPORT_TIME = re.compile(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)")


@dataclass(frozen=True)
class Target:
    name: str
    paths: tuple[str, ...]
    statement: str
    environment: dict[str, str]


def _base_environment(region: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }


def _lambda_environment(spec: FunctionSpec, region: str) -> dict[str, str]:
    """What Lambda sets, then the template's variables (Globals included)."""
    return {
        **_base_environment(region),
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        "LAMBDA_TASK_ROOT": str(spec.code_uri),
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "_HANDLER": spec.handler,
        **spec.environment,
    }


def targets(template: Template) -> list[Target]:
    found = [
        Target(
            name=logical_id,
            paths=(str(spec.code_uri), *(str(path) for path in spec.layer_paths)),
            statement=f"import {spec.handler_module}",
            environment=_lambda_environment(spec, template.region),
        )
        for logical_id, spec in sorted(template.functions.items())
    ]
    return [Target(REFERENCE, (), REFERENCE_STATEMENT, _base_environment(template.region)), *found]


def _command(target: Target, *extra: str) -> list[str]:
    code = CHILD.format(paths=list(target.paths), statement=target.statement)
    return [sys.executable, "-I", "-X", f"pycache_prefix={PYCACHE_PREFIX}", *extra, "-c", code]


def sample(target: Target) -> float:
    """One fresh interpreter: the milliseconds the import took in it."""
    done = subprocess.run(
        _command(target), env=target.environment, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"importing {target.name} failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def heaviest_packages(target: Target, top: int = 8) -> list[dict[str, Any]]:
    """A diagnostic for a target over the goal: ``-X importtime``'s self time summed per top-level package."""
    done = subprocess.run(
        _command(target, "-X", "importtime"),
        env=target.environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    totals: dict[str, int] = defaultdict(int)
    for line in done.stderr.splitlines():
        match = _IMPORT_TIME.match(line)
        if match:
            totals[match.group(2).split(".")[0]] += int(match.group(1))
    ranked = sorted(totals.items(), key=lambda entry: -entry[1])[:top]
    return [{"package": name, "self_ms": round(micros / 1000, 1)} for name, micros in ranked]


def run(template: Template, rounds: int) -> dict[str, Any]:
    chosen = targets(template)
    log(f"cold imports: warming the bytecode cache of {len(chosen)} targets")
    for target in chosen:
        sample(target)
    samples: dict[str, list[float]] = {target.name: [] for target in chosen}
    for round_index in range(rounds):
        shift = round_index % len(chosen)
        for target in chosen[shift:] + chosen[:shift]:
            samples[target.name].append(sample(target))
        log(f"cold imports: round {round_index + 1}/{rounds} done")
    reference = median(samples[REFERENCE])
    functions: dict[str, Any] = {}
    for target in chosen[1:]:
        value = median(samples[target.name])
        ratio = value / reference
        entry: dict[str, Any] = {
            "median_ms": round(value, 1),
            "min_ms": round(min(samples[target.name]), 1),
            "ratio": round(ratio, 3),
            "ratio_of_minimums": round(min(samples[target.name]) / min(samples[REFERENCE]), 3),
            "within_goal": ratio <= GOAL_RATIO,
            "samples_ms": [round(v, 1) for v in samples[target.name]],
        }
        if ratio > GOAL_RATIO:
            entry["heaviest_packages"] = heaviest_packages(target)
        functions[target.name] = entry
    return {
        "rounds": rounds,
        "goal_ratio": GOAL_RATIO,
        "reference": {
            "statement": REFERENCE_STATEMENT,
            "median_ms": round(reference, 1),
            "min_ms": round(min(samples[REFERENCE]), 1),
            "samples_ms": [round(v, 1) for v in samples[REFERENCE]],
        },
        "functions": functions,
        "method": (
            "fresh `python -I` per sample; sys.path = [CodeUri, layers]; template env + Lambda's own variables "
            "(Tracer on, as with Tracing: Active); bytecode cached; samples interleaved in rotating order"
        ),
    }
