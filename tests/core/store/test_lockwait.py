"""Waiting for an embedded store whose write lock another process holds: opening it does not
wait, a long wait is said (the store file and the process holding the lock), and ``cmf serve``
reads answer 503 after a short wait. The lock is held by a real SQLite connection in another
process (``BEGIN IMMEDIATE``); the waits are shortened by patching the module constants."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import cmf_core.store.bulk as bulk
import cmf_core.store.sqlite as sqlite_backend
from cmf_core import Cmf
from cmf_core.errors import StoreError
from cmf_core.model import Pipeline
from cmf_core.store import open_store
from tests.core.server.conftest import live_server

ROOT = Path(__file__).resolve().parents[3]


@contextlib.contextmanager
def held_write_lock(db: Path) -> Iterator[int]:
    """Another process holding the write lock of ``db`` until the block ends; its pid."""
    code = ("import sqlite3, sys\n"
            f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "print('ready', flush=True)\n"
            "sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        yield holder.pid
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store file (made and closed); the busy timeout 0.5 s, the notice after 0.05 s."""
    path = tmp_path / "cmf.db"
    open_store(f"sqlite:///{path}", site="a").close()
    monkeypatch.setattr(bulk, "BUSY_TIMEOUT_MS", 500)
    monkeypatch.setattr(sqlite_backend, "LOCK_NOTICE_S", 0.05, raising=False)
    return path


def test_opening_a_store_does_not_wait_for_another_process_write_lock(db: Path) -> None:
    with held_write_lock(db):
        cmf = Cmf(pipeline_name="p", store=f"sqlite:///{db}", measure_energy=False)
        with cmf.create_execution("train"):
            pass
        cmf.close()  # its apply fails (locked), reported; the journal keeps the execution
    store = open_store(f"sqlite:///{db}", site="a")
    try:
        assert [e.stage for e in store.list_executions()] == ["train"]
    finally:
        store.close()


def test_a_long_wait_for_the_write_lock_is_said_once_naming_the_file_and_holder(
        db: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = open_store(f"sqlite:///{db}", site="a")
    try:
        with held_write_lock(db) as pid:
            store.put([Pipeline(name="p", site="a")])
            caplog.clear()
            with caplog.at_level(logging.DEBUG, logger="cmf"):
                for _ in range(2):
                    with pytest.raises(StoreError) as err:
                        store.apply_journal()
                    assert str(err.value).startswith(f"the store {db} is locked: process {pid} "
                                                     "holds its write lock")
            waits = [r for r in caplog.records if "waiting for the store" in r.getMessage()]
            # said once at WARNING; the later waits (also the applier thread's) at DEBUG
            assert [r.levelno for r in waits][:2] == [logging.WARNING, logging.DEBUG]
            assert {r.levelno for r in waits[1:]} == {logging.DEBUG}
            assert f"waiting for the store {db}: process {pid} holds its write lock" \
                in waits[0].getMessage()
        # released: what waited in the journal lands
        assert [p.name for p in store.list_pipelines()] == ["p"]
    finally:
        store.close()


def test_cli_says_on_stderr_that_it_waits_for_the_store(db: Path) -> None:
    store = open_store(f"sqlite:///{db}", site="a")
    store.put([Pipeline(name="p", site="a")])  # journaled: the command's read applies it first
    code = ("import sys\n"
            "import cmf_core.store.bulk as bulk, cmf_core.store.sqlite as s\n"
            "bulk.BUSY_TIMEOUT_MS = 500; s.LOCK_NOTICE_S = 0.05\n"
            "from cmf_core.script import main\n"
            f"sys.argv = ['cmf', 'pipelines', '--json', '--store', 'sqlite:///{db}']\n"
            "main()\n")
    try:
        with held_write_lock(db) as pid:
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                  timeout=60)
    finally:
        store.close()
    assert done.returncode == 1, done
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[0].startswith(f"waiting for the store {db}: process {pid} holds its write lock")
    assert lines[-1].startswith(f"Error: the store {db} is locked: process {pid} holds")


