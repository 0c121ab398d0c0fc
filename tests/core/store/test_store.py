"""The store contract, run against a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cmf_core.errors import InvalidInputError, StoreError
from cmf_core.identity import remote_digest
from cmf_core.model import (
    Artifact,
    ArtifactLocation,
    EnergyRecord,
    Event,
    Execution,
    ExecutionStatus,
    LineageEvent,
    Metric,
    Pipeline,
    Stage,
)
from cmf_core.store import ExecutionFilter, Store, open_store
from cmf_core.store import migrations as mig
from tests.support.sql import executed


def art(name: str, site: str = "site-a", created_at: float = 1.0, type: str = "Dataset"
        ) -> Artifact:
    return Artifact(id=remote_digest(f"s3://b/{name}", "v1"), type=type, name=name,
                    uri=f"s3://b/{name}", site=site, created_at=created_at)


def chain(store: Store, pipeline: str = "p", n: int = 3, site: str = "site-a") -> list[Artifact]:
    """d0 -> s0 -> d1 -> s1 -> d2 ... written through the public API."""
    arts = [art(f"{pipeline}-d{i}", site) for i in range(n + 1)]
    for i in range(n):
        ex = Execution(pipeline=pipeline, stage=f"s{i}", site=site, params={"i": i})
        store.put([Pipeline(pipeline, site), Stage(pipeline, f"s{i}", site), arts[i], arts[i + 1],
                   ex.ended(), Event(ex.id, arts[i].id, "INPUT"),
                   Event(ex.id, arts[i + 1].id, "OUTPUT"),
                   Metric(ex.id, "loss", 1.0 / (i + 1))])
    return arts


def test_roundtrip_records(store: Store) -> None:
    ex = Execution(pipeline="p", stage="train", site="site-a", params={"lr": 0.1, "layers": [1, 2]},
                   properties={"orchestrator": "test"}, custom_properties={"owner": "me"})
    a = art("x")
    store.put([Pipeline("p", "site-a", properties={"team": "ml"}), Stage("p", "train", "site-a"),
               ex, a, Event(ex.id, a.id, "OUTPUT"), Metric(ex.id, "acc", 0.9),
               Metric(ex.id, "loss", 0.5, step=3),
               EnergyRecord(ex.id, "site-a", 0.002, 0.001, {"cpu": {"method": "model"}})])
    got = store.get_execution(ex.id)
    assert got == ex
    assert store.get_artifact(a.id) == a
    assert store.get_pipeline("p").properties == {"team": "ml"}
    assert [s.name for s in store.list_stages("p")] == ["train"]
    ms = {(m.name, m.step): m.value for m in store.metrics([ex.id])}
    assert ms == {("acc", None): 0.9, ("loss", 3): 0.5}
    [en] = store.energy([ex.id])
    assert en.energy_kwh == 0.002 and en.details["cpu"]["method"] == "model"
    assert store.artifact_locations(a.id) == [ArtifactLocation(a.id, "site-a", a.uri)]


def test_put_is_idempotent(store: Store) -> None:
    chain(store)
    before = list(store.changes())
    for r in before:
        store.put([r])
    store.put(before)
    after = list(store.changes())
    key = sorted(map(repr, before))
    assert sorted(map(repr, after)) == key
    assert store.count_executions() == 3


def test_status_only_moves_forward(store: Store) -> None:
    ex = Execution(pipeline="p", stage="s", site="site-a", started_at=10.0)
    done = ex.ended("completed", ended_at=20.0, params={"final": True})
    store.put([done])
    store.put([ex])  # a late "running" write must not move it back
    got = store.get_execution(ex.id)
    assert got.status is ExecutionStatus.COMPLETED and got.ended_at == 20.0
    assert got.params == {"final": True}
    # an earlier start time is kept, nothing else changes
    store.put([Execution(pipeline="p", stage="s", site="site-a", id=ex.id, started_at=5.0)])
    got = store.get_execution(ex.id)
    assert got.started_at == 5.0 and got.status is ExecutionStatus.COMPLETED


def test_same_bytes_are_one_artifact_earliest_row_wins(store: Store) -> None:
    a_late = Artifact(id=remote_digest("s3://b/x", "v1"), type="Dataset", name="x-at-b",
                      uri="file:///b/x", site="site-b", created_at=2.0)
    a_early = Artifact(id=a_late.id, type="Dataset", name="x-at-a", uri="s3://b/x",
                       site="site-a", created_at=1.0)
    store.put([a_late])
    store.put([a_early])
    got = store.get_artifact(a_late.id)
    assert got.site == "site-a" and got.name == "x-at-a"
    assert {loc.site for loc in store.artifact_locations(a_late.id)} == {"site-a", "site-b"}
    assert len(store.find_artifacts()) == 1


def test_rewriting_a_known_artifact_keeps_the_earliest_row_and_every_location(
        store: Store) -> None:
    # the store object leaves out rows it wrote before that could change nothing: a later
    # row of a known artifact; an earlier row, or a new place of the same bytes, still lands
    a = Artifact(id=remote_digest("s3://b/y", "v1"), type="Dataset", name="y", uri="s3://b/y",
                 site="site-a", created_at=5.0)
    store.put([a])
    store.put([Artifact(id=a.id, type="Dataset", name="y-later", uri="s3://b/y",
                        site="site-a", created_at=9.0)])
    assert store.get_artifact(a.id).name == "y"
    store.put([Artifact(id=a.id, type="Dataset", name="y-copy", uri="s3://mirror/y",
                        site="site-a", created_at=7.0)])
    assert store.get_artifact(a.id).name == "y"
    assert {loc.uri for loc in store.artifact_locations(a.id)} == {"s3://b/y", "s3://mirror/y"}
    store.put([Artifact(id=a.id, type="Dataset", name="y-first", uri="s3://b/y",
                        site="site-a", created_at=1.0)])
    assert store.get_artifact(a.id).name == "y-first"
    assert len(store.find_artifacts()) == 1


def test_the_memo_of_written_locations_is_bounded(store: Store,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # a long-lived writer (cmf serve, a worker) that records the same bytes at a new path on
    # every run (an empty marker file, an unchanged config copied into each run's folder) adds
    # a location each time and no artifact id: the memo of locations written must not grow
    # with them, and every location still lands
    from cmf_core.store import sql

    monkeypatch.setattr(sql, "WRITTEN_MEMO", 50)
    digest = remote_digest("s3://b/_SUCCESS", "v1")
    sizes = []
    for i in range(200):
        store.put([Artifact(id=digest, type="Dataset", name="_SUCCESS",
                            uri=f"s3://b/run-{i}/_SUCCESS", site="site-a", created_at=1.0)])
        sizes.append(len(store._written_locations))
    assert max(sizes) <= 50, max(sizes)
    assert len(store.artifact_locations(digest)) == 200


def test_artifacts_at_a_location_whole_or_by_its_last_parts(store: Store) -> None:
    """A copy of known bytes adds only a location: it is found there, and the latest artifact
    recorded at a location wins (the file was rewritten)."""
    def at(digest_of: str, uri: str, site: str = "site-a", t: float = 1.0) -> Artifact:
        return Artifact(id=remote_digest(f"s3://b/{digest_of}", "v1"), type="Dataset",
                        name=uri.rsplit("/", 1)[-1], uri=uri, site=site, created_at=t)

    y = at("y", "/w/data/y.csv")
    copy = at("y", "/w/data/y2.csv", t=2.0)  # the same bytes: one artifact named y.csv
    store.put([y])
    store.put([copy])
    assert store.artifacts_at("y2.csv", 5) == store.artifacts_at("data/y2.csv", 5) == [
        store.get_artifact(y.id)]
    assert store.artifacts_at("/w/data/y2.csv", 5)[0].name == "y.csv"
    assert store.artifacts_at("a/y2.csv", 5) == store.artifacts_at("Y2.CSV", 5) == []
    assert store.artifacts_at("2.csv", 5) == []  # whole path parts only
    assert store.artifacts_at("%2.csv", 5) == store.artifacts_at("_2.csv", 5) == []
    newer = at("y-v2", "/w/data/y2.csv", t=3.0)  # rewritten in place
    store.put([newer])
    assert [a.id for a in store.artifacts_at("y2.csv", 5)] == [newer.id]
    elsewhere = at("z", "/other/y2.csv", site="site-b", t=4.0)
    store.put([elsewhere])
    assert {a.id for a in store.artifacts_at("y2.csv", 5)} == {newer.id, elsewhere.id}
    assert len(store.artifacts_at("y2.csv", 1)) == 1


def test_lineage_closures(store: Store) -> None:
    arts = chain(store, n=4)
    up = store.upstream(arts[-1].id)
    assert up.artifacts == {a.id for a in arts}
    assert len(up.executions) == 4
    one = store.upstream(arts[-1].id, max_depth=1)
    assert one.artifacts == {arts[-1].id, arts[-2].id}
    assert len(one.executions) == 1
    down = store.downstream(arts[0].id)
    assert down.artifacts == {a.id for a in arts}
    assert store.upstream(arts[0].id).executions == frozenset()
    assert store.stage_edges("p") == [("s0", "s1"), ("s1", "s2"), ("s2", "s3")]


def test_filters(store: Store) -> None:
    chain(store, "p1", 2, site="site-a")
    chain(store, "p2", 3, site="site-b")
    assert store.count_executions(ExecutionFilter(pipeline="p2")) == 3
    assert store.count_executions(ExecutionFilter(site="site-a")) == 2
    assert store.count_executions(ExecutionFilter(status="completed")) == 5
    assert store.count_executions(ExecutionFilter(since=1e12)) == 0
    assert len(store.list_executions(limit=2, offset=4)) == 1
    assert len(store.find_artifacts(pipeline="p1")) == 3
    assert len(store.find_artifacts(site="site-b")) == 4


def test_changes_since_seq_is_incremental(store: Store) -> None:
    chain(store, "p1", 2)
    mark = store.max_seq()
    chain(store, "p2", 1)
    delta = list(store.changes(since_seq=mark))
    assert {getattr(r, "pipeline", None) for r in delta if isinstance(r, Execution)} == {"p2"}
    assert all(not (isinstance(r, Pipeline) and r.name == "p1") for r in delta)
    only_p1 = list(store.changes(pipeline="p1"))
    assert {r.pipeline for r in only_p1 if isinstance(r, Execution)} == {"p1"}


def test_state(store: Store) -> None:
    assert store.get_state("k") is None
    store.set_state("k", "1")
    store.set_state("k", "2")
    assert store.get_state("k") == "2"
    for key in ("peer:a", "peer:b", "Peer:c", "peer_x", "peers", "other"):
        store.set_state(key, key.upper())
    assert store.states("peer:") == {"peer:a": "PEER:A", "peer:b": "PEER:B"}
    assert store.states("peer_") == {"peer_x": "PEER_X"}  # _ and % are no wildcards
    assert store.states("%") == {} and store.states("nope") == {}


def test_non_record_rejected_and_nothing_written(store: Store) -> None:
    with pytest.raises(InvalidInputError, match="not a CMF record"):
        store.put([Pipeline("p", "site-a"), "oops"])  # type: ignore[list-item]
    assert store.list_pipelines() == []


def test_an_artifact_uri_is_held_to_a_locations_limit(store: Store) -> None:
    """An artifact's URI becomes its location, which a peer's import checks: an artifact
    with a longer one would be stored here and then stop every sync from this site."""
    digest = remote_digest("s3://b/key", "1")
    for uri in ("", "s3://" + "q" * 600):
        with pytest.raises(InvalidInputError, match="artifact uri"):
            Artifact(digest, "Dataset", "key", uri, "site-a")
        with pytest.raises(InvalidInputError, match="artifact uri"):
            ArtifactLocation(digest, "site-a", uri)
    with pytest.raises(InvalidInputError, match="site"):
        Artifact(digest, "Dataset", "key", "s3://b/key", "s" * 2000)
    store.put([Artifact(digest, "Dataset", "key", "s3://" + "q" * 507, "site-a")])
    assert len(store.get_artifact(digest).uri) == 512


def test_failed_transaction_writes_nothing(store: Store) -> None:
    bad = Metric("0190a0a0-0000-7000-8000-000000000000", "m", 1.0)
    object.__setattr__(bad, "value", object())  # bypass validation: the driver cannot bind it
    with pytest.raises(StoreError):
        store.put([Pipeline("p", "site-a"), bad])
    assert store.list_pipelines() == []
    store.put([Pipeline("p", "site-a")])  # the store is still usable
    assert [p.name for p in store.list_pipelines()] == ["p"]


# SQLite-specific: bad files --------------------------------------------------------------------

def test_not_a_database(tmp_path: Path) -> None:
    f = tmp_path / "x.db"
    f.write_bytes(b"hello, this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a CMF store"):
        open_store(f"sqlite:///{f}", site="a")
    assert f.read_bytes().startswith(b"hello")


def test_foreign_sqlite_database_untouched(tmp_path: Path) -> None:
    f = tmp_path / "other.db"
    with sqlite3.connect(f) as c:
        c.execute("CREATE TABLE users (id int)")
        c.execute("INSERT INTO users VALUES (1)")
    with pytest.raises(StoreError, match="not a CMF store"):
        open_store(f"sqlite:///{f}", site="a")
    with sqlite3.connect(f) as c:
        assert c.execute("SELECT name FROM sqlite_master").fetchall() == [("users",)]
        # not even switched to WAL mode (that rewrites the file's header)
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_a_damaged_store_is_named_so_without_sql(tmp_path: Path) -> None:
    f = tmp_path / "cmf.db"
    with open_store(f"sqlite:///{f}", site="a") as s:
        s.put([Pipeline("keep", "a")])
    with sqlite3.connect(f) as c:  # a table lost: another program, or a bad restore
        c.execute("DROP TABLE executions")
    with open_store(f"sqlite:///{f}", site="a") as s:
        with pytest.raises(StoreError) as err:
            s.list_executions()
        assert [p.name for p in s.list_pipelines()] == ["keep"]  # the rest still reads
    text = str(err.value)
    assert "is damaged (no such table: executions)" in text and "backup" in text
    assert "SELECT" not in text and "[SQL" not in text and "sqlalche.me" not in text


def undecodable_schema(path: Path) -> None:
    """Overwrite a byte of a table's name in ``path``'s schema (the ``name`` column of
    ``sqlite_master``) with 0xff, not UTF-8: SQLite's "malformed database schema" message
    then quotes it, which Python cannot decode."""
    data = bytearray(path.read_bytes())
    i = data.index(b"tableexecutionsexecutions") + len(b"table")  # type, name, tbl_name
    data[i] = 0xFF
    path.write_bytes(bytes(data))


def test_a_store_whose_schema_text_is_not_utf8_is_named_damaged(tmp_path: Path) -> None:
    """A raw UnicodeDecodeError, as a truncated file gets "damaged"."""
    f = tmp_path / "cmf.db"
    with open_store(f"sqlite:///{f}", site="a") as s:
        s.put([Pipeline("keep", "a")])
    undecodable_schema(f)
    with pytest.raises(StoreError) as err, open_store(f"sqlite:///{f}", site="a") as s:
        s.put([Pipeline("more", "a")])
    text = str(err.value)
    assert f"the CMF store {f} is damaged (malformed database schema" in text
    assert "backup" in text and ".recover" in text


def test_create_false_opens_only_an_existing_store(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "cmf.db"
    with pytest.raises(StoreError) as e:
        open_store(f"sqlite:///{missing}", site="a", create=False)
    assert str(e.value).startswith(f"no CMF store at {missing} (create one with `cmf init`")
    assert not (tmp_path / "typo").exists()  # neither the file nor its folder was made
    empty = tmp_path / "empty.db"
    empty.touch()  # an empty file is an empty SQLite database: no store in it either
    with pytest.raises(StoreError, match="no CMF store at"):
        open_store(f"sqlite:///{empty}", site="a", create=False)
    assert empty.stat().st_size == 0
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    open_store(url, site="a").close()  # the default creates it
    with open_store(url, site="a", create=False) as s:
        assert s.list_pipelines() == []


_RELATIVE = """
import os
from cmf_core import Cmf
os.chdir("a")
with Cmf(pipeline_name="p", store="sqlite:///cmf.db", site="s", measure_energy=False) as cmf:
    with cmf.create_execution("before"):
        pass
    os.chdir("../b")
    for i in range(3):
        with cmf.create_execution(f"after{i}"):
            pass
