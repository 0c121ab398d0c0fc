"""Task values made safe to record: bounded, JSON-ready, secrets redacted.

Parameters (rendered template fields, ``op_args``/``op_kwargs``, DAG params) and XCom return
values can be anything: a number, a path, a DataFrame. :func:`jsonable` keeps plain data (up to
a size), and replaces other objects by a short ``<module.Type>`` tag without calling their
``repr`` (which can be slow or huge). :func:`summarise` describes an XCom value by its type,
size, keys and, when small, the value itself.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import inspect
import json
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePath
from typing import Any

MAX_STR = 1000
MAX_ITEMS = 50
MAX_DEPTH = 4
SMALL_JSON = 1024


def _tag(value: Any) -> str:
    cls = type(value)
    return f"<{cls.__module__}.{cls.__qualname__}>"


def jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` as bounded JSON data: long strings cut, long lists/dicts cut, objects tagged."""
    return _jsonable(value, depth, [])


def _jsonable(value: Any, depth: int, lossy: list[bool]) -> Any:
    """:func:`jsonable`, noting in ``lossy`` whenever something was cut or tagged."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        if len(value) <= MAX_STR:
            return value
        lossy.append(True)
        return value[:MAX_STR] + "..."
    if isinstance(value, enum.Enum):
        return _jsonable(value.value, depth, lossy)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (PurePath, uuid.UUID)):
        return str(value)
    if hasattr(value, "item") and callable(value.item) and type(value).__module__ == "numpy":
        try:
            return _jsonable(value.item(), depth, lossy)
        except (TypeError, ValueError):
            pass
    elif depth < MAX_DEPTH and isinstance(value, Mapping):
        items = list(value.items())
        out = {str(k): _jsonable(v, depth + 1, lossy) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            lossy.append(True)
            out["..."] = f"{len(items) - MAX_ITEMS} more"
        return out
    elif depth < MAX_DEPTH and isinstance(value, (list, tuple, set, frozenset)):
        seq = sorted(value, key=str) if isinstance(value, (set, frozenset)) else list(value)
        out_list = [_jsonable(v, depth + 1, lossy) for v in seq[:MAX_ITEMS]]
        if len(seq) > MAX_ITEMS:
            lossy.append(True)
            out_list.append(f"... {len(seq) - MAX_ITEMS} more")
        return out_list
    lossy.append(True)
    return _tag(value)


def summarise(value: Any) -> dict[str, Any]:
    """A small description of an XCom value: type, length, keys, and the value itself when it
    is small and plain (nothing cut, no object tagged)."""
    out: dict[str, Any] = {"type": _tag(value)[1:-1]}
    if isinstance(value, (Mapping, Sequence, set, frozenset)) and not isinstance(value, str):
        with contextlib.suppress(TypeError):
            out["len"] = len(value)
    if isinstance(value, Mapping):
        out["keys"] = [str(k) for k in list(value)[:MAX_ITEMS]]
    elif hasattr(value, "shape") and type(value).__module__.split(".")[0] in ("numpy", "pandas"):
        out["shape"] = jsonable(tuple(value.shape))
    lossy: list[bool] = []
    data = _jsonable(value, 0, lossy)
    text = json.dumps(data, sort_keys=True, default=str)
    if not lossy and len(text) <= SMALL_JSON:
        out["value"] = data
    else:
        out["json_len"] = len(text)
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
