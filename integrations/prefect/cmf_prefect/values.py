"""Task values made safe to record: bounded, JSON-ready, never ``repr``-ed.

Parameters and return values of Prefect tasks can be anything: a number, a path, a DataFrame, a
model. :func:`jsonable` (:mod:`cmf_core.task_values`, shared with the other adapters) keeps
plain data up to a size and tags every other object; :func:`metrics_of` reads a
``{"name": number}`` return value as metrics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from cmf_core.task_values import jsonable, numpy_scalar, params, type_tag

MAX_METRICS = 100

__all__ = ["jsonable", "metrics_of", "params_of", "type_tag"]


def params_of(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Task or flow parameters as bounded JSON (Prefect futures and states are tagged;
    secrets, e.g. ``federated_sync``'s ``token``, recorded as ``***``)."""
    return params(parameters)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if numpy_scalar(value):
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