"""


def test_a_relative_store_path_stays_where_it_was_opened(tmp_path: Path) -> None:
    """sqlite:///cmf.db, then the task changes folder: the store applied its journal at exit
    through a connection opened there, making an empty cmf.db in the new folder and leaving
    the records to the next process that opened the real store."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    env.update(CMF_HOME=str(tmp_path / "home"),
               PYTHONPATH=str(Path(__file__).resolve().parents[3]))
    subprocess.run([sys.executable, "-c", _RELATIVE], cwd=tmp_path, env=env, check=True,
                   timeout=120)
    assert list((tmp_path / "b").iterdir()) == []
    assert list((tmp_path / "a" / "cmf.db.journal").glob("*.log")) == []  # all applied
    with open_store(f"sqlite:///{tmp_path / 'a' / 'cmf.db'}", "s") as store:
        assert sorted(e.stage for e in store.list_executions()) == [
            "after0", "after1", "after2", "before"]


def test_store_folder_that_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError) as e:
        open_store(f"sqlite:///{tmp_path / 'file' / 'sub' / 'cmf.db'}", site="a")
    assert str(e.value).startswith(f"cannot create the folder {tmp_path / 'file' / 'sub'} "
                                   "for the store: ")
    # and how to record elsewhere (a read-only home in a container failed the same way)
    assert str(e.value).endswith("; set CMF_HOME to a writable folder (a mounted volume, or "
                                 "/tmp/cmf), or CMF_STORE_URL to a store this process may write")
    assert (tmp_path / "file").read_text() == "x"


