"""The emitter: records now, spools what fails, replays the spool; `cmf spool` commands."""

from __future__ import annotations

import http.server
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cmf_core.cli import app
from cmf_core.config import load_settings
from cmf_core.errors import InvalidEventError, InvalidInputError
from cmf_core.guard import report
from cmf_core.openlineage import emit
from cmf_core.openlineage.emit import Emitter, Sink, spool_target, write_spool_file
from cmf_core.store import open_store


def run_event(run_id: str, event_type: str = "COMPLETE") -> dict:
    return {
        "eventType": event_type,
        "eventTime": "2026-11-27T10:00:00Z",
        "producer": "https://example.com/test",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": run_id},
        "job": {"namespace": "test", "name": "pipe.step"},
        "inputs": [],
        "outputs": [],
    }


class BrokenSink(Sink):
    """Stands in for a store or server that is down."""

    kind = "broken"

    def send(self, event: dict) -> None:
        raise ConnectionError("store unreachable")



def stall_store(db: Path) -> sqlite3.Connection:
    """A real stall of the embedded store: another process's write lock held (here a sqlite3
    connection in ``BEGIN IMMEDIATE``) on a WAL database the CMF store has not created yet, so
    opening the store, which must create its tables, waits for the lock. (An up-to-date store
    no longer waits: it opens with a read and records to its journal without the lock.)
    ``ROLLBACK`` and close the connection to free it."""
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("PRAGMA journal_mode=WAL")
    lock.execute("BEGIN IMMEDIATE")
    return lock

def test_records_into_the_store(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, site="a")
    em = Emitter(settings)
    rid = str(uuid.uuid4())
    assert em.emit(run_event(rid)) is True
    em.close()
    with open_store(settings=settings) as s:
        assert s.get_execution(rid).status.value == "completed"


def test_failure_spools_then_retry_records(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, site="a")
    rid = str(uuid.uuid4())
    broken = Emitter(settings, sink=BrokenSink())
    assert broken.emit(run_event(rid)) is False  # never raises into the caller
    assert len(broken.spooled_files()) == 1
    result = CliRunner().invoke(app, ["spool", "status"], env={"CMF_HOME": str(tmp_path)})
    assert "1 event(s) waiting" in result.output
    result = CliRunner().invoke(app, ["spool", "retry"], env={"CMF_HOME": str(tmp_path),
                                                              "CMF_SITE": "a"})
    assert result.exit_code == 0, result.output
    assert "recorded 1 event(s); 0 still waiting" in result.output
    with open_store(settings=settings) as s:
        assert s.get_execution(rid) is not None


class FlakySink(Sink):
    """A store that is down while ``down`` is set, then works (events kept in ``got``)."""

    kind = "flaky"

    def __init__(self) -> None:
        self.down = True
        self.got: list[str] = []

    def send(self, event: dict) -> None:
        if self.down:
            raise ConnectionError("store unreachable")
        self.got.append(event["run"]["runId"])


def test_a_long_lived_emitter_replays_what_it_spooled_once_the_sink_works(
        tmp_path: Path) -> None:
    """A long-lived process (a server, a watcher, a notebook) replayed its spool only when its
    emitter was made: events spooled during a later outage waited for another process or
    `cmf spool retry`. The first event recorded after the outage now takes them along; and a
    replay_spool (each new Cmf logger of a store with events waiting) replays them too."""
    settings = load_settings(home=tmp_path, site="a")
    sink = FlakySink()
    em = Emitter(settings, sink=sink)
    first, second, third = (str(uuid.uuid4()) for _ in range(3))
    assert em.emit(run_event(first)) is False and em.emit(run_event(second)) is False
    assert len(em.spooled_files()) == 2
    sink.down = False
    assert em.emit(run_event(third)) is True
    assert sink.got == [third, first, second] and em.spooled_files() == []
    # an outage, then nothing more to record: a new logger's replay_spool takes the rest
    emit._EMITTERS.clear()
    try:
        sink.down = True
        kept = emit._EMITTERS[emit._key(settings)] = Emitter(settings, sink=sink)
        late = str(uuid.uuid4())
        assert kept.emit(run_event(late)) is False
        sink.down = False
        emit.replay_spool(settings)
        assert sink.got[-1] == late and kept.spooled_files() == []
    finally:
        emit._EMITTERS.clear()


def test_invalid_event_is_rejected_not_lost(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                            ) -> None:
    settings = load_settings(home=tmp_path, site="a")
    em = Emitter(settings)
    bad = run_event("not-a-uuid")
    assert em.emit(bad) is False
    rejected = list((tmp_path / "spool" / "rejected").glob("*.json"))
    assert len(rejected) == 1 and "not-a-uuid" in rejected[0].read_text()
    assert "no impact on the task" in caplog.text and "not retried" in caplog.text


def failed_event(run_id: str, message: str) -> dict:
    event = run_event(run_id, "FAIL")
    event["run"]["facets"] = {"errorMessage": {
        "_producer": "https://example.com/test",
        "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json"
                      "#/$defs/ErrorMessageRunFacet",
        "message": message, "programmingLanguage": "python"}}
    return event


UNDECODABLE = os.fsdecode(b"caf\xe9.csv")  # what os.listdir gives for a non-UTF-8 file name


def test_lone_surrogates_are_recorded_as_escapes(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, site="a")
    em = Emitter(settings)
    rid = str(uuid.uuid4())
    assert em.emit(failed_event(rid, f"cannot open {UNDECODABLE} \ud800")) is True
    em.close()
    with open_store(settings=settings) as s:
        assert s.get_execution(rid).error == "cannot open caf\\xe9.csv \\ud800"


def test_lone_surrogates_are_spooled(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, site="a")
    broken = Emitter(settings, sink=BrokenSink())
    assert broken.emit(failed_event(str(uuid.uuid4()), UNDECODABLE)) is False
    (spooled,) = broken.spooled_files()
    assert "caf\\\\xe9.csv" in spooled.read_text(encoding="utf-8")
    # the spool writes whatever it is given, even text no store takes
    assert broken.spool({"text": "\udce9"}) is not None


