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
        _check_json(copy, what)
    return MappingProxyType(copy)


#: integers of more digits than this are refused: Python's ``json`` reads no longer ones back
#: (``sys.int_info.default_max_str_digits``), so no reader of the store could
MAX_INT_DIGITS = 4300
_BIG = 10 ** MAX_INT_DIGITS


def _check_json(value: Any, what: str) -> None:
    """InvalidInputError naming the first string or key of plain JSON ``value`` that is not
    storable text (:func:`text_problem`), or integer of more than :data:`MAX_INT_DIGITS`
    digits."""
    stack: list[tuple[str, Any]] = [(what, value)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, str):
            check_text(v, f"{path}:")
        elif isinstance(v, int) and not isinstance(v, bool) and not -_BIG < v < _BIG:
            raise InvalidInputError(
                f"{path}: an integer of about {int(v.bit_length() * 0.30103)} digits is too "
                f"large to store (at most {MAX_INT_DIGITS} digits; record it as a string)")
        elif isinstance(v, dict):
            for key, item in v.items():
                check_text(key, f"{path}: the key")
                stack.append((f"{path}.{key}", item))
        elif isinstance(v, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(v))


def _plain_copy(value: Mapping[Any, Any], depth: int = 0) -> dict[str, Any] | None:
    """A copy of ``value`` if it is already plain, storable JSON (str keys; str, int, finite
    float, bool, None or such dicts and lists as values; text without NUL or lone surrogates,
    integers of at most :data:`MAX_INT_DIGITS` digits), else None: the common case skips
    :func:`jsonutil.clean` and :func:`_check_json`."""
    out = dict(value)
    for k, v in out.items():
        if type(k) is not str or "\x00" in k or (not k.isascii() and text_problem(k)):
            return None
        plain = _plain_value(v, depth)
        if plain is _NOT_PLAIN:
            return None
        if plain is not v:
            out[k] = plain
    return out


def _plain_list(value: list[Any], depth: int) -> list[Any] | None:
    """:func:`_plain_copy` of a list (an energy record's ``notes``, a list of layer sizes)."""
    out = list(value)
    for i, v in enumerate(out):
        plain = _plain_value(v, depth)
        if plain is _NOT_PLAIN:
            return None
        if plain is not v:
            out[i] = plain
    return out


_NOT_PLAIN = object()


def _plain_value(v: Any, depth: int) -> Any:
    """``v`` if it is a plain, storable JSON scalar, a plain copy of a dict or list, else
    :data:`_NOT_PLAIN` (see :func:`_plain_copy`)."""
    t = type(v)
    if t is str:
        return _NOT_PLAIN if "\x00" in v or (not v.isascii() and text_problem(v)) else v
    if t is int:
        return v if -_BIG < v < _BIG else _NOT_PLAIN
    if t is dict or t is list:
        if depth > 2:
            return _NOT_PLAIN
        inner = _plain_copy(v, depth + 1) if t is dict else _plain_list(v, depth + 1)
        return _NOT_PLAIN if inner is None else inner
    if t not in _PLAIN or v != v or v in _INF:
        return _NOT_PLAIN
    return v


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


def some(names: list[str], n: int = 10) -> str:
    """The first ``n`` of ``names``, and how many more (a list in an error message)."""
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


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


MAX_NAME = 512  # characters in a name, site or URI (they are indexed)


def whole_number(value: Any, name: str, least: int, hint: str = "") -> int:
    """``value`` as an ``int`` (NumPy's integers too) if it is a whole number >= ``least``;
    else an :class:`InvalidInputError` naming ``name`` (``hint`` added in brackets)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise InvalidInputError(f"{name}={value!r} must be a whole number >= {least}"
                                + (f" ({hint})" if hint else ""))
    return int(value)


def check_site(value: Any, what: str) -> str:
    """A record's site: a string (empty in records written before sites were checked, which
    stay readable and syncable)."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, got {brief(value)}")
    return value


def check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > MAX_NAME:
        raise InvalidInputError(f"{what} {value[:40]!r}... is longer than {MAX_NAME} characters")
    return check_text(value, what)


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text, or None: it holds a lone surrogate
    (``"\\ud800"`` in JSON; not UTF-8) or a NUL character (which PostgreSQL text refuses, so
    data holding one could not be synced to a PostgreSQL site)."""
    if "\x00" in value:
        return "a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "a lone surrogate"
    return None


def check_text(value: str, what: str) -> str:
    """``value`` unless it is not storable text (:func:`text_problem`)."""
    problem = text_problem(value)
    if problem:
        shown = repr(value) if len(value) <= 100 else f"{value[:100]!r}..."
        raise InvalidInputError(f"{what} {shown} is not valid text ({problem})")
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
