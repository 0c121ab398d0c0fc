"""Metadata bundles: versioned, streamable JSON lines, optionally gzip-compressed.

A bundle is UTF-8 text, one canonical JSON object (:func:`cmf_core.jsonutil.dumps`) per line:

1. a header: ``{"kind": "cmf-bundle", "format": 1, "origin_site", "origin_store",
   "selector", "since", "snapshot", "exclude", "vector", "created_at"}``;
2. one line per record: the record's fields (:mod:`cmf_core.records` form, with its ``kind``)
   plus ``"_v": [origin_store, origin_seq]``, the version it has at the store that made it;
3. a trailer: ``{"kind": "cmf-bundle-end", "records": N, "end": E, "complete": bool,
   "sha256": H}``.

``H`` is the SHA-256 of every line before the trailer (each with its ``\\n``) followed by the
canonical JSON of the trailer without ``sha256``, so any changed, dropped or added byte, and a
truncated transfer (no trailer), is detected before anything is imported. The checksum guards
integrity; who may send a bundle is decided by the server's tokens.

The seq range ``(since, end]`` is the origin store's local change counter: the bundle holds every
shared record that changed in that range there, less those the receiver already has by the
``exclude`` version vector. ``vector`` is the origin's version vector, sent only when the bundle
is the complete, unrestricted state of its origin up to ``end`` (a receiver may then adopt it).

A bundle whose first bytes are ``1f 8b`` is gzip; readers detect it. A file of plain record
lines without a header (the export format before bundles) is read only where ``allow_plain`` is
given, and carries no checksum.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import math
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

from cmf_core import jsonutil
from cmf_core.errors import InvalidInputError
from cmf_core.jsonutil import MAX_NESTING
from cmf_core.model._base import INT64_END, brief

FORMAT = 1  # what files are written in, and what every reader understands
COMPACT = 2  # record lines are blocks of arrays (see cmf_core.federation.wire): peer sync
FORMATS = (FORMAT, COMPACT)  # formats this version reads and writes
HEADER_KIND = "cmf-bundle"
TRAILER_KIND = "cmf-bundle-end"
MEDIA_TYPE = "application/x-ndjson"
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 16
MAX_LINE = 256 << 20  # bytes in one line, as read (after gzip): a writer's are far shorter
INFLATE_STEP = 1 << 20  # gzip is inflated at most this much at a time
BATCH = 2000  # lines parsed together
SPOOL_BYTES = 8 << 20  # bundle bytes received (pushed, pulled) held in memory; more go to disk


_gc_lock = threading.Lock()
_gc_holders = 0
_gc_was_enabled = True


@contextlib.contextmanager
def bulk() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a bundle is made or merged.

    A page holds hundreds of thousands of small, acyclic rows; with the collector running, its
    full passes over them cost about a third of an import. Nested and concurrent uses are
    counted; the collector runs again (if it ran before) when the last one ends."""
    global _gc_holders, _gc_was_enabled
    with _gc_lock:
        _gc_holders += 1
        if _gc_holders == 1:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0 and _gc_was_enabled:
                gc.enable()


class BundleError(InvalidInputError):
    """A bundle is malformed, truncated, of an unknown format or fails its checksum."""


