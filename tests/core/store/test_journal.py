"""The SQLite store's write-ahead journal files: kill -9, torn tails, fork, rotation, readers."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cmf_core.errors import StoreError
from cmf_core.model import Execution, Metric, Pipeline, Stage
from cmf_core.store import open_store
from cmf_core.store import sql as sql_module
from cmf_core.store.journal import JournalWriter, journal_dir, read_entries

# writes n ended executions through put() and then waits to be killed: nothing is applied yet
# (fewer than JOURNAL_BATCH puts, well before JOURNAL_MAX_AGE_S)
WRITER = textwrap.dedent("""
    import sys, time
    from cmf_core.model import Execution, Pipeline, Stage
    from cmf_core.store import open_store
    url, n = sys.argv[1], int(sys.argv[2])
    s = open_store(url, site="w")
    s.put([Pipeline("p", "w"), Stage("p", "s", "w")])
    for i in range(n):
        s.put([Execution("p", "s", "w", params={"i": i}).ended()])
    print("written", flush=True)
    time.sleep(60)
""")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[3])
    return env


def _journal_files(db: Path) -> list[Path]:
    return sorted(journal_dir(db).glob("*.log"))


def test_killed_writer_journal_is_applied_by_the_next_reader(tmp_path: Path) -> None:
    db = tmp_path / "cmf.db"
    url = f"sqlite:///{db}"
    p = subprocess.Popen([sys.executable, "-c", WRITER, url, "50"], env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None
    assert p.stdout.readline().strip() == b"written", p.stderr.read() if p.stderr else ""
    # the puts returned but nothing reached the tables yet: they are in the journal file
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT count(*) FROM executions").fetchone()[0] == 0
    assert len(_journal_files(db)) == 1
    p.send_signal(signal.SIGKILL)
    p.wait()
    with open_store(url, site="check") as s:
        execs = s.list_executions()
        assert sorted(e.params["i"] for e in execs) == list(range(50))
        assert all(e.status.value == "completed" for e in execs)
    assert _journal_files(db) == []  # applied, and its writer is gone: deleted


def test_torn_tail_of_a_killed_writer_is_kept_aside(tmp_path: Path) -> None:
    db = tmp_path / "cmf.db"
    url = f"sqlite:///{db}"
    with open_store(url, site="a") as s:
        s.put([Pipeline("p", "a"), Stage("p", "s", "a")])
    # a dead writer's file: one whole entry, then half of another (killed inside write())
    done = Execution("p", "s", "a", params={"k": 1}).ended()
    with open_store(url, site="a") as s:
        rows, _ = s._to_rows([done])
    w = JournalWriter(journal_dir(db), fsync=False)
    path, _ = w.append(rows)
    w.close()  # its writer is gone: the lock is released
    whole = path.read_bytes()
    with open(path, "ab") as f:
        f.write(whole[: len(whole) // 2])
    assert len(read_entries(path, 0)[0]) == 1
    with open_store(url, site="check") as s:
        assert [e.id for e in s.list_executions()] == [done.id]
    assert not path.exists()
    with sqlite3.connect(db) as c:
        (error,) = c.execute("SELECT error FROM cmf_journal_rejected").fetchone()
    assert "not a whole entry" in error


def test_a_live_writers_journal_is_visible_to_other_readers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    writer = open_store(url, site="w")
    try:
        e = Execution("p", "s", "w").ended()
        writer.put([Pipeline("p", "w"), Stage("p", "s", "w"), e])
        with open_store(url, site="r") as reader:  # another connection, as another process
            assert reader.get_execution(e.id) == e
        # the live writer keeps its file (and its lock) after another process applied it
        assert len(_journal_files(tmp_path / "cmf.db")) == 1
        e2 = Execution("p", "s", "w").ended()
        writer.put([e2])
        with open_store(url, site="r") as reader:
            assert reader.get_execution(e2.id) == e2
    finally:
        writer.close()
    assert _journal_files(tmp_path / "cmf.db") == []


def test_rotation_deletes_applied_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sql_module, "ROTATE_BYTES", 2000)
    monkeypatch.setattr(sql_module, "JOURNAL_BATCH", 5)
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    with open_store(url, site="a") as s:
        s.put([Pipeline("p", "a"), Stage("p", "s", "a")])
        ids = []
        for i in range(60):
            e = Execution("p", "s", "a", params={"i": i}).ended()
            s.put([e])
            ids.append(e.id)
            assert len(_journal_files(tmp_path / "cmf.db")) <= 1
        assert sorted(e.id for e in s.list_executions()) == sorted(ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_writes_its_own_journal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    s = open_store(url, site="a")
    s.put([Pipeline("p", "a"), Stage("p", "s", "a")])
    parent = Execution("p", "s", "a").ended()
    s.put([parent])  # pending in the parent's journal when it forks
    child = Execution("p", "s", "child").ended()
    pid = os.fork()
    if pid == 0:  # the child: write, apply, exit without running the parent's cleanup
        code = 0
        try:
            s.put([child])
            s.apply_journal()
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    try:
        assert {e.id for e in s.list_executions()} == {parent.id, child.id}
    finally:
        s.close()


def test_rows_left_in_the_journal_table_by_older_code_are_applied(tmp_path: Path) -> None:
    db = tmp_path / "cmf.db"
    url = f"sqlite:///{db}"
    with open_store(url, site="a"):
        pass
    # the store as code before 0003 left it after being killed: a row still in its journal table
    with sqlite3.connect(db) as c:
        c.execute("DROP TABLE cmf_journal_files")
        c.execute("DELETE FROM cmf_migrations WHERE name = '0003_merge_rule'")
        c.execute("INSERT INTO cmf_journal (kind, c0, c1, c2, c3, c4, c5) "
                  "VALUES ('pipeline', ?, 'old', 'a', 1.0, '{}', '{}')",
                  (Pipeline("old", "a").id,))
    with open_store(url, site="a") as s:
        assert [p.name for p in s.list_pipelines()] == ["old"]
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT count(*) FROM cmf_journal").fetchone()[0] == 0
        assert c.execute("SELECT count(*) FROM cmf_migrations WHERE name = '0003_merge_rule'"
                         ).fetchone()[0] == 1


def test_a_journal_file_is_never_visible_unlocked(tmp_path: Path) -> None:
    from cmf_core.store.journal import owner_alive

    w = JournalWriter(journal_dir(tmp_path / "cmf.db"), fsync=False)
    path, offset = w.append({"pipeline": []})
    try:
        assert offset == 0 and path.suffix == ".log" and owner_alive(path)
        assert [p.name for p in journal_dir(tmp_path / "cmf.db").iterdir()] == [path.name]
    finally:
        w.close()
    assert not owner_alive(path)


def test_an_abandoned_new_journal_file_is_deleted(tmp_path: Path) -> None:
    db = tmp_path / "cmf.db"
    url = f"sqlite:///{db}"
    with open_store(url, site="a"):
        pass
    # a writer killed between creating its file (under a hidden name) and renaming it
    journal_dir(db).mkdir(exist_ok=True)
    old, fresh = journal_dir(db) / "1-aaaa.new", journal_dir(db) / "2-bbbb.new"
    old.touch()
    fresh.touch()
    os.utime(old, (1.0, 1.0))  # long ago
    with open_store(url, site="a") as s:
        s.put([Pipeline("p", "a")])
        s.apply_journal()
    assert not old.exists()
    assert fresh.exists()  # it may be a live writer's, about to be renamed


def _dead_writers_file(db: Path, entries: list[dict]) -> Path:
    """A journal file holding ``entries``, as a writer that has since exited leaves it."""
    w = JournalWriter(journal_dir(db), fsync=False)
    path = None
    for rows in entries:
        path, _ = w.append(rows)
    w.close()
    assert path is not None
    return path


def test_an_entry_that_cannot_be_applied_is_set_aside_and_the_rest_applied(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "cmf.db"
    url = f"sqlite:///{db}"
    with open_store(url, site="a") as s:
        s.put([Pipeline("p", "a"), Stage("p", "s", "a")])
        before = Execution("p", "s", "a", params={"k": 0}).ended()
        after = Execution("p", "s", "a", params={"k": 2}).ended()
        bad = Execution("p", "s", "a", params={"k": 1}).ended()
        good_rows = [s._to_rows([e])[0] for e in (before, after)]
        bad_rows, _ = s._to_rows([bad, Metric(bad.id, "loss", 0.5, step=1)])
    # a value SQLite cannot hold (older code journalled metric steps >= 2**63): this entry
    # alone fails, and it must not block the entries beside it nor any later write
    bad_rows["metric"][0][2] = 2**63
    path = _dead_writers_file(db, [good_rows[0], bad_rows, good_rows[1],
                                   {"no such kind": [[1]]}])
    with caplog.at_level("WARNING", logger="cmf"), open_store(url, site="check") as s:
        assert sorted(e.id for e in s.list_executions()) == sorted([before.id, after.id])
        later = Execution("p", "s", "check").ended()
        s.put([later])
        assert s.get_execution(later.id) == later
    assert not path.exists()  # applied (two entries set aside) and its writer gone: deleted
    with sqlite3.connect(db) as c:
        rejected = c.execute("SELECT body, error FROM cmf_journal_rejected ORDER BY id").fetchall()
    assert [e.split(":")[0] for _, e in rejected] == ["OverflowError", "BadEntry"]
    assert "unknown record kind 'no such kind'" in rejected[1][1]
    # the whole entry is kept, named by its file and offset, so nothing is lost
    assert rejected[0][0].startswith(f"{path.name} @") and bad.id in rejected[0][0]
    assert str(2**63) in rejected[0][0]
    warned = [r.getMessage() for r in caplog.records if "cannot be applied" in r.getMessage()]
    assert len(warned) == 2 and "cmf_journal_rejected" in warned[0]


def test_an_error_of_the_disk_not_the_entry_stops_the_apply_and_keeps_the_journal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full or failing disk cannot be made here: ``write_rows`` is made to raise what SQLite
    raises then. Nothing may be set aside: the apply is retried later, all of it."""
    from cmf_core.store import bulk

    db = tmp_path / "cmf.db"
    url = f"sqlite:///{db}"
    with open_store(url, site="a") as s:
        s.put([Pipeline("p", "a"), Stage("p", "s", "a")])
        e = Execution("p", "s", "a").ended()
        rows, _ = s._to_rows([e])
    path = _dead_writers_file(db, [rows])
    real = bulk.write_rows

    def disk_full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(bulk, "write_rows", disk_full)
    with pytest.raises(Exception, match="disk is full"), open_store(url, site="check") as s:
        s.list_executions()
    assert path.exists()
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT count(*) FROM cmf_journal_rejected").fetchone()[0] == 0
    monkeypatch.setattr(bulk, "write_rows", real)
    with open_store(url, site="check") as s:
        assert [x.id for x in s.list_executions()] == [e.id]