def test_torn_spool_files_are_set_aside_not_blocking(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, site="a")
    rid = str(uuid.uuid4())
    broken = Emitter(settings, sink=BrokenSink())
    broken.emit(run_event(rid))
    spool = tmp_path / "spool"
    (spool / "0-empty.json").write_text("")  # a crash before the data reached the disk
    (spool / "1-torn.json").write_text('{"eventType": "COMP')
    em = Emitter(settings)
    assert em.retry_spool() == (1, 0)
    em.close()
    assert sorted(p.name for p in (spool / "rejected").iterdir()) == [
        "0-empty.json", "0-empty.json.reason", "1-torn.json", "1-torn.json.reason"]
    assert "unreadable" in (spool / "rejected" / "1-torn.json.reason").read_text()
    with open_store(settings=settings) as s:
        assert s.get_execution(rid) is not None


def test_a_copy_written_ahead_is_the_spooled_copy(tmp_path: Path) -> None:
    """A caller's write-ahead copy (Prefect's recorder) is deleted once recorded, is the one
    spooled copy when the sink fails, and moves to rejected/ with a refused event."""
    settings = load_settings(home=tmp_path, site="a")
    spool = tmp_path / "spool"
    events = [run_event(str(uuid.uuid4())) for _ in range(3)]
    ahead = [write_spool_file(spool, e, spool_target(settings), durable=False) for e in events]
    assert Emitter(settings, sink=BrokenSink()).emit(events[0], ahead[0]) is False
    assert sorted(spool.glob("*.json")) == sorted(ahead)  # no second copy
    refused = Emitter(settings, sink=RacedSink(tmp_path / "elsewhere"))
    assert refused.emit(events[1], ahead[1]) is False
    assert sorted(spool.glob("*.json")) == [ahead[0], ahead[2]]
    assert len(list((spool / "rejected").glob("*.json"))) == 1
    em = Emitter(settings)
    assert em.emit(events[2], ahead[2]) is True
    assert sorted(spool.glob("*.json")) == [ahead[0]]
    assert em.retry_spool() == (1, 0)
    em.close()
    with open_store(settings=settings) as s:
        assert [s.get_execution(e["run"]["runId"]) is not None for e in events] == [
            True, False, True]


class RacedSink(Sink):
    """Refuses every event as invalid, after another replaying process (played here by the
    sink) has already moved the same spool file to rejected/."""

    kind = "raced"

    def __init__(self, spool: Path) -> None:
        self.spool = spool

    def send(self, event: dict) -> None:
        for path in self.spool.glob("*.json"):
            (self.spool / "rejected").mkdir(exist_ok=True)
            os.replace(path, self.spool / "rejected" / path.name)
        raise InvalidEventError("refused")


def test_a_file_another_replay_rejected_first_is_passed_over(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, site="a")
    Emitter(settings, sink=BrokenSink()).emit(run_event(str(uuid.uuid4())))
    spool = tmp_path / "spool"
    (waiting,) = Emitter(settings, sink=BrokenSink()).spooled_files()
    em = Emitter(settings, sink=RacedSink(spool))
    assert em.retry_spool() == (0, 0)  # not FileNotFoundError
    assert [p.name for p in (spool / "rejected").glob("*.json")] == [waiting.name]


