"""What federation adds to the store: origin versions (migration 0002), versioned writes, the
fast row path for bundle lines, key lookups. On a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from cmf_core.errors import InvalidInputError
from cmf_core.identity import remote_digest, uuid7
from cmf_core.model import (
    Artifact,
    ArtifactLocation,
    EnergyRecord,
    Event,
    Execution,
    Metric,
    Pipeline,
    Record,
    Stage,
)
from cmf_core.records import record_from_dict, record_to_dict
from cmf_core.store import Store, migrations, open_store, schema
from cmf_core.store.sql import WireRow, wire_row
from tests.core.federation.strategies import record_sets

FAST_KINDS = (Execution, Artifact, ArtifactLocation, Event, Metric, EnergyRecord)


def rows_by_kind(store: Store, item: tuple[Any, str, int]) -> dict[str, list[list[Any]]]:
    rows, _ = store._to_rows([item], versioned=True)  # type: ignore[attr-defined]
    return {k: [list(r) for r in v] for k, v in rows.items()}


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(records=record_sets())
def test_wire_rows_equal_record_rows(sqlite_store: Store, records: list[Record]) -> None:
    """The fast path (bundle line -> row) gives exactly the row the record gives."""
    for r in [*records, *[ArtifactLocation(a.id, a.site, a.uri) for a in records
                          if isinstance(a, Artifact)]]:
        data = record_to_dict(r)
        row = wire_row(data, "origin-x", 7)
        if not isinstance(r, FAST_KINDS):
            assert row is None  # pipelines and stages take the record path
            continue
        assert type(row) is WireRow
        assert {row[0]: [list(row[1])]} == rows_by_kind(sqlite_store, (r, "origin-x", 7))


BAD: list[tuple[str, str, Any]] = [
    ("event", "execution_id", "not-a-uuid"),
    ("event", "artifact_id", "md5:123"),
    ("event", "type", "SIDEWAYS"),
    ("metric", "value", float("inf")),
    ("metric", "value", "NaN"),
    ("metric", "step", -1),
    ("metric", "name", "  "),
    ("execution", "status", "exploded"),
    ("execution", "pipeline", ""),
    ("execution", "params", [1, 2]),
    ("artifact", "type", "Spaceship"),
    ("artifact", "id", "sha256:xyz"),
    ("location", "uri", ""),
    ("energy", "details", "hot"),
    ("energy", "energy_kwh", -2.0),
    ("energy", "co2e_kg", float("nan")),
]


@pytest.mark.parametrize(("kind", "field", "value"), BAD)
def test_both_paths_refuse_the_same_bad_values(kind: str, field: str, value: Any) -> None:
    ex = Execution("p", "s", "a", id=uuid7())
    digest = remote_digest("s3://x", "1")
    good = {
        "event": Event(ex.id, digest, "INPUT"),
        "metric": Metric(ex.id, "m", 1.0, step=2),
        "execution": ex,
        "artifact": Artifact(digest, "Model", "m", "s3://x", "a"),
        "location": ArtifactLocation(digest, "a", "s3://x"),
        "energy": EnergyRecord(ex.id, "a", 1.0, 0.5),
    }[kind]
    data = {**record_to_dict(good), field: value}
    with pytest.raises(InvalidInputError):
        wire_row(dict(data), "o", 1)
    with pytest.raises(InvalidInputError):
        record_from_dict(dict(data))


def test_incomplete_or_unknown_dicts_take_the_record_path() -> None:
    ex = Execution("p", "s", "a")
    data = record_to_dict(ex)
    assert wire_row({k: v for k, v in data.items() if k != "error"}, "o", 1) is None
    assert wire_row({**data, "colour": "red"}, "o", 1) is None
    assert wire_row({"kind": "pipeline", "name": "p", "site": "a"}, "o", 1) is None


def versions(store: Store, kind: str) -> dict[Any, tuple[str, int, int]]:
    """{first field: (origin, origin seq, local seq)} of the rows of ``kind``."""
    page = store.export_page(0)
    return {r[0]: (r[-3], r[-2], r[-1]) for r in page.rows[kind]}


def test_versions_follow_the_row(store: Store) -> None:
    me = store.store_id
    ex = Execution("p", "s", "a", started_at=10.0)
    store.put([Pipeline("p", "b", 5.0), ex])
    assert versions(store, "execution")[ex.id][:2] == (me, versions(store, "execution")[ex.id][2])
    # an incoming row that wins (earlier pipeline row; an execution moving forward) keeps the
    # version it had at its origin
    store.put_versioned([(Pipeline("p", "a", 1.0), "far", 3),
                         (ex.ended(ended_at=20.0), "far", 9)])
    assert versions(store, "pipeline")["p"][:2] == ("far", 3)
    assert versions(store, "execution")[ex.id][:2] == ("far", 9)
    # one that loses changes nothing, version included
    store.put_versioned([(Pipeline("p", "c", 9.0), "other", 4)])
    assert versions(store, "pipeline")["p"][:2] == ("far", 3)
    # a mix (an earlier start kept from elsewhere) is a new version of this store
    late = Execution("p", "s", "a", id=uuid7(), started_at=5.0)
    store.put([late])
    store.put_versioned([(Execution("p", "s", "a", id=late.id, started_at=8.0).ended(),
                          "far", 12)])
    origin, oseq, seq = versions(store, "execution")[late.id]
    assert (origin, oseq) == (me, seq) and store.get_execution(late.id).started_at == 5.0
    # a local write that changes an imported row makes it this store's again
    store.put([Pipeline("p", "z", 0.5)])
    origin, oseq, seq = versions(store, "pipeline")["p"]
    assert (origin, oseq) == (me, seq)


def test_existing_keys(store: Store) -> None:
    ex = Execution("p", "s", "a")
    store.put([ex, Metric(ex.id, "m", 1.0), Metric(ex.id, "n", 2.0, step=3),
               EnergyRecord(ex.id, "a", 1.0, 0.5)])
    other = uuid7()
    assert store.existing_keys("execution", [ex.id, other]) == {ex.id}
    assert store.existing_keys("metric", [(ex.id, "m", None), (other, "m", None)]) == {
        (ex.id, "m", None), (ex.id, "n", 3)}
    assert store.existing_keys("energy", [other]) == set()


def test_old_store_is_migrated(tmp_path: Path) -> None:
    """A store made before migration 0002 gets the origin columns and a store id; its rows
    are versions of that store."""
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as c:
        from sqlalchemy.dialects import sqlite

        for statement in migrations._initial(sqlite.dialect()):
            c.execute(statement)
        c.execute("INSERT INTO cmf_migrations VALUES ('0001_initial', 0)")
        c.execute("INSERT INTO cmf_store VALUES ('format', 'cmf-foundation'), "
                  "('created_by_site', 'old')")
        cols = {r[1] for r in c.execute("PRAGMA table_info(executions)")}
        assert "origin" not in cols
        c.execute("INSERT INTO pipelines VALUES ('id', 'old-p', 'old', 1.0, '{}', '{}', 1)")
        c.execute("UPDATE cmf_counter SET value = 1")
    with open_store(f"sqlite:///{db}", site="old") as s:
        assert len(s.store_id) == 16
        assert [(r[0], r[-3], r[-2]) for r in s.export_page(0).rows["pipeline"]] == [
            ("old-p", s.store_id, 1)]
        s.put([Stage("old-p", "s", "old")])
    with sqlite3.connect(db) as c:
        for table in schema.VERSIONED_TABLES:
            cols = {r[1] for r in c.execute(f"PRAGMA table_info({table.name})")}
            assert {"origin", "origin_seq"} <= cols
        assert [r[0] for r in c.execute("SELECT name FROM cmf_migrations ORDER BY name")] == \
            migrations.KNOWN


def test_store_ids_differ(tmp_path: Path) -> None:
    ids = set()
    for i in range(3):
        with open_store(f"sqlite:///{tmp_path / f'{i}.db'}", site="same-site") as s:
            ids.add(s.store_id)
    assert len(ids) == 3  # the same site name, three stores: three version keys
