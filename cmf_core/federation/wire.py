"""Compact bundle records (format 2): blocks of rows, checked a column at a time.

In a format-2 bundle (:mod:`cmf_core.federation.bundle`) each record line is a **block**
``[kind, [[field, ..., origin, origin_seq], ...]]``: up to :data:`BLOCK` records of one kind,
each an array of the kind's fields in :data:`cmf_core.store.base.EXPORT_FIELDS` order (the
header lists them) followed by its version. Object fields (``params``, ``properties``,
``custom_properties``, ``details``) are the canonical JSON text of the object, as the store
holds it. Field names are not repeated per record, so a block is about half the bytes of the
same records in format 1 and parses about twice as fast.

:func:`wire_block` validates a whole block by columns (one regular-expression match over a
column of ids, one set of the statuses, ...) and returns the store's rows as columns; it accepts
only values already in the form :func:`cmf_core.store.sql.wire_row` would store unchanged, and
returns ``None`` otherwise, so the caller checks that block record by record (:func:`row_dict`
and the format-1 path): the same rows are stored, and a bad value gets the same error naming it.
A property test checks both paths agree.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any

from cmf_core import jsonutil
from cmf_core.identity import name_id
from cmf_core.model import EventType, ExecutionStatus
from cmf_core.model._base import INT64_END, MAX_TIME
from cmf_core.model.artifact import ARTIFACT_TYPES
from cmf_core.store import schema
from cmf_core.store.base import EXPORT_FIELDS
from cmf_core.store.sql import WireBlock

BLOCK = 1000  # records per block line
BLOCK_CHARS = 8 << 20  # a longer block line is sent as two (at most 32 MiB of UTF-8)
OBJECT_FIELDS = frozenset({"params", "properties", "custom_properties", "details"})
FAST_KINDS = frozenset({"artifact", "location", "execution", "event", "metric", "energy"})

_UUIDS = re.compile(r"(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\n)*")
_UUID_CHARS = b"0123456789abcdef-\n"
_DIGESTS = re.compile(r"(?:(?:sha256|version):[0-9a-f]{64}\n)*")
_RANK = {s.value: s.rank for s in ExecutionStatus}
_EVENT_TYPES = frozenset(t.value for t in EventType)
_NUM = frozenset({int, float})
_STR = frozenset({str})
_INT_OR_NONE = frozenset({int, type(None)})
_LIST = frozenset({list})
#: JSON's escape of a NUL character: ``\u0000`` after an even number of backslashes (after an
#: odd number, it is the text ``\u0000`` with its backslash escaped)
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _matches(pattern: re.Pattern[str], col: Sequence[Any]) -> bool:
    """Every value is a string matching ``pattern``'s item (one match over the column)."""
    if set(map(type, col)) != _STR:
        return False
    text = "\n".join(col) + "\n"
    if pattern is _UUIDS:  # fixed width: the same check by slices, several times faster
        try:
            n, raw = len(col), text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: not an id
            return False
        dashes = b"-" * n
        return (len(raw) == 37 * n and raw[8::37] == raw[13::37] == raw[18::37] == raw[23::37]
                == dashes and raw[36::37] == b"\n" * n and not raw.translate(None, _UUID_CHARS)
                and raw.count(b"-") == 4 * n and raw.count(b"\n") == n)
    return text.count("\n") == len(col) and pattern.fullmatch(text) is not None


def _types(col: Sequence[Any], allowed: frozenset[type]) -> bool:
    return set(map(type, col)) <= allowed


def _texts(col: Sequence[Any], optional: bool = False) -> bool:
    """Strings (or ``None`` where ``optional``) every store can hold: no lone surrogate and no
    NUL (as ``check_text``; one pass over the whole column)."""
    strings = [v for v in col if v is not None] if optional and None in col else col
    if not set(map(type, strings)) <= _STR:
        return False
    joined = "".join(strings)
    if "\x00" in joined:
        return False
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _names(col: Sequence[Any]) -> bool:
    """As ``check_name``: non-blank strings of at most 512 characters, no lone surrogate."""
    return (set(map(type, col)) == _STR and all(map(str.strip, col))
            and max(map(len, col)) <= 512 and _texts(col))


def _times(col: Sequence[Any], optional: bool = False) -> bool:
    """As ``check_time``: numbers (not bools) from 0 to the end of year 9999, or ``None`` where
    ``optional``; the column's least and greatest value are compared, not each."""
    values = [v for v in col if v is not None] if optional and None in col else col
    if not values:
        return True
    return set(map(type, values)) <= _NUM and min(values) >= 0 and max(values) < MAX_TIME