class RefusingServer(http.server.BaseHTTPRequestHandler):
    """A real HTTP server standing in for a CMF server: answers 400 to events of job "bad"."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        code = 400 if b'"name":"bad"' in body else 200
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def test_server_refusal_is_rejected_not_retried_forever(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RefusingServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        settings = load_settings(home=tmp_path, site="a", server_url=url)
        bad = run_event(str(uuid.uuid4()))
        bad["job"]["name"] = "bad"
        broken = Emitter(settings, sink=BrokenSink())
        broken.emit(bad)
        broken.emit(run_event(str(uuid.uuid4())))
        em = Emitter(settings)
        assert em.retry_spool() == (1, 0)
        assert em.emit(bad) is False  # refused now: rejected, not spooled for retry
        em.close()
        rejected = tmp_path / "spool" / "rejected"
        assert len(list(rejected.glob("*.json"))) == 2
        assert not em.spooled_files()
    finally:
        server.shutdown()


def test_a_bad_run_id_is_rejected_while_the_server_is_down(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The server would refuse a runId that is not a UUID (400); the HTTP sink says so itself,
    so the event is set aside at once instead of waiting in the spool for the server."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on: the server is down
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    em = Emitter(load_settings(home=tmp_path, site="a", server_url=url))
    assert em.emit(run_event("run-42")) is False
    assert em.emit(run_event(str(uuid.uuid4()))) is False  # a good one waits for the server
    em.close()
    rejected = list((tmp_path / "spool" / "rejected").glob("*.json"))
    assert len(rejected) == 1 and len(em.spooled_files()) == 1
    assert json.loads(rejected[0].read_text())["run"]["runId"] == "run-42"
    assert "run.runId 'run-42' is not a UUID" in caplog.text


def test_spool_replays_only_into_the_store_it_was_meant_for(tmp_path: Path) -> None:
    """Two projects with different stores share one CMF home, so one spool folder."""
    a = load_settings(home=tmp_path, site="a", store_url=f"sqlite:///{tmp_path / 'a.db'}")
    b = load_settings(home=tmp_path, site="a", store_url=f"sqlite:///{tmp_path / 'b.db'}")
    for_a, legacy = str(uuid.uuid4()), str(uuid.uuid4())
    Emitter(a, sink=BrokenSink()).emit(run_event(for_a))  # store A is down
    old = tmp_path / "spool" / "1-0123456789abcdef.json"  # written before files named a target
    old.write_text(json.dumps(run_event(legacy)))
    em_b = Emitter(b)
    assert em_b.retry_spool() == (1, 0)  # the old file, as before; A's event stays
    em_b.close()
    result = CliRunner().invoke(app, ["spool", "status"], env={"CMF_HOME": str(tmp_path),
                                                               "CMF_STORE_URL": b.store_url})
    assert f"sqlite:///{tmp_path / 'a.db'}: 1 waiting, 0 rejected" in result.output
    em_a = Emitter(a)
    assert em_a.retry_spool() == (1, 0)
    em_a.close()
    with open_store(settings=b) as s:
        assert s.get_execution(legacy) is not None and s.get_execution(for_a) is None
    with open_store(settings=a) as s:
        assert s.get_execution(for_a) is not None


def test_spool_of_a_store_that_moved_is_replayed_on_request(tmp_path: Path) -> None:
    """Events spooled for a store URL that is gone for good (the store moved, or a server was
    replaced by a local store) are replayed into the current store with ``--from``."""
    gone = "postgresql://u:secret@old-host:5432/cmf"
    old = load_settings(home=tmp_path, site="a", store_url=gone)
    new = load_settings(home=tmp_path, site="a", store_url=f"sqlite:///{tmp_path / 'n.db'}")
    runs = [str(uuid.uuid4()) for _ in range(3)]
    em_old = Emitter(old, sink=BrokenSink())
    for run in runs:
        em_old.emit(run_event(run))
    env = {"CMF_HOME": str(tmp_path), "CMF_STORE_URL": new.store_url}
    # the masked URL, as `cmf spool status` shows it, names the target
    result = CliRunner().invoke(app, ["spool", "retry", "--limit", "1", "--from",
                                      "postgresql://u:***@old-host:5432/cmf"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("recorded 1 event(s); 2 still waiting")
    assert f"(recorded into {new.store_url})" in result.output
    em = Emitter(new)
    assert em.retry_spool() == (0, 0)  # its own spool is empty: the moved store's stays apart
    assert em.retry_spool(from_target=gone) == (2, 0)  # the URL with its password works too
    em.close()
    with open_store(settings=new) as s:
        assert all(s.get_execution(run) is not None for run in runs)
    assert not list((tmp_path / "spool").glob("*.json"))
    # a mistyped --from replayed nothing and exited 0 ("recorded 0 event(s)"): now an error
    # naming the targets; the real one, all replayed, is still known (exit 0, nothing left)
    typo = CliRunner().invoke(app, ["spool", "retry", "--from",
                                    "postgresql://u:***@old-hots:5432/cmf"], env=env)
    assert typo.exit_code == 1 and isinstance(typo.exception, InvalidInputError)
    assert str(typo.exception) == (
        f"no events were ever spooled in {tmp_path / 'spool'} for "
        "'postgresql://u:***@old-hots:5432/cmf'; give one of: "
        "postgresql://u@old-host/cmf (cmf spool status lists them)")
    again = CliRunner().invoke(app, ["spool", "retry", "--from", gone], env=env)
    assert again.exit_code == 0 and again.output.startswith("recorded 0 event(s); 0 still")


SPOOL_ONE = """
import sys, uuid
from cmf_core.config import load_settings
from cmf_core.openlineage.emit import Emitter
event = {"eventType": "COMPLETE", "eventTime": "2026-11-27T10:00:00Z",
         "producer": "https://example.com/test",
         "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
         "run": {"runId": sys.argv[1]}, "job": {"namespace": "test", "name": "pipe.step"},
         "inputs": [], "outputs": []}
em = Emitter(load_settings())
print(em.spool(event))
"""


def test_a_store_named_by_a_relative_path_shares_its_spool_with_every_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker in the project folder with ``CMF_HOME=.cmf`` spools an event; a process
    elsewhere naming the same home by its absolute path (a scheduler, `cmf spool status` in
    another folder) counts and records it, and the other way round. The spool files used to
    be keyed by the URL as spelled (``sqlite:///.cmf/cmf.db``), so each side saw none of the
    other's events."""
    project = tmp_path / "project"
    home = project / ".cmf"
    home.mkdir(parents=True)
    run_rel, run_abs = str(uuid.uuid4()), str(uuid.uuid4())
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    out = subprocess.run([sys.executable, "-c", SPOOL_ONE, run_rel], cwd=project, check=True,
                         env={**env, "CMF_HOME": ".cmf", "CMF_SITE": "a"},
                         capture_output=True, text=True).stdout
    assert (project / out.strip()).parent == home / "spool"
    settings = load_settings(home=home, site="a")  # this process: another folder, absolute
    assert Path.cwd() != project
    em = Emitter(settings, sink=BrokenSink())
    assert len(em.spooled_files()) == 1
    status = CliRunner().invoke(app, ["spool", "status"], env={"CMF_HOME": str(home)})
    assert status.output.startswith(f"1 event(s) waiting, 0 rejected, for "
                                    f"sqlite:///{home / 'cmf.db'}")
    from cmf_core import Cmf

    Cmf(pipeline_name="p", settings=settings, measure_energy=False)  # replays at start
    with open_store(settings=settings) as s:
        assert s.get_execution(run_rel) is not None
    assert em.emit(run_event(run_abs)) is False  # the store is down here: spooled
    # the worker's side, in its folder with its relative home, records it
    monkeypatch.chdir(project)
    done = CliRunner().invoke(app, ["spool", "retry"], env={"CMF_HOME": ".cmf", "CMF_SITE": "a"})
    assert done.exit_code == 0, done.output
    assert done.output.startswith("recorded 1 event(s); 0 still waiting")
    with open_store(settings=settings) as s:
        assert s.get_execution(run_abs) is not None


