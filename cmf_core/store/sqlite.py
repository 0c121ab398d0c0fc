"""SQLite backend (``kind = "sqlite"``): the embedded default, no server.

* WAL mode: readers never block the writer and many processes can record at once; writers
  serialise on ``BEGIN IMMEDIATE`` with a 60 s busy timeout. A wait for another connection's
  write lock that lasts ``LOCK_NOTICE_S`` is said at WARNING (the store file, and the process
  holding the lock where ``/proc/locks`` names it), once per store every ``LOCK_NOTICE_AGAIN_S``.
* Writes: ``put`` appends to this process's journal file beside the database
  (``<db>.journal/``, see :mod:`cmf_core.store.journal`), applied to the tables in bulk every
  2,048 puts, 1 s after a put, at close, and before every read (in any process).
* Durability (``CMF_DURABILITY``): ``normal`` (default): a put's journal entry (and, once
  applied, its committed transaction, ``synchronous=NORMAL``) is in the operating system's page
  cache before ``put`` returns, so it survives the writing process being killed (kill -9); after
  a power loss or OS crash the last writes may be lost. ``full``: every journal append is
  fsynced (and ``synchronous=FULL``), so a put that returned survives power loss; each put then
  costs one fsync (milliseconds on most disks).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa

from cmf_core.errors import StoreError
from cmf_core.guard import Repeats
from cmf_core.store import bulk
from cmf_core.store.bulk import connect, no_store, prepare
from cmf_core.store.journal import JournalWriter, check_locking, journal_dir
from cmf_core.store.sql import SqlStore, db_error_text

#: how long a write waits silently for another connection's write lock before it says so
LOCK_NOTICE_S = 5.0
#: how long one store's lock-wait notice stays unrepeated (later waits are said at DEBUG)
LOCK_NOTICE_AGAIN_S = 600.0


class SqliteStore(SqlStore):
    kind: ClassVar[str] = "sqlite"
    placeholder: ClassVar[str] = "?"
    least: ClassVar[str] = "min"
    json_merge: ClassVar[str] = "cmf_merge({low}, {high})"
    json_same: ClassVar[str] = "(({a}) = ({b}))"  # cmf_merge returns an input's text when equal
    distinct: ClassVar[str] = "IS NOT"
    event_time: ClassVar[str] = "julianday({})"
    # SQLite's default order already puts NULLs first (and NULLS clauses need SQLite 3.30)
    event_order: ClassVar[tuple[str, str]] = ("ASC", "DESC")
    journaled: ClassVar[bool] = True

    def __init__(self, url: str, site: str, durability: str = "normal",
                 create: bool = True) -> None:
        db = sa.engine.make_url(url).database or ""
        if db in ("", ":memory:"):
            raise StoreError("an in-memory SQLite store cannot be shared; give a file path "
                             "(sqlite:///path/to/cmf.db)")
        # absolute: a relative path would follow the process into every folder it changes to
        self.path = Path(db).expanduser().absolute()
        if self.path.is_dir():
            raise StoreError(f"store path {self.path} is a directory; give a file path")
        if not create and (not self.path.is_file() or self.path.stat().st_size == 0):
            raise StoreError(no_store(str(self.path)))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the folder {self.path.parent} for the store: "
                             f"{why_no_folder(self.path.parent, e)}; {WRITABLE_HINT}") from None
        check_locking(journal_dir(self.path))  # a file system without flock: said now
        self._lock_notices = Repeats(LOCK_NOTICE_AGAIN_S)  # a wait for the lock, said once
        self.synchronous = {"normal": "NORMAL", "full": "FULL"}[durability]
        engine = sa.create_engine(f"sqlite:///{self.path}")
        sa.event.listen(engine, "connect", self._on_connect)
        super().__init__(url, site, engine, create=create)
        self._journal = JournalWriter(journal_dir(self.path), fsync=durability == "full")
        self._file = _identity(self.path)

    def _check_file(self) -> None:
        """Raise unless the file at the store's path is the one opened. Once it is deleted or
        replaced, this process's connections would go on writing into the old, unlinked file,
        and the records would be lost with it; raised instead, the caller spools them
        (``Cmf``, the emitter), and they are replayed into the file now there."""
        now = _identity(self.path)
        if now != self._file:
            raise StoreError(
                f"the store file {self.path} was {'deleted' if now is None else 'replaced'} "
                "while this process had it open; nothing more is written to the old file: "
                "records are spooled and replayed into the store now at that path by the next "
                "run or `cmf spool retry` (restart a long-running process such as cmf serve)")

    def reusable(self) -> bool:
        """Whether this store may serve one more ``Cmf`` logger of this process
        (:func:`cmf_core.store.shared_store`): it is not closed, and the file at its path is
        still the one it opened."""
        return not self._closing and _identity(self.path) == self._file

    def _append(self, rows: dict[str, list[list[Any]]], written: Any) -> None:
        self._check_file()
        super()._append(rows, written)

    def apply_journal(self, wait_s: float | None = None) -> int:
        self._check_file()  # the journal left is applied by the next process, to the new file
        return super().apply_journal(wait_s)

    def _on_connect(self, dbapi_conn: Any, _record: Any) -> None:
        prepare(dbapi_conn)

    def _among_many(self, column: sa.ColumnElement[Any], values: list[Any]
                    ) -> sa.ColumnElement[bool]:
        # ``column IN (SELECT value FROM json_each(:values))``: the ids as one JSON array
        # parameter (JSON1: built into SQLite since 3.38 and into Python's builds before)
        ids = sa.func.json_each(sa.bindparam(None, json.dumps(values), type_=sa.Text))
        return column.in_(sa.select(ids.table_valued("value").c.value))

    def _connect_writer(self) -> Any:
        try:
            return connect(self.path, self.synchronous)
        except sqlite3.DatabaseError as e:
            raise self._translate_error(e) from e

    def _begin(self, cur: Any) -> None:
        """``BEGIN IMMEDIATE``: wait for the write lock at most ``_wait_s`` (the busy timeout),
        saying so once the wait passes ``LOCK_NOTICE_S`` instead of blocking without a word."""
        total = self._wait_limit()
        first = min(total, LOCK_NOTICE_S)
        conn = cur.connection
        conn.execute(f"PRAGMA busy_timeout = {int(first * 1000)}")
        try:
            cur.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as e:
            if "database is locked" not in str(e) or total <= first:
                raise
        self._say_waiting(first, total - first)
        conn.execute(f"PRAGMA busy_timeout = {int((total - first) * 1000)}")
        cur.execute("BEGIN IMMEDIATE")

    def _wait_limit(self) -> float:
        """How long the write under way waits for the lock, in seconds (``_wait_s``, else the
        busy timeout)."""
        return bulk.BUSY_TIMEOUT_MS / 1000 if self._wait_s is None else self._wait_s

    def _say_waiting(self, waited: float, more: float) -> None:
        again = self._lock_notices.seen("wait")
        logging.getLogger("cmf").log(
            logging.DEBUG if again else logging.WARNING,
            "waiting for the store %s: %s its write lock (waited %g s, waiting up to %g s more)",
            self.path, _holder_text(self.path), waited, more)

    def _commit(self, conn: Any, cur: Any) -> None:
        cur.execute("COMMIT")

    def _rollback(self, conn: Any, cur: Any) -> None:
        if conn.in_transaction:
            cur.execute("ROLLBACK")

    def _existing_tables(self, cur: Any) -> set[str]:
        cur.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {r[0] for r in cur.fetchall()}

    def _translate_error(self, exc: Exception) -> Exception:
        text = db_error_text(exc)
        if "file is not a database" in text:
            return StoreError(f"{self.path} is not a CMF store (not an SQLite database: {text})")
        if "malformed" in text or "no such table" in text or "no such column" in text:
            return StoreError(f"the CMF store {self.path} is damaged ({text}); restore it from "
                              "a backup, or try `sqlite3 FILE .recover`")
        if "database is locked" in text:
            return StoreError(f"the store {self.path} is locked: {_holder_text(self.path)} its "
                              f"write lock for longer than this process waits "
                              f"({self._wait_limit():g} s); "
                              "try again once it is released")
        if "unable to open" in text or "readonly" in text:
            return StoreError(f"cannot write the store at {self.path}: {text}; "
                              f"{WRITABLE_HINT}")
        return StoreError(f"store {self.path} failed: {text}")


WRITABLE_HINT = ("set CMF_HOME to a writable folder (a mounted volume, or /tmp/cmf), or "
                 "CMF_STORE_URL to a store this process may write")
"""How to record elsewhere, for the errors of a store that cannot be written (a read-only home
or root file system, as in many containers)."""


#: the byte of the ``-shm`` file SQLite locks while a connection holds the WAL write lock
_WAL_WRITE_LOCK_BYTE = 120


def lock_holder(db: Path) -> int | None:
    """The process that holds the write lock of the WAL-mode SQLite database ``db``, read from
    ``/proc/locks`` (Linux); None where it cannot be told."""
    try:
        st = os.stat(db.with_name(db.name + "-shm"))
        dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        with open("/proc/locks") as f:
            for line in f:
                parts = line.split()
                # "1: POSIX  ADVISORY  WRITE 1234 fe:00:2728182 120 120"
                if (len(parts) >= 7 and parts[3] == "WRITE" and parts[5] == dev
                        and parts[6] == str(_WAL_WRITE_LOCK_BYTE)):  # not a waiter's "->"
                    pid = int(parts[4])
                    return pid if pid > 0 else None
    except (OSError, ValueError):
        pass
    return None


def _holder_text(db: Path) -> str:
    """Who holds the write lock of ``db``, as the subject of "... holds/held"."""
    pid = lock_holder(db)
    if pid is None:
        return "another connection holds"
    if pid == os.getpid():
        return "another connection of this process holds"
    return f"process {pid} holds"


def _identity(path: Path) -> tuple[int, int] | None:
    """The (device, inode) of the file at ``path``; None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def why_no_folder(folder: Path, error: OSError) -> str:
    """Why ``folder.mkdir(parents=True)`` failed, naming the file in the way if there is one."""
    for p in (folder, *folder.parents):
        if p.exists() and not p.is_dir():
            return f"{p} is a file, not a folder"
    return f"{error.strerror} ({error.filename})"


