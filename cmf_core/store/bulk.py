"""Writing rows in bulk, and applying the SQLite journal: what the store and its companion
process (:mod:`cmf_core.store.companion`) both run.

Only the standard library and light cmf_core modules are imported here (no SQLAlchemy, no
settings), so a companion process starts in a few tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cmf_core import jsonutil
from cmf_core.errors import StoreError
from cmf_core.store.journal import journal_files, owner_alive, read_entries

Rows = dict[str, list[list[Any]]]
log = logging.getLogger("cmf")

#: record kinds in the order their rows are written (parents first), and their column counts
WRITE_ORDER = ("pipeline", "stage", "artifact", "location", "execution", "event", "metric",
               "energy", "lineage_event")
NCOLS = {"pipeline": 6, "stage": 8, "artifact": 8, "location": 3, "execution": 14, "event": 3,
         "metric": 5, "energy": 5, "lineage_event": 5}
#: kinds whose same row many puts repeat (a shared dataset, the stage): written once per apply
SHARED_KINDS = frozenset({"pipeline", "stage", "artifact", "location"})

BUSY_TIMEOUT_MS = 60_000
WAL_CHECKPOINT_PAGES = 10_000
WRITER_CACHE_KIB = 16_384  # page cache of the writing connection


def json_merge(low: str | None, high: str | None) -> str | None:
    """SQL function ``cmf_merge``: the recursive union of two JSON objects (``high`` wins a key
    both have), as the text of whichever input it equals, else as canonical JSON."""
    if low == high or not low:
        return high
    if not high:
        return low
    a, b = jsonutil.loads(low), jsonutil.loads(high)
    merged = jsonutil.dumps(jsonutil.merge(a, b))
    if merged == jsonutil.dumps(b):
        return high
    if merged == jsonutil.dumps(a):
        return low
    return merged


def prepare(conn: sqlite3.Connection) -> None:
    """What every connection to a store needs, reading or writing: the busy timeout and the
    ``cmf_merge`` SQL function."""
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.create_function("cmf_merge", 2, json_merge, deterministic=True)


def not_a_store(where: str, tables: Sequence[str]) -> str:
    """The error for a database that holds other tables than a CMF store's."""
    return (f"{where} is not a CMF store (it has tables {', '.join(sorted(tables)[:5])}); point "
            "CMF_STORE_URL at a new file or an empty database")


def no_store(where: str) -> str:
    """The error for a store that a command which only reads finds missing."""
    return (f"no CMF store at {where} (create one with `cmf init`, or check the store URL: "
            "--store or CMF_STORE_URL)")


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    """The writing connection to an SQLite store (autocommit; transactions are explicit)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                           timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        prepare(conn)
        tables = sorted(r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"))
        if tables and "cmf_store" not in tables:  # another application's file: leave it as is
            raise StoreError(not_a_store(str(path), tables))
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"could not switch {path} to WAL mode (got {mode})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        # checkpoint the WAL every ~40 MB instead of ~4 MB: a bulk journal apply touches the
        # same index pages again and again, written back once per checkpoint
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
        # an apply inserts at random places of the digest-keyed indexes: with SQLite's default
        # 2 MiB cache most of those pages are read back on every apply (an execution costs ~1/3
        # less SQLite time with 16 MiB, allocated as pages are used)
        conn.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
    except UnicodeDecodeError as e:  # SQLite's error message quotes the damaged bytes
        conn.close()
        raise sqlite3.DatabaseError("malformed database schema (bytes that are not UTF-8)") \
            from e
    except BaseException:
        conn.close()
        raise
    return conn


def write_rows(cur: Any, rows: Mapping[str, Sequence[Sequence[Any]]], sql: Mapping[str, str],
               counter_sql: str) -> None:
    """Upsert ``rows`` inside the caller's transaction, numbering them with ``seq``."""
    total = sum(len(v) for v in rows.values())
    if not total:
        return
    cur.execute(counter_sql, (total,))
    seq = cur.fetchone()[0] - total
    for kind in WRITE_ORDER:
        batch = rows.get(kind)
        if not batch:
            continue
        cur.executemany(sql[kind], [(*row, n) for row, n in zip(
            batch, range(seq + 1, seq + 1 + len(batch)), strict=True)])
        seq += len(batch)


class BadEntry(StoreError):
    """A journal entry whose rows cannot be applied (an unknown kind, a malformed row)."""


def entry_error(e: BaseException) -> bool:
    """Whether ``e`` comes from one entry's own rows (a value SQLite cannot hold, a malformed
    row, JSON ``cmf_merge`` cannot read): that entry is set aside and the rest applied. Any
    other error (a locked, full or read-only disk) stops the apply, which is retried later."""
    if isinstance(e, sqlite3.OperationalError):
        return "user-defined function raised exception" in str(e)
    return isinstance(e, (BadEntry, sqlite3.IntegrityError, sqlite3.InterfaceError,
                          sqlite3.ProgrammingError, sqlite3.DataError, OverflowError,
                          TypeError, ValueError, AttributeError))


def merge_entries(entries: Sequence[Rows]) -> Rows:
    """The rows of ``entries`` in one batch, each shared row (a dataset, the stage) once."""
    merged: dict[str, list[Any]] = defaultdict(list)
    seen: set[tuple[Any, ...]] = set()
    for rows in entries:
        for k, batch in rows.items():
            if k not in NCOLS:
                raise BadEntry(f"unknown record kind {k!r}")
            if k not in SHARED_KINDS:
                merged[k].extend(batch)
                continue
            for row in batch:  # the same dataset or stage in many puts: write it once
                key = (k, *row)
                if key not in seen:
                    seen.add(key)
                    merged[k].append(row)
    return merged


