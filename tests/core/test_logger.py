"""The cmflib-like Python API against a real SQLite store."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from cmf_core import Cmf
from cmf_core.errors import InvalidInputError
from cmf_core.model import ExecutionStatus
from cmf_core.process import this_process
from cmf_core.store import ExecutionFilter, Store, open_store
from tests.support.postgres import TempPostgres


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "raw.csv").write_text("a,b\n1,2\n")
    return tmp_path


def run_pipeline(cmf: Cmf, d: Path) -> None:
    cmf.create_stage("prepare")
    with cmf.create_execution(params={"split": 0.2}):
        cmf.log_dataset("raw.csv", "input")
        (d / "train.csv").write_text("a,b\n1,2\n3,4\n")
        cmf.log_dataset("train.csv", "output", custom_properties={"rows": 2})
    with cmf.create_execution("train", params={"lr": 0.1}) as ex:
        ex.log_dataset("train.csv", "input")
        for step in range(3):
            ex.log_metrics("training", {"loss": 1.0 / (step + 1)})
        (d / "model").mkdir()
        (d / "model" / "weights.bin").write_bytes(b"w")
        ex.log_model("model", "output", model_framework="sklearn", model_type="rf")
        ex.log_execution_metrics("eval", {"auc": 0.91})


def test_records_a_pipeline(workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'cmf.db'}"
    with Cmf(pipeline_name="churn", store=url, site="hpc", measure_energy=False) as cmf:
        run_pipeline(cmf, workdir)
        prov = cmf.query.provenance("model")
    assert [e.stage for e in prov.executions] == ["prepare", "train"]
    assert {a.name for a in prov.inputs} == {"raw.csv", "train.csv"}
    assert prov.executions[1].params == {"lr": 0.1}
    assert prov.metrics[prov.executions[1].id] == {"auc": 0.91}
    with open_store(url, site="x") as s:
        train = s.list_executions()[1]
        steps = [(m.name, m.step) for m in s.metrics([train.id]) if m.step is not None]
        assert steps == [("training.loss", 0), ("training.loss", 1), ("training.loss", 2)]
        model = s.find_artifacts(type="Model")[0]
        assert model.properties["model_framework"] == "sklearn"
        assert s.find_artifacts(type="Metrics")[0].properties["values"] == {"auc": 0.91}
        assert all(e.site == "hpc" for e in s.list_executions())


def test_same_file_twice_is_one_artifact(workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'cmf.db'}"
    with Cmf(pipeline_name="p", store=url, site="hpc", measure_energy=False) as cmf:
        run_pipeline(cmf, workdir)
        datasets = cmf.store.find_artifacts(type="Dataset")
    assert sorted(a.name for a in datasets) == ["raw.csv", "train.csv"]


def test_remote_artifact_described_once_local_file_digested_each_time(workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'cmf.db'}"
    with Cmf(pipeline_name="p", store=url, site="hpc", measure_energy=False) as cmf:
        with cmf.create_execution("a") as ex:
            first = ex.log_dataset("s3://bucket/data.parquet", "input", version="v1")
            local1 = ex.log_dataset("raw.csv", "input")
        (workdir / "raw.csv").write_text("a,b\n9,9\n")  # new bytes at the same path
        with cmf.create_execution("b") as ex:
            again = ex.log_dataset("s3://bucket/data.parquet", "input", version="v1")
            other = ex.log_dataset("s3://bucket/data.parquet", "input", version="v2")
            named = ex.log_dataset("s3://bucket/data.parquet", "input", version="v1",
                                   name="train-set")
            local2 = ex.log_dataset("raw.csv", "input")
        assert again is first  # the same record, created when first logged
        assert other.id != first.id and named.name == "train-set" and named.id == first.id
        assert local2.id != local1.id
        runs = cmf.store.list_executions()
        ins = {e.id: {ev.artifact_id for ev in cmf.store.events([e.id])} for e in runs}
    assert ins[runs[0].id] == {first.id, local1.id}
    assert ins[runs[1].id] == {first.id, other.id, local2.id}


def test_execution_handle_methods_log_to_their_execution(workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'cmf.db'}"
    with Cmf(pipeline_name="p", store=url, site="hpc", measure_energy=False) as cmf:
        outer = cmf.create_execution("outer")
        with cmf.create_execution("inner") as inner:  # the logger's current execution
            outer.log_params({"extra": 1})
            outer.log_model("s3://m/model.pkl", version="3", model_framework="torch")
            outer.log_metrics("train", {"loss": 0.5})
            inner.log_dataset("s3://d/x", "output", version="1", execution=outer)
        outer.finalize(execution=outer)
        got = cmf.store.get_execution(outer.id)
        assert got.params == {"extra": 1}
        names = {cmf.store.get_artifact(ev.artifact_id).name
                 for ev in cmf.store.events([outer.id])}
        assert names == {"model.pkl", "x"}
        assert [m.name for m in cmf.store.metrics([outer.id])] == ["train.loss"]
        assert cmf.store.events([inner.id]) == []


def test_exception_marks_execution_failed(workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'cmf.db'}"
    cmf = Cmf(pipeline_name="p", store=url, site="hpc", measure_energy=False)
    with pytest.raises(ZeroDivisionError), cmf.create_execution("train"):
        cmf.log_dataset("raw.csv", "input")
        1 / 0  # noqa: B018
    [ex] = cmf.store.list_executions()
    assert ex.status is ExecutionStatus.FAILED
    assert "ZeroDivisionError" in ex.error
    assert len(cmf.store.events(execution_ids=[ex.id])) == 1
    cmf.close()


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for this error")


def test_an_error_that_cannot_be_printed_still_fails_the_execution(workdir: Path) -> None:
    """The step's own exception leaves the ``with`` blocks unchanged (building the error text
    raised inside ``__exit__``, replacing it), and the execution is recorded as failed."""
    url = f"sqlite:///{workdir / 'cmf.db'}"
    with pytest.raises(Unprintable) as e, Cmf(pipeline_name="p", store=url, site="hpc",
                                              measure_energy=False) as cmf, \
            cmf.create_execution("train"):
        raise Unprintable()
    assert e.value.__context__ is None
    with open_store(url) as store:
        [ex] = store.list_executions()
    assert (ex.status, ex.error) == (ExecutionStatus.FAILED,
                                     "Unprintable: <exception str() failed>")


def test_running_execution_visible_before_end(workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'cmf.db'}"
    cmf = Cmf(pipeline_name="p", store=url, site="hpc", measure_energy=False)
    ex = cmf.create_execution("train")
    import time

    deadline = time.monotonic() + 10
    seen = None
    with open_store(url, site="reader") as other:
        while seen is None and time.monotonic() < deadline:
            seen = other.get_execution(ex.id)
            time.sleep(0.05)
    assert seen is not None and seen.status is ExecutionStatus.RUNNING
    # where it runs, so `cmf reap` can tell once this process is killed
    assert seen.properties["cmf.process"] == this_process().to_dict()
    cmf.finalize()
    with open_store(url, site="reader") as other:
        assert other.get_execution(ex.id).status is ExecutionStatus.COMPLETED
    cmf.close()


def _visible(url: str, execution_id: str, timeout: float = 10) -> bool:
    import time

    deadline = time.monotonic() + timeout
    with open_store(url, site="reader") as other:
        while time.monotonic() < deadline:
            if other.get_execution(execution_id) is not None:
                return True
            time.sleep(0.05)
    return False


def test_running_execution_visible_in_a_forked_child(workdir: Path) -> None:
    """A ``Cmf`` made before a fork (a multiprocessing pool's workers): the child's running
    execution is written too, though the parent's background thread did not follow."""
    url = f"sqlite:///{workdir / 'cmf.db'}"
    cmf = Cmf(pipeline_name="p", store=url, site="hpc", measure_energy=False)
    first = cmf.create_execution("parent")
    assert _visible(url, first.id)  # the parent's thread has started
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            ex = cmf.create_execution("child")
            code = 0 if _visible(url, ex.id) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    cmf.finalize(execution=first)
    cmf.close()


def test_bad_input_is_named(workdir: Path) -> None:
    cmf = Cmf(pipeline_name="p", store=f"sqlite:///{workdir / 'cmf.db'}", site="hpc",
              measure_energy=False)
    with pytest.raises(InvalidInputError, match="no running execution"):
        cmf.log_dataset("raw.csv", "input")
    with pytest.raises(InvalidInputError, match="no stage"):
        cmf.create_execution()
    with cmf.create_execution("s"):
        with pytest.raises(InvalidInputError, match="does not exist"):
            cmf.log_dataset("missing.csv", "input")
        with pytest.raises(InvalidInputError, match="unknown artifact type 'Blob'"):
            cmf.log_artifact("raw.csv", "input", "Blob")
        with pytest.raises(InvalidInputError, match="needs version"):
            cmf.log_dataset("s3://bucket/data.csv", "input")
        with pytest.raises(InvalidInputError, match="'input' or 'output'"):
            cmf.log_dataset("raw.csv", "sideways")
        with pytest.raises(InvalidInputError, match="not a number"):
            cmf.log_execution_metrics("m", {"acc": "high"})
    with pytest.raises(InvalidInputError, match="not a UUID"):
        cmf.create_execution("s", execution_id="run-42")
    with pytest.raises(InvalidInputError, match="pipeline_name"):
        Cmf(pipeline_name="")
    cmf.close()


def test_values_a_store_cannot_hold_are_refused_at_the_call(workdir: Path) -> None:
    # each of these once reached the store: a step >= 2**63 blocked every later read and
    # write of the SQLite file, a text timestamp broke listing, export and sync
    url = f"sqlite:///{workdir / 'cmf.db'}"
    cmf = Cmf(pipeline_name="p", store=url, site="hpc", measure_energy=False)
    with cmf.create_execution("s") as ex:
        ex.log_metrics("train", {"loss": 0.5})
        with pytest.raises(InvalidInputError, match=r"step 9223372036854775808 must be"):
            ex.log_metrics("train", {"loss": 0.1}, step=2**63)
        with pytest.raises(InvalidInputError, match=r"value .* is not a number"):
            ex.log_metrics("train", {"loss": 10**400})
        with pytest.raises(InvalidInputError, match="metrics must be a mapping"):
            ex.log_metrics("train", [0.1, 0.2])  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="params must be a mapping"):
            cmf.log_params(["lr"])  # type: ignore[arg-type]
        fifo = workdir / "fifo"
        os.mkfifo(fifo)  # reading it would block forever
        with pytest.raises(InvalidInputError, match="not a regular file or a directory"):
            cmf.log_dataset(str(fifo), "input")
    for bad in ("yesterday", float("nan"), 1e300, -1.0, True):
        with pytest.raises(InvalidInputError, match="started_at"):
            cmf.create_execution("s", started_at=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="lone surrogate"):
        Cmf(pipeline_name="bad\ud800", store=url, measure_energy=False)
    cmf.close()
    with open_store(url, site="hpc") as s:  # what was good is stored, and readable
        (e,) = s.list_executions()
        assert [(m.name, m.value) for m in s.metrics([e.id])] == [("train.loss", 0.5)]


