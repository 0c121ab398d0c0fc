"""Task values made safe to record: bounded, JSON-ready, never ``repr``-ed.

Parameters and return values of Prefect tasks can be anything: a number, a path, a DataFrame, a
model. :func:`jsonable` (:mod:`cmf_core.task_values`, shared with the other adapters) keeps
plain data up to a size and tags every other object; :func:`metrics_of` reads a
``{"name": number}`` return value as metrics.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from itertools import islice
from typing import Any

from cmf_core.task_values import MAX_DEPTH, jsonable, numpy_scalar, params, type_tag

MAX_METRICS = 100

MAX_WALK = 1000
"""How many values :func:`unresolved` looks at in one parameter before it gives up (and
calls the parameter resolved)."""

__all__ = ["jsonable", "metrics_of", "non_finite_metrics", "params_of", "resolved_params",
           "type_tag", "unresolved"]


def fields_of(value: Any, depth: int = 0) -> Any:
    """A pydantic model or dataclass instance as the mapping of its fields (read, never copied
    or ``repr``-ed; nested ones too, up to ``MAX_DEPTH``), so a config object given as a
    parameter is recorded by its values, as Prefect itself serializes a flow run's parameters;
    anything else as it is."""
    if depth >= MAX_DEPTH or isinstance(value, type):
        return value
    names: Any = None
    if dataclasses.is_dataclass(value):
        names = [f.name for f in dataclasses.fields(value)]
    elif isinstance(getattr(type(value), "model_fields", None), Mapping) \
            and hasattr(value, "__pydantic_fields_set__"):
        names = list(type(value).model_fields)
    if names is None:
        return value
    try:
        return {n: fields_of(getattr(value, n), depth + 1) for n in names}
    except Exception:  # a field that cannot be read: the object is tagged
        return value


def params_of(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Task or flow parameters as bounded JSON (pydantic models and dataclasses by their fields;
    Prefect futures and states are tagged; secrets, e.g. ``federated_sync``'s ``token``,
    recorded as ``***``)."""
    return params({k: fields_of(v) for k, v in (parameters or {}).items()})


def unresolved(value: Any) -> bool:
    """True when ``value`` is, or holds (in a list, tuple, set or dict, as Prefect resolves
    them), a Prefect future or state: a value Prefect resolves only when the task runs."""
    from prefect.client.schemas.objects import State
    from prefect.futures import PrefectFuture

    todo, budget = [value], MAX_WALK
    while todo and budget > 0:
        item = todo.pop()
        budget -= 1
        if isinstance(item, (PrefectFuture, State)):
            return True
        if isinstance(item, Mapping):
            todo.extend(islice(item.values(), budget))
        elif isinstance(item, (list, tuple, set, frozenset)):
            todo.extend(islice(item, budget))
    return False


def resolved_params(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """:func:`params_of` without the parameters that are still futures or states (a task run's
    parameters when it starts): they are recorded, resolved, when the run ends. A START that
    tagged them (``<prefect.futures.PrefectConcurrentFuture>``) would keep the tags in the store
    whenever another route (``cmf prefect watch``) recorded the run's end before this route's
    end event arrived, since the store keeps the stored value of a key between equal statuses."""
    return params_of({k: v for k, v in (parameters or {}).items() if not unresolved(v)})


def _number(value: Any) -> float | None:
    """``value`` as a float if it is a number (NaN and infinities included), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:  # an int past a float's range
            return math.inf if value > 0 else -math.inf
    if numpy_scalar(value):
        try:
            return _number(value.item())
        except (TypeError, ValueError):
            return None
    return None


def _numbers(value: Any) -> dict[str, float]:
    """A return value ``{"name": number, ...}`` (every value a number) as floats, else {}."""
    if not isinstance(value, Mapping) or not value or len(value) > MAX_METRICS:
        return {}
    out: dict[str, float] = {}
    for k, v in value.items():
        n = _number(v)
        if n is None or not isinstance(k, str) or not k:
            return {}
        out[k] = n
    return out


def metrics_of(value: Any) -> dict[str, float]:
    """A return value ``{"name": number, ...}`` (all values numbers) as metrics: its finite
    values (a store holds finite numbers only; see :func:`non_finite_metrics`)."""
    return {k: v for k, v in _numbers(value).items() if math.isfinite(v)}


def non_finite_metrics(value: Any) -> dict[str, dict[str, Any]]:
    """The NaN or infinite values of a metrics return value (a diverged loss), as the core
    notes them in the ``cmf.non_finite_metrics`` execution property: per name ``count``,
    ``first_step`` and ``first_value``."""
    return {k: {"count": 1, "first_step": None, "first_value": str(v)}
            for k, v in _numbers(value).items() if not math.isfinite(v)}
