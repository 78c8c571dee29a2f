"""Paths, the template, small statistics and progress messages shared by the sections."""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local_stack.template import FunctionSpec, Template

ROOT = Path(__file__).resolve().parent.parent
RESULTS_PATH = ROOT / ".bench" / "results.json"
# Bytecode of every interpreter the bench runs goes here, never into the repository's __pycache__.
PYCACHE_PREFIX = Path(tempfile.gettempdir()) / "activity-tracker-bench-pycache"
STARTED = time.perf_counter()


def log(message: str) -> None:
    """Progress, on stderr (the report is on stdout)."""
    print(f"[bench +{time.perf_counter() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``fraction`` of the values at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return float(ordered[rank - 1])


def load_template() -> Template:
    """The project's template, with the local stack's loader (which also resolves every intrinsic)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from local_stack.template import load_template as load

    return load(ROOT / "template.yaml")


def use_layers(template: Template) -> None:
    """Puts the template's layers on ``sys.path`` (as Lambda's /opt/python), so ``tracker`` imports."""
    for path in template.layers.values():
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


def function(template: Template, logical_id: str) -> FunctionSpec:
    spec = template.functions.get(logical_id)
    if spec is None:
        raise SystemExit(f"template.yaml has no {logical_id}; the bench needs it")
    return spec


def load_handler_module(spec: FunctionSpec, module_name: str) -> Any:
    """A function's handler module, imported as Lambda would (its code and layers on ``sys.path``)."""
    import importlib.util

    for path in (str(spec.code_uri), *(str(layer) for layer in spec.layer_paths)):
        if path not in sys.path:
            sys.path.insert(0, path)
    module_spec = importlib.util.spec_from_file_location(module_name, spec.code_uri / f"{spec.handler_module}.py")
    if module_spec is None or module_spec.loader is None:
        raise SystemExit(f"cannot load {spec.code_uri / spec.handler_module}.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module