def test_newer_schema_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    s = open_store(url, site="a")
    s.put([Pipeline("keep", "a")])
    s.close()
    with sqlite3.connect(tmp_path / "cmf.db") as c:
        c.execute("INSERT INTO cmf_migrations VALUES ('9999_future', 0)")
    with pytest.raises(StoreError, match="newer cmf-foundation"):
        open_store(url, site="a")
    with sqlite3.connect(tmp_path / "cmf.db") as c:
        assert c.execute("SELECT name FROM pipelines").fetchall() == [("keep",)]


def test_migrations_recorded(tmp_path: Path) -> None:
    s = open_store(f"sqlite:///{tmp_path / 'cmf.db'}", site="a")
    s.close()
    with sqlite3.connect(tmp_path / "cmf.db") as c:
        names = [r[0] for r in c.execute("SELECT name FROM cmf_migrations")]
        mode = c.execute("PRAGMA journal_mode").fetchone()[0]
    assert names == mig.KNOWN
    assert mode == "wal"


def test_bad_urls(tmp_path: Path) -> None:
    from cmf_core.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown store kind"):
        open_store("mysql://x/y", site="a")
    with pytest.raises(ConfigError, match=r"'mysql://ops:\*\*\*@x/y'"):  # no password shown
        open_store("mysql://ops:hunter2@x/y", site="a")
    with pytest.raises(ConfigError, match="not a URL"):
        open_store("not a url", site="a")
    with pytest.raises(StoreError, match="directory"):
        open_store(f"sqlite:///{tmp_path}", site="a")


def test_an_unencoded_at_sign_in_a_store_password_is_named() -> None:
    """A raw '@' in the password cut the URL at the first one: the rest of the password was
    the host, shown in "failed to resolve host 'ter2@127.0.0.1'"."""
    from cmf_core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"more than one '@'.*percent-encoded.*%40") as e:
        open_store("postgresql://ops:hun@ter2@127.0.0.1:1/cmf", site="a")
    assert "ter2" not in str(e.value)
    # percent-encoded, it is a good URL: the host is reached (nothing listens on port 1)
    with pytest.raises(StoreError, match=r"127\.0\.0\.1") as refused:
        open_store("postgresql://ops:hun%40ter2@127.0.0.1:1/cmf", site="a")
    assert "ter2" not in str(refused.value)



