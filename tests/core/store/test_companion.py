"""A bulk writer's journal companion process: real processes, a real SQLite store."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cmf_core.config import load_settings
from cmf_core.model import Execution, Pipeline, Stage
from cmf_core.store import open_store
from cmf_core.store import sql as sql_module
from cmf_core.store.journal import journal_dir
from cmf_core.store.sql import SqlStore

# a bulk writer (batches of 50 puts), then waits to be killed
WRITER = textwrap.dedent("""
    import sys, time
    from cmf_core.model import Execution, Pipeline, Stage
    from cmf_core.store import open_store
    from cmf_core.store import sql
    sql.JOURNAL_BATCH = 50
    url, n = sys.argv[1], int(sys.argv[2])
    s = open_store(url, site="w")
    s.put([Pipeline("p", "w"), Stage("p", "s", "w")])
    for i in range(n):
        s.put([Execution("p", "s", "w", params={"i": i}).ended()])
    print(s._companion.proc.pid, flush=True)
    time.sleep(120)
""")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[3])
    return env


def _applied(db: Path) -> int:
    """Executions in the tables, read without applying anything."""
    with sqlite3.connect(db) as c:
        return c.execute("SELECT count(*) FROM executions").fetchone()[0]


def _wait(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie has exited


def _bulk_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                companion: bool = True) -> SqlStore:
    monkeypatch.setattr(sql_module, "JOURNAL_BATCH", 50)
    settings = load_settings(home=tmp_path, site="w", journal_companion=companion)
    s = open_store(f"sqlite:///{tmp_path / 'cmf.db'}", settings=settings)
    assert isinstance(s, SqlStore)
    s.put([Pipeline("p", "w"), Stage("p", "s", "w")])
    return s


def test_bulk_writer_hands_the_applying_to_a_companion(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "cmf.db"
    s = _bulk_store(tmp_path, monkeypatch)
    ids = []
    for i in range(400):
        e = Execution("p", "s", "w", params={"i": i}).ended()
        s.put([e])
        ids.append(e.id)
    proc = s._companion.proc
    assert proc.poll() is None and proc.pid != os.getpid()
    assert s._journal_mine == {}  # the companion reads the file back: nothing kept in memory
    # the companion applies on its own: rows reach the tables without this process applying
    assert _wait(lambda: _applied(db) >= 350), _applied(db)
    s.close()
    assert proc.returncode == 0  # closing the store ended it
    with open_store(f"sqlite:///{db}", site="check") as r:
        assert sorted(e.id for e in r.list_executions()) == sorted(ids)
    assert list(journal_dir(db).glob("*.log")) == []


def test_writer_killed_its_companion_applies_everything_and_exits(tmp_path: Path) -> None:
    db = tmp_path / "cmf.db"
    p = subprocess.Popen([sys.executable, "-c", WRITER, f"sqlite:///{db}", "300"], env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None
    line = p.stdout.readline().strip()
    assert line.isdigit(), p.stderr.read() if p.stderr else ""
    companion = int(line)
    p.send_signal(signal.SIGKILL)
    p.wait()
    # its pipe closed with the writer: the companion applies what is left, then exits
    assert _wait(lambda: not _running(companion)), "the companion outlived its writer"
    assert _applied(db) == 300
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT count(DISTINCT params) FROM executions").fetchone()[0] == 300
    assert list(journal_dir(db).glob("*.log")) == []  # the dead writer's file, applied: gone


def test_companion_gone_the_writer_applies_itself(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "cmf.db"
    s = _bulk_store(tmp_path, monkeypatch)
    ids = []
    for i in range(300):
        if i == 100:
            s._companion.proc.kill()
            s._companion.proc.wait()
        e = Execution("p", "s", "w", params={"i": i}).ended()
        s.put([e])
        ids.append(e.id)
    assert s._companion_failed
    assert _applied(db) >= 250  # applied here, in batches of 50
    s.close()
    with open_store(f"sqlite:///{db}", site="check") as r:
        assert sorted(e.id for e in r.list_executions()) == sorted(ids)


def test_companion_off_by_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "cmf.db"
    s = _bulk_store(tmp_path, monkeypatch, companion=False)
    for i in range(120):
        s.put([Execution("p", "s", "w", params={"i": i}).ended()])
    assert s._companion is None and _applied(db) >= 99  # applied in this process, by 50s
    s.close()
    assert _applied(db) == 120


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_lets_go_of_the_parents_companion(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "cmf.db"
    s = _bulk_store(tmp_path, monkeypatch)
    for i in range(100):
        s.put([Execution("p", "s", "w", params={"i": i}).ended()])
    proc = s._companion.proc
    child = Execution("p", "s", "child").ended()
    pid = os.fork()
    if pid == 0:  # writes through its own journal and applies itself
        code = 0
        try:
            code = 0 if s._companion is None else 2
            s.put([child])
            s.apply_journal()
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    s.close()  # the parent's pipe was the last one open: the companion ends now
    assert proc.returncode == 0
    assert _applied(db) == 101


def test_an_idle_companion_exits_and_a_new_burst_starts_another(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cmf_core.store import companion as companion_module

    monkeypatch.setattr(companion_module, "IDLE_EXIT_S", 0.5)  # read by the child at start
    db = tmp_path / "cmf.db"
    s = _bulk_store(tmp_path, monkeypatch)
    for i in range(60):
        s.put([Execution("p", "s", "w", params={"i": i}).ended()])
    first = s._companion.proc
    assert first.wait(timeout=30) == 0  # quiet: it applied everything and went away
    assert _applied(db) >= 49
    for i in range(60, 130):
        s.put([Execution("p", "s", "w", params={"i": i}).ended()])
    assert s._companion.proc is not first and not s._companion_failed
    s.close()
    assert _applied(db) == 130


def test_a_companion_that_cannot_start_leaves_the_writer_applying(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # no process can be started here (a sandbox, a seccomp profile): simulated, since this
    # machine can start processes
    from cmf_core.store import companion as companion_module

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError("process creation is not allowed here")

    monkeypatch.setattr(companion_module.subprocess, "Popen", refuse)
    db = tmp_path / "cmf.db"
    s = _bulk_store(tmp_path, monkeypatch)
    for i in range(120):
        s.put([Execution("p", "s", "w", params={"i": i}).ended()])
    assert s._companion is None and s._companion_failed
    assert _applied(db) >= 99
    s.close()
    assert _applied(db) == 120