@dataclass(frozen=True)
class Header:
    """What a bundle is: who made it, what it selects and which versions it leaves out."""

    origin_site: str
    origin_store: str
    selector: dict[str, Any]
    since: int = 0
    snapshot: int = 0
    exclude: dict[str, int] | None = None
    vector: dict[str, int] | None = None
    created_at: float = 0.0
    format: int = FORMAT
    columns: dict[str, list[str]] | None = None  # format 2: each kind's fields, in order

    def to_line(self) -> str:
        data = asdict(self)
        if data["columns"] is None:  # format 1 headers stay as readers of format 1 know them
            del data["columns"]
        return jsonutil.dumps({"kind": HEADER_KIND, **data})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Header:
        fmt = data.get("format")
        if fmt not in FORMATS:
            raise BundleError(f"bundle format {fmt!r} is not supported (this cmf-foundation reads "
                              f"formats {', '.join(map(str, FORMATS))}); upgrade cmf-foundation "
                              "on the importing site")
        fields = {k: v for k, v in data.items() if k != "kind"}
        try:
            header = cls(**fields)
        except TypeError as e:
            raise BundleError(f"bad bundle header: {e}") from None
        if not isinstance(header.origin_store, str) or not isinstance(header.selector, dict):
            raise BundleError("bad bundle header: origin_store must be a string and selector an "
                              "object")
        if (fmt == COMPACT) != isinstance(header.columns, dict):
            raise BundleError("bad bundle header: a format 2 header (and only that) lists the "
                              "columns of each record kind")
        problem = header._problem()
        if problem:
            raise BundleError(f"bad bundle header: {problem}")
        return header

    def _problem(self) -> str | None:
        """What is wrong with a header's field values (as read), or ``None``."""
        if not _is_text(self.origin_store) or not self.origin_store:
            return "origin_store must be a non-empty string"
        if not _is_text(self.origin_site):
            return f"origin_site {self.origin_site!r} must be a string"
        for name in ("since", "snapshot"):
            if not _is_seq(getattr(self, name)):
                return f"{name} {getattr(self, name)!r} must be a whole number from 0 to 2**63 - 1"
        for name in ("exclude", "vector"):
            value = getattr(self, name)
            if value is not None and not (type(value) is dict and all(
                    _is_text(k) and _is_seq(n) for k, n in value.items())):
                return (f"{name} {brief(value)} must be an object of store ids to whole numbers "
                        "from 0 to 2**63 - 1")
        sel = self.selector
        pipelines, since_time, artifact = (sel.get("pipelines"), sel.get("since_time"),
                                           sel.get("artifact"))
        if pipelines is not None and not (type(pipelines) is list
                                          and all(map(_is_text, pipelines))):
            return f"selector pipelines {brief(pipelines)} must be a list of pipeline names"
        if since_time is not None and not _is_number(since_time):
            return f"selector since_time {brief(since_time)} must be a number (Unix seconds)"
        if sel.get("until_time") is not None and not _is_number(sel["until_time"]):
            return (f"selector until_time {brief(sel['until_time'])} must be a number (Unix "
                    "seconds)")
        if artifact is not None and not _is_text(artifact):
            return f"selector artifact {brief(artifact)} must be an artifact id"
        if not _is_number(self.created_at):
            return f"created_at {brief(self.created_at)} must be a number (Unix seconds)"
        if self.columns is not None and not all(
                _is_text(k) and type(v) is list and all(map(_is_text, v))
                for k, v in self.columns.items()):
            return "columns must be an object of record kinds to lists of field names"
        return None


def _is_seq(value: Any) -> bool:
    """A store seq: a whole number (not a bool) a 64-bit SQL integer holds, from 0."""
    return type(value) is int and 0 <= value < INT64_END


def _is_number(value: Any) -> bool:
    """A finite number (not a bool)."""
    return type(value) is int or (type(value) is float and math.isfinite(value))


def _is_text(value: Any) -> bool:
    """A string UTF-8 can hold (no lone surrogate)."""
    if type(value) is not str:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class Trailer:
    records: int
    end: int
    complete: bool
    sha256: str = ""

    def body(self) -> str:
        return jsonutil.dumps({"kind": TRAILER_KIND, "records": self.records, "end": self.end,
                               "complete": self.complete})

    def to_line(self) -> str:
        return jsonutil.dumps({"kind": TRAILER_KIND, "records": self.records, "end": self.end,
                               "complete": self.complete, "sha256": self.sha256})


