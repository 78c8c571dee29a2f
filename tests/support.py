"""The functions as every tier of tests runs them, from ``template.yaml``.

- ``function_environment``: a function's template variables while a block runs, its settings read afresh.
- ``load_function_module``: ``functions/<name>/app.py`` imported as Lambda's init imports it.
- ``lambda_context``: the ``context`` Lambda passes, with the function's name, memory and timeout from the
  template: the local stack's own ``LambdaContext`` (the e2e tier's functions get the same class).
- ``emf_documents``: the Embedded Metric Format documents a function printed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any
from unittest import mock

from local_stack.lambdas import LambdaContext, WorkerSetup
from local_stack.template import FunctionSpec

LOG_STREAM = "2025/10/10/[$LATEST]0123456789abcdef"


@contextmanager
def function_environment(spec: FunctionSpec) -> Iterator[None]:
    """The function's template environment, with its settings read afresh on entry and on exit, as in a
    Lambda process of its own."""
    from tracker.settings import get_settings

    with mock.patch.dict(os.environ, spec.environment):
        get_settings.cache_clear()
        try:
            yield
        finally:
            get_settings.cache_clear()


def load_function_module(spec: FunctionSpec) -> ModuleType:
    """``functions/<name>/app.py`` as a module of its own (``function_<logical id>``), whatever other
    functions call their module, imported in the function's template environment."""
    path = spec.code_uri / f"{spec.handler_module.replace('.', '/')}.py"
    module_spec = importlib.util.spec_from_file_location(f"function_{spec.logical_id.lower()}", path)
    assert module_spec is not None
    assert module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    with function_environment(spec):
        module_spec.loader.exec_module(module)
    return module


def lambda_context(spec: FunctionSpec) -> LambdaContext:
    """A new invocation's ``context``: its own request id; the remaining time counts down from the
    function's timeout."""
    return LambdaContext(WorkerSetup.of(spec, {}), str(uuid.uuid4()), LOG_STREAM)


def emf_documents(output: str) -> list[dict[str, Any]]:
    """The Embedded Metric Format documents among the lines written to stdout."""
    documents = []
    for line in output.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and "_aws" in document:
            documents.append(document)
    return documents