def test_store_may_be_a_path(workdir: Path) -> None:
    with Cmf(pipeline_name="p", store=workdir / "here.db", measure_energy=False) as cmf:
        cmf.create_execution("s", started_at=np.int64(1_700_000_000))  # numpy times are fine
    assert (workdir / "here.db").is_file()
    with pytest.raises(InvalidInputError, match="store must be a Store, a store URL or a path"):
        Cmf(pipeline_name="p", store=123)  # type: ignore[arg-type]


def test_filepath_spelling_like_cmflib(workdir: Path) -> None:
    cmf = Cmf(filepath="mlmd", pipeline_name="Test-env", site="s", measure_energy=False)
    cmf.create_context(pipeline_stage := "Prepare")
    with cmf.create_execution(pipeline_stage, custom_properties={"owner": "x"}):
        cmf.log_dataset("raw.csv", "input")
    cmf.close()
    with open_store(f"sqlite:///{workdir / 'mlmd'}", site="s") as s:
        assert [p.name for p in s.list_pipelines()] == ["Test-env"]


def _nested(levels: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_params_nested_too_deeply_are_refused_at_the_call(workdir: Path) -> None:
    """500 levels were stored, and then this store's export was refused on import (and deeper
    values failed every read of them)."""
    url = f"sqlite:///{workdir / 'cmf.db'}"
    with Cmf(pipeline_name="p", store=url, site="hpc", measure_energy=False) as cmf:
        with pytest.raises(InvalidInputError, match="params: it nests mappings and lists more "
                                                    "than 200 levels deep"):
            cmf.create_execution("s", params={"deep": _nested(500)})
        with cmf.create_execution("s", params={"ok": _nested(150)}) as ex:
            run = ex.id
    with open_store(url, site="hpc") as s:
        got = s.get_execution(run).params["ok"]
    assert got == _nested(150)


# bad input on both backends: a clear InvalidInputError at the call, nothing stored lost ----------
def test_text_a_store_cannot_hold_is_refused_at_the_call(store: Store) -> None:
    """NUL (PostgreSQL text refuses it: a StoreError there, and SQLite data holding one could
    not be synced to a PostgreSQL site), lone surrogates, and integers no JSON reader takes
    back: an InvalidInputError naming the field, on either backend."""
    with pytest.raises(InvalidInputError, match=r"pipeline name 'a\\x00b' is not valid text "
                                                r"\(a NUL character\)"):
        Cmf(pipeline_name="a\x00b", store=store, measure_energy=False)
    cmf = Cmf(pipeline_name="p", store=store, measure_energy=False)
    for params, message in [
        ({"a": "x\x00"}, r"params.a: 'x\\x00' is not valid text \(a NUL character\)"),
        ({"k\x00": 1}, r"params: the key 'k\\x00' is not valid text \(a NUL character\)"),
        ({"a": {"b": ["ok", "y\x00"]}}, r"params.a.b\[1\]: 'y\\x00' is not valid text"),
        ({"a": "\ud800"}, r"params.a: '\\ud800' is not valid text \(a lone surrogate\)"),
        ({"a": 10**5000}, r"params.a: an integer of about 5000 digits is too large to store"),
        ({"a": [-(10**4400)]}, r"params.a\[0\]: an integer of about 4400 digits"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            cmf.create_execution("s", params=params)
    with pytest.raises(InvalidInputError, match=r"properties.c: 'x\\x00' is not valid text"):
        cmf.create_execution("s", custom_properties={"c": "x\x00"})
    with cmf.create_execution("s", params={"ok": 10**4299}) as ex:
        with pytest.raises(InvalidInputError, match=r"params.b: '\\x00' is not valid text"):
            cmf.log_params({"b": "\x00"})
        with pytest.raises(InvalidInputError, match=r"stage name 't\\x00' is not valid text"):
            cmf.create_stage("t\x00")
    cmf.close()
    assert [p.name for p in store.list_pipelines()] == ["p"]
    (got,) = store.list_executions()
    assert got.id == ex.id and got.params == {"ok": 10**4299}


def test_an_error_message_is_kept_with_nul_and_surrogates_written_out(store: Store) -> None:
    """An exception's message is arbitrary text (a file name from os.listdir, a value): it is
    recorded written out rather than refused, which lost the failed execution."""
    name = os.fsdecode(b"caf\xe9.csv")
    cmf = Cmf(pipeline_name="p", store=store, measure_energy=False)
    with pytest.raises(FileNotFoundError), cmf.create_execution("s"):
        raise FileNotFoundError(f"no {name}\x00")
    cmf.close()
    (got,) = store.list_executions()
    assert got.status is ExecutionStatus.FAILED
    assert got.error == "FileNotFoundError: no caf\\xe9.csv\\x00"


def test_numpy_arrays_are_recorded_as_bounded_lists(store: Store) -> None:
    params = {"a": np.arange(3), "eye": np.eye(2), "long": np.arange(60), "one": np.array([7]),
              "x": np.float32(0.5), "n": {"w": np.array([0.5, 1.5])}, "nan": np.array([np.nan])}
    with Cmf(pipeline_name="p", store=store, measure_energy=False) as cmf:
        ex = cmf.create_execution("s", params=params)
    assert store.get_execution(ex.id).params == {
        "a": [0, 1, 2], "eye": [[1.0, 0.0], [0.0, 1.0]], "long": [*range(50), "... 10 more"],
        "one": [7], "x": 0.5, "n": {"w": [0.5, 1.5]}, "nan": ["nan"]}


def test_bad_arguments_are_invalid_input_naming_them(workdir: Path) -> None:
    with pytest.raises(InvalidInputError, match="filepath must be a path to an SQLite store "
                                                "file; got int"):
        Cmf(5, pipeline_name="p")  # type: ignore[arg-type]
    url = f"sqlite:///{workdir / 'cmf.db'}"
    cmf = Cmf(pipeline_name="p", store=url, measure_energy=False)
    for bad in (5, None, "", " "):
        with pytest.raises(InvalidInputError, match="artifact reference must be a non-empty "
                                                    "string, got"):
            cmf.query.provenance(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="artifact id must be a non-empty string"):
        cmf.query.ancestors(5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="execution id must be a non-empty string"):
        cmf.query.execution(5)  # type: ignore[arg-type]
    with cmf.create_execution("s"):
        for empty in ("", "  "):  # was: the current folder, all of it hashed
            with pytest.raises(InvalidInputError, match="artifact uri must be a non-empty path "
                                                        "or URI, got"):
                cmf.log_dataset(empty, "input")
        with pytest.raises(InvalidInputError, match="artifact uri must be a path or URI, got "
                                                    "int"):
            cmf.log_dataset(5, "input")  # type: ignore[arg-type]
    cmf.close()
    with open_store(url, site="x") as s:
        assert s.find_artifacts() == [] and s.count_executions() == 1


@pytest.mark.postgres
def test_a_store_that_fails_at_the_end_loses_nothing(postgres: TempPostgres, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """The database turns read-only while a step runs (a real PostgreSQL: its sessions are
    ended and it refuses writes, as a failed-over primary does): the step's code goes on, its
    execution waits in the spool, and the next Cmf of that store records it whole."""
    import psycopg

    url = postgres.create_database()
    db = url.rsplit("/", 1)[1]
    cmf = Cmf(pipeline_name="p", store=url, site="hpc", measure_energy=False,
              custom_properties={"owner": "ml"})
    cmf.create_stage("train", custom_properties={"gpu": "a100"})
    with cmf.create_execution("train", params={"lr": 0.1}) as ex:
        ex.log_execution_metrics("eval", {"auc": 0.9})
        with psycopg.connect(postgres.url("postgres"), autocommit=True) as c:
            c.execute(f'ALTER DATABASE "{db}" SET default_transaction_read_only = on')
            c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s AND pid <> pg_backend_pid()", (db,))
    # no exception reached this code; the log says where the records are
    assert f"recording execution {ex.id} (p/train) failed" in caplog.text
    assert "spooled in" in caplog.text
    cmf.close()
    spooled = list((tmp_path / ".cmf-home" / "spool").glob("*.json"))
    assert len(spooled) == 2  # START and COMPLETE
    with psycopg.connect(postgres.url("postgres"), autocommit=True) as c:
        c.execute(f'ALTER DATABASE "{db}" SET default_transaction_read_only = off')
    Cmf(pipeline_name="p", store=url, site="hpc", measure_energy=False).close()
    assert not list((tmp_path / ".cmf-home" / "spool").glob("*.json"))
    with open_store(url) as s:
        (got,) = s.list_executions()
        assert (got.id, got.status, dict(got.params)) == (ex.id, ExecutionStatus.COMPLETED,
                                                          {"lr": 0.1})
        assert [(m.name, m.value) for m in s.metrics([ex.id])] == [("auc", 0.9)]
        # the properties of the pipeline and stage, which the spooled events do not carry
        assert dict(s.get_pipeline("p").custom_properties) == {"owner": "ml"}
        (stage,) = s.list_stages("p")
        assert dict(stage.custom_properties) == {"gpu": "a100"}


def test_a_cmf_with_nothing_spooled_does_not_load_the_openlineage_client(tmp_path: Path) -> None:
    """The spool check at start (for executions a failed store left behind) must not make every
    Cmf pay for importing the OpenLineage client (about half a second). A fresh interpreter."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'c.db'}"
    code = ("import sys\nfrom cmf_core import Cmf\n"
            f"c = Cmf(pipeline_name='p', store={url!r}, site='a', "
            "measure_energy=False)\nwith c.create_execution('s'):\n    pass\nc.close()\n"
            "print('openlineage.client' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "False", done.stderr


def test_a_store_that_fills_up_before_close_raises_nothing_and_loses_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The disk fills while a pipeline records into the embedded store, so the journal cannot
    be applied at close: closing (leaving the ``with`` block) does not raise into the user's
    code, and the next process that opens the store applies the journal whole. The full disk is
    SQLite's own "database or disk is full", made by capping the writer's page count."""
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    ids = []
    with Cmf(pipeline_name="p", store=url, measure_energy=False) as cmf:
        writer = cmf.store._writer_conn()  # type: ignore[attr-defined]
        (pages,) = writer.execute("PRAGMA page_count").fetchone()
        writer.execute(f"PRAGMA max_page_count = {pages}")
        for i in range(5):  # each row needs pages the capped database cannot grow
            with cmf.create_execution("train", params={"i": i, "note": "x" * 5000}) as ex:
                ex.log_execution_metrics("eval", {"auc": i / 10})
                ids.append(ex.id)
    assert "closing the store" in caplog.text
    with open_store(url, site="x") as s:
        got = sorted((e.id, e.status) for e in s.list_executions())
        assert got == sorted((i, ExecutionStatus.COMPLETED) for i in ids)
        assert sorted(m.value for m in s.metrics(ids)) == [0.0, 0.1, 0.2, 0.3, 0.4]


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_records_made_after_the_store_file_went_away_are_spooled_not_lost(
        tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture) -> None:
    """The store's folder is deleted (or the file replaced by a restored copy) while a
    pipeline records: its connections and journal went on writing into the unlinked file, and
    every later execution was lost without a trace. They are spooled now, and the next run
    replays them into the store at that path."""
    folder = tmp_path / "store"
    url = f"sqlite:///{folder / 'cmf.db'}"
    with Cmf(pipeline_name="p", store=url, measure_energy=False) as cmf:
        with cmf.create_execution("before"):
            pass
        cmf.store.apply_journal()  # type: ignore[attr-defined]
        if how == "deleted":
            shutil.rmtree(folder)
        else:
            (folder / "cmf.db").rename(tmp_path / "old.db")
            open_store(url, site="x").close()  # a fresh store at the path
        after = []
        for i in range(3):
            with cmf.create_execution("after", params={"i": i}) as ex:
                after.append(ex.id)
    assert f"the store file {folder / 'cmf.db'} was {how}" in caplog.text
    assert "spooled in" in caplog.text
    if how == "deleted":
        assert not folder.exists()  # not made again behind the user's back
    with Cmf(pipeline_name="p", store=url, measure_energy=False) as again:  # replays the spool
        got = {e.id: e.stage for e in again.store.list_executions()}
    assert {i: "after" for i in after}.items() <= got.items()
    if how == "deleted":
        assert "before" not in got.values()  # it was in the folder that went away
    else:  # the journal beside the file is applied to the new one too (upserts: harmless)
        assert "damaged" not in caplog.text


def test_numpy_integer_steps_are_steps(store: Store) -> None:
    # a training loop's step often comes from np.arange or a DataFrame: a whole number all the
    # same; once refused as "must be a whole number"
    cmf = Cmf(pipeline_name="p", store=store, measure_energy=False)
    with cmf.create_execution("train") as ex:
        for step in np.arange(3, dtype=np.int64):
            ex.log_metrics("train", {"loss": 1.0 / (int(step) + 1)}, step=step)
        ex.log_metrics("train", {"loss": 0.1}, step=np.uint8(7))
        for bad in (np.True_, 1.5, np.int64(-1)):
            with pytest.raises(InvalidInputError, match="must be a whole number"):
                ex.log_metrics("train", {"loss": 0.1}, step=bad)
    cmf.close()
    steps = [(m.step, type(m.step)) for m in store.metrics([ex.id])]
    assert steps == [(0, int), (1, int), (2, int), (7, int)]


def test_a_diverging_loss_is_noted_not_raised_into_the_loop(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """A NaN or infinite metric (a diverging loss) once raised InvalidInputError inside the
    user's training loop and stopped it. A store holds finite numbers only, so it is not stored,
    but counted in the execution's cmf.non_finite_metrics property with one WARNING per name;
    the steps of the other values still follow the loop."""
    cmf = Cmf(pipeline_name="p", store=store, measure_energy=False)
    with caplog.at_level(logging.WARNING, logger="cmf_core.logger"), \
            cmf.create_execution("train") as ex:
        for i in range(5):
            ex.log_metrics("train", {"loss": np.float32("nan") if i >= 2 else 1.0 / (i + 1),
                                     "acc": 0.5 + i / 10})
        ex.log_execution_metrics("final", {"auc": float("-inf"), "f1": 0.7})
        with pytest.raises(InvalidInputError, match="is not a number"):
            ex.log_metrics("train", {"loss": "high"})  # not a number at all: still an error
    cmf.close()
    stored = [(m.name, m.step, m.value) for m in store.metrics([ex.id])]
    assert sorted(stored) == sorted([
        ("f1", None, 0.7), ("train.loss", 0, 1.0), ("train.loss", 1, 0.5),
        *(("train.acc", i, 0.5 + i / 10) for i in range(5))])
    done = store.get_execution(ex.id)
    assert done is not None
    assert done.status.value == "completed"
    assert done.properties["cmf.non_finite_metrics"] == {
        "train.loss": {"count": 3, "first_step": 2, "first_value": "nan"},
        "auc": {"count": 1, "first_step": None, "first_value": "-inf"}}
    warnings = [r.getMessage() for r in caplog.records if "not stored" in r.getMessage()]
    assert len(warnings) == 2 and "'train.loss'" in warnings[0] and "(step 2)" in warnings[0]


class _CountedScans(list):
    """A list that counts the times it is walked."""

    scans = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        _CountedScans.scans += 1
        return super().__iter__()


def test_default_steps_do_not_rescan_what_was_logged(workdir: Path) -> None:
    # each log_metrics without step= counted the metrics logged so far by walking every record
    # of the execution: 10,000 steps of a training loop took seconds, 100,000 many minutes
    url = f"sqlite:///{workdir / 'cmf.db'}"
    cmf = Cmf(pipeline_name="p", store=url, measure_energy=False)
    with cmf.create_execution("train") as ex:
        pending = cmf._pending[ex.id]
        pending.records = _CountedScans(pending.records)
        ex.log_dataset("raw.csv", "input")
        ex.log_execution_metrics("eval", {"loss": 0.9})  # a scalar "loss": counted as before
        for i in range(2000):
            ex.log_metrics("", {"loss": 1.0 / (i + 1)})
            ex.log_metrics("val", {"acc": i / 2000, "f1": 0.5})
        ex.log_metrics("val", {"acc": 1.0}, step=5000)  # explicit steps count too
        ex.log_metrics("val", {"acc": 1.0})
        assert _CountedScans.scans == 0
    cmf.close()
    with open_store(url, site="x") as s:
        steps: dict[str, list[int | None]] = {}
        for m in s.metrics([ex.id]):
            steps.setdefault(m.name, []).append(m.step)
    assert sorted(steps["loss"], key=lambda v: -1 if v is None else v) == [None,
                                                                          *range(1, 2001)]
    assert sorted(steps["val.acc"]) == [*range(2000), 2001, 5000]
    assert sorted(steps["val.f1"]) == list(range(2000))


def test_a_closed_logger_leaves_no_thread_behind(workdir: Path) -> None:
    # a notebook that re-runs `with Cmf(...) as cmf:` cells: each closed logger left its
    # "cmf-starts" thread waiting forever (200 cells, 200 threads)
    url = f"sqlite:///{workdir / 'cmf.db'}"
    threads = []
    for i in range(3):
        with Cmf(pipeline_name="p", store=url, measure_energy=False) as cmf:
            with cmf.create_execution("s", params={"i": i}):
                threads.append(cmf._starts._thread)
            cmf.create_execution("s")  # still running at close: ended by it
    for t in threads:
        assert t is not None
        t.join(timeout=10)
    assert [t.name for t in threads if t.is_alive()] == []
    with open_store(url, site="x") as s:
        assert sorted(e.status for e in s.list_executions()) == ["completed"] * 6
    # a logger of the caller's store, used again after close: its running executions are
    # written as before
    with open_store(url, site="x") as store:
        cmf = Cmf(pipeline_name="p", store=store, measure_energy=False)
        cmf.close()
        with cmf.create_execution("s") as ex:
            assert _visible(url, ex.id)
        cmf.close()


def test_file_uris_are_decoded_as_rfc_8089_says(workdir: Path) -> None:
    # "file:///x/my%20data.csv" (what Path.as_uri() writes) was looked up as a file named
    # "my%20data.csv", and "file://localhost/x" as the relative path "localhost/x"
    data = workdir / "my data #1.csv"
    data.write_text("a\n")
    url = f"sqlite:///{workdir / 'cmf.db'}"
    with (Cmf(pipeline_name="p", store=url, site="hpc", measure_energy=False) as cmf,
          cmf.create_execution("a") as ex):
        by_path = ex.log_dataset(str(data), "input")
        by_uri = ex.log_dataset(data.as_uri(), "input")
        by_host = ex.log_dataset("file://localhost" + data.as_uri()[7:], "input")
        assert by_path.id == by_uri.id == by_host.id
        assert by_uri.uri == by_host.uri == str(data)
        # a name with a literal '%' given unencoded still names that file
        pct = workdir / "50%25.csv"
        pct.write_text("b\n")
        assert ex.log_dataset(f"file://{pct}", "input").uri == str(pct)
        with pytest.raises(InvalidInputError, match=r"on host 'nas'.*digest="):
            ex.log_dataset("file://nas/share/x.csv", "input")


def _threads_and_files() -> tuple[int, int]:
    import threading

    return threading.active_count(), len(os.listdir("/proc/self/fd"))


def _join_threads(*names: str, timeout: float = 30, older: frozenset[int] = frozenset()
                  ) -> None:
    """Wait (at most ``timeout`` in all) for this process's threads of these names to end,
    but those in ``older`` (thread idents from before the test: other tests' stores, kept
    open for their next logger, never end before the process does)."""
    import threading
    import time

    deadline = time.monotonic() + timeout
    for t in threading.enumerate():
        if t.name in names and t.ident not in older:
            t.join(timeout=max(0.0, deadline - time.monotonic()))


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql",
                                                         marks=pytest.mark.postgres)])
def test_a_notebook_cell_re_run_without_close_holds_no_more_threads_or_files(
        tmp_path: Path, kind: str, request: pytest.FixtureRequest) -> None:
    """A notebook re-runs the cell ``cmf = Cmf(pipeline_name="churn")`` and never closes the
    last logger: each one kept its store (journal thread, the database, -wal and journal files)
    and its "cmf-starts" thread alive forever, the thread holding the store: 50 re-runs held
    252 threads and 157 open files, about 300 hit the usual limit of 1,024 files. The loggers
    of one embedded store now share it, and a logger's thread ends when nothing is due."""
    import gc

    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'cmf.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database()
    Cmf(pipeline_name="warm-up", store=url, measure_energy=False).close()  # imports, pools
    gc.collect()
    threads, files = _threads_and_files()
    older = frozenset(t.ident for t in threading.enumerate() if t.ident is not None)
    ids = []
    runs = 30  # each leaked a thread and three files: 30 are far above the slack below
    for i in range(runs):
        cmf = Cmf(pipeline_name="churn", store=url, measure_energy=False)  # the cell, again
        with cmf.create_execution("train", params={"i": i}) as ex:
            ex.log_metrics("", {"loss": 1.0 / (i + 1)})
        ids.append(ex.id)
    del cmf, ex
    gc.collect()
    _join_threads("cmf-starts", older=older)  # each ends START_VISIBLE_AFTER_S after its last
    now_threads, now_files = _threads_and_files()
    # at most the one shared store's applier thread and its files (db, -wal, -shm, journal)
    assert now_threads <= threads + 2, now_threads - threads
    assert now_files <= files + 8, now_files - files
    # the records of every logger are in the store
    with open_store(url, site="reader") as s:
        got = {e.id: e for e in s.list_executions(ExecutionFilter(pipeline="churn"))}
        assert sorted(got) == sorted(ids)
        assert {e.status for e in got.values()} == {ExecutionStatus.COMPLETED}
        assert sorted(m.value for m in s.metrics(ids)) == sorted(1.0 / (i + 1)
                                                                  for i in range(runs))
    # a query of a logger used once and dropped still answers
    workdir = tmp_path / "w"
    workdir.mkdir()
    (workdir / "raw.csv").write_text("a,b\n1,2\n")
    with (Cmf(pipeline_name="p", store=url, measure_energy=False) as cmf,
          cmf.create_execution("prep")):
        cmf.log_dataset(str(workdir / "raw.csv"), "input")
        (workdir / "out.csv").write_text("x\n")
        cmf.log_dataset(str(workdir / "out.csv"), "output")
    prov = Cmf(pipeline_name="p", store=url, measure_energy=False).query.provenance("out.csv")
    assert [a.name for a in prov.inputs] == ["raw.csv"]
    gc.collect()
    # the last logger of the store to close closes it: nothing is left held
    Cmf(pipeline_name="churn", store=url, measure_energy=False).close()
    _join_threads("cmf-starts", "cmf-journal", older=older)
    assert _threads_and_files() <= (threads, files)


def test_a_shared_store_whose_file_went_away_is_not_reused(tmp_path: Path) -> None:
    """A logger still alive holds the store of a file since deleted: a new logger of that path
    opens the file now there instead of sharing the store whose writes are refused."""
    folder = tmp_path / "store"
    url = f"sqlite:///{folder / 'cmf.db'}"
    old = Cmf(pipeline_name="p", store=url, measure_energy=False)
    shutil.rmtree(folder)
    with Cmf(pipeline_name="p", store=url, measure_energy=False) as cmf:
        assert cmf.store is not old.store
        with cmf.create_execution("s") as ex:
            pass
    with open_store(url, site="reader") as s:
        assert [e.id for e in s.list_executions()] == [ex.id]
    old.close()  # its writes are refused (spooled): the closing says so, never raises


def test_an_execution_left_open_in_a_dropped_logger_is_judged_lost_as_before(
        tmp_path: Path) -> None:
    """A logger dropped unclosed while an execution runs (a re-run cell) neither ends it nor
    loses it: it is recorded running, with its process, and once that process has ended
    ``cmf reap`` finds it lost (not completed: nothing said it ended well)."""
    import subprocess
    import sys

    from cmf_core.lost import find_lost

    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    code = (
        "import gc, sys, time\nfrom cmf_core import Cmf\n"
        "cmf = Cmf(pipeline_name='p', store=sys.argv[1], measure_energy=False)\n"
        "eid = cmf.create_execution('train', params={'lr': 0.1}).id\n"
        "del cmf\ngc.collect()\n"
        "for i in range(5):  # the cell again, each logger dropped\n"
        "    cmf = Cmf(pipeline_name='p', store=sys.argv[1], measure_energy=False)\n"
        "    with cmf.create_execution('other'):\n        pass\n"
        "deadline = time.monotonic() + 30\n"
        "while cmf.store.get_execution(eid) is None and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)  # its running row is written after 0.5 s\n"
        "print(eid)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_") or k == "CMF_HOME"}
    done = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True,
                          timeout=120, check=True, env=env)
    eid = done.stdout.strip()
    with open_store(url, site="reader") as s:
        ex = s.get_execution(eid)
        assert ex is not None and ex.status is ExecutionStatus.RUNNING
        assert [x.execution.id for x in find_lost(s).lost] == [eid]
        assert sorted(e.status for e in s.list_executions(ExecutionFilter(stage="other"))) == [
            ExecutionStatus.COMPLETED] * 5


