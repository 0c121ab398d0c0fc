"""Task values made safe to record: bounded, JSON-ready, never ``repr``-ed.

Parameters and return values of orchestrated tasks (Airflow template fields and XComs, Prefect
task arguments and results) can be anything: a number, a path, a DataFrame, a model.
:func:`jsonable` keeps plain data up to a size and replaces every other object by a short
``<module.Type>`` tag without calling its ``repr`` (which can be slow, huge or fail). Values
under a name that holds a secret (:func:`sensitive`: ``token``, ``password``, ``api_key``...)
are recorded as ``***``, at any depth, and so is the password of a URL in any string
(``postgresql://user:***@db/x``). The orchestrator adapters build on it.
"""

from __future__ import annotations

import datetime as dt
import enum
import heapq
import itertools
import math
import re
import uuid
from collections.abc import Mapping
from itertools import pairwise
from pathlib import PurePath
from typing import Any

from cmf_core.jsonutil import valid_text

MAX_STR = 1000
MAX_ITEMS = 50
MAX_DEPTH = 4
#: what a secret's value is recorded as
REDACTED = "***"
#: words of a name that mark its value a secret (also as two words: api key, private key)
SECRET_WORDS = frozenset({"password", "passwd", "passphrase", "secret", "secrets", "token",
                          "apikey", "authorization", "credential", "credentials",
                          "privatekey", "signature"})
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
#: the password of a ``scheme://user:password@host`` URL anywhere in a text
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:)[^\s/]+@")
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://\S*\?\S*")
#: a password given as a query parameter (libpq's ``?password=``, ``?sslpassword=``)
_QUERY_PASSWORD = re.compile(r"([?&](?:ssl)?passw(?:or)?d=)[^&#\s]*", re.IGNORECASE)


