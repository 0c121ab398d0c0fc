"""Shared helpers for records."""

from __future__ import annotations

import dataclasses
import numbers
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from cmf_core import jsonutil
from cmf_core.errors import InvalidInputError

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_PLAIN = frozenset({str, int, float, bool, type(None)})
_INF = (float("inf"), float("-inf"))


def frozen_dict(value: Mapping[str, Any] | None, what: str = "properties") -> Mapping[str, Any]:
    """A read-only copy of ``value`` with JSON-safe content."""
    if value is None:
        return _EMPTY
    if type(value) is MappingProxyType:  # made by this function: already clean and read-only
        return value
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{what} must be a mapping, got {type(value).__name__}")
    if not value:
        return _EMPTY
    copy = _plain_copy(value)
    if copy is None:
        try:
            copy = jsonutil.clean(dict(value))
        except jsonutil.TooDeepError as e:
            raise InvalidInputError(f"{what}: {e}") from None
    return MappingProxyType(copy)


def _plain_copy(value: Mapping[Any, Any], depth: int = 0) -> dict[str, Any] | None:
    """A copy of ``value`` if it is already plain JSON (str keys; str, int, finite float, bool,
    None or such dicts as values), else None: the common case skips :func:`jsonutil.clean`."""
    out = dict(value)
    for k, v in out.items():
        if type(k) is not str:
            return None
        t = type(v)
        if t is dict:
            if depth > 2:
                return None
            inner = _plain_copy(v, depth + 1)
            if inner is None:
                return None
            out[k] = inner
        elif t not in _PLAIN or v != v or v in _INF:
            return None
    return out


def now() -> float:
    return time.time()


#: the end of year 9999 in Unix seconds: later times cannot be stored or shown
MAX_TIME = 253_402_300_800.0
#: whole numbers a store holds (a 64-bit SQL integer) are below this
INT64_END = 2**63


def brief(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (a 400-digit number in an error message)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_time(value: Any, what: str) -> float:
    """``value`` as Unix seconds (a real number from 0 to the end of year 9999)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy numbers too
        raise InvalidInputError(f"{what} {brief(value)} must be a number (Unix seconds)")
    try:
        t = float(value)
    except OverflowError:
        raise InvalidInputError(f"{what} {brief(value)} is not a time (Unix seconds)") from None
    if not 0.0 <= t < MAX_TIME:  # NaN fails too
        raise InvalidInputError(f"{what} {value!r} is not a time from 1970 to 9999 (Unix "
                                "seconds)")
    return t


def check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > 512:
        raise InvalidInputError(f"{what} {value[:40]!r}... is longer than 512 characters")
    return check_text(value, what)


def check_text(value: str, what: str) -> str:
    """``value`` unless it holds a lone surrogate (``"\\ud800"`` in JSON), which is not text
    UTF-8 can store."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"{what} {value!r} is not valid text (a lone surrogate)") \
            from None
    return value


def as_dict(record: Any) -> dict[str, Any]:
    """Plain-dict form of a record (mappings unwrapped, enums as values)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        v = getattr(record, f.name)
        if isinstance(v, Mapping):
            v = dict(v)
        elif hasattr(v, "value") and not isinstance(v, (int, float, str)):
            v = v.value
        out[f.name] = v
    return out