def _pg_backends(postgres: TempPostgres, url: str, want: int | None = None) -> int:
    """The server connections to the database of ``url`` (pg_stat_activity). With ``want``:
    waits (30 s at most) until there are no more than that, since a backend whose client
    closed its connection leaves the view when its process has ended, a moment later."""
    import time

    import psycopg
    import sqlalchemy as sa

    db = sa.engine.make_url(url).database
    deadline = time.monotonic() + 30
    with psycopg.connect(postgres.url("postgres"), autocommit=True) as c:
        while True:
            row = c.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                            (db,)).fetchone()
            n = int(row[0]) if row else 0
            if want is None or n <= want or time.monotonic() > deadline:
                return n
            time.sleep(0.05)


@pytest.mark.postgres
def test_the_loggers_of_one_postgresql_store_share_its_connections(
        postgres: TempPostgres) -> None:
    """A pipeline process that makes one ``Cmf`` per stage, all alive at once: each opened a
    store of its own, a writer connection and a pool, so 30 loggers held 60 server
    connections (a server's max_connections is 100 by default). The loggers of one URL and
    site now share one store, and its connections are closed when the last of them closes."""
    url = postgres.create_database()
    loggers = []
    ids = []
    for i in range(30):
        cmf = Cmf(pipeline_name=f"stage-{i}", store=url, measure_energy=False)
        with cmf.create_execution("s", params={"i": i}) as ex:
            ex.log_metrics("", {"loss": float(i)})
        assert cmf.store.list_executions()  # a read: the pool's connection
        loggers.append(cmf)
        ids.append(ex.id)
    assert len({id(c.store) for c in loggers}) == 1
    assert _pg_backends(postgres, url) <= 3  # the writer and a pooled reader (and slack)
    # another site, or another URL (its options may differ), opens a store of its own
    other_site = Cmf(pipeline_name="x", store=url, site="other", measure_energy=False)
    other_url = Cmf(pipeline_name="x", store=url + "?application_name=cmf-other",
                    measure_energy=False)
    assert len({id(loggers[0].store), id(other_site.store), id(other_url.store)}) == 3
    other_site.close()
    other_url.close()
    # closing one logger leaves the store open for the others, which go on recording
    for cmf in loggers[:-1]:
        cmf.close()
    last = loggers[-1]
    with last.create_execution("after") as ex:
        pass
    ids.append(ex.id)
    last.close()
    assert _pg_backends(postgres, url, want=0) == 0  # the last close closed the connections
    with open_store(url, site="reader") as s:
        got = s.list_executions()
        assert sorted(e.id for e in got) == sorted(ids)
        assert {e.status for e in got} == {ExecutionStatus.COMPLETED}
    # a logger made after the last one closed opens the store anew
    with Cmf(pipeline_name="again", store=url, measure_energy=False) as cmf:
        assert cmf.store is not last.store
        with cmf.create_execution("s"):
            pass