def new_paths(url: str) -> list[Path]:
    """What opening the SQLite store at ``url`` would create: its file and the missing folders
    above it, nearest first (none for an existing store or another kind of URL)."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return []
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return []
    path = Path(parsed.database).expanduser()
    return [p for p in (path, *path.parents) if not p.exists() and not p.is_symlink()]


def remove_new(paths: list[Path]) -> None:
    """Undo :func:`new_paths` once the store is closed: the store's files, then each folder made
    for it that is still empty; nothing when another process has recorded into the store in
    the meantime (it was made new, but is no longer only ours to remove)."""
    if not paths or _written_by_others(paths[0]):
        return
    db = paths[0]
    for f in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        f.unlink(missing_ok=True)
    shutil.rmtree(journal_dir(db), ignore_errors=True)
    for folder in paths[1:]:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _written_by_others(db: Path) -> bool:
    """Whether the store at ``db`` holds records (seq above 0) or a journal file with entries
    not yet applied, or a live process's journal: writes that are not this failed command's."""
    from cmf_core.store.journal import journal_files, owner_alive

    for f in journal_files(journal_dir(db)):
        with contextlib.suppress(FileNotFoundError):  # applied and deleted meanwhile
            if owner_alive(f) or f.stat().st_size > 0:
                return True
    try:
        uri = db.resolve().as_uri() + "?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as c:
            row = c.execute("SELECT value FROM cmf_counter WHERE name = 'seq'").fetchone()
    except sqlite3.Error:  # no file, or no tables yet: nothing recorded
        return False
    return bool(row and row[0])
