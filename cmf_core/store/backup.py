"""A consistent copy of a live embedded (SQLite) store: ``cmf store backup DEST``.

Copying ``cmf.db`` with ``cp`` while pipelines record can give a torn file (pages of two
moments), leaves out whatever is still in the ``-wal`` file, and leaves out every journal entry
not yet applied to the tables (``cmf.db.journal/``: puts that returned). Here:

1. the journal of every process is applied (each put that returned before the backup began is
   then in the tables); if that fails (a read-only store, a disk error), the copy is still made,
   of what the tables hold, and the report says what was left out;
2. the tables are copied with SQLite's online backup API (``sqlite3.Connection.backup``) in one
   step, inside one read transaction of the source: WAL mode lets writers go on meanwhile (only
   the WAL's checkpoint waits), and the copy is the database as of one moment;
3. the copy is written to a temporary file beside DEST, switched to a single file (no ``-wal``),
   checked (``PRAGMA integrity_check``, and each table's row count against the source's in the
   same read transaction) and only then renamed to DEST.

A PostgreSQL store is backed up with the database's own tools (``pg_dump``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmf_core.errors import InvalidInputError, StoreError
from cmf_core.store.bulk import prepare


@dataclass
class BackupReport:
    source: str
    dest: str
    bytes: int = 0
    seq: int = 0  # the store's change counter in the copy
    store_id: str = ""
    rows: dict[str, int] = field(default_factory=dict)  # every table of the copy
    journal_applied: int = 0  # journal entries applied before the copy
    journal_error: str | None = None  # why the journal could not be applied (copy made anyway)
    integrity: str = "ok"

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def pg_dump_hint(safe_url: str) -> str:
    return (f"the store {safe_url} is a PostgreSQL database: back it up with PostgreSQL's own "
            "tools, e.g. `pg_dump --format=custom --file cmf.dump DBNAME` (restore with "
            "`pg_restore --dbname DBNAME cmf.dump` into an empty database), or the server's "
            "continuous archiving; cmf store backup copies embedded (SQLite) stores only")


def backup_sqlite(store: Any, dest: Path, *, force: bool = False) -> BackupReport:
    """Copy the open SQLite ``store`` to ``dest`` (see the module docs)."""
    src_path = Path(store.path)
    dest = Path(dest).expanduser().absolute()
    if dest.is_dir():
        dest = dest / src_path.name
    if _same_file(dest, src_path) or dest == src_path:
        raise InvalidInputError(f"{dest} is the store itself; give another path for the copy")
    if dest.exists() and not force:
        raise InvalidInputError(f"{dest} already exists; give another path, or --force to "
                                "replace it")
    if not dest.parent.is_dir():
        raise InvalidInputError(f"the folder {dest.parent} for the copy does not exist")
    report = BackupReport(source=str(src_path), dest=str(dest))
    try:
        report.journal_applied = store.apply_journal()
    except StoreError as e:
        report.journal_error = str(e)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    _remove_db(tmp)
    try:
        counts = _copy(src_path, tmp)
        report.integrity, copied = _verify(tmp)
        if report.integrity != "ok":
            raise StoreError(f"the copy of {src_path} failed SQLite's integrity check "
                             f"({report.integrity}); {dest} was not written. Check the store "
                             "itself: `cmf store check`, or sqlite3 FILE 'PRAGMA integrity_check'")
        differ = {t: (counts[t], copied.get(t)) for t in counts if copied.get(t) != counts[t]}
        if differ:
            raise StoreError(f"the copy of {src_path} does not hold the rows the store held "
                             f"(table: store, copy): {differ}; {dest} was not written")
        report.rows = copied
        report.seq, report.store_id = _seq_and_id(tmp)
        _remove_db(dest)  # only with --force (checked above): its old -wal must not stay
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    finally:
        _remove_db(tmp)
    report.bytes = dest.stat().st_size
    return report


def _copy(src: Path, tmp: Path) -> dict[str, int]:
    """Copy ``src`` to ``tmp`` in one read transaction of ``src``; the row counts of each
    table in that same transaction (what the copy must hold)."""
    try:
        source = sqlite3.connect(f"{src.as_uri()}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as e:
        raise StoreError(f"cannot open the store {src} to copy it: {e}") from None
    target = None
    try:
        prepare(source)
        source.execute("BEGIN")  # one read transaction: the counts and the copy see one moment
        tables = [r[0] for r in source.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        counts = {t: source.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
                  for t in tables}
        target = sqlite3.connect(tmp, isolation_level=None)
        source.backup(target)  # pages=-1: every page in one step, in this read transaction
        source.execute("COMMIT")
        # one self-contained file: the copy is read and moved without a -wal beside it
        target.execute("PRAGMA journal_mode = DELETE")
    except sqlite3.Error as e:
        raise StoreError(f"copying the store {src} to {tmp.parent} failed: {e}") from None
    finally:
        if target is not None:
            target.close()
        source.close()
    return counts


def _verify(path: Path) -> tuple[str, dict[str, int]]:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        prepare(conn)
        problems = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        conn.close()
    return ("ok" if problems == ["ok"] else "; ".join(problems[:5])), counts


def _seq_and_id(path: Path) -> tuple[int, str]:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        seq = conn.execute("SELECT value FROM cmf_counter WHERE name = 'seq'").fetchone()
        sid = conn.execute("SELECT value FROM cmf_store WHERE key = 'store_id'").fetchone()
    except sqlite3.Error:
        return 0, ""
    finally:
        conn.close()
    return (int(seq[0]) if seq else 0), (str(sid[0]) if sid else "")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _remove_db(path: Path) -> None:
    for f in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"),
              path.with_name(path.name + "-journal")):
        with contextlib.suppress(FileNotFoundError):
            f.unlink()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass
class RestoreReport:
    backup: str
    store: str
    previous_store_id: str = ""
    store_id: str = ""
    seq: int = 0
    moved_aside: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def restore_sqlite(backup: Path, db: Path) -> RestoreReport:
    """Put the copy ``backup`` in place of the store file ``db``, as a new store id.

    Peers hold versions ``(store id, seq)`` of this store up to its last sync; the restored
    file's change counter is back at the backup's, so with the same id its next writes would
    reuse seqs peers already have (different records under the same versions): peers would
    skip them, and would not send back the records lost since the backup. With a new id the
    new writes are new versions; the rows from before are marked with their true version (the
    old id, their seq), and the old id is kept in the version vector up to the backup's seq, so
    a sync sends what the other side lacks and nothing more: what peers got since the backup
    comes back, and what is written now reaches them.

    The store's other files (``-wal``, ``-shm`` of the replaced file) are moved aside with it;
    a live writer (a journal file held open) refuses the restore.
    """
    import json
    import time

    from cmf_core.store.journal import journal_dir, journal_files, owner_alive
    from cmf_core.store.migrations import new_store_id
    from cmf_core.store.schema import VERSIONED_TABLES

    backup = Path(backup).expanduser().absolute()
    if not backup.is_file():
        raise InvalidInputError(f"no backup file at {backup}")
    if backup.exists() and _same_file(backup, db):
        raise InvalidInputError(f"{backup} is the store itself; give the backup's path")
    busy = [f.name for f in journal_files(journal_dir(db)) if owner_alive(f)]
    if busy:
        raise InvalidInputError(f"processes are recording into {db} (journal files held open: "
                                f"{', '.join(busy[:3])}); stop them (and cmf serve) first")
    tmp = db.with_name(f".{db.name}.restore.{os.getpid()}.tmp")
    _remove_db(tmp)
    report = RestoreReport(backup=str(backup), store=str(db))
    try:
        try:
            src = sqlite3.connect(f"{backup.as_uri()}?mode=ro", uri=True)
            dst = sqlite3.connect(tmp, isolation_level=None)
            try:
                src.backup(dst)
            finally:
                src.close()
            problems = [r[0] for r in dst.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise StoreError(f"the backup {backup} is damaged ({'; '.join(problems[:3])}); "
                                 "nothing was changed")
            row = dst.execute("SELECT value FROM cmf_store WHERE key = 'store_id'").fetchone()
            seq = dst.execute("SELECT value FROM cmf_counter WHERE name = 'seq'").fetchone()
            if row is None or seq is None:
                raise StoreError(f"{backup} is not a CMF store backup (no store id); nothing "
                                 "was changed")
            old, report.seq = str(row[0]), int(seq[0])
            new = new_store_id()
            dst.execute("BEGIN IMMEDIATE")
            for t in VERSIONED_TABLES:
                dst.execute(f"UPDATE {t.name} SET origin = ?, origin_seq = seq "
                            "WHERE origin IS NULL", (old,))
            raw = dst.execute("SELECT value FROM cmf_state WHERE key = 'federation:vector'"
                              ).fetchone()
            vector = {str(k): int(v) for k, v in (json.loads(raw[0]) if raw else {}).items()}
            vector[old] = max(vector.get(old, 0), report.seq)
            dst.execute("INSERT INTO cmf_state (key, value) VALUES ('federation:vector', ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (json.dumps(vector, sort_keys=True),))
            dst.execute("INSERT INTO cmf_state (key, value) VALUES (?, ?)",
                        (f"store:restored:{time.time():.6f}",
                         json.dumps({"backup": str(backup), "previous_store_id": old,
                                     "seq": report.seq})))
            dst.execute("UPDATE cmf_store SET value = ? WHERE key = 'store_id'", (new,))
            dst.execute("COMMIT")
            dst.execute("PRAGMA journal_mode = DELETE")
            dst.close()
        except sqlite3.Error as e:
            raise StoreError(f"restoring {backup} failed: {e}; nothing was changed") from None
        report.previous_store_id, report.store_id = old, new
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for f in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            if f.exists():
                aside = f.with_name(f"{f.name}.replaced-{stamp}")
                os.replace(f, aside)
                report.moved_aside.append(str(aside))
        os.replace(tmp, db)
        _fsync_dir(db.parent)
    finally:
        _remove_db(tmp)
    return report
