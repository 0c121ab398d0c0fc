"""Task values made safe to record: bounded, JSON-ready, secrets redacted.

Parameters (rendered template fields, ``op_args``/``op_kwargs``, DAG params) and XCom return
values can be anything: a number, a path, a DataFrame. :func:`jsonable` (shared with the other
adapters: :mod:`cmf_core.task_values`) keeps plain data up to a size and tags other objects;
:func:`summarise` describes an XCom value by its type, size, keys and, when small, the value
itself; :func:`redact` applies Airflow's secrets masker.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cmf_core.task_values import MAX_ITEMS, MAX_STR, jsonable, jsonable_lossy, type_tag

SMALL_JSON = 1024

__all__ = ["MAX_ITEMS", "MAX_STR", "bind_callable_args", "jsonable", "redact", "summarise"]


def summarise(value: Any) -> dict[str, Any]:
    """A small description of an XCom value: type, length (of a string too large to keep),
    keys, and the value itself when it is small and plain (nothing cut, no object tagged)."""
    out: dict[str, Any] = {"type": type_tag(value)[1:-1]}
    if isinstance(value, (Mapping, Sequence, set, frozenset)) and not isinstance(value, str):
        with contextlib.suppress(TypeError):
            out["len"] = len(value)
    if isinstance(value, Mapping):
        out["keys"] = [str(k) for k in list(value)[:MAX_ITEMS]]
    elif hasattr(value, "shape") and type(value).__module__.split(".")[0] in ("numpy", "pandas"):
        out["shape"] = jsonable(tuple(value.shape))
    data, lossy = jsonable_lossy(value)
    text = json.dumps(data, sort_keys=True, default=str)
    if not lossy and len(text) <= SMALL_JSON:
        out["value"] = data
    else:
        out["json_len"] = len(text)  # of the bounded value
        if isinstance(value, str):  # the only size a cut string has
            out["len"] = len(value)
    return out


def bind_callable_args(fn: Callable[..., Any] | None, args: Sequence[Any],
                       kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``op_args``/``op_kwargs`` by parameter name of ``fn`` (``arg0``... when it cannot bind)."""
    named: dict[str, Any] = {}
    if fn is not None and args:
        try:
            bound = inspect.signature(fn).bind_partial(*args)
            named.update(bound.arguments)
            args = ()
        except (TypeError, ValueError):
            pass
    for i, val in enumerate(args):
        named[f"arg{i}"] = val
    named.update(kwargs)
    return named


def redact(value: Any, name: str) -> Any:
    """Airflow's secrets masker over ``value`` (connection passwords, ``*secret*`` keys...)."""
    try:
        from airflow.sdk._shared.secrets_masker import redact as airflow_redact
    except ImportError:  # pragma: no cover - older task SDKs
        return value
    return airflow_redact(value, name)