def test_serve_read_answers_503_after_its_short_wait(db: Path, monkeypatch: pytest.MonkeyPatch
                                                     ) -> None:
    from cmf_core.server import app as server_app

    monkeypatch.setattr(server_app, "SERVE_READ_WAIT_S", 0.2, raising=False)
    store = open_store(f"sqlite:///{db}", site="a")
    try:
        with live_server(store) as live, held_write_lock(db) as pid:
            store.put([Pipeline(name="p", site="a")])  # journaled: a read applies it first
            r = httpx.get(f"{live.url}/api/v1/pipelines", timeout=30)
            assert r.status_code == 503, r.text
            assert r.headers["Retry-After"] == "1"
            assert r.json()["message"] == (
                f"the store {db} is locked: process {pid} holds its write lock for longer "
                "than this process waits (0.2 s); try again once it is released")
    finally:
        store.close()


def test_state_and_conflict_writes_say_their_wait_and_fail_clearly(
        db: Path, caplog: pytest.LogCaptureFixture) -> None:
    # federation merge and peer sync note high-water marks, peers and conflicts with these:
    # they wait for the write lock as every write does (said, then a clear StoreError)
    store = open_store(f"sqlite:///{db}", site="a")
    try:
        with held_write_lock(db) as pid, caplog.at_level(logging.INFO, logger="cmf"):
            for write in (lambda: store.set_state("federation:k", "v"),
                          lambda: store.record_conflict("artifact", "x", "b", {"uri": "u"})):
                with pytest.raises(StoreError) as err:
                    write()
                assert str(err.value).startswith(f"the store {db} is locked: process {pid} "
                                                 "holds its write lock")
        waits = [r for r in caplog.records if "waiting for the store" in r.getMessage()]
        assert [r.levelno for r in waits] == [logging.WARNING]  # said once
        assert f"waiting for the store {db}: process {pid} holds its write lock" \
            in waits[0].getMessage()
        assert store.get_state("federation:k") is None and store.list_conflicts() == []
        # released: both write, a state is replaced and a conflict noted once
        for value in ("v", "w"):
            store.set_state("federation:k", value)
            store.record_conflict("artifact", "x", "b", {"uri": "u"})
        assert store.get_state("federation:k") == "w"
        assert [(c["kind"], c["record_id"], c["site"], c["detail"])
                for c in store.list_conflicts()] == [("artifact", "x", "b", {"uri": "u"})]
    finally:
        store.close()


def test_cli_import_says_it_waits_and_fails_clearly_writing_nothing(tmp_path: Path,
                                                                    db: Path) -> None:
    from cmf_core.federation.export import Selector, export_bundle
    from cmf_core.federation.merge import import_bundle

    origin = open_store(f"sqlite:///{tmp_path / 'origin.db'}", site="o")
    store = open_store(f"sqlite:///{db}", site="a")
    try:
        origin.put([Pipeline(name="p", site="o")])
        import_bundle(store, export_bundle(origin, Selector()))
        state = store.states("federation:")
        assert state  # its high-water mark and version vector
        # the changes since: nothing new, so the import's only write is the federation state
        bundle = tmp_path / "changes.jsonl"
        bundle.write_bytes(b"".join(export_bundle(origin, Selector(since_seq=origin.max_seq()))))
    finally:
        origin.close()
        store.close()
    code = ("import sys\n"
            "import cmf_core.store.bulk as bulk, cmf_core.store.sqlite as s\n"
            "bulk.BUSY_TIMEOUT_MS = 500; s.LOCK_NOTICE_S = 0.05\n"
            "from cmf_core.script import main\n"
            f"sys.argv = ['cmf', 'import', {str(bundle)!r}, '--store', 'sqlite:///{db}']\n"
            "main()\n")
    with held_write_lock(db) as pid:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.returncode == 1, done
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr  # one notice, one error: no traceback
    assert lines[0].startswith(f"waiting for the store {db}: process {pid} holds its write lock")
    assert lines[1].startswith(f"Error: the store {db} is locked: process {pid} holds")
    store = open_store(f"sqlite:///{db}", site="a")
    try:
        assert store.states("federation:") == state  # nothing half-written
    finally:
        store.close()