def hide_password(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` URL in it replaced
    by ``***`` (a database URL given as a task parameter, a peer URL in a message), as is one
    given as the URL's ``password=`` query parameter (``postgresql://etl@db/x?password=p``,
    which libpq takes as well)."""
    if "://" not in text:
        return text
    if "@" in text:
        text = _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + "@", text)
    if "?" in text:
        text = _URL.sub(lambda m: _QUERY_PASSWORD.sub(lambda q: q.group(1) + REDACTED,
                                                      m.group(0)), text)
    return text


def sensitive(name: str) -> bool:
    """Whether a parameter (or mapping key) called ``name`` holds a secret: one of its words
    (split at ``_ - .`` and camelCase) is a :data:`SECRET_WORDS` word (``token``,
    ``auth_token``, ``GITHUB_TOKEN``, ``apiKey``, ``client_secret``; not ``max_tokens`` or
    ``tokenizer``)."""
    words = [w.lower() for w in _WORDS.findall(name)]
    return any(w in SECRET_WORDS for w in words) or any(
        a + b in SECRET_WORDS for a, b in pairwise(words))


def params(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Task parameters as bounded JSON (:func:`jsonable`), secrets redacted by name."""
    return {_key(k): REDACTED if _secret(k, v) else jsonable(v)
            for k, v in (parameters or {}).items()}


def redact(value: Any) -> Any:
    """``value`` (JSON data) with the values under secret names (:func:`sensitive`) replaced
    by ``***`` at any depth and URL passwords hidden (:func:`hide_password`), nothing else
    changed."""
    if isinstance(value, Mapping):
        return {k: REDACTED if _secret(k, v) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return hide_password(value)
    return value


def _secret(key: Any, value: Any) -> bool:
    return value is not None and type(key) is str and sensitive(key)


def type_tag(value: Any) -> str:
    """``<module.Type>`` of ``value``."""
    cls = type(value)
    return f"<{cls.__module__}.{cls.__qualname__}>"


def numpy_scalar(value: Any) -> bool:
    """Whether ``value`` is a NumPy scalar (or 0-d array), without importing NumPy."""
    return (type(value).__module__ == "numpy" and hasattr(value, "item")
            and getattr(value, "shape", ()) == ())


_SORTABLE = (str, int, float, bytes)
_SCALARS = (str, int, float, bool, type(None))


def _builtin(value: Any) -> bool:
    """A plain scalar, bytes, or a tuple of them: ``repr`` runs no user code."""
    t = type(value)
    return t in _SCALARS or t is bytes or (t is tuple and all(map(_builtin, value)))


def _members(value: set[Any] | frozenset[Any], n: int) -> list[Any]:
    """The first ``n`` of a set's members in a stable order (string hashes differ per
    process): the smallest when all are of one plain type (``str``, ``int``, ``float``,
    ``bytes``), by type and ``repr`` when all are built-in values (mixed scalars, tuples), else
    in iteration order: user ``__str__``/``__lt__``/``__repr__`` are never called. Only ``n``
    are ever sorted in full (a set of millions is not)."""
    kinds = {type(v) for v in value}
    if len(kinds) == 1 and next(iter(kinds)) in _SORTABLE:
        return heapq.nsmallest(n, value)
    if all(map(_builtin, value)):
        return heapq.nsmallest(n, value, key=lambda v: (type(v).__name__, repr(v)))
    return list(itertools.islice(value, n))


def numpy_array(value: Any) -> bool:
    """Whether ``value`` is a NumPy array of one or more dimensions, without importing NumPy."""
    return type(value).__module__ == "numpy" and getattr(value, "ndim", 0) > 0


def array_items(value: Any, depth: int = 0) -> Any:
    """A NumPy array as nested lists, bounded as :func:`jsonable` bounds lists (the first
    :data:`MAX_ITEMS` of each axis, :data:`MAX_DEPTH` axes): sliced, never copied whole.
    Anything else is :func:`jsonable`."""
    if not numpy_array(value):  # an item: NumPy's as the Python value (np.float64 -> float)
        return jsonable(value.item() if numpy_scalar(value) else value, depth)
    if depth >= MAX_DEPTH:
        return type_tag(value)
    out = [array_items(v, depth + 1) for v in value[:MAX_ITEMS]]
    if len(value) > MAX_ITEMS:
        out.append(f"... {len(value) - MAX_ITEMS} more")
    return out


def _key(key: Any) -> str:
    """A mapping key as text; only plain scalars are ``str``-ed, others are tagged."""
    return valid_text(str(key)) if type(key) in _SCALARS else type_tag(key)


def jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` as bounded JSON data: long strings and collections cut, objects tagged, URL
    passwords hidden."""
    return _jsonable(value, depth, [])


def jsonable_lossy(value: Any) -> tuple[Any, bool]:
    """:func:`jsonable`, and whether anything was cut or tagged on the way."""
    lossy: list[bool] = []
    return _jsonable(value, 0, lossy), bool(lossy)


def _jsonable(value: Any, depth: int, lossy: list[bool]) -> Any:
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        value = hide_password(valid_text(value))  # lone surrogates as escapes
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
    if numpy_scalar(value):
        try:
            return _jsonable(value.item(), depth, lossy)
        except (TypeError, ValueError):
            pass
    elif depth < MAX_DEPTH and isinstance(value, Mapping):  # only the kept items are copied
        out = {_key(k): REDACTED if _secret(k, v) else _jsonable(v, depth + 1, lossy)
               for k, v in itertools.islice(value.items(), MAX_ITEMS)}
        if len(value) > MAX_ITEMS:
            lossy.append(True)
            out["..."] = f"{len(value) - MAX_ITEMS} more"
        return out
    elif depth < MAX_DEPTH and isinstance(value, (list, tuple, set, frozenset)):
        seq = (_members(value, MAX_ITEMS) if isinstance(value, (set, frozenset))
               else value[:MAX_ITEMS])
        out_list = [_jsonable(v, depth + 1, lossy) for v in seq]
        if len(value) > MAX_ITEMS:
            lossy.append(True)
            out_list.append(f"... {len(value) - MAX_ITEMS} more")
        return out_list
    lossy.append(True)
    return type_tag(value)