def _reject(cur: Any, where: str, body: str, error: str) -> None:
    cur.execute("INSERT INTO cmf_journal_rejected (body, error, at) VALUES (?, ?, ?)",
                (f"{where}: {body}", error, time.time()))


def _undo(cur: Any, savepoint: str, error: Exception) -> None:
    """Roll back to ``savepoint`` and release it after ``error``. SQLite itself rolls the whole
    transaction back on some errors (a full disk: "database or disk is full"), taking the
    savepoint with it: then ``error`` is raised, not the "no such savepoint" that would hide
    it."""
    try:
        cur.execute(f"ROLLBACK TO {savepoint}")
        cur.execute(f"RELEASE {savepoint}")
    except Exception:
        raise error from None


def _write_each(cur: Any, sql: Mapping[str, str],
                entries: Sequence[tuple[str, int, Rows]]) -> None:
    """Write entries (file name, offset, rows) one by one, each in a savepoint; set aside (in
    ``cmf_journal_rejected``, with a warning) those whose rows fail."""
    for name, offset, rows in entries:
        where = f"{name} @{offset}"
        cur.execute("SAVEPOINT cmf_entry")
        try:
            if not isinstance(rows, dict):
                raise BadEntry(f"an entry is a JSON object, not {type(rows).__name__}")
            write_rows(cur, merge_entries([rows]), sql, sql["counter"])
        except Exception as e:
            _undo(cur, "cmf_entry", e)
            if not entry_error(e):
                raise
            error = f"{type(e).__name__}: {e}"
            log.warning("cmf: journal entry %s cannot be applied (%s); it is kept in the "
                        "store's cmf_journal_rejected table and the other entries are "
                        "applied", where, error)
            _reject(cur, where, json.dumps(rows, default=repr), error)
            continue
        cur.execute("RELEASE cmf_entry")


def apply_files(cur: Any, sql: Mapping[str, str], directory: Path, own: str | None = None,
                own_entries: Sequence[tuple[int, tuple[int, Rows]]] | None = None
                ) -> tuple[int, dict[str, int], list[tuple[str, bytes]]]:
    """Apply every journal file's unapplied entries (in the caller's transaction).

    ``own_entries`` are the entries of the caller's own file ``own`` (offset -> (end, rows)),
    taken from memory instead of read back. All entries are written as one batch; when that
    fails because of some entry's rows, they are written one by one and each that fails is
    set aside in ``cmf_journal_rejected``, so one bad entry never blocks the store. Returns
    the number of entries, each file's applied offset, and the unreadable tails of files whose
    writer is gone.
    """
    cur.execute("SELECT name, applied FROM cmf_journal_files")
    applied = dict(cur.fetchall())
    entries: list[tuple[str, int, Rows]] = []  # file name, offset, rows
    done: dict[str, int] = {}
    torn: list[tuple[str, bytes]] = []
    for path in journal_files(directory):
        name, start = path.name, applied.get(path.name, 0)
        if name == own and own_entries is not None:
            mine = [(offset, rows) for offset, (_, rows) in own_entries if offset >= start]
            end, tail = (own_entries[-1][1][0] if mine else start), b""
        else:
            mine, end, tail = read_entries(path, start)
        entries.extend((name, offset, rows) for offset, rows in mine)
        done[name] = end
        if tail and not owner_alive(path):
            torn.append((name, tail))
    cur.execute("SAVEPOINT cmf_apply")
    try:
        write_rows(cur, merge_entries([rows for _, _, rows in entries]), sql, sql["counter"])
    except Exception as e:
        _undo(cur, "cmf_apply", e)
        if not entry_error(e):
            raise
        cur.execute("SAVEPOINT cmf_apply")
        _write_each(cur, sql, entries)
    cur.execute("RELEASE cmf_apply")
    for name in applied.keys() - done.keys():  # files deleted once fully applied
        cur.execute("DELETE FROM cmf_journal_files WHERE name = ?", (name,))
    cur.executemany("INSERT INTO cmf_journal_files (name, applied) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET applied = excluded.applied",
                    [(n, o) for n, o in done.items() if o != applied.get(n)])
    for name, tail in torn:  # bytes a killed writer left that are not a whole entry
        _reject(cur, f"{name} @{done[name]}", repr(tail[:4096]),
                "journal bytes that are not a whole entry (a writer killed during put, "
                "which therefore never returned)")
    return len(entries), done, torn


ORPHAN_AGE_S = 60.0  # a journal file still under its ``.new`` name this long was abandoned


def tidy_files(directory: Path, done: Mapping[str, int], torn: set[str],
               own: str | None = None) -> None:
    """Delete the fully applied (or torn) files of writers that are gone, and the empty
    ``.new`` file of a writer killed between creating its journal file and naming it."""
    for name, offset in done.items():
        if name == own:
            continue
        path = directory / name
        with contextlib.suppress(OSError):
            if (name in torn or path.stat().st_size == offset) and not owner_alive(path):
                path.unlink()
    with contextlib.suppress(OSError):
        for path in directory.glob("*.new"):
            with contextlib.suppress(OSError):
                if (time.time() - path.stat().st_mtime > ORPHAN_AGE_S
                        and path.stat().st_size == 0 and not owner_alive(path)):
                    path.unlink()


def apply_journal(conn: sqlite3.Connection, sql: Mapping[str, str], directory: Path) -> int:
    """One apply of every journal file in its own transaction (the companion's loop body)."""
    cur = conn.cursor()
    cur.execute("BEGIN IMMEDIATE")
    try:
        count, done, torn = apply_files(cur, sql, directory)
        cur.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                cur.execute("ROLLBACK")
        raise
    tidy_files(directory, done, {name for name, _ in torn})
    return count
