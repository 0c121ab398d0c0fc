"""Upgrading in place: a store and spool files made by real old code, opened by this code.

``data/store-757eab7.sql`` is ``sqlite3 cmf.db .dump`` of a store recorded by the first release
(commit 757eab7, only ``0001_initial``) and ``data/spool-757eab7/`` the spool files it left
(named ``<ns>-<digest>.json``, before spool files named their target). They were made with that
commit checked out (``git worktree add --detach OLD 757eab7``, ``PYTHONPATH=OLD``) by a script
that ran, with ``CMF_HOME`` = ``/tmp/s16/upgrade/h1``:

* ``Cmf(filepath=cmf.db, pipeline_name="churn")``: ``prepare`` (train.csv -> eval.json,
  ``split=0.2``), ``train`` (eval.json -> model.pkl, stepped ``loss``, ``eval`` auc/f1, an
  ``EnergyRecord`` of 0.012 kWh / 0.005 kg) and ``evaluate`` (raised: failed);
* two raw OpenLineage events of a Spark job put as ``LineageEvent`` rows (no ingest yet);
* a second store at site ``edge`` (one ``train``), ``cmf export`` from it, ``cmf import`` here;
* two events emitted through ``Emitter`` while the store could not be opened: spooled.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cmf_core.cli import app
from cmf_core.store import migrations, open_store
from cmf_core.store.journal import JournalWriter, journal_dir

DATA = Path(__file__).parent / "data"
PREPARE = "01a2273a-78b7-7bad-8e57-79c34bbd6df8"
TRAIN = "01a2273a-78b8-78e1-a6d0-5d6ed8220dbc"
EVALUATE = "01a2273a-78be-7a38-8b5b-5d69b03de0bc"
EDGE_TRAIN = "01a2273a-78fe-7483-abe1-b55250146302"
SPOOLED_RUN = "52f624a1-2f72-40f9-a793-d8ecf1c55017"

runner = CliRunner()


@pytest.fixture
def old_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The first release's store and its spool, in a fresh CMF home."""
    for key in ("CMF_STORE_URL", "CMF_SERVER_URL", "CMF_SPOOL_DIR", "CMF_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("CMF_HOME", str(tmp_path))
    monkeypatch.setenv("CMF_SITE", "hpc")
    db = tmp_path / "cmf.db"
    with sqlite3.connect(db) as c:
        c.executescript((DATA / "store-757eab7.sql").read_text(encoding="utf-8"))
    c.close()
    shutil.copytree(DATA / "spool-757eab7", tmp_path / "spool")
    return db


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_first_release_s_store_is_migrated_and_keeps_every_record(old_store: Path) -> None:
    with sqlite3.connect(old_store) as c:
        assert [r[0] for r in c.execute("SELECT name FROM cmf_migrations")] == ["0001_initial"]
    url = f"sqlite:///{old_store}"
    executions = json.loads(cli("executions", "--store", url, "--json"))
    assert sorted((e["id"], e["stage"], e["site"], e["status"]) for e in executions) == sorted([
        (PREPARE, "prepare", "hpc", "completed"), (TRAIN, "train", "hpc", "completed"),
        (EVALUATE, "evaluate", "hpc", "failed"), (EDGE_TRAIN, "train", "edge", "completed")])
    train = next(e for e in executions if e["id"] == TRAIN)
    assert train["params"] == {"lr": 0.1, "nested": {"a": 1}}
    # model.pkl <- train <- eval.json <- prepare <- train.csv
    node = json.loads(cli("lineage", "model.pkl", "--store", url, "--json"))
    chain = []
    while node:
        chain.append(node["name"] if node["kind"] == "artifact" else node["id"])
        node = node["children"][0] if node["children"] else None
    assert chain == ["model.pkl", TRAIN, "eval.json", PREPARE, "train.csv"]
    with open_store(url, site="hpc") as s:
        metrics = s.metrics([TRAIN])
        assert {m.name: m.value for m in metrics if m.step is None} == {"auc": 0.91, "f1": 0.8}
        assert sorted(m.step for m in metrics if m.step is not None) == [0, 1, 2]
        (energy,) = s.energy([TRAIN])
        assert (energy.energy_kwh, energy.co2e_kg) == (0.012, 0.005)
        assert len(s.store_id) == 16  # migration 0002 gave it a store id
    with sqlite3.connect(old_store) as c:
        assert [r[0] for r in c.execute("SELECT name FROM cmf_migrations ORDER BY name")] == \
            migrations.KNOWN
        assert c.execute("SELECT count(*) FROM ol_events").fetchone()[0] == 2
    # the spool files the old code left (not named by target) are replayed into this store
    assert "2 event(s) waiting" in cli("spool", "status", "--store", url)
    assert "recorded 2 event(s); 0 still waiting" in cli("spool", "retry", "--store", url)
    executions = json.loads(cli("executions", "--store", url, "--json"))
    assert any(e["id"] == SPOOLED_RUN and e["status"] == "completed" for e in executions)


def test_a_bad_journal_entry_in_the_first_release_s_store_is_set_aside(old_store: Path) -> None:
    """The first release made stores without ``cmf_journal_rejected``; a journal entry that
    cannot be applied made every read fail ("the CMF store is damaged (no such table)")."""
    url = f"sqlite:///{old_store}"
    open_store(url, site="hpc").close()  # migrated
    w = JournalWriter(journal_dir(old_store), fsync=False)
    w.append({"no such kind": [[1]]})
    w.close()
    with open_store(url, site="hpc") as s:
        assert len(list(s.list_executions())) == 4
    with sqlite3.connect(old_store) as c:
        (error,) = c.execute("SELECT error FROM cmf_journal_rejected").fetchone()
    assert "unknown record kind" in error