def _objects(col: Sequence[Any]) -> Sequence[str] | None:
    """The canonical JSON text of each object, checked once per distinct text."""
    try:
        distinct = set(col)
    except TypeError:
        return None
    canon: dict[str, str] = {}
    for text in distinct:
        if type(text) is not str or ("\\u0000" in text and _NUL_ESCAPE.search(text)):
            return None  # a NUL in the object: the record-by-record read names it
        if jsonutil.nesting(text.encode()) > jsonutil.MAX_NESTING:
            return None  # the record-by-record read names it
        try:
            value = json.loads(text, parse_constant=_no_constant)
        except ValueError:
            return None
        if type(value) is not dict:
            return None
        canon[text] = jsonutil.dumps(value) if value else "{}"
    if all(k == v for k, v in canon.items()):
        return col
    return list(map(canon.__getitem__, col))


def _finite(col: Sequence[Any]) -> bool:
    # each value, not their sum: two large finite values (1e308 each) add up to inf
    try:
        return all(map(math.isfinite, col))
    except OverflowError:  # an integer beyond the float range
        return False


def wire_block(kind: str, rows: Any) -> WireBlock | None:
    """The store rows of a block's records as columns, or ``None`` when the block must be checked
    record by record (a value not in canonical form, a wrong type, or a kind with no fast path).
    """
    fields = EXPORT_FIELDS.get(kind)
    if fields is None or kind not in FAST_KINDS or type(rows) is not list or not rows:
        return None
    if set(map(type, rows)) != _LIST or set(map(len, rows)) != {len(fields) + 2}:
        return None
    cols = list(zip(*rows, strict=True))
    origin, oseq = cols[-2], cols[-1]
    if set(map(type, origin)) != _STR or not all(origin) or not _texts(origin) \
            or set(map(type, oseq)) != {int} or min(oseq) < 0 or max(oseq) >= INT64_END:
        return None
    c = dict(zip(fields, cols, strict=False))
    objects: dict[str, Sequence[str]] = {}
    for name in OBJECT_FIELDS.intersection(fields):
        canon = _objects(c[name])
        if canon is None:
            return None
        objects[name] = canon
    out: list[Sequence[Any]]
    if kind == "event":
        if not (_matches(_UUIDS, c["execution_id"]) and _matches(_DIGESTS, c["artifact_id"])
                and set(c["type"]) <= _EVENT_TYPES):
            return None
        out = [c["artifact_id"], c["type"], c["execution_id"]]
    elif kind == "metric":
        step, value = c["step"], c["value"]
        if not (_matches(_UUIDS, c["execution_id"]) and _names(c["name"])
                and _types(step, _INT_OR_NONE) and _types(value, _NUM) and _finite(value)
                and _times(c["timestamp"])):
            return None
        steps = [s for s in step if s is not None] if None in step else step
        if steps and (min(steps) < 0 or max(steps) >= INT64_END):
            return None
        if None in step:
            step = [schema.STEP_SCALAR if s is None else s for s in step]
        out = [c["execution_id"], c["name"], step, list(map(float, value)), c["timestamp"]]
    elif kind == "location":
        if not (_matches(_DIGESTS, c["artifact_id"]) and _names(c["site"])
                and _names(c["uri"])):
            return None
        out = [c["artifact_id"], c["site"], c["uri"]]
    elif kind == "artifact":
        try:
            types_ok = set(c["type"]) <= ARTIFACT_TYPES
        except TypeError:
            return None
        if not (types_ok and _matches(_DIGESTS, c["id"]) and _names(c["name"])
                and _names(c["uri"]) and _names(c["site"]) and _times(c["created_at"])):
            return None
        out = [c["id"], c["type"], c["name"], c["uri"], c["site"], c["created_at"],
               objects["properties"], objects["custom_properties"]]
    elif kind == "energy":
        kwh, co2e = c["energy_kwh"], c["co2e_kg"]
        if not (_matches(_UUIDS, c["execution_id"]) and _texts(c["site"])
                and _types(kwh, _NUM) and _types(co2e, _NUM) and _finite(kwh)
                and _finite(co2e) and min(kwh) >= 0 and min(co2e) >= 0):
            return None
        out = [c["execution_id"], c["site"], list(map(float, kwh)), list(map(float, co2e)),
               objects["details"]]
    else:  # execution
        pipeline, stage, status = c["pipeline"], c["stage"], c["status"]
        try:
            status_ok = set(status) <= _RANK.keys()
        except TypeError:
            return None
        if not (status_ok and _matches(_UUIDS, c["id"]) and _names(pipeline) and _names(stage)
                and _texts(c["site"]) and _times(c["started_at"])
                and _times(c["ended_at"], optional=True) and _texts(c["error"], optional=True)):
            return None
        pids = {p: name_id("pipeline", p) for p in set(pipeline)}
        pairs = list(zip(pipeline, stage, strict=True))
        sids = {pair: name_id("stage", *pair) for pair in set(pairs)}
        out = [c["id"], list(map(pids.__getitem__, pipeline)),
               list(map(sids.__getitem__, pairs)), pipeline, stage, c["site"], status,
               list(map(_RANK.__getitem__, status)), c["started_at"], c["ended_at"],
               objects["params"], objects["properties"], objects["custom_properties"],
               c["error"]]
    return WireBlock((kind, (*out, origin, oseq)))