def test_a_real_full_disk_is_named_and_keeps_the_journal(tmp_path: Path) -> None:
    """SQLite rolls the whole transaction back itself on a full disk, taking the apply's
    savepoint with it: the error says the disk is full (not "no such savepoint"), and nothing
    is lost. The full disk is SQLite's own, made by capping the writer's page count."""
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    with open_store(url, site="a") as s:
        s.put([Pipeline("p", "a"), Stage("p", "s", "a")])
        s.apply_journal()
        writer = s._writer_conn()
        (pages,) = writer.execute("PRAGMA page_count").fetchone()
        writer.execute(f"PRAGMA max_page_count = {pages}")
        ids = []
        for i in range(5):  # each row needs pages the capped database cannot grow
            e = Execution("p", "s", "a", params={"i": i, "note": "x" * 5000}).ended()
            s.put([e])
            ids.append(e.id)
        with pytest.raises(StoreError, match="database or disk is full"):
            s.apply_journal()
        writer.execute(f"PRAGMA max_page_count = {pages * 1000}")
        assert sorted(x.id for x in s.list_executions()) == sorted(ids)


# puts n executions, waits until another process holds the database's write lock, gives the
# background applier time to start waiting for that lock, and exits
EXIT_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from cmf_core.model import Execution, Pipeline, Stage
    from cmf_core.store import open_store
    url, n, flag = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    s = open_store(url, site="w")
    s.put([Pipeline("p", "w"), Stage("p", "s", "w")])
    s.apply_journal()
    print("opened", flush=True)
    while not flag.exists():
        time.sleep(0.05)
    for i in range(n):
        s.put([Execution("p", "s", "w", params={"i": i}).ended()])
    time.sleep(1.5)  # past JOURNAL_MAX_AGE_S: the applier thread now waits for the lock
    print("exiting", time.monotonic(), flush=True)