def test_events_an_older_version_spooled_for_a_relative_path_are_found(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spool files an older cmf keyed by a relative store URL are the store's own where that
    path, taken from the current folder, is its file; elsewhere `cmf spool status` lists them
    with the key `cmf spool retry --from` records them by. None is dropped."""
    project = tmp_path / "project"
    home = project / ".cmf"
    home.mkdir(parents=True)
    rid = str(uuid.uuid4())
    old = write_spool_file(home / "spool", run_event(rid), "sqlite:///.cmf/cmf.db")
    key = old.name.split(".")[-2]
    settings = load_settings(home=home, site="a")
    env = {"CMF_HOME": str(home), "CMF_SITE": "a"}
    # from another folder: listed apart, with the command that records them here
    monkeypatch.chdir(tmp_path)
    assert Emitter(settings).spooled_files() == []
    status = CliRunner().invoke(app, ["spool", "status"], env=env)
    assert "  sqlite:///.cmf/cmf.db: 1 waiting, 0 rejected" in status.output
    assert f"cmf spool retry --from {key})" in status.output
    data = json.loads(CliRunner().invoke(app, ["spool", "status", "--json"], env=env).output)
    assert data["targets"] == [{"target": "sqlite:///.cmf/cmf.db", "key": key, "waiting": 1,
                                "rejected": 0}]
    result = CliRunner().invoke(app, ["spool", "retry", "--from", key], env=env)
    assert result.output.startswith("recorded 1 event(s); 0 still waiting"), result.output
    # from the project folder, where the old process ran: the store's own, replayed as before
    later = str(uuid.uuid4())
    old = write_spool_file(home / "spool", run_event(later), "sqlite:///.cmf/cmf.db")
    monkeypatch.chdir(project)
    assert Emitter(settings, sink=BrokenSink()).spooled_files() == [old]
    status = CliRunner().invoke(app, ["spool", "status"], env=env)
    assert status.output.startswith("1 event(s) waiting")
    assert f"  sqlite:///{home / 'cmf.db'}: 1 waiting, 0 rejected" in status.output
    from cmf_core import Cmf

    Cmf(pipeline_name="p", settings=settings, measure_energy=False)  # replays at start
    with open_store(settings=settings) as s:
        assert s.get_execution(rid) is not None and s.get_execution(later) is not None


def test_spool_target_names_a_sqlite_file_by_its_canonical_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.chdir(tmp_path / "real")
    monkeypatch.setenv("HOME", str(tmp_path))
    want = f"sqlite:///{tmp_path / 'real' / 'cmf.db'}"
    for url in ("sqlite:///cmf.db", "sqlite:///./x/../cmf.db", "sqlite:///~/link/cmf.db",
                f"sqlite:///{tmp_path / 'link' / 'cmf.db'}", want):
        assert spool_target(load_settings(store_url=url)) == want, url
    assert spool_target(load_settings(home=Path(".cmf"))) == \
        f"sqlite:///{tmp_path / 'real' / '.cmf' / 'cmf.db'}"
    assert spool_target(load_settings(store_url="sqlite:///db.sqlite?timeout=3")) == \
        f"sqlite:///{tmp_path / 'real' / 'db.sqlite'}?timeout=3"
    for url in ("sqlite://", "sqlite:///:memory:"):  # no file: as it is
        assert spool_target(load_settings(store_url=url)) == url


def test_spool_target_hides_passwords() -> None:
    settings = load_settings(store_url="postgresql://u:secret@db:5432/cmf")
    assert spool_target(settings) == "postgresql://u@db/cmf"


def test_spellings_of_one_server_or_database_share_one_spool_key(tmp_path: Path) -> None:
    """A trailing ``/``, an upper-case scheme or host, the default port, the driver name and the
    password (in the URL, as ``?password=``, or none: PGPASSWORD) do not change the server or
    database that events go to, so they do not change the key its spool files carry: a
    scheduler with ``CMF_SERVER_URL=http://h:8080/`` and a worker with ``http://h:8080``
    count and replay each other's events. No password reaches the key's file."""
    spellings = {
        "http://cmf.example:8080": ["http://cmf.example:8080/", "HTTP://CMF.Example:8080/"],
        "http://u@cmf.example:8080": ["http://u:secret@CMF.example:8080/"],
        "https://cmf.example/cmf": ["https://cmf.example:443/cmf/", "HTTPS://cmf.example/cmf",
                                    "https://cmf.example/cmf?token=secret"],
        "http://cmf.example": ["http://cmf.example:80/", "http://cmf.example/"],
        "postgresql://etl@db/cmf": [
            "postgresql+psycopg://etl:secret@db/cmf", "postgresql://etl:secret@DB:5432/cmf",
            "postgresql+psycopg2://etl@db:5432/cmf", "postgresql://etl:se/cret@db/cmf",
            "postgresql://etl@db/cmf?password=secret"],
        "postgresql://etl@db/cmf?sslmode=require": [
            "postgresql+psycopg://etl:secret@db/cmf?sslmode=require&sslpassword=secret"],
    }
    for want, urls in spellings.items():
        for url in [want, *urls]:
            field = "server_url" if url.lower().startswith("http") else "store_url"
            settings = load_settings(home=tmp_path, site="a", **{field: url})
            assert spool_target(settings) == want, url
            em = Emitter(settings, sink=BrokenSink())
            assert em.key == emit.target_key(want), url
            em.close()
    # other servers and databases stay apart
    for a, b in (("http://h:8080", "http://h:8081"), ("http://h", "https://h"),
                 ("http://h/a", "http://h/A"), ("postgresql://u@db/cmf", "postgresql://v@db/cmf"),
                 ("postgresql://u@db/cmf", "postgresql://u@db:5433/cmf")):
        assert emit.canonical_target(a) != emit.canonical_target(b)
    em = Emitter(load_settings(home=tmp_path, site="a",
                               store_url="postgresql://etl:se/cret@db/cmf?password=secret"),
                 sink=BrokenSink())
    em.emit(run_event(str(uuid.uuid4())))
    em.close()
    assert "secret" not in "".join(p.name + p.read_text()
                                   for p in (tmp_path / "spool").rglob("*") if p.is_file())


def test_events_an_older_version_spooled_for_another_spelling_are_found(tmp_path: Path) -> None:
    """Spool files an older cmf keyed by a server URL with a trailing ``/`` or a database URL
    with a driver and a (hidden) password are the current target's: counted by `cmf spool
    status` and replayed by it, not left under a target nobody replays."""
    old_server = write_spool_file(tmp_path / "spool", run_event(str(uuid.uuid4())),
                                  "http://cmf.example:8080/")
    old_db = write_spool_file(tmp_path / "spool", run_event(str(uuid.uuid4())),
                              "postgresql+psycopg://etl:***@db:5432/cmf")
    server = load_settings(home=tmp_path, site="a", server_url="http://cmf.example:8080")
    em = Emitter(server, sink=BrokenSink())
    assert em.spooled_files() == [old_server]
    assert em.spool_counts() == [
        ("http://cmf.example:8080", em.key, 1, 0),
        ("postgresql+psycopg://etl:***@db:5432/cmf", old_db.name.split(".")[-2], 1, 0)]
    em.close()
    sink = RecordingSink()  # stands in for the PostgreSQL store (none runs here)
    db = Emitter(load_settings(home=tmp_path, site="a", store_url="postgresql://etl@db/cmf"),
                 sink=sink)
    run_id = json.loads(old_db.read_bytes())["run"]["runId"]
    assert db.retry_spool() == (1, 0)
    assert sink.run_ids == [run_id]
    assert not old_db.exists() and old_server.exists()
    db.close()
    # the server is gone for good: --from its URL, in any spelling, takes the events spooled
    # under both spellings (not only those of the spelling given)
    Emitter(server, sink=BrokenSink()).emit(run_event(str(uuid.uuid4())))
    sink = RecordingSink()
    local = Emitter(load_settings(home=tmp_path, site="a"), sink=sink)
    assert local.knows_target("HTTP://cmf.example:8080/")
    assert local.retry_spool(from_target="http://cmf.example:8080/") == (2, 0)
    assert len(sink.run_ids) == 2 and not list((tmp_path / "spool").glob("*.json"))
    local.close()


def test_event_with_a_reference_loop_never_raises(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    event = run_event(str(uuid.uuid4()))
    event["run"]["facets"] = {"loop": {}}
    event["run"]["facets"]["loop"]["self"] = event["run"]["facets"]["loop"]
    em = Emitter(load_settings(home=tmp_path, site="a"), sink=BrokenSink())
    assert em.emit(event) is False
    assert "unspooled event: <not serialisable: TooDeepError>" in caplog.text  # a loop


def test_warning_says_what_became_of_the_event(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    Emitter(load_settings(home=tmp_path, site="a"), sink=BrokenSink()).emit(
        run_event(str(uuid.uuid4())))
    assert "the event is spooled for retry" in caplog.text
    caplog.clear()
    report("reading the configuration", ValueError("bad"))  # nothing kept: nothing claimed
    assert "no impact on the task itself." in caplog.text and "retry" not in caplog.text


def test_a_stuck_store_costs_one_timeout_not_one_per_event(tmp_path: Path) -> None:
    """Another process holds the store's write lock (a long transaction, held here with
    sqlite3): the first event waits ``hook_timeout_s`` and is spooled; the next ones are spooled
    without waiting; nothing is lost once the store is free."""

    from cmf_core.openlineage import emit

    settings = load_settings(home=tmp_path, site="a", hook_timeout_s=0.5)
    lock = stall_store(tmp_path / "cmf.db")
    runs = [str(uuid.uuid4()) for _ in range(5)]
    em = Emitter(settings)
    sends, closes = [], []  # the real store sink, its calls counted
    real_send = em.sink.send
    em.sink.send = lambda data: (sends.append(data), real_send(data))[1]  # type: ignore
    try:
        for run in runs:
            assert em.emit(run_event(run)) is False
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert len(sends) == 1  # the first event waited and timed out; the rest skipped the sink
    assert len(em.spooled_files()) == 5
    em.sink.close = lambda: closes.append(1)  # type: ignore[method-assign]
    assert em.close(timeout=0.5) is False and closes == []  # no wait for the stuck send
    em.stuck_until = 0.0  # as after emit.SINK_BACKOFF_S
    assert emit.SINK_BACKOFF_S >= 10
    fresh = Emitter(settings)
    assert fresh.retry_spool() == (5, 0)
    fresh.close()
    with open_store(settings=settings) as s:
        assert all(s.get_execution(run) is not None for run in runs)


def test_a_stuck_store_costs_the_next_processes_no_timeout(tmp_path: Path) -> None:
    """The first process that finds the store stuck notes it in the spool folder; an emitter
    made meanwhile (as in the next task's process) spools at once and does not replay the spool
    into the stuck store; once the note has expired, the sink is used again."""

    from cmf_core.openlineage import emit

    settings = load_settings(home=tmp_path, site="a", hook_timeout_s=0.5)
    lock = stall_store(tmp_path / "cmf.db")
    try:
        first = Emitter(settings)
        assert first.emit(run_event(str(uuid.uuid4()))) is False  # waited 0.5 s, spooled
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    note = settings.spool_path / f".backoff.{first.key}"
    assert note.is_file()

    class Counting(Sink):
        kind = "counting"
        calls = 0

        def send(self, event: dict) -> None:
            Counting.calls += 1

    later = Emitter(settings, sink=Counting())  # the store is free again, but it cannot know
    assert later.emit(run_event(str(uuid.uuid4()))) is False
    assert Counting.calls == 0 and len(later.spooled_files()) == 2
    assert later.close() is True  # no send of its own is stuck: its sink closes
    emit._EMITTERS.clear()
    try:  # a process's first emitter does not replay into a sink noted as stuck
        assert len(emit.get_emitter(settings).spooled_files()) == 2
    finally:
        emit._EMITTERS.clear()

    import time
    note.write_text("not a time")  # unreadable or expired notes are ignored
    assert Emitter(settings, sink=Counting()).emit(run_event(str(uuid.uuid4()))) is True
    note.write_text(f"{time.time() - 1}")
    assert Emitter(settings, sink=Counting()).emit(run_event(str(uuid.uuid4()))) is True
    assert Counting.calls == 2

    note.write_text(f"{time.time() + 20}")  # a replay that works (`cmf spool retry`) ends it
    fresh = Emitter(settings)
    assert fresh.retry_spool() == (2, 0)
    fresh.close()
    assert not note.exists()


def test_a_spool_file_that_cannot_be_read_is_kept_and_does_not_block_the_rest(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A spool file this process cannot read (another user's, an I/O error) stays where it is,
    named in a warning; the replay goes on with the others instead of raising at the oldest."""
    settings = load_settings(home=tmp_path, site="a")
    rids = [str(uuid.uuid4()) for _ in range(2)]
    broken = Emitter(settings, sink=BrokenSink())
    for rid in rids:
        broken.emit(run_event(rid))
    spool = tmp_path / "spool"
    unreadable = spool / f"0-unreadable.{broken.key}.json"
    unreadable.symlink_to("/proc/self/mem")  # a regular file whose read fails (EIO)
    em = Emitter(settings)
    assert em.retry_spool() == (2, 1)
    em.close()
    assert unreadable.is_symlink()  # kept for a process that can read it
    assert unreadable.name in caplog.text
    with open_store(settings=settings) as s:
        assert all(s.get_execution(rid) is not None for rid in rids)


class RecordingSink(Sink):
    """Keeps the run ids it is sent; on its first send, another replay of the same spool
    folder (``during``, a second process's emitter, played here in this one) runs."""

    kind = "recording"

    def __init__(self, during: Emitter | None = None) -> None:
        self.run_ids: list[str] = []
        self.during = during

    def send(self, event: dict) -> None:
        self.run_ids.append(event["run"]["runId"])
        during, self.during = self.during, None
        if during is not None:
            during.retry_spool()


def test_two_replays_at_once_send_each_spooled_event_once(tmp_path: Path) -> None:
    """The processes of a job array start together and each replays the shared spool folder:
    a file one of them is sending is passed over by the others, never sent twice."""
    settings = load_settings(home=tmp_path, site="a")
    rids = [str(uuid.uuid4()) for _ in range(5)]
    broken = Emitter(settings, sink=BrokenSink())
    for rid in rids:
        broken.emit(run_event(rid))
    other = RecordingSink()
    first = RecordingSink(during=Emitter(settings, sink=other))
    Emitter(settings, sink=first).retry_spool()
    assert first.run_ids == rids[:1]  # the other replay took the rest meanwhile
    assert other.run_ids == rids[1:]  # ... and not the file being sent
    assert not broken.spooled_files()


def test_a_spool_file_another_process_is_replaying_is_left_to_it(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, site="a")
    rids = [str(uuid.uuid4()) for _ in range(3)]
    broken = Emitter(settings, sink=BrokenSink())
    for rid in rids:
        broken.emit(run_event(rid))
    busy = broken.spooled_files()[1]
    holder = subprocess.Popen(  # a real second process, claiming the file as a replay does
        [sys.executable, "-c", "import fcntl, sys; f = open(sys.argv[1], 'rb'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
         str(busy)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        sink = RecordingSink()
        assert Emitter(settings, sink=sink).retry_spool() == (2, 1)
        assert sink.run_ids == [rids[0], rids[2]]
    finally:
        holder.communicate("")
    assert Emitter(settings, sink=sink).retry_spool() == (1, 0)  # its claim ended with it
    assert sink.run_ids == [rids[0], rids[2], rids[1]]


def test_a_copy_written_ahead_that_another_process_is_replaying_is_left_to_it(
        tmp_path: Path) -> None:
    """Prefect's recorder writes each event ahead to the spool before sending it; a process
    starting meanwhile replays that folder. The copy it is sending is not sent again."""
    settings = load_settings(home=tmp_path, site="a")
    event = run_event(str(uuid.uuid4()))
    ahead = write_spool_file(tmp_path / "spool", event, spool_target(settings), durable=False)
    holder = subprocess.Popen(  # a real second process, claiming the file as a replay does
        [sys.executable, "-c", "import fcntl, sys; f = open(sys.argv[1], 'rb'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
         str(ahead)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        sink = RecordingSink()
        assert Emitter(settings, sink=sink).emit(event, ahead) is False
        assert sink.run_ids == []
        assert ahead.is_file()  # still the other process's to send (or keep spooled)
    finally:
        holder.communicate("")
    assert Emitter(settings, sink=sink).emit(event, ahead) is True
    assert sink.run_ids == [event["run"]["runId"]]
    assert not ahead.exists()


class SlowServer(http.server.BaseHTTPRequestHandler):
    """A real HTTP server standing in for a healthy but busy CMF server: each event takes
    ``delay`` seconds; the run ids it recorded are kept in ``got``."""

    delay = 0.25
    got: list[str] = []

    def do_POST(self) -> None:
        import time

        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.delay)
        SlowServer.got.append(json.loads(body)["run"]["runId"])
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def _wait_for_replay_threads() -> None:
    """The replay left running at its bound ends with the send it is in: wait for it."""
    for t in threading.enumerate():
        if t.name == "cmf-replaying the spool":
            t.join()


def test_a_slow_but_working_server_does_not_trip_the_breaker(tmp_path: Path) -> None:
    """A replay of a backlog into a server that takes 0.25 s an event (a real loopback HTTP
    server) with a 2 s bound sends what fits, leaves the rest spooled for the next replay, and
    does not pause sending (no back-off here, no note for the other processes): the sink was
    slow, not stuck. A replay that sent nothing by the bound still trips the breaker."""
    SlowServer.got = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        settings = load_settings(home=tmp_path, site="a", server_url=url, hook_timeout_s=2.0)
        broken = Emitter(settings, sink=BrokenSink())
        runs = [str(uuid.uuid4()) for _ in range(30)]  # 7.5 s of sending: more than one bound
        for run in runs:
            broken.emit(run_event(run))
        em = Emitter(settings)
        em.replay()
        _wait_for_replay_threads()
        waiting = len(em.spooled_files())
        assert 0 < len(SlowServer.got) < 30 and len(SlowServer.got) + waiting == 30
        assert len(set(SlowServer.got)) == len(SlowServer.got)  # each sent once
        assert em.stuck_until == 0.0  # the breaker did not trip
        assert not (settings.spool_path / f".backoff.{em.key}").exists()
        fresh = run_event(str(uuid.uuid4()))
        assert em.emit(fresh) is True  # sent to the server, not spooled without trying
        assert SlowServer.got[-1] == fresh["run"]["runId"]
        em.close()
    finally:
        server.shutdown()

    release = threading.Event()

    class Stuck(Sink):  # takes no event at all until released
        kind = "stuck"

        def send(self, event: dict) -> None:
            release.wait()
            raise ConnectionError("gave up")

    stuck = Emitter(load_settings(home=tmp_path, site="a", server_url=url,
                                  hook_timeout_s=0.5), sink=Stuck())
    try:
        stuck.replay()
        assert stuck.stuck_until > 0  # nothing sent within the bound: tripped
        assert (settings.spool_path / f".backoff.{stuck.key}").is_file()
    finally:
        release.set()
        _wait_for_replay_threads()
    assert len(stuck.spooled_files()) == waiting  # nothing lost


def test_a_store_on_a_file_system_without_flock_never_fails_the_task(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The adapters' path (the process-wide emitter) into a store on a file system without
    flock (simulated: ``fcntl.flock`` raising ENOLCK, as on Lustre without ``-o flock``; no
    such mount exists here): nothing raises, the event is spooled, and the warning says what
    is wrong and what to do, not just ``No locks available``."""
    import errno
    import fcntl

    def refuse(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", refuse)
    settings = load_settings(home=tmp_path, site="a")
    emit._EMITTERS.clear()
    try:
        em = emit.get_emitter(settings)
        assert em.emit(run_event(str(uuid.uuid4()))) is False
        assert len(em.spooled_files()) == 1
    finally:
        emit._EMITTERS.clear()
    assert "does not support file locks" in caplog.text and "CMF_HOME" in caplog.text
    assert "the event is spooled for retry" in caplog.text


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_events_spooled_because_another_process_found_the_store_stuck_are_said_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A task process that starts while another's note says the store is stuck (the next
    kfp.local component, the next Airflow task) spools its events without trying the store:
    that is said once at WARNING, with how the events get recorded, not silently (as it was:
    one INFO line) and not once per event."""

    settings = load_settings(home=tmp_path, site="a", hook_timeout_s=0.5)
    lock = stall_store(tmp_path / "cmf.db")
    try:
        first = Emitter(settings)  # the process that paid the timeout
        assert first.emit(run_event(str(uuid.uuid4()))) is False
        assert "cmf spool retry" in "".join(_warnings(caplog))
        caplog.clear()
        caplog.set_level("INFO", logger="cmf")
        later = Emitter(settings)  # as in the next task's process: the note in the spool folder
        assert [later.emit(run_event(str(uuid.uuid4()), t)) for t in ("START", "COMPLETE")] \
            == [False, False]
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    said = _warnings(caplog)
    assert len(said) == 1, said
    assert "spooled without waiting" in said[0] and "cmf spool retry" in said[0]
    assert str(settings.spool_path) in said[0] and "no impact on the task" in said[0]
    assert re.search(r"without waiting until \d\d:\d\d:\d\d UTC\.", said[0]), said[0]
    assert _said_at_info_or_above(caplog) == said  # not first at INFO as the emitter is made
    assert len(later.spooled_files()) == 3


def test_a_server_that_is_down_is_said_once_not_once_per_event(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A CMF server that refuses connections (a real closed port): each event is spooled and
    counted as a failure, but the log says it once at WARNING, with how the events get
    recorded; the same failure again is at DEBUG, so a long flow's log is not flooded (Airflow
    and KFP executors log at INFO)."""
    import socket

    from cmf_core.guard import FAILURES

    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    caplog.set_level("DEBUG", logger="cmf")
    em = Emitter(load_settings(home=tmp_path, site="a", server_url=f"http://127.0.0.1:{port}"))
    before = FAILURES["recording to the http sink"]
    try:
        assert [em.emit(run_event(str(uuid.uuid4()))) for _ in range(5)] == [False] * 5
    finally:
        em.close()
    assert FAILURES["recording to the http sink"] == before + 5
    assert len(em.spooled_files()) == 5
    said = _warnings(caplog)
    assert len(said) == 1, said
    assert "the event is spooled for retry" in said[0] and "cmf spool retry" in said[0]
    assert sum("failed again" in r.getMessage() for r in caplog.records
               if r.levelname == "DEBUG") == 4
    assert _said_at_info_or_above(caplog) == said


def _closed_port() -> int:
    import socket

    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _said_at_info_or_above(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("cmf") and r.levelno >= logging.INFO]


def test_a_server_still_down_at_the_next_process_start_is_said_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The next task's process (a KFP executor, an Airflow task) starts while the server is
    still down and events of the one before wait in the spool: its start-up replay fails, then
    its own events do. The task log says so once, at WARNING with what to do (it said it twice,
    "replaying a spooled event failed" and "recording to the http sink failed", and then once
    more at INFO per event: three lines per task at the executors' INFO level)."""
    caplog.set_level("DEBUG", logger="cmf")
    settings = load_settings(home=tmp_path, site="a",
                             server_url=f"http://127.0.0.1:{_closed_port()}")
    write_spool_file(settings.spool_path, run_event(str(uuid.uuid4())), spool_target(settings))
    em = Emitter(settings)
    try:
        em.replay()  # as get_emitter does when it makes the process's emitter
        assert [em.emit(run_event(str(uuid.uuid4()), t)) for t in ("START", "COMPLETE")] \
            == [False, False]
    finally:
        em.close()
    assert len(em.spooled_files()) == 3
    said = _said_at_info_or_above(caplog)
    assert len(said) == 1, said
    assert "Connection refused" in said[0] and "cmf spool retry" in said[0]
    assert str(settings.spool_path) in said[0]


def test_a_stuck_store_found_by_the_start_up_replay_is_said_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A store locked by another process (a real SQLite lock) while events wait in the spool:
    the start-up replay overruns the hook timeout and the task's own events are then spooled
    without waiting. One WARNING says it with what to do, not one for the replay and another
    for the first event skipped."""

    caplog.set_level("INFO", logger="cmf")
    settings = load_settings(home=tmp_path, site="a", hook_timeout_s=0.5)
    write_spool_file(settings.spool_path, run_event(str(uuid.uuid4())), spool_target(settings))
    lock = stall_store(tmp_path / "cmf.db")
    try:
        em = Emitter(settings)
        em.replay()
        assert [em.emit(run_event(str(uuid.uuid4()), t)) for t in ("START", "COMPLETE")] \
            == [False, False]
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    said = _said_at_info_or_above(caplog)
    assert len(said) == 1, said
    assert "took longer than 0.5 s" in said[0] and "cmf spool retry" in said[0]
    assert len(em.spooled_files()) == 3


def test_a_sink_that_fails_again_after_working_is_said_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Stands in for a store that fails, works, then fails again (a flapping database): each
    new outage gets its WARNING; a different failure within one outage is said too."""

    class Flapping(Sink):
        kind = "flapping"
        error: Exception | None = None

        def send(self, event: dict) -> None:
            if self.error is not None:
                raise self.error

    sink = Flapping()
    em = Emitter(load_settings(home=tmp_path, site="a"), sink=sink)
    sink.error = ConnectionError("down")
    em.emit(run_event(str(uuid.uuid4())))
    em.emit(run_event(str(uuid.uuid4())))
    sink.error = OSError("disk full")
    em.emit(run_event(str(uuid.uuid4())))
    sink.error = None
    assert em.emit(run_event(str(uuid.uuid4()))) is True  # works: replays the 3 spooled
    assert em.spooled_files() == []
    sink.error = ConnectionError("down")
    em.emit(run_event(str(uuid.uuid4())))
    said = _warnings(caplog)
    assert [("down" in m, "disk full" in m) for m in said] == [
        (True, False), (False, True), (True, False)], said


def test_spool_status_says_why_events_wait_and_how_to_send_them(tmp_path: Path) -> None:
    """`cmf spool status` after a stuck store: the counts, that every process skips the store
    for now (the back-off note) and until when, since when the oldest waits, what records them,
    and where the reasons of rejected events are."""

    settings = load_settings(home=tmp_path, site="a", hook_timeout_s=0.5)
    lock = stall_store(tmp_path / "cmf.db")
    try:
        em = Emitter(settings)
        assert em.emit(run_event(str(uuid.uuid4()))) is False  # waited 0.5 s, spooled
        assert em.emit(run_event(str(uuid.uuid4()))) is False  # spooled at once
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    write_spool_file(settings.spool_path / "rejected", run_event("x"), spool_target(settings))
    env = {"CMF_HOME": str(tmp_path)}
    result = CliRunner().invoke(app, ["spool", "status"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("2 event(s) waiting, 1 rejected")
    assert "The store overran the hook timeout moments ago: until " in result.output
    assert "The oldest waits since " in result.output and "`cmf spool retry`" in result.output
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"  # labelled UTC, as the rest of the CLI
    assert re.search(f"moments ago: until {stamp} every", result.output), result.output
    assert re.search(f"The oldest waits since {stamp};", result.output), result.output
    assert f"{tmp_path / 'spool' / 'rejected'}/<name>.reason" in result.output
    # the same for a script or a CI job: --json (times in Unix seconds, as every --json)
    result = CliRunner().invoke(app, ["spool", "status", "--json"], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    target = spool_target(settings)
    assert (data["target"], data["spool_dir"], data["waiting"], data["rejected"]) == (
        target, str(tmp_path / "spool"), 2, 1)
    assert data["targets"] == [{"target": target, "key": emit.target_key(target), "waiting": 2,
                                "rejected": 1}]
    oldest = min(tmp_path.joinpath("spool").glob("*.json"))  # <time ns>-<digest>.<key>.json
    assert data["oldest_spooled_at"] == int(oldest.name.split("-")[0]) / 1e9
    assert data["backoff_until"] > data["oldest_spooled_at"]
    assert CliRunner().invoke(app, ["spool", "retry"], env=env).exit_code == 0
    result = CliRunner().invoke(app, ["spool", "status"], env=env)  # recorded: nothing to say
    assert result.output.startswith("0 event(s) waiting, 1 rejected")
    assert "overran" not in result.output and "oldest" not in result.output
    data = json.loads(CliRunner().invoke(app, ["spool", "status", "--json"], env=env).output)
    assert (data["waiting"], data["rejected"], data["oldest_spooled_at"],
            data["backoff_until"]) == (0, 1, None, None)


def test_a_spool_that_cannot_be_written_is_said_once_with_the_fix(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A container's read-only home: neither the store nor the spool folder can be written, so
    every event failed both ways and each logged three WARNINGs (the event's JSON among them),
    none naming the setting that fixes it. Now the first event's failures are WARNINGs naming
    CMF_SPOOL_DIR / CMF_HOME and the same failures again are DEBUG; each event's JSON is still
    logged at WARNING (its last copy)."""
    (tmp_path / "file").write_text("in the way")  # the spool folder cannot be made (as EROFS)
    settings = load_settings(home=tmp_path / "file" / "home", site="a")
    em = Emitter(settings, sink=BrokenSink())
    caplog.set_level(logging.INFO, logger="cmf")
    runs = [str(uuid.uuid4()) for _ in range(4)]
    for run in runs:
        assert em.emit(run_event(run)) is False
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    said = [w for w in warnings if not w.startswith("cmf: unspooled event: ")]
    assert len(said) == 2, said
    assert "set CMF_SPOOL_DIR (or CMF_HOME) to a writable folder" in said[0]
    assert said[1].startswith("cmf: recording to the broken sink failed (ConnectionError")
    # each event's last copy is the log, at WARNING so that a default log level keeps it
    dumps = [w for w in warnings if w.startswith("cmf: unspooled event: ")]
    assert [run for run in runs if any(run in d for d in dumps)] == runs  # none left out
    (tmp_path / "file").unlink()  # the folder can be made now: the next event is spooled
    assert em.emit(run_event(str(uuid.uuid4()))) is False
    assert len(em.spooled_files()) == 1
