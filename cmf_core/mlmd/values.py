"""MLMD property values as stored in the ``*Property`` tables, decoded without ``ml-metadata``.

A property row holds one of ``int_value``, ``double_value``, ``string_value``, ``bool_value``
(schema 10+), ``byte_value`` or ``proto_value`` (a ``google.protobuf.Any``). MLMD keeps a
``struct_value`` (a ``google.protobuf.Struct``) in ``string_value`` as ``mlmd-struct::`` and the
base64 of the serialised Struct; :func:`decode_struct` reads that wire format directly (the
Struct / Value / ListValue messages are small and frozen), so no protobuf package is needed.
"""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

from cmf_core.errors import InvalidInputError

STRUCT_PREFIX = "mlmd-struct::"


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, raw value) of each field of one protobuf message."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated field")
        out.append((number, wire, value))
    return out


def _value(buf: bytes) -> Any:
    """google.protobuf.Value: null=1, number=2, string=3, bool=4, struct=5, list=6."""
    result: Any = None
    for number, wire, raw in _fields(buf):
        if number == 1:
            result = None
        elif number == 2 and wire == 1:
            result = struct.unpack("<d", raw)[0]
        elif number == 3 and wire == 2:
            result = raw.decode("utf-8")
        elif number == 4 and wire == 0:
            result = bool(raw)
        elif number == 5 and wire == 2:
            result = _struct(raw)
        elif number == 6 and wire == 2:
            result = [_value(v) for n, w, v in _fields(raw) if n == 1 and w == 2]
    return result


def _struct(buf: bytes) -> dict[str, Any]:
    """google.protobuf.Struct: ``map<string, Value> fields = 1`` (entries: key=1, value=2)."""
    out: dict[str, Any] = {}
    for number, wire, entry in _fields(buf):
        if number != 1 or wire != 2:
            continue
        key, value = "", None
        for n, w, raw in _fields(entry):
            if n == 1 and w == 2:
                key = raw.decode("utf-8")
            elif n == 2 and w == 2:
                value = _value(raw)
        out[key] = value
    return out


def decode_struct(text: str) -> dict[str, Any]:
    """The dict held by an ``mlmd-struct::<base64>`` string value."""
    try:
        return _struct(base64.b64decode(text[len(STRUCT_PREFIX):], validate=True))
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidInputError(
            f"MLMD struct value {text[:60]!r} is not a valid serialised Struct ({e}); the store "
            "may be corrupt"
        ) from None


def _any(raw: bytes) -> dict[str, Any]:
    """google.protobuf.Any (type_url=1, value=2), kept as its type and base64 bytes."""
    type_url, value = "", b""
    for n, w, v in _fields(raw):
        if n == 1 and w == 2:
            type_url = v.decode("utf-8")
        elif n == 2 and w == 2:
            value = v
    return {"@type": type_url, "base64": base64.b64encode(value).decode("ascii")}


def decode_row(int_value: Any, double_value: Any, string_value: Any, bool_value: Any = None,
               byte_value: Any = None, proto_value: Any = None) -> Any:
    """The Python value of one property row (``None`` when every column is empty)."""
    if int_value is not None:
        return int(int_value)
    if double_value is not None:
        value = float(double_value)
        return value if math.isfinite(value) else str(value)
    if string_value is not None:
        text = string_value.decode("utf-8") if isinstance(string_value, bytes) else string_value
        return decode_struct(text) if text.startswith(STRUCT_PREFIX) else text
    if bool_value is not None:
        return bool(bool_value)
    if byte_value is not None:
        return {"base64": base64.b64encode(bytes(byte_value)).decode("ascii")}
    if proto_value is not None:
        try:
            return _any(bytes(proto_value))
        except (ValueError, UnicodeDecodeError):
            return {"base64": base64.b64encode(bytes(proto_value)).decode("ascii")}
    return None
