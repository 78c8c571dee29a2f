"""JSON text in which a ``Decimal`` is a number written digit for digit.

Pydantic writes a ``Decimal`` as a JSON string, Powertools' encoders as a string (its ``Encoder``)
or a float (its ``jsonable_encoder``), and ``json`` refuses it: none keeps a property's exact sum
a number. Here a finite ``Decimal`` is written as its own text (``0.3``, ``12345678901234567890.5``,
``1E+400``), which is always a valid JSON number; a reader parsing it with
``parse_float=Decimal`` gets the same value back.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import BaseModel


def exact_dumps(value: Any) -> str:
    """``value`` (dicts, lists, strings, numbers, dates, None) as compact JSON; dates in ISO form."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_scalar(str(key))}:{exact_dumps(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(exact_dumps(item) for item in value) + "]"
    if isinstance(value, date):
        return _scalar(value.isoformat())
    return _scalar(value)


def exact_model_json(model: BaseModel) -> str:
    """A response model as JSON, by alias, its decimals exact (other fields as pydantic gives them)."""
    return exact_dumps(model.model_dump(mode="python", by_alias=True))


def _scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)
