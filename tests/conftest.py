"""Every tier: the process starts as a function's Lambda process does, with Powertools' variables
from ``template.yaml`` already set.

Powertools reads its service name and metric namespace when its objects are made, at import of
``tracker.observability``. In Lambda the function's environment exists before any import; here a
test module collected first (``tests/unit/test_decoded_path.py`` builds a resolver at import) would
otherwise make them without a namespace for the whole session.
"""

from __future__ import annotations

import os

import pytest

from local_stack.template import load_template


def pytest_configure(config: pytest.Config) -> None:
    functions = load_template().functions.values()
    shared = set.intersection(*(set(spec.environment.items()) for spec in functions))
    for name, value in shared:
        if name.startswith("POWERTOOLS_"):
            os.environ.setdefault(name, value)