""")


def test_exit_does_not_wait_long_for_a_store_another_process_holds(tmp_path: Path) -> None:
    """At interpreter exit the journal is applied if the store is free within EXIT_WAIT_S;
    else it stays journaled (durable) for the next process. Before, exit waited for the
    database's 60 s busy timeout, twice (the applier thread, then the exit apply)."""
    import time

    db = tmp_path / "cmf.db"
    url = f"sqlite:///{db}"
    flag = tmp_path / "locked"
    p = subprocess.Popen([sys.executable, "-c", EXIT_WRITER, url, "20", str(flag)],
                         env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "opened"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's long write transaction
    try:
        flag.touch()
        line = p.stdout.readline().split()
        assert line and line[0] == "exiting", p.stderr.read() if p.stderr else ""
        p.wait(timeout=60)
        exit_s = time.monotonic() - float(line[1])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0
    assert exit_s < 2 * sql_module.EXIT_WAIT_S + 3, exit_s
    with open_store(url, site="check") as s:  # nothing lost: the next process applies it
        assert sorted(e.params["i"] for e in s.list_executions()) == list(range(20))


def _no_flock(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system mounted without flock support (Lustre without ``-o flock``, an NFS mount
    without a lock service): simulated here, as no such mount exists on a test machine, by a
    ``fcntl.flock`` that fails as those file systems' does."""
    import errno
    import fcntl

    def refuse(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", refuse)


def test_a_file_system_without_flock_is_named_when_the_store_opens(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not an ``OSError: [Errno 37] No locks available`` traceback at the first record, but a
    StoreError at open that says what is wrong and what to do; nothing is left behind."""
    from cmf_core import Cmf

    home = tmp_path / "lustre" / "home"
    _no_flock(monkeypatch)
    with pytest.raises(StoreError) as raised:
        open_store(f"sqlite:///{home / 'cmf.db'}", site="a")
    text = str(raised.value)
    assert "does not support file locks" in text and "No locks available" in text
    assert "Lustre" in text and "CMF_HOME" in text and "local disk" in text
    assert "postgresql://" in text and "CMF_SERVER_URL" in text
    assert not journal_dir(home / "cmf.db").exists()
    monkeypatch.setenv("CMF_HOME", str(home))
    monkeypatch.delenv("CMF_STORE_URL", raising=False)
    monkeypatch.delenv("CMF_SERVER_URL", raising=False)
    with pytest.raises(StoreError, match="does not support file locks"):
        Cmf(pipeline_name="churn")  # the Python API: before any work starts


def test_flock_refused_after_open_is_a_store_error_not_an_oserror(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the locks go away after the store opened (a remount), a write says the same."""
    db = tmp_path / "cmf.db"
    s = open_store(f"sqlite:///{db}", site="a")
    _no_flock(monkeypatch)
    with pytest.raises(StoreError, match="does not support file locks"):
        s.put([Pipeline("p", "a")])
    assert list(journal_dir(db).glob("*.new")) == []  # its half-made journal file is gone
    monkeypatch.undo()
    s.close()


def test_liveness_of_a_journal_file_works_where_flock_is_emulated_by_fcntl(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On NFS, flock is emulated by fcntl locks, so an exclusive one needs the file open for
    writing (flock(2): EBADF otherwise). Simulated here (no NFS mount on a test machine) by a
    ``fcntl.flock`` that refuses LOCK_EX on a read-only descriptor, as NFS does: telling whether
    another process still writes a journal file (read-only, a shared lock) must not fail."""
    import errno
    import fcntl

    from cmf_core.store.journal import owner_alive

    real = fcntl.flock

    def nfs_flock(fd: int, op: int) -> None:
        if op & fcntl.LOCK_EX and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        real(fd, op)

    monkeypatch.setattr(fcntl, "flock", nfs_flock)
    db = tmp_path / "cmf.db"
    w = JournalWriter(journal_dir(db), fsync=False)
    path, _ = w.append({"pipeline": []})
    try:
        assert owner_alive(path)
    finally:
        w.close()
    assert not owner_alive(path)
    with open_store(f"sqlite:///{db}", site="a") as s:  # applies and tidies the dead file
        s.put([Pipeline("p", "a")])
        assert [p.name for p in s.list_pipelines()] == ["p"]
    assert _journal_files(db) == []
