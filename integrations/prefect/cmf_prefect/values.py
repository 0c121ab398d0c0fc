"""Task values made safe to record: bounded, JSON-ready, never ``repr``-ed.

Parameters and return values of Prefect tasks can be anything: a number, a path, a DataFrame, a
model. :func:`jsonable` keeps plain data up to a size and replaces every other object by a short
``<module.Type>`` tag (calling ``repr`` on user objects can be slow, huge or fail).
:func:`metrics_of` reads a ``{"name": number}`` return value as metrics.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import uuid
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

MAX_STR = 1000
MAX_ITEMS = 50
MAX_DEPTH = 4
MAX_METRICS = 100


def type_tag(value: Any) -> str:
    """``<module.Type>`` of ``value``."""
    cls = type(value)
    return f"<{cls.__module__}.{cls.__qualname__}>"


def _numpy_scalar(value: Any) -> bool:
    return (type(value).__module__ == "numpy" and hasattr(value, "item")
            and getattr(value, "shape", ()) == ())


def jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` as bounded JSON data: long strings and collections cut, objects tagged."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value if len(value) <= MAX_STR else value[:MAX_STR] + "..."
    if isinstance(value, enum.Enum):
        return jsonable(value.value, depth)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (PurePath, uuid.UUID)):
        return str(value)
    if _numpy_scalar(value):
        try:
            return jsonable(value.item(), depth)
        except (TypeError, ValueError):
            return type_tag(value)
    if depth >= MAX_DEPTH:
        return type_tag(value)
    if isinstance(value, Mapping):
        items = list(value.items())
        out = {str(k): jsonable(v, depth + 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            out["..."] = f"{len(items) - MAX_ITEMS} more"
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        seq = sorted(value, key=str) if isinstance(value, (set, frozenset)) else list(value)
        out_list = [jsonable(v, depth + 1) for v in seq[:MAX_ITEMS]]
        if len(seq) > MAX_ITEMS:
            out_list.append(f"... {len(seq) - MAX_ITEMS} more")
        return out_list
    return type_tag(value)


def params_of(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Task or flow parameters as bounded JSON (Prefect futures and states are tagged)."""
    return {str(k): jsonable(v) for k, v in (parameters or {}).items()}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if _numpy_scalar(value):
        try:
            return _number(value.item())
        except (TypeError, ValueError):
            return None
    return None


def metrics_of(value: Any) -> dict[str, float]:
    """A return value ``{"name": number, ...}`` (all values finite numbers) as metrics."""
    if not isinstance(value, Mapping) or not value or len(value) > MAX_METRICS:
        return {}
    out: dict[str, float] = {}
    for k, v in value.items():
        n = _number(v)
        if n is None or not isinstance(k, str) or not k:
            return {}
        out[k] = n
    return out