def test_a_re_run_cell_ends_the_execution_it_left_running(
        workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A notebook cell ``run = cmf.create_execution("train")`` run twice: the first execution
    stayed "running" for ever (until close(), which a notebook rarely reaches), silently. It is
    now ended as aborted, saying why, with its metrics and energy record (the real monitor:
    modelled from CPU time where there is no RAPL), and a WARNING names it. Executions of other
    stages, in a ``with`` block or of another thread run on."""
    url = f"sqlite:///{workdir / 'cmf.db'}"
    cmf = Cmf(pipeline_name="p", store=url, site="hpc", measure_energy=True)
    outer = cmf.create_execution("outer")  # another stage: runs on
    block = cmf.create_execution("train")
    with block:  # in a ``with`` block: its block ends it
        first = cmf.create_execution("train", params={"lr": 1})
        first.log_metrics("fit", {"loss": 1.0})
        threaded: list[str] = []
        t = threading.Thread(target=lambda: threaded.append(cmf.create_execution("train").id))
        t.start()
        t.join()
        with caplog.at_level(logging.WARNING, logger="cmf_core.logger"):
            second = cmf.create_execution("train", params={"lr": 2})  # the cell, run again
        assert set(cmf._pending) == {outer.id, block.id, threaded[0], second.id}
    second.log_metrics("fit", {"loss": 2.0})
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert first.id in warning and "create_execution('train')" in warning
    with pytest.raises(InvalidInputError, match=rf"{first.id} was ended as aborted when "
                                                rf"create_execution\('train'\) started"):
        first.log_metrics("fit", {"loss": 0.5})
    cmf.finalize()  # the current one: the second
    with pytest.raises(InvalidInputError, match=rf"{second.id} has already ended \(completed\)"):
        cmf.finalize(execution=second)
    cmf.close()
    with open_store(url, site="x") as s:
        got = s.get_execution(first.id)
        assert got.status is ExecutionStatus.ABORTED
        assert got.error == (f"superseded: create_execution('train') started execution "
                             f"{second.id} in the same thread before this one was finalized")
        assert [(m.name, m.value) for m in s.metrics([first.id])] == [("fit.loss", 1.0)]
        assert [e.execution_id for e in s.energy([first.id])] == [first.id]
        assert s.get_execution(second.id).status is ExecutionStatus.COMPLETED
        assert {s.get_execution(i).status for i in (outer.id, block.id, threaded[0])} == {
            ExecutionStatus.COMPLETED}


def _rows_in_file(db: Path, execution_id: str, timeout: float = 30) -> list[tuple[str, int]]:
    """The execution's (status, metric count) as plain sqlite3 reads the file (no cmf store:
    nothing applies the journal for it), waiting for the applier at most ``timeout``."""
    import sqlite3
    import time

    deadline = time.monotonic() + timeout
    while True:
        conn = sqlite3.connect(db)
        try:
            rows = conn.execute(
                "SELECT status, (SELECT count(*) FROM metrics WHERE execution_id = e.id) "
                "FROM executions e WHERE id = ?", (execution_id,)).fetchall()
        finally:
            conn.close()
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_closing_a_shared_store_by_hand_leaves_its_other_loggers_working(
        workdir: Path) -> None:
    """Two loggers of one file share one store; ``a.store.close()`` closed it for both: the
    other's journaled writes were no longer applied to the database (its applier thread was
    gone for good), only by a later cmf read or at exit, and the store was never shared
    again. Closing now applies and releases; the store opens what it needs on its next use."""
    db = workdir / "cmf.db"
    a = Cmf(db, pipeline_name="p", measure_energy=False)
    b = Cmf(db, pipeline_name="p", measure_energy=False)
    assert a.store is b.store
    a.store.close()
    with b.create_execution("train") as ex:
        ex.log_metrics("fit", {"loss": 0.5})
    assert _rows_in_file(db, ex.id) == [("completed", 1)]
    c = Cmf(db, pipeline_name="p", measure_energy=False)
    assert c.store is b.store  # shared again
    a.close()
    with c.create_execution("eval") as ex2:
        pass
    assert _rows_in_file(db, ex2.id) == [("completed", 0)]
    for cmf in (b, c):
        cmf.close()