@pytest.mark.postgres
def test_a_wrong_postgresql_url_is_named_without_its_password(postgres: Any) -> None:
    """Each wrong part of a PostgreSQL URL, against the real server, is named in the error,
    and the password is hidden there, also one given as libpq's ``?password=`` query
    parameter (it was shown whole: "... /cmf?password=hunter2 failed: ...")."""
    from cmf_core import Cmf

    port = postgres.port
    cases = [
        (f"postgresql://postgres:hunter2@127.0.0.1:{port}/no_such_db",
         r'database "no_such_db" does not exist'),
        (f"postgresql://postgres@127.0.0.1:{port}/no_such_db?password=hunter2",
         r'database "no_such_db" does not exist'),
        (f"postgresql://nobody:hunter2@127.0.0.1:{port}/postgres",
         r'role "nobody" does not exist'),
        ("postgresql://postgres:hunter2@no-such-host.invalid/cmf",
         r"failed to resolve host 'no-such-host\.invalid'"),
        ("postgresql://postgres@127.0.0.1:1/cmf?sslmode=prefer&password=hunter2",
         r"127\.0\.0\.1.*port 1 failed: Connection refused"),
    ]
    for url, problem in cases:
        for opener in (lambda u: open_store(u, site="a"),
                       lambda u: Cmf(pipeline_name="p", store=u, measure_energy=False)):
            with pytest.raises(StoreError, match=r"PostgreSQL store postgresql://") as e:
                opener(url)
            text = str(e.value)
            assert "hunter2" not in text, text
            assert "***" in text, text
            assert re.search(problem, text), text

# raw OpenLineage events by eventTime (the /api/v1/events/lineage page) ---------------------------
def _raw_events() -> list[LineageEvent]:
    """Events whose arrival order is not their time order: offsets, fractions, a tie, none."""
    times = ["2024-05-01T12:00:30.5Z", "2024-05-01T14:01:00+02:00",  # = 12:01:00Z
             "2024-05-01T12:00:00.250000+00:00", "2024-05-01T11:59:59.999Z",
             "2024-05-01T12:01:00Z", "2024-04-30T23:00:00-13:00",  # = 05-01T12:00Z
             None, "2024-05-01T12:02:05.750000+00:00"]
    return [LineageEvent(id=f"{i:064x}", body=f'{{"n": {i}}}', run_id=None,
                         event_type="COMPLETE", event_time=t) for i, t in enumerate(times)]


def test_lineage_events_by_time_pages_in_sql_as_the_reference_does(store: Store) -> None:
    from cmf_core.openlineage.times import parse_time

    store.put(_raw_events())
    cases = [{}, {"descending": False}, {"limit": 3, "offset": 2},
             {"descending": False, "limit": 2, "offset": 5},
             {"after": parse_time("2024-05-01T12:00:00.25Z")},
             {"before": parse_time("2024-05-01T12:01:00Z"), "descending": False},
             {"after": parse_time("2024-05-01T12:00:01Z"),
              "before": parse_time("2024-05-01T12:01:00Z")},
             {"after": parse_time("2025-01-01T00:00:00Z")}]
    for kw in cases:
        got, total = store.lineage_events_by_time(**kw)
        want, want_total = Store.lineage_events_by_time(store, **kw)  # reads every event
        assert [e.id for e in got] == [e.id for e in want] and total == want_total, kw
    # newest first; the tie at 12:01:00Z (two offsets) in arrival order, reversed
    page, total = store.lineage_events_by_time(limit=4)
    assert total == 8 and [e.body for e in page] == ['{"n": 7}', '{"n": 4}', '{"n": 1}',
                                                     '{"n": 0}']
    # bounds are inclusive, the event without a time only comes without bounds (first)
    page, total = store.lineage_events_by_time(
        after=parse_time("2024-05-01T12:00:01Z"), before=parse_time("2024-05-01T12:01:00Z"))
    assert total == 3 and {e.body for e in page} == {'{"n": 0}', '{"n": 1}', '{"n": 4}'}
    assert store.lineage_events_by_time(descending=False, limit=1)[0][0].event_time is None
    for bad in ({"limit": 0}, {"offset": -1}, {"limit": True}):
        with pytest.raises(InvalidInputError, match="must be a whole number"):
            store.lineage_events_by_time(**bad)


def test_lineage_events_with_lower_case_times_are_found_by_time(store: Store) -> None:
    """RFC 3339 allows "t" and "z" in lower case; such an event is still in a page by time."""
    from cmf_core.openlineage.times import parse_time

    times = ["2024-05-01t12:00:00z", "2024-05-01T12:00:01Z", "2024-05-01t13:30:02+01:30"]
    store.put([LineageEvent(id=f"{i:064x}", body=f'{{"n": {i}}}', event_type="COMPLETE",
                            event_time=t) for i, t in enumerate(times)])
    page, total = store.lineage_events_by_time(after=parse_time("2024-05-01T11:00:00Z"),
                                               descending=False)
    assert total == 3 and [e.body for e in page] == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
    assert [e.body for e in store.lineage_events_by_time()[0]] == [
        '{"n": 2}', '{"n": 1}', '{"n": 0}']


