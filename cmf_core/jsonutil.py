"""One deterministic JSON serialiser: sorted keys, no whitespace, no NaN.

Digests and federation merges compare records byte for byte, so every JSON written to the store
or to a bundle goes through :func:`dumps`.
"""

from __future__ import annotations

import datetime as dt
import enum
import itertools
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from pathlib import PurePath
from types import MappingProxyType
from typing import Any


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (uuid.UUID, PurePath)):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if getattr(value, "ndim", 0):  # arrays (not 0-d): NumPy's as bounded lists, others tagged
        from cmf_core.task_values import array_items

        return array_items(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()
    return repr(value)


#: levels of arrays and objects a stored value may nest: :func:`clean` recurses once per level,
#: so far deeper values (which ``json.loads`` reads) would fail every read of them
MAX_NESTING = 200
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string, escapes and all
_BRACKET_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes
_NOT_BRACKET = bytes(sorted(set(range(256)) - set(b"[{]}")))


def nesting(text: bytes) -> int:
    """How deep the JSON ``text`` nests arrays and objects, exactly when that is more than
    :data:`MAX_NESTING` (else an upper bound, found without parsing: its opening brackets)."""
    opened = text.count(b"[") + text.count(b"{")
    if opened <= MAX_NESTING:
        return opened
    steps = _STRING.sub(b"", text).translate(_BRACKET_STEP, _NOT_BRACKET)
    return max(itertools.accumulate(memoryview(steps).cast("b")), default=0)


class TooDeepError(ValueError):
    """A value nests mappings and lists more than :data:`MAX_NESTING` levels deep."""


def clean(value: Any, _depth: int = 0) -> Any:
    """Return ``value`` as plain JSON data (non-finite floats become strings); a value nesting
    mappings and lists more than :data:`MAX_NESTING` deep raises :class:`TooDeepError` (no
    store could read it back)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (Mapping, list, tuple)) and _depth >= MAX_NESTING:
        raise TooDeepError(f"it nests mappings and lists more than {MAX_NESTING} levels deep")
    if isinstance(value, Mapping):
        return {str(k): clean(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v, _depth + 1) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return clean(_default(value), _depth)


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)


def _not_json(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON")


def encoder(sort_keys: bool) -> Callable[[Any], str]:
    """``JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode``
    without its per-call set-up: CPython's C encoder made once (half the time for the small
    objects records hold). Unknown types raise TypeError; circular data RecursionError."""
    if c_make_encoder is None:  # no C accelerator: the plain encoder
        return json.JSONEncoder(sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False,
                                allow_nan=False).encode
    chunks = c_make_encoder(None, _not_json, encode_basestring, None, ":", ",", sort_keys,
                            False, False)
    join = "".join
    return lambda value: join(chunks(value, 0))


_encode = encoder(sort_keys=True)


def dumps(value: Any) -> str:
    """Serialise to canonical JSON text."""
    if type(value) is MappingProxyType:  # records hold already-cleaned read-only mappings
        if not value:
            return "{}"
        value = dict(value)
    try:
        return _encode(value)
    except (TypeError, ValueError, RecursionError):  # non-JSON types or non-finite floats
        return _ENCODER.encode(clean(value))


def valid_text(text: str) -> str:
    r"""``text`` with each lone surrogate (not UTF-8, so no store takes it) written out: one
    that ``os.fsdecode`` made of an undecodable byte (U+DC80..U+DCFF) as that byte (``\udce9``
    -> ``\xe9``), any other as ``\uXXXX``; and each NUL (which PostgreSQL text refuses) as
    ``\x00``. Text without either is returned as is."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return "".join(_escape(c) if "\ud800" <= c <= "\udfff" else c for c in text)


def _escape(c: str) -> str:
    code = ord(c)
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def valid_texts(value: Any) -> Any:
    """JSON data ``value`` with :func:`valid_text` applied to every string and key (the same
    object when none holds a lone surrogate or NUL: checked in one pass of the C encoder)."""
    try:
        if b"\\u0000" not in _encode(value).encode("utf-8"):  # NUL is written \u0000
            return value
        return _valid_texts(value)
    except UnicodeEncodeError:
        return _valid_texts(value)
    except (TypeError, ValueError):  # not plain JSON: walk it
        return _valid_texts(value)
    except RecursionError:  # a reference loop: left for the caller to fail on
        return value


def _valid_texts(value: Any) -> Any:
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, Mapping):
        return {valid_text(k) if isinstance(k, str) else k: _valid_texts(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_valid_texts(v) for v in value]
    return value


def loads(text: str | bytes | None) -> Any:
    """Parse JSON text; ``None`` and empty text give an empty dict."""
    if not text:
        return {}
    return json.loads(text)


def merge(low: Mapping[str, Any], high: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive union of two JSON objects; ``high`` wins a key both have (unless both are
    objects, which are merged)."""
    out = dict(low)
    for key, value in high.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = merge(old, value)
        else:
            out[key] = value
    return out
