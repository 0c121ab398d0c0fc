"""The write-ahead journal of the SQLite store: append-only files beside the database.

``put`` appends one entry (one put's rows) to this process's journal file with a single
``write`` and returns: the bytes are in the operating system's page cache, so they survive the
process being killed (kill -9) exactly as a committed SQLite WAL transaction does under
``synchronous=NORMAL``; with durability ``full`` the file is fsynced too. Entries are applied
to the tables in bulk (see :class:`~cmf_core.store.sql.SqlStore`) by whichever process next
holds the store's write lock; how far each file is applied is kept in the table
``cmf_journal_files``, updated in the same transaction, so an entry is applied exactly once
(and applying one again would change nothing: every write is an idempotent upsert).

Layout: ``<db>.journal/<pid>-<token>.log``, written by one live process only, which holds an
exclusive ``flock`` on it. An entry is ``length (4 bytes LE) | crc32 (4 bytes LE) | JSON``.
A file whose owner is gone (closed it, or was killed) and that is fully applied is deleted by
the next applier. An owner moves to a new file once its file passes ``ROTATE_BYTES`` and is
fully applied.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cmf_core.errors import StoreError
from cmf_core.jsonutil import encoder

try:  # 5x faster reading back what another process journaled (a bulk writer's companion)
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - a dependency; the standard library as a fallback
    _loads = json.loads

HEADER = struct.Struct("<II")
ROTATE_BYTES = 4 * 1024 * 1024
_encode = encoder(sort_keys=False)


#: what ``flock`` raises on a file system that has no file locks (Lustre mounted without
#: ``-o flock``, an NFS mount without a lock service)
NO_LOCKS = frozenset({errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP})
#: the file :func:`check_locking` locks in the journal folder (kept: one empty file)
LOCK_CHECK = ".lock-check"


def journal_dir(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".journal")


def no_locks_error(path: Path, error: OSError) -> StoreError:
    """The error of a store whose file system refuses ``flock`` on ``path``: what is wrong and
    what to do instead."""
    return StoreError(
        f"the file system of {path.parent} does not support file locks (flock: "
        f"{os.strerror(error.errno or 0)}), which the embedded SQLite store needs: several "
        "processes share it through locked journal files. This happens on Lustre mounted "
        "without '-o flock' and on NFS mounts without a lock service. Point CMF_HOME (or "
        "CMF_STORE_URL=sqlite:///...) at a local disk (node-local scratch or /tmp), or record "
        "into PostgreSQL (CMF_STORE_URL=postgresql://...) or a CMF server (CMF_SERVER_URL)")


def check_locking(directory: Path) -> None:
    """Raise a clear :class:`StoreError` when the file system of the journal folder
    ``directory`` refuses ``flock``, so a store on it fails when it is opened, not at its first
    write or read. Nothing is checked where the folder cannot be written (a reader of another
    user's store: its reads say the same when they need a lock)."""
    path = directory / LOCK_CHECK
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:  # never (shared locks only), but a lock it is
        pass
    except OSError as e:
        if e.errno in NO_LOCKS:  # no store can live here: leave nothing behind
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
                directory.rmdir()
            raise no_locks_error(path, e) from None
    os.close(fd)  # also releases the lock


def read_entries(path: Path, offset: int
                 ) -> tuple[list[tuple[int, dict[str, list[list[Any]]]]], int, bytes]:
    """Each complete entry of ``path`` from ``offset`` as (its offset, its rows); the offset
    after the last one; and the bytes after it (an entry still being written, or a killed
    writer's torn tail)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset, b""
    out: list[tuple[int, dict[str, list[list[Any]]]]] = []
    pos = 0
    while pos + HEADER.size <= len(data):
        length, crc = HEADER.unpack_from(data, pos)
        start, end = pos + HEADER.size, pos + HEADER.size + length
        if end > len(data):
            break
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            break
        try:
            rows = _loads(payload)
        except ValueError:  # orjson.JSONDecodeError is one too
            break
        out.append((offset + pos, rows))
        pos = end
    return out, offset + pos, data[pos:]


def owner_alive(path: Path) -> bool:
    """True while the process that writes ``path`` holds it open (its exclusive ``flock``).
    Tested with a shared lock, which the writer's refuses: an exclusive one needs the file open
    for writing where flock is emulated by fcntl locks (NFS), and it may be another user's."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError as e:
        if e.errno in NO_LOCKS:
            raise no_locks_error(path, e) from None
        raise
    finally:
        os.close(fd)  # also releases the lock taken just now
    return False


def journal_files(directory: Path) -> Iterator[Path]:
    with contextlib.suppress(FileNotFoundError):
        yield from sorted(directory.glob("*.log"))


class JournalWriter:
    """This process's journal file (opened on first append; a new one after ``fork``)."""

    def __init__(self, directory: Path, fsync: bool) -> None:
        self.directory = directory
        self.fsync = fsync
        self.path: Path | None = None
        self.size = 0
        self._fd: int | None = None
        self._pid = 0

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        path = self.directory / f"{pid}-{secrets.token_hex(6)}.log"
        # locked under a name appliers ignore, then renamed: an applier never sees this file
        # unlocked (it would take it for a dead writer's, empty and applied, and delete it)
        hidden = path.with_suffix(".new")
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            hidden.unlink(missing_ok=True)
            if e.errno in NO_LOCKS:
                raise no_locks_error(hidden, e) from None
            raise
        os.rename(hidden, path)
        if self.fsync:
            dfd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        self.path, self._fd, self.size, self._pid = path, fd, 0, pid

    def append(self, rows: dict[str, list[list[Any]]]) -> tuple[Path, int]:
        """Write one entry; return (file, offset of the entry). Durable when it returns."""
        if self._fd is None or self._pid != os.getpid():
            self._fd = None  # a forked child writes its own file (the parent keeps its lock)
            self._open()
        try:
            payload = _encode(rows).encode()
        except (TypeError, ValueError, RecursionError) as e:  # validated records: never
            raise StoreError(f"cannot journal these records: {e}") from e
        data = HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        offset = self.size
        try:
            written = os.write(self._fd, data)  # type: ignore[arg-type]
            while written < len(data):
                written += os.write(self._fd, data[written:])  # type: ignore[arg-type]
            if self.fsync:
                os.fsync(self._fd)  # type: ignore[arg-type]
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, offset)  # type: ignore[arg-type]
            raise StoreError(f"cannot write the store journal {self.path}: {e}") from e
        self.size += len(data)
        return self.path, offset  # type: ignore[return-value]

    def rotate(self) -> Path | None:
        """Start a new file on the next append; return the old one (now ownerless)."""
        old = self.path
        self.close()
        return old

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd, self.path, self.size = None, None, 0