@dataclass
class Writer:
    """Turns a header, record lines and an end into bundle bytes (optionally gzip).

    >>> w = Writer(header, compress=True)
    >>> chunks = [w.start(), *(w.add(line) for line in lines), w.finish(end, complete)]
    """

    header: Header
    compress: bool = False
    level: int = 1
    records: int = 0
    _hash: Any = field(default_factory=hashlib.sha256)
    _buf: list[str] = field(default_factory=list)
    _size: int = 0
    _zip: Any = None

    def __post_init__(self) -> None:
        if self.compress:
            self._zip = zlib.compressobj(self.level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def _out(self, text: str) -> bytes:
        data = text.encode()
        return self._zip.compress(data) if self._zip is not None else data

    def start(self) -> bytes:
        line = self.header.to_line() + "\n"
        self._hash.update(line.encode())
        return self._out(line)

    def add(self, line: str, count: int = 1) -> bytes:
        """Add one line (JSON, no newline) of ``count`` records (format 2: a block); returns
        bytes when a chunk is due."""
        self.records += count
        self._buf.append(line)
        self._size += len(line)
        if self._size < CHUNK:
            return b""
        return self.flush()

    def flush(self) -> bytes:
        if not self._buf:
            return b""
        text = "\n".join(self._buf) + "\n"
        self._buf.clear()
        self._size = 0
        data = text.encode()
        self._hash.update(data)
        return self._zip.compress(data) if self._zip is not None else data

    def finish(self, end: int, complete: bool) -> bytes:
        out = self.flush()
        trailer = Trailer(records=self.records, end=end, complete=complete)
        self._hash.update(trailer.body().encode())
        trailer.sha256 = self._hash.hexdigest()
        tail = (trailer.to_line() + "\n").encode()
        if self._zip is not None:
            return out + self._zip.compress(tail) + self._zip.flush()
        return out + tail


def parse_line(line: bytes, where: str) -> dict[str, Any]:
    """One bundle line as a JSON object, or a BundleError naming ``where`` (nesting, JSON, not
    an object): the checks every reader of a bundle makes."""
    _check_nesting(line, where)
    try:
        data = json.loads(line, parse_constant=_no_constant)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
        raise BundleError(f"{where}: not valid JSON ({e})") from None
    except RecursionError:  # deeper than even _check_nesting's count of brackets
        raise BundleError(f"{where}: nested too deeply to read (at most {MAX_NESTING} levels "
                          "of arrays and objects)") from None
    if not isinstance(data, dict):
        raise BundleError(f"{where}: a bundle line must be a JSON object")
    return data


def _check_nesting(line: bytes, where: str) -> None:
    """Refuse a line nesting arrays and objects deeper than :data:`~cmf_core.jsonutil.MAX_NESTING`
    (stored, such a record would fail every read of the store)."""
    depth = jsonutil.nesting(line)
    if depth > MAX_NESTING:
        raise BundleError(f"{where}: nested {depth} levels deep; at most {MAX_NESTING} levels "
                          "of arrays and objects are accepted")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines (with their newline) of a byte stream that may be gzip; detected from its start.
    A line longer than ``MAX_LINE`` is refused before it is held whole (a few kilobytes of gzip
    can inflate to gigabytes of one line), and gzip is inflated in bounded steps."""
    inflater: Any = None
    first = True
    # the line being read, in pieces, joined once when it ends (re-joining it at every chunk
    # took time quadratic in its length: minutes for one line of 100 MB)
    parts: list[bytes] = []
    size = 0  # bytes in parts
    lineno = 1
    head = b""  # the stream's first bytes, until there are enough to tell gzip by
    for chunk in chunks:
        if not chunk:
            continue
        if first:
            head += chunk
            if len(head) < len(GZIP_MAGIC):
                continue  # a first chunk of one byte (a slow sender) says nothing yet
            first, chunk = False, head
            if chunk[:2] == GZIP_MAGIC:
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        for piece in (chunk,) if inflater is None else _inflate(inflater, chunk):
            if b"\n" not in piece:
                size += len(piece)
                if size > MAX_LINE:
                    raise _too_long(lineno)
                if piece:
                    parts.append(piece)
                continue
            for line in _split(piece, parts):
                lineno += 1
                yield line
            size = len(parts[0])
    if first and head:  # the whole stream was one byte
        parts.append(head)
    if inflater is not None:
        if not inflater.eof:
            raise BundleError("bundle gzip stream ended early: the transfer was cut off; nothing "
                              "was imported")
        parts.append(inflater.flush())
    rest = b"".join(parts)
    if len(rest) > MAX_LINE:
        raise _too_long(lineno)
    if rest:
        yield rest


def _too_long(lineno: int) -> BundleError:
    return BundleError(f"bundle line {lineno} is longer than {MAX_LINE >> 20} MiB (no CMF "
                       "writer makes one); nothing was imported")


def _inflate(inflater: Any, chunk: bytes) -> Iterator[bytes]:
    """``chunk`` inflated, at most ``INFLATE_STEP`` bytes at a time."""
    try:
        yield inflater.decompress(chunk, INFLATE_STEP)
        while inflater.unconsumed_tail:
            yield inflater.decompress(inflater.unconsumed_tail, INFLATE_STEP)
    except zlib.error as e:
        raise BundleError(f"bundle is not valid gzip data: {e}") from None


def _split(chunk: bytes, parts: list[bytes]) -> Iterator[bytes]:
    """The lines ``chunk`` ends (the first joined to ``parts``, the line so far); ``parts`` is
    left holding the start of the next line. ``chunk`` holds a newline."""
    lines = chunk.split(b"\n")
    parts.append(lines[0])
    lines[0] = b"".join(parts)
    parts[:] = [lines.pop()]
    for line in lines:
        yield line + b"\n"


def file_chunks(fh: BinaryIO) -> Iterator[bytes]:
    while chunk := fh.read(CHUNK):
        yield chunk


def spool() -> tempfile.SpooledTemporaryFile[bytes]:
    """A file to receive a bundle in (an HTTP body, pushed or pulled): in memory up to
    :data:`SPOOL_BYTES`, then an anonymous temporary file (in ``TMPDIR``; removed from the
    folder when made, so nothing stays behind even if the process is killed). The caller
    closes it; read it back with ``seek(0)`` and :func:`file_chunks`."""
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, prefix="cmf-bundle-")


class Reader:
    """Reads a bundle from byte chunks: ``header``, then record dicts, then a verified trailer.

    Iterating yields each record line as a dict (with ``_v``); when the iteration ends the
    checksum has been verified and ``trailer`` is set, else :class:`BundleError` was raised.
    Use it as ``reader = Reader(chunks); reader.open(); for rec in reader: ...``.
    """

    def __init__(self, chunks: Iterable[bytes], *, name: str = "bundle",
                 allow_plain: bool = False) -> None:
        self.name = name
        self.allow_plain = allow_plain
        self._lines = _lines(chunks)
        self._hash = hashlib.sha256()
        self.header: Header | None = None
        self.trailer: Trailer | None = None
        self.lineno = 0
        self.batch_start = 0
        self._current: list[dict[str, Any]] = []
        self._first: dict[str, Any] | None = None

    def open(self) -> Header | None:
        """Read the header; ``None`` for a plain (headerless) file where that is allowed."""
        for raw in self._lines:
            self.lineno += 1
            if not raw.strip():
                continue
            data = parse_line(raw, f"{self.name}:{self.lineno}")
            if data.get("kind") == HEADER_KIND:
                self._hash.update(raw)
                self.header = Header.from_dict(data)
                return self.header
            if not self.allow_plain:
                raise BundleError(f"{self.name} is not a CMF bundle (its first line is not a "
                                  f"'{HEADER_KIND}' header); export it with cmf export")
            self._first = data
            return None
        raise BundleError(f"{self.name} is empty: no bundle header")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.header is None and self._first is None:
            self.open()
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        plain = self.header is None
        batch: list[bytes] = []
        for raw in self._lines:
            batch.append(raw)
            if len(batch) >= BATCH:
                yield from self._batch(batch, plain)
                batch = []
        yield from self._batch(batch, plain)
        if not plain and self.trailer is None:
            raise BundleError(f"{self.name} ends without its trailer after line {self.lineno}: "
                              "the transfer was cut off; nothing was imported")

    def _batch(self, batch: list[bytes], plain: bool) -> Iterator[dict[str, Any]]:
        """Parse many lines at once (one ``json.loads`` of an array: much faster than many)."""
        if plain:  # the old export format, one record per line: small files
            for raw in batch:
                self.lineno += 1
                if raw.strip():
                    yield parse_line(raw, f"{self.name}:{self.lineno}")
            return
        if not batch:
            return
        if not batch[-1].endswith(b"\n"):
            raise BundleError(f"{self.name} ends in the middle of line "
                              f"{self.lineno + len(batch)}: the transfer was cut off; nothing "
                              "was imported")
        compact = self.header is not None and self.header.format == COMPACT
        if not compact:  # a record per line (a compact line is a block of flat arrays)
            for i, raw in enumerate(batch):
                _check_nesting(raw, f"{self.name}:{self.lineno + i + 1}")
        try:
            parsed = json.loads(b"[" + b",".join(batch) + b"]", parse_constant=_no_constant)
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError, RecursionError):
            parsed = [parse_line(raw, f"{self.name}:{self.lineno + i + 1}")
                      for i, raw in enumerate(batch)]  # raises naming the bad line
        if self.trailer is not None:
            raise BundleError(f"{self.name}:{self.lineno + 1}: data after the bundle trailer; "
                              "nothing was imported")
        records = next((i for i, data in enumerate(parsed)
                        if type(data) is dict and data.get("kind") == TRAILER_KIND), len(parsed))
        want = list if compact else dict
        if not all(type(data) is want for data in parsed[:records]):
            bad = next(i for i, data in enumerate(parsed) if type(data) is not want)
            raise BundleError(f"{self.name}:{self.lineno + bad + 1}: a bundle record line must "
                              "be " + ("a JSON array [kind, records]" if compact else
                                       "a JSON object"))
        if records < len(parsed) - 1:
            raise BundleError(f"{self.name}:{self.lineno + records + 2}: data after the bundle "
                              "trailer; nothing was imported")
        self._hash.update(b"".join(batch[:records]))
        self.batch_start = self.lineno
        self._current = parsed
        self.lineno += len(batch)
        if records < len(parsed):  # the trailer: only ever the last line of a bundle
            self._check_trailer(parsed.pop(), f"{self.name}:{self.lineno}")
        yield from parsed

    def line_of(self, record: dict[str, Any]) -> int:
        """The line number of a record of the batch being read (for error messages)."""
        for i, data in enumerate(self._current):
            if data is record:
                return self.batch_start + i + 1
        return self.lineno

    def _check_trailer(self, data: dict[str, Any], where: str) -> None:
        missing = [f for f in ("records", "end", "complete", "sha256") if f not in data]
        if missing:
            raise BundleError(f"{where}: bad bundle trailer: missing field(s) "
                              f"{', '.join(missing)}")
        for name in ("records", "end"):
            if not _is_seq(data[name]):
                raise BundleError(f"{where}: bad bundle trailer: {name} {brief(data[name])} "
                                  "must be a whole number from 0 to 2**63 - 1")
        if type(data["complete"]) is not bool:
            raise BundleError(f"{where}: bad bundle trailer: complete "
                              f"{brief(data['complete'])} must be true or false")
        if type(data["sha256"]) is not str:
            raise BundleError(f"{where}: bad bundle trailer: sha256 {brief(data['sha256'])} "
                              "must be a string")
        trailer = Trailer(records=data["records"], end=data["end"], complete=data["complete"],
                          sha256=data["sha256"])
        self._hash.update(trailer.body().encode())
        if self._hash.hexdigest() != trailer.sha256:
            raise BundleError(f"{self.name} fails its checksum (sha256 {trailer.sha256[:16]}... "
                              "does not match its content): it was changed or damaged in "
                              "transit; nothing was imported")
        self.trailer = trailer


def bundle_bytes(header: Header, lines: Iterable[str | tuple[str, int]],
                 end: int | Callable[[], int], complete: bool,
                 compress: bool = False) -> Iterator[bytes]:
    """A whole bundle as byte chunks (for files and HTTP bodies); ``lines`` are record lines, or
    ``(line, records)`` for format-2 blocks. ``end`` is the trailer's end sequence, or a
    function that gives it once ``lines`` are all read (a streamed export learns it then)."""
    w = Writer(header, compress=compress)
    yield w.start()
    for line in lines:
        out = w.add(*line) if type(line) is tuple else w.add(line)  # type: ignore[arg-type]
        if out:
            yield out
    yield w.finish(end() if callable(end) else end, complete)