def row_dict(kind: str, row: Any) -> dict[str, Any]:
    """A block record as the format-1 record dict (``kind``, fields, ``_v``), for the checks
    one record at a time. Raises ``ValueError`` naming what is wrong with its shape."""
    fields = EXPORT_FIELDS.get(kind)
    if fields is None:
        raise ValueError(f"unknown record kind {kind!r}")
    if type(row) is not list or len(row) != len(fields) + 2:
        raise ValueError(f"a {kind} record must be an array of {len(fields) + 2} values "
                         f"({', '.join(fields)}, origin store, origin seq)")
    data: dict[str, Any] = {"kind": kind}
    for name, value in zip(fields, row, strict=False):
        if name in OBJECT_FIELDS:
            if type(value) is not str:
                raise ValueError(f"{name} {value!r} must be the JSON text of an object")
            depth = jsonutil.nesting(value.encode())
            if depth > jsonutil.MAX_NESTING:
                raise ValueError(f"{name} nests {depth} levels deep; at most "
                                 f"{jsonutil.MAX_NESTING} levels of arrays and objects are "
                                 "accepted")
            try:
                value = json.loads(value, parse_constant=_no_constant)
            except ValueError as e:
                raise ValueError(f"{name} {row[fields.index(name)]!r} is not JSON: {e}") from None
        data[name] = value
    data["_v"] = row[-2:]
    return data


def record_key(kind: str, cols: Sequence[Sequence[Any]]) -> list[Any] | None:
    """Keys of a block's records for conflict checks (from its store columns), or ``None`` for
    kinds with no content beyond their key (events, locations)."""
    if kind in ("execution", "artifact", "energy"):
        return list(cols[0])
    if kind == "metric":
        return [(e, n, None if s == schema.STEP_SCALAR else s)
                for e, n, s in zip(cols[0], cols[1], cols[2], strict=True)]
    return None


def block_lines(kind: str, rows: Sequence[Sequence[Any]]) -> Iterator[tuple[str, int]]:
    """Format-2 lines of export rows (``EXPORT_FIELDS`` values, origin, origin seq, local seq),
    each with its number of records: ``BLOCK`` records a line, fewer where the line would be
    longer than ``BLOCK_CHARS`` (large params), so that every line stays well within the
    longest line a reader takes (``bundle.MAX_LINE``)."""
    fields = EXPORT_FIELDS[kind]
    objects = [i for i, f in enumerate(fields) if f in OBJECT_FIELDS]
    for start in range(0, len(rows), BLOCK):
        chunk = [r[:-1] for r in rows[start:start + BLOCK]]
        for i in objects:  # stored text is canonical JSON; mend any that is not
            col = {r[i] for r in chunk}
            if not all(type(t) is str and t[:1] == "{" for t in col):
                chunk = [_mend(r, i) for r in chunk]
        yield from _blocks(kind, chunk)


def _blocks(kind: str, chunk: list[Sequence[Any]]) -> Iterator[tuple[str, int]]:
    try:
        line = _ENCODE([kind, chunk])
    except ValueError:  # a non-finite float: as format 1 writes it, a string
        line = _ENCODE([kind, [[_finite_or_str(v) for v in r] for r in chunk]])
    if len(line) > BLOCK_CHARS and len(chunk) > 1:
        half = len(chunk) // 2
        yield from _blocks(kind, chunk[:half])
        yield from _blocks(kind, chunk[half:])
    else:
        yield line, len(chunk)


def _mend(row: Sequence[Any], i: int) -> Sequence[Any]:
    text = row[i]
    if type(text) is str and text[:1] == "{":
        return row
    value = jsonutil.loads(text) if text else {}
    return (*row[:i], jsonutil.dumps(value), *row[i + 1:])


def _finite_or_str(v: Any) -> Any:
    return str(v) if isinstance(v, float) and not math.isfinite(v) else v


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