def test_lineage_events_by_time_uses_the_index(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    with open_store(url, site="a") as s:
        s.put(_raw_events())
    with sqlite3.connect(tmp_path / "cmf.db") as c:
        plan = " ".join(str(r) for r in c.execute(
            "EXPLAIN QUERY PLAN SELECT body FROM ol_events WHERE julianday(event_time) >= "
            "julianday('2024-05-01T12:00:00Z') ORDER BY julianday(event_time) DESC, "
            "seq DESC LIMIT 10"))
        assert "ix_ol_events_time" in plan and "TEMP B-TREE" not in plan
        # a store made before migration 0004 gets the index when opened
        c.execute("DROP INDEX ix_ol_events_time")
        c.execute("DELETE FROM cmf_migrations WHERE name = '0004_event_time_index'")
    with open_store(url, site="a") as s:
        assert s.lineage_events_by_time(limit=1)[1] == 8
    with sqlite3.connect(tmp_path / "cmf.db") as c:
        assert c.execute("SELECT count(*) FROM sqlite_master WHERE name = "
                         "'ix_ol_events_time'").fetchone() == (1,)


def test_artifact_ids_at_names_and_uris_answers_as_the_reference_does(store: Store) -> None:
    from cmf_core.store.base import IN_CHUNK

    n = IN_CHUNK + 5  # a list longer than one IN list
    arts = [art(f"d{i:05d}") for i in range(n)]
    # another name at d00003's URI; d00004's name at another URI; a key in a nested property
    other = Artifact(id=remote_digest(arts[3].uri, "v2"), type="Dataset", name="other",
                     uri=arts[3].uri, site="site-a", created_at=50.0,
                     properties={"openlineage.dataset": {"namespace": "s3://b", "name": "x"}})
    twin = Artifact(id=remote_digest("s3://other/d00004", "v1"), type="Dataset",
                    name="d00004", uri="s3://other/d00004", site="site-a", created_at=50.0,
                    properties={"facets": {"openlineage.dataset": 1}})
    store.put([*arts, other, twin])
    names = [f"d{i:05d}" for i in range(0, n, 2)] + ["missing"]
    uris = [a.uri for a in arts[1::2]] + ["s3://missing"]
    got = store.artifact_ids_at(names, uris)
    assert got == Store.artifact_ids_at(store, names, uris)  # the reading of every artifact
    assert got == sorted([a.id for a in arts] + [other.id, twin.id])
    assert store.artifact_ids_at(["other"], []) == [other.id]
    assert store.artifact_ids_at([], [arts[3].uri]) == sorted([arts[3].id, other.id])
    assert store.artifact_ids_at(iter(["d00004"]), iter(["s3://missing"])) == sorted(
        [arts[4].id, twin.id])
    assert store.artifact_ids_at([], []) == []


def _with_dataset(name: str, prop: Any) -> Artifact:
    uri = f"s3://copies/{name}"
    return Artifact(id=remote_digest(uri, "v1"), type="Dataset", name=name, uri=uri,
                    site="site-a", created_at=60.0, properties={"openlineage.dataset": prop})


def test_artifact_ids_of_datasets_answers_as_the_reference_does(store: Store) -> None:
    """Artifacts by the dataset their openlineage.dataset property names: exactly the pairs
    asked for, only string parts, only the top-level key; a list longer than one IN list."""
    from cmf_core.store.base import IN_CHUNK

    n = IN_CHUNK + 5
    named = [_with_dataset(f"c{i:05d}", {"namespace": f"ns{i % 3}", "name": f"t{i:05d}"})
             for i in range(n)]
    odd = [_with_dataset("number", {"namespace": "ns0", "name": 7}),
           _with_dataset("object", {"namespace": "ns0", "name": {"a": 1}}),
           _with_dataset("no namespace", {"name": "t00000"}),
           _with_dataset("a string", "ns0:t00000"),
           _with_dataset("quoted", {"namespace": "postgres://db:5432", "name": "it's \"x\" é",
                                    "facets": {"k": 1}}),
           Artifact(id=remote_digest("s3://nested", "v1"), type="Dataset", name="nested",
                    uri="s3://nested", site="site-a", created_at=60.0,
                    properties={"facets": {"openlineage.dataset": {"namespace": "ns0",
                                                                   "name": "t00000"}}}),
           art("plain")]
    store.put([*named, *odd])
    wanted = [(f"ns{i % 3}", f"t{i:05d}") for i in range(0, n, 2)] + [
        ("ns0", "7"), ("ns0", '{"a":1}'), ("ns1", "t00000"),  # t00000 is in ns0, not ns1
        ("postgres://db:5432", "it's \"x\" é"), ("ns0", "missing")]
    got = store.artifact_ids_of_datasets(wanted)
    assert got == Store.artifact_ids_of_datasets(store, wanted)  # reads every artifact
    assert got == sorted([a.id for a in named[::2]] + [odd[4].id])
    assert store.artifact_ids_of_datasets(iter([("ns1", "t00001")])) == [named[1].id]
    assert store.artifact_ids_of_datasets([("ns0", "t00003"), ("ns0", "t00000")]) == sorted(
        [named[0].id, named[3].id])
    assert store.artifact_ids_of_datasets([]) == []


def test_properties_text_that_is_not_json_does_not_fail_a_write(store: Store) -> None:
    """The property index parses the properties text of rows holding the key: text that is
    not JSON (the model never writes it; a hand-edited or damaged row) is indexed as NULL,
    so the row is written, not refused, and other rows are still found."""
    import sqlalchemy as sa

    good = _with_dataset("good", {"namespace": "ns", "name": "t"})
    store.put([good])
    with store.engine.begin() as c:  # type: ignore[attr-defined]
        c.execute(sa.text(
            "INSERT INTO artifacts (id, type, name, uri, site, created_at, properties, "
            "custom_properties, seq) VALUES (:id, 'Dataset', 'broken', 's3://x', 'site-a', "
            "1.0, :props, '{}', 999999)"),
            {"id": remote_digest("s3://x", "v1"),
             "props": '{"openlineage.dataset": {"namespace": "ns", "name": "t"'})
    assert store.artifact_ids_of_datasets([("ns", "t")]) == [good.id]


def _plans(store: Store, run: Any, *args: Any) -> list[str]:
    """The plans of the statements ``run(*args)`` makes ``store`` execute (PostgreSQL: with
    sequential scans off, so a plan without an index means no index fits the statement)."""
    with executed(store) as seen:
        run(*args)
    engine = store.engine  # type: ignore[attr-defined]
    plans = []
    with engine.connect() as c:
        raw = c.connection.dbapi_connection
        cur = raw.cursor()
        for statement, params in seen:
            if engine.dialect.name == "postgresql":
                cur.execute("SET enable_seqscan = off")
                cur.execute("EXPLAIN " + statement, params)
            else:
                cur.execute("EXPLAIN QUERY PLAN " + statement, params)
            plans.append(" ".join(str(r) for r in cur.fetchall()))
        if engine.dialect.name == "postgresql":
            raw.rollback()
    return plans


def test_dataset_lookups_use_the_indexes(store: Store) -> None:
    """The URI and property lookups read through ix_artifacts_name / ix_artifacts_uri and
    ix_artifacts_ol_dataset (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN with sequential
    scans off), for a short list and for one longer than an IN list."""
    from cmf_core.store.base import IN_CHUNK

    arts = [art(f"d{i:05d}") for i in range(20)] + [
        _with_dataset(f"c{i}", {"namespace": "ns", "name": f"t{i}"}) for i in range(20)]
    store.put(arts)
    for k in (3, IN_CHUNK + 1):
        names, uris = [f"d{i:05d}" for i in range(k)], [f"s3://b/d{i:05d}" for i in range(k)]
        pairs = [("ns", f"t{i}") for i in range(k)]
        (at,) = _plans(store, store.artifact_ids_at, names, uris)
        (of,) = _plans(store, store.artifact_ids_of_datasets, pairs)
        assert "ix_artifacts_name" in at and "ix_artifacts_uri" in at, at
        assert "ix_artifacts_ol_dataset" in of, of
        for plan in (at, of):
            assert "SCAN artifacts" not in plan and "Seq Scan on artifacts" not in plan, plan
        assert store.artifact_ids_of_datasets(pairs) == sorted(a.id for a in arts[20:20 + k])


def test_a_store_made_before_migration_0005_gets_the_lookup_indexes(store: Store) -> None:
    """Opening a store without migration 0005 builds both indexes over the artifacts it
    holds, with and without the property; the lookups then answer from them."""
    import sqlalchemy as sa

    have = [_with_dataset(f"c{i}", {"namespace": "ns", "name": f"t{i}"}) for i in range(3)]
    lack = [art(f"d{i}") for i in range(3)]
    store.put([*have, *lack, _with_dataset("bad", {"namespace": "ns", "name": 1})])
    store.close()
    engine = store.engine  # type: ignore[attr-defined]
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as c:
        c.execute(sa.text("DROP INDEX ix_artifacts_uri"))
        c.execute(sa.text("DROP INDEX ix_artifacts_ol_dataset"))
        if postgres:
            c.execute(sa.text("DROP FUNCTION cmf_ol_dataset(text, text)"))
        c.execute(sa.text("DELETE FROM cmf_migrations WHERE name = "
                          "'0005_artifact_lookup_indexes'"))
    reopened = open_store(store.url, site="site-a")  # type: ignore[attr-defined]
    try:
        catalog = ("SELECT indexname FROM pg_indexes WHERE tablename = 'artifacts'" if postgres
                   else "SELECT name FROM sqlite_master WHERE tbl_name = 'artifacts'")
        with reopened.engine.connect() as c:  # type: ignore[attr-defined]
            indexes = set(c.execute(sa.text(catalog)).scalars())
        assert {"ix_artifacts_uri", "ix_artifacts_ol_dataset"} <= indexes
        assert reopened.artifact_ids_of_datasets([("ns", "t1"), ("ns", "t2"), ("ns", "1")]) == \
            sorted([have[1].id, have[2].id])
        assert reopened.artifact_ids_at([], [lack[0].uri, have[0].uri]) == sorted(
            [lack[0].id, have[0].id])
        (plan,) = _plans(reopened, reopened.artifact_ids_of_datasets, [("ns", "t0")])
        assert "ix_artifacts_ol_dataset" in plan, plan
        with reopened.engine.connect() as c:  # type: ignore[attr-defined]
            assert c.execute(sa.text("SELECT count(*) FROM cmf_migrations WHERE name = "
                                     "'0005_artifact_lookup_indexes'")).scalar() == 1
    finally:
        reopened.close()


def test_latest_executions_takes_the_latest_of_each_stage(store: Store) -> None:
    records: list = [Pipeline("p", "site-a"), Pipeline("q", "site-a")]
    runs: dict[tuple[str, str], list[Execution]] = {}
    for pipeline, stage, count in (("p", "train", 7), ("p", "eval", 2), ("q", "train", 4)):
        records.append(Stage(pipeline, stage, "site-a"))
        for i in range(count):  # pairs of runs start at the same time: the id breaks the tie
            ex = Execution(pipeline=pipeline, stage=stage, site="site-a",
                           started_at=1000.0 + i // 2)
            runs.setdefault((pipeline, stage), []).append(ex)
            records.append(ex)
    store.put(records)
    stages = [("p", "train"), ("q", "train"), ("p", "eval"), ("p", "train"), ("q", "none")]
    got = store.latest_executions(stages, 3)
    assert got == Store.latest_executions(store, stages, 3)  # count + list, stage by stage
    order = store.list_executions(ExecutionFilter(pipeline="p", stage="train"))
    assert [e for e in got if (e.pipeline, e.stage) == ("p", "train")] == order[-3:]
    assert sorted(e.id for e in got) == sorted(
        e.id for key in (("p", "train"), ("q", "train"), ("p", "eval"))
        for e in store.list_executions(ExecutionFilter(pipeline=key[0], stage=key[1]))[-3:])
    assert [(e.started_at, e.id) for e in got] == sorted((e.started_at, e.id) for e in got)
    assert len(store.latest_executions([("p", "train")], 100)) == 7
    assert store.latest_executions([], 5) == []
    with pytest.raises(InvalidInputError, match="must be a whole number"):
        store.latest_executions(stages, 0)


def _bind_as_default_sqlite(store: Store) -> None:
    """Give a SQLite store's connections the bound-variable limit of SQLite's default build
    (32,766): Debian compiles in 250,000, which would hide a statement that binds too many."""
    import sqlalchemy as sa

    engine = store.engine  # type: ignore[attr-defined]

    @sa.event.listens_for(engine, "connect")
    def _limit(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32_766)

    engine.dispose()  # pooled connections were opened without the limit


def test_reads_take_more_ids_than_a_statement_may_bind(store: Store) -> None:
    """70,000 ids (over PostgreSQL's 65,535 bound values, SQLite's 32,766) in every read that
    takes an id list: the same records, order and paging as the real ids alone."""
    if store.kind == "sqlite":
        _bind_as_default_sqlite(store)
    arts = chain(store, "p", n=4) + chain(store, "q", n=3)
    execs = store.list_executions()
    store.put([EnergyRecord(e.id, "site-a", 0.5 + i, 0.1) for i, e in enumerate(execs)])
    exec_ids = [e.id for e in execs][::-1][:5]  # some of them, not in store order
    art_ids = [a.id for a in arts][::-1][:6]
    unknown = [f"00000000-0000-4000-8000-{i:012d}" for i in range(70_000)]
    many_e = unknown[:30_000] + exec_ids + unknown[30_000:] + exec_ids[:2]  # and repeated
    many_a = unknown[:30_000] + art_ids + unknown[30_000:] + art_ids[:2]

    assert store.events(execution_ids=many_e) == store.events(execution_ids=exec_ids) != []
    assert store.events(artifact_ids=many_a) == store.events(artifact_ids=art_ids) != []
    assert (store.events(execution_ids=many_e, artifact_ids=many_a)
            == store.events(execution_ids=exec_ids, artifact_ids=art_ids) != [])
    assert store.metrics(many_e) == store.metrics(exec_ids) != []
    assert store.energy(many_e) == store.energy(exec_ids) != []
    for where in (ExecutionFilter(ids=many_e), ExecutionFilter(pipeline="q", ids=many_e)):
        few = ExecutionFilter(pipeline=where.pipeline, ids=exec_ids)
        assert store.count_executions(where) == store.count_executions(few) > 0
        for limit, offset in ((None, 0), (2, 1), (100, 4)):
            assert (store.list_executions(where, limit, offset)
                    == store.list_executions(few, limit, offset))
    assert len(store.list_executions(ExecutionFilter(ids=many_e))) == 5
    for kw in ({}, {"pipeline": "q"}, {"type": "Dataset", "limit": 2, "offset": 3}):
        assert (store.find_artifacts(ids=many_a, **kw)
                == store.find_artifacts(ids=art_ids, **kw) != [])
    assert len(store.find_artifacts(ids=many_a)) == 6
    assert store.existing_keys("execution", many_e) == set(exec_ids)
    assert store.export_related(many_e, many_a).rows == store.export_related(
        exec_ids, art_ids).rows


@pytest.mark.parametrize("make", [
    lambda: Pipeline(name="p", site=None),  # type: ignore[arg-type]
    lambda: Stage(pipeline="p", name="s", site=5),  # type: ignore[arg-type]
    lambda: Execution(pipeline="p", stage="s", site=None),  # type: ignore[arg-type]
])
def test_a_site_that_is_not_a_string_is_refused_at_the_record(make: Any) -> None:
    """Not at the store's write: a journal applied later would set the whole write aside."""
    with pytest.raises(InvalidInputError, match=r"(pipeline|stage|execution) site must be a "
                                                r"string, got (None|5)"):
        make()


def test_executions_of_a_pipeline_or_stage_are_found_by_index(tmp_path: Path) -> None:
    """A pipeline or stage filter searches ix_executions_pipeline / _stage rather than scanning
    every execution of the store (on a store of 200,000 executions, the web UI's pipelines
    list scanned them all twice per pipeline)."""
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    with open_store(url, site="site-a") as s:
        for p in ("p", "q"):
            chain(s, p, n=3)
        assert s.count_executions(ExecutionFilter(stage="s1")) == 2  # both pipelines
        with executed(s) as every:
            for where in (ExecutionFilter(pipeline="p"),
                          ExecutionFilter(pipeline="p", stage="s1")):
                assert {e.pipeline for e in s.list_executions(where, limit=2)} == {"p"}
                assert s.count_executions(where) == (3 if where.stage is None else 1)
    seen = [(statement, params) for statement, params in every if "FROM executions" in statement]
    assert len(seen) == 4
    with sqlite3.connect(tmp_path / "cmf.db") as c:
        for statement, params in seen:
            plan = " ".join(str(r) for r in c.execute(f"EXPLAIN QUERY PLAN {statement}", params))
            assert "SCAN executions" not in plan, (statement, plan)
            assert "ix_executions_pipeline" in plan or "ix_executions_stage" in plan, plan


def test_metrics_page_reads_one_page(tmp_path: Path) -> None:
    """The metrics routes page in SQL (LIMIT/OFFSET, a count): the web UI's compare page read
    every metric of the runs for each page of 1,000 (quadratic in 10,000-step curves)."""
    with open_store(f"sqlite:///{tmp_path / 'cmf.db'}", site="site-a") as s:
        ex = [Execution(pipeline="p", stage="train", site="site-a") for _ in range(2)]
        s.put([Pipeline("p", "site-a"), Stage("p", "train", "site-a"), *(e.ended() for e in ex)]
              + [Metric(e.id, n, float(i), step, 1.0) for e in ex for n in ("loss", "acc")
                 for i, step in enumerate([None, *range(25)])])
        ids = [e.id for e in ex]
        for name in (None, "loss"):
            for limit, offset in ((7, 0), (7, 21), (1000, 0), (5, 200)):
                got = s.metrics_page(ids, name, limit, offset)
                assert got == Store.metrics_page(s, ids, name, limit, offset), (name, offset)
        assert s.metrics_page(ids, "loss", 3, 1)[0][0].step == 0  # the scalar comes first
        assert s.metrics_page(ids, None, 1000)[1] == 104
        with executed(s) as every:
            assert len(s.metrics_page(ids, None, 7, 14)[0]) == 7
        seen = [statement for statement, _ in every if "FROM metrics" in statement]
        assert len(seen) == 2 and "LIMIT" in seen[0] and "OFFSET" in seen[0], seen
        assert "count(" in seen[1].lower()


def _keyed_store(store: Store) -> list[Execution]:
    """Executions with and without the keys ``iter_executions`` looks for, many starting at
    the same time (so that pages end inside a tie), in two pipelines and several states."""
    store.put([Pipeline(p, "site-a") for p in ("p", "q")]
              + [Stage(p, "s", "site-a") for p in ("p", "q")])
    shapes = [
        ({"task": {"k": 1}}, {"model": "rf"}),        # both keys
        ({}, {"model": "rf"}),                        # no property
        ({"task": "x"}, {}),                          # no param
        ({"other": {"task": 1}}, {"model": "rf"}),    # the key only nested: no match
        ({"task": 1}, {"x": "model"}),                # "model" only as a value: no match
        ({"a_b": 1, "task": 2}, {"model": 3}),        # a LIKE wildcard in a key
        ({"axb": 1, "task": 2}, {"model": 3}),        # ... that must not match this one
    ]
    made = []
    for i in range(70):
        props, params = shapes[i % len(shapes)]
        eid = f"00000000-0000-4000-8000-{(i * 37) % 101:012d}"  # ids not in time order
        e = Execution(pipeline="pq"[i % 2], stage="s", site="site-a", id=eid,
                      started_at=100.0 + i // 9, params=params, properties=props)
        made.append(e.ended(ended_at=200.0) if i % 5 else e)
    store.put(made)
    return made


def test_iter_executions_equals_the_offset_reference(store: Store) -> None:
    """The SQL backends' keyset paging with the keys filtered in the database gives what the
    base class's offset pages checked in Python give, in the same order, for any page size."""
    made = _keyed_store(store)
    wheres = [None, ExecutionFilter(status="completed"), ExecutionFilter(pipeline="q"),
              ExecutionFilter(pipeline="p", status="completed", since=103.0)]
    for where in wheres:
        for keys in ({}, {"property_keys": ("task",), "param_keys": ("model",)},
                     {"property_keys": ("a_b",)}, {"param_keys": ("model",)}):
            want = list(Store.iter_executions(store, where, batch=1000, **keys))
            for batch in (1, 2, 4, 9, 1000):
                got = list(store.iter_executions(where, batch=batch, **keys))
                assert got == want, (where, keys, batch)
    every = list(store.iter_executions(property_keys=("task",), param_keys=("model",), batch=4))
    assert {e.id for e in every} == {e.id for e in made
                                     if "task" in e.properties and "model" in e.params}
    assert len(every) == 30
    assert [e.id for e in store.iter_executions(property_keys=("a_b",))] == [
        e.id for e in store.list_executions() if "a_b" in e.properties]


def test_iter_executions_pages_by_key_through_an_index(tmp_path: Path) -> None:
    """No OFFSET: each page after the first starts where the last ended, found in the index
    (a year of runs read by offset pages re-walked every skipped row: quadratic)."""
    with open_store(f"sqlite:///{tmp_path / 'cmf.db'}", site="site-a") as s:
        _keyed_store(s)
        for where in (ExecutionFilter(status="completed"), ExecutionFilter(pipeline="p")):
            with executed(s) as every:
                got = list(s.iter_executions(where, property_keys=("task",), batch=2))
            seen = [(st, params) for st, params in every if "FROM executions" in st]
            assert got and len(seen) > 3
            with sqlite3.connect(tmp_path / "cmf.db") as c:
                for n, (statement, params) in enumerate(seen):
                    if "OFFSET" in statement:  # SQLAlchemy's SQLite LIMIT ? OFFSET ?
                        assert params[-1] == 0, (statement, params)
                    plan = " ".join(str(r) for r in c.execute(f"EXPLAIN QUERY PLAN {statement}",
                                                              params))
                    if n:
                        assert "SEARCH executions USING INDEX" in plan, plan
                        assert "started_at>" in plan, plan


def test_stage_edges_start_from_the_pipelines_executions(tmp_path: Path) -> None:
    """The stage graph of a pipeline reads its executions through ix_executions_pipeline,
    not every OUTPUT event of the store (a small pipeline's page took as long as the store's
    biggest: 1-2 s on a store of 200,000 executions)."""
    with open_store(f"sqlite:///{tmp_path / 'cmf.db'}", site="site-a") as s:
        chain(s, "p", n=3)
        chain(s, "q", n=2)
        with executed(s) as seen:
            assert s.stage_edges("p") == [("s0", "s1"), ("s1", "s2")]
            assert s.stage_edges("q") == [("s0", "s1")]
            assert s.stage_edges("nope") == []
    with sqlite3.connect(tmp_path / "cmf.db") as c:
        for statement, params in seen:
            plan = " ".join(str(r) for r in c.execute(f"EXPLAIN QUERY PLAN {statement}", params))
            assert "ix_executions_pipeline" in plan, plan
            assert "SCAN" not in plan, plan


def _vm_steps(db: Path, statements: list[tuple[str, Any]]) -> int:
    """SQLite virtual-machine instructions the statements take (a progress handler called at
    each): a count of the work done, not a time, the same on any machine."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    with sqlite3.connect(db) as c:
        c.set_progress_handler(count, 1)
        for statement, params in statements:
            c.execute(statement, params).fetchall()
    return steps[0]


def _runs(store: Store, pipeline: str, n: int, t0: float = 1000.0) -> list[Execution]:
    """``n`` ended runs of ``pipeline``, three at each start time (ties broken by id)."""
    runs = [Execution(pipeline=pipeline, stage="s", site=f"site-{i % 3}",
                      started_at=t0 + i // 3).ended(ended_at=t0 + i // 3 + 1)
            for i in range(n)]
    store.put([Pipeline(pipeline, "site-a"), Stage(pipeline, "s", "site-a"), *runs])
    return runs


def test_last_execution_is_the_last_in_list_order(store: Store) -> None:
    """last_execution gives what the reference (count, then OFFSET count-1) gives: the latest
    start, and among equal starts the greatest id; None when nothing matches."""
    _runs(store, "p", 50)
    _runs(store, "q", 7, t0=5000.0)
    for where in (ExecutionFilter(pipeline="p"), ExecutionFilter(pipeline="q"), None,
                  ExecutionFilter(pipeline="p", site="site-1"),
                  ExecutionFilter(pipeline="p", until=1010.0),
                  ExecutionFilter(pipeline="p", stage="s")):
        got = store.last_execution(where)
        assert got is not None and got == Store.last_execution(store, where)
        assert got == store.list_executions(where)[-1]
    assert store.last_execution(ExecutionFilter(pipeline="nope")) is None
    assert store.last_execution(ExecutionFilter(pipeline="p", since=9999.0)) is None


def test_last_execution_of_a_pipeline_reads_one_row(tmp_path: Path) -> None:
    """The web UI's home page found each pipeline's last run with OFFSET count-1, a walk of
    every run of the pipeline; now it reads the end of ix_executions_pipeline: the work (SQLite
    VM steps) is the same for 10 runs as for 3,000."""
    db = tmp_path / "cmf.db"
    with open_store(f"sqlite:///{db}", site="site-a") as s:
        _runs(s, "small", 10)
        _runs(s, "big", 3000)
        work = {}
        for name in ("small", "big"):
            where = ExecutionFilter(pipeline=name)
            with executed(s) as seen:
                got = s.last_execution(where)
            assert got == s.list_executions(where)[-1]
            reads = [(st, p) for st, p in seen if "FROM executions" in st]
            assert len(reads) == 1
            work[name] = _vm_steps(db, reads)
            with sqlite3.connect(db) as c:
                plan = " ".join(str(r) for r in c.execute(f"EXPLAIN QUERY PLAN {reads[0][0]}",
                                                          reads[0][1]))
            assert "ix_executions_pipeline" in plan and "SCAN" not in plan, plan
        # OFFSET 2999 took thousands of times the steps of OFFSET 9
        assert work["big"] <= 2 * work["small"], work


def test_execution_sites_are_every_site_in_order(store: Store) -> None:
    assert store.execution_sites() == []
    _runs(store, "p", 8)
    store.put([Execution(pipeline="p", stage="s", site="Zürich", started_at=1.0).ended(),
               Execution(pipeline="p", stage="s", site="a b", started_at=2.0)])
    got = store.execution_sites()
    assert got == Store.execution_sites(store)
    assert got == sorted({"site-0", "site-1", "site-2", "Zürich", "a b"})


def test_execution_sites_step_through_the_site_index(tmp_path: Path) -> None:
    """One index lookup per site, not a read of every execution."""
    db = tmp_path / "cmf.db"
    with open_store(f"sqlite:///{db}", site="site-a") as s:
        _runs(s, "p", 30)
        with executed(s) as seen:
            assert s.execution_sites() == ["site-0", "site-1", "site-2"]
        few = _vm_steps(db, [(st, p) for st, p in seen if "executions" in st])
        _runs(s, "q", 3000)
        with executed(s) as seen:
            assert s.execution_sites() == ["site-0", "site-1", "site-2"]
        many = _vm_steps(db, [(st, p) for st, p in seen if "executions" in st])
    assert many <= 2 * few, (few, many)


def test_scalar_metrics_read_only_the_scalars_named(store: Store) -> None:
    """The knowledge base needs two scalars per run; the scalar values of the names asked,
    as the reference (every metric, filtered in Python) gives them, a curve never read."""
    runs = _runs(store, "p", 4)
    store.put([Metric(runs[0].id, "score", 0.5), Metric(runs[0].id, "fit_time_s", 2.0),
               *(Metric(runs[0].id, "score", 1.0 / (k + 1), k) for k in range(200)),
               *(Metric(runs[1].id, "score", 0.1 * k, k) for k in range(5)),  # a curve only
               Metric(runs[2].id, "other", 3.0), Metric(runs[2].id, "fit_time_s", 9.0)])
    ids = [r.id for r in runs]
    want = {runs[0].id: {"score": 0.5, "fit_time_s": 2.0}, runs[2].id: {"fit_time_s": 9.0}}
    assert store.scalar_metrics(ids, ["score", "fit_time_s"]) == want
    assert Store.scalar_metrics(store, ids, ["score", "fit_time_s"]) == want
    assert store.scalar_metrics(ids, []) == {} and store.scalar_metrics([], ["score"]) == {}
    many = ids + [str(i) for i in range(1000)]  # longer than one IN list
    assert store.scalar_metrics(many, ["score", "fit_time_s", "score"]) == want
