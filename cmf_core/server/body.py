"""Reading a JSON request body with limits: content type, encoding, size, syntax.

Each problem is a :class:`~cmf_core.errors.CmfError` naming what was wrong and what to send
instead (415 for a content type or encoding we do not read, 413 for a body over the limit, 400
for an empty body or bad JSON). JSON is read strictly: ``NaN``, ``Infinity`` and numbers too
large for a float (``1e999``) are refused, as are integers longer than Python converts
(``sys.get_int_max_str_digits()``, 4300 digits) and arrays and objects nested more than
:data:`MAX_JSON_DEPTH` deep. Nothing here depends on a web framework: callers pass the headers
and an async iterator over the body's chunks.
"""

from __future__ import annotations

import json
import math
import sys
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from cmf_core import jsonutil
from cmf_core.errors import InvalidInputError
from cmf_core.server.errors import PayloadTooLargeError, UnsupportedMediaTypeError

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
"""Largest request body accepted (after decompression), 16 MiB."""
MAX_JSON_DEPTH = jsonutil.MAX_NESTING  # 200
"""Deepest nesting of JSON arrays and objects accepted in a request body (the body itself is
level 1). Deeper data could not be served back: pydantic stops serialising a response at 255
levels, and the read routes wrap what was posted in a few levels of their own (Python's
recursion limit, 1000 frames, would be next)."""


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"request body is larger than this server's limit of {limit} bytes; send fewer events "
        "per request (one event, or a smaller JSON array)")


def check_content_type(given: str | None) -> None:
    """415 unless ``given`` (the Content-Type) is ``application/json`` or
    ``application/<x>+json``."""
    given = given or ""
    media = given.split(";", 1)[0].strip().lower()
    if media == "application/json" or (media.startswith("application/")
                                       and media.endswith("+json")):
        return
    shown = repr(given) if given else "none"
    raise UnsupportedMediaTypeError(
        f"Content-Type must be application/json (got {shown}); send the event as JSON with "
        "the header 'Content-Type: application/json'")


async def read_body(chunks: AsyncIterator[bytes], *, encoding: str | None = None,
                    content_length: str | None = None,
                    limit: int = DEFAULT_MAX_BODY_BYTES) -> bytes:
    """The body from ``chunks``, decompressed when ``encoding`` (the Content-Encoding) is gzip
    or deflate, within ``limit`` bytes (after decompression)."""
    encoding = (encoding or "identity").strip().lower()
    if encoding not in ("identity", "", "gzip", "x-gzip", "deflate"):
        raise UnsupportedMediaTypeError(
            f"Content-Encoding {encoding!r} is not supported; send the body uncompressed or "
            "with gzip")
    if content_length is not None and encoding in ("identity", ""):
        try:
            size = int(content_length)
        except ValueError:
            raise InvalidInputError(f"Content-Length {content_length!r} is not a number"
                                    ) from None
        if size > limit:
            raise _too_large(limit)
    if encoding in ("identity", ""):
        out: list[bytes] = []
        total = 0
        async for chunk in chunks:
            total += len(chunk)
            if total > limit:
                raise _too_large(limit)
            out.append(chunk)
        return out[0] if len(out) == 1 else b"".join(out)
    # compressed: inflate incrementally so a small bomb cannot exhaust memory
    wbits = 16 + zlib.MAX_WBITS if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    out = []
    total = sent = 0
    try:
        async for chunk in chunks:
            sent += len(chunk)
            if sent > limit:  # JSON shrinks when compressed: more sent than the limit is not
                raise _too_large(limit)  # a JSON body (but, e.g., endless empty gzip members)
            while chunk:
                piece = inflater.decompress(chunk, limit + 1 - total)
                total += len(piece)
                if total > limit or inflater.unconsumed_tail:
                    raise _too_large(limit)
                out.append(piece)
                # bytes after the end of a stream: the next member of a multi-member gzip
                # body (RFC 1952), read as gzip.decompress reads it; anything else fails
                chunk = inflater.unused_data if inflater.eof else b""
                if chunk:
                    inflater = zlib.decompressobj(wbits)
        piece = inflater.flush()
    except zlib.error as e:
        raise InvalidInputError(f"request body is not valid {encoding} data: {e}") from None
    if not inflater.eof:  # cut short: its end (and gzip's CRC) never came
        raise InvalidInputError(f"request body is not valid {encoding} data: it ends before "
                                "the compressed stream does (truncated); send the whole body")
    total += len(piece)
    if total > limit:
        raise _too_large(limit)
    out.append(piece)
    return b"".join(out)


def _not_a_number(name: str) -> Any:
    raise InvalidInputError(
        f"request body is not valid JSON: {name} is not a JSON number (JSON has no NaN or "
        "Infinity); send a finite number, or null")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise InvalidInputError(
            f"request body has the number {shown}, too large for a JSON number (a float's "
            "largest is about 1.8e308); send a finite number")
    return value


#: made once: ``json.loads`` with these arguments would build a decoder (and its scanner) per call
_DECODER = json.JSONDecoder(parse_constant=_not_a_number, parse_float=_finite)


def parse_json(raw: bytes) -> Any:
    """Parse ``raw`` as JSON (UTF-8), or 400 saying where it broke."""
    if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark, ignored as json.loads does
        raw = raw[3:]
    if not raw.strip():
        raise InvalidInputError(
            "request body is empty; send an OpenLineage event (a JSON object) or a JSON array "
            "of events")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInputError(f"request body is not UTF-8 text (JSON must be UTF-8): {e}"
                                ) from None
    too_deep = InvalidInputError(
        f"request body is nested too deeply (limit {MAX_JSON_DEPTH} levels of arrays and "
        "objects)")
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as e:
        raise InvalidInputError(
            f"request body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    except RecursionError:
        raise too_deep from None
    except ValueError:  # int(): more digits than sys.get_int_max_str_digits()
        raise InvalidInputError(
            f"request body has a number too long (more than {sys.get_int_max_str_digits()} "
            "digits); send a shorter number, or the digits as a JSON string") from None
    if jsonutil.nesting(raw) > MAX_JSON_DEPTH:  # counts brackets; walks only a bracket-rich body
        raise too_deep
    return value


async def read_json(headers: Mapping[str, str], chunks: AsyncIterator[bytes],
                    limit: int = DEFAULT_MAX_BODY_BYTES) -> Any:
    """Content type, encoding, size and syntax checked: the parsed JSON body.

    ``headers`` maps lower-case header names to values (a Starlette ``Headers`` will do).
    """
    check_content_type(headers.get("content-type"))
    return parse_json(await read_body(chunks, encoding=headers.get("content-encoding"),
                                      content_length=headers.get("content-length"),
                                      limit=limit))
