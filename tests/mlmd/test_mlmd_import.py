"""Import MLMD stores written by the real ml-metadata library (cmflib's and KFP's shapes)."""

from __future__ import annotations

import re
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from cmf_core.errors import CmfError, NotFoundError
from cmf_core.identity import remote_digest
from cmf_core.mlmd import import_mlmd
from cmf_core.mlmd.mapping import kfp_execution_id
from cmf_core.model._base import as_dict
from cmf_core.store import ExecutionFilter, Store
from tests.mlmd.mlmd_builders import build_kfp_store, md5, postgres_config, sqlite_config
from tests.support.postgres import TempPostgres


def _by_stage(store: Store, pipeline: str) -> dict[str, Any]:
    return {e.stage: e for e in store.list_executions(ExecutionFilter(pipeline=pipeline))}


def test_cmflib_store_maps_pipeline_stages_executions(
        store: Store, cmflib_mlmd: tuple[Path, dict[str, Any]]) -> None:
    path, built = cmflib_mlmd
    report = import_mlmd(store, path)
    assert report.shape == "cmflib" and report.schema_version == 10
    assert report.pipelines == ["churn"]
    assert report.counts["executions"] == 3 and report.new["executions"] == 3
    assert [p.name for p in store.list_pipelines()] == ["churn"]
    pipeline = store.get_pipeline("churn")
    assert pipeline is not None and pipeline.custom_properties["owner"] == "ana"
    stages = {s.name: s for s in store.list_stages("churn")}
    assert sorted(stages) == ["featurize", "prepare", "train"]
    assert stages["prepare"].custom_properties["team"] == "data"
    assert stages["prepare"].properties == {"Pipeline_Stage": "churn/prepare"}

    ex = _by_stage(store, "churn")
    train = ex["train"]
    assert train.id == built["train"].properties["Execution_uuid"].string_value
    assert train.status.value == "completed" and train.ended_at is not None
    assert train.params == {"seed": 20170428, "n_est": 100, "min_split": 64}
    assert train.properties["Git_Start_Commit"] == "3ed2f5a"
    assert train.properties["Pipeline_Type"] == "churn"
    assert train.custom_properties["Python_Env"].startswith("cmf_artifacts/python_env_")
    assert train.custom_properties["mlmd_id"] == built["train"].id
    assert train.custom_properties["mlmd_type"] == "Train"


def test_cmflib_artifacts_are_their_content_hash(
        store: Store, cmflib_mlmd: tuple[Path, dict[str, Any]]) -> None:
    path, _ = cmflib_mlmd
    import_mlmd(store, path)
    ex = _by_stage(store, "churn")
    train_tsv = remote_digest("cmflib", md5("artifacts/train.tsv"))
    art = store.get_artifact(train_tsv)
    assert art is not None and art.type == "Dataset" and art.name == "artifacts/train.tsv"
    assert art.properties["Commit"] == md5("artifacts/train.tsv")
    assert art.custom_properties["mlmd_uri"] == md5("artifacts/train.tsv")
    locations = {loc.uri for loc in store.artifact_locations(train_tsv)}
    assert f"/remote/files/md5/{md5('artifacts/train.tsv')[:2]}/" \
           f"{md5('artifacts/train.tsv')[2:]}" in locations
    # prepare wrote it, featurize read it: one artifact, two events
    events = {(e.execution_id, e.type.value) for e in store.events(artifact_ids=[train_tsv])}
    assert events == {(ex["prepare"].id, "OUTPUT"), (ex["featurize"].id, "INPUT")}
    raw = store.get_artifact(remote_digest("cmflib", md5("artifacts/data.xml.gz")))
    assert raw is not None and raw.custom_properties["source"] == "kaggle"
    model = store.find_artifacts(type="Model")
    assert [m.name for m in model] == ["artifacts/model/model.pkl"]
    assert model[0].properties["model_framework"] == "SKlearn"
    # lineage: the model goes back to the raw data through featurize and prepare
    up = store.upstream(model[0].id)
    assert raw.id in up.artifacts and ex["prepare"].id in up.executions


def test_cmflib_metrics_become_cmf_metrics(
        store: Store, cmflib_mlmd: tuple[Path, dict[str, Any]]) -> None:
    path, _ = cmflib_mlmd
    import_mlmd(store, path)
    train = _by_stage(store, "churn")["train"]
    got = {(m.name, m.value, m.step) for m in store.metrics([train.id])}
    assert got == {("auc", 0.91, None), ("loss", 0.27, None), ("epochs", 10.0, None)}
    kinds = sorted(a.type for a in store.find_artifacts(pipeline="churn"))
    assert kinds.count("Metrics") == 1 and kinds.count("Step_Metrics") == 1


def _everything(store: Store) -> list[Any]:
    executions = store.list_executions()
    artifacts = store.find_artifacts()
    return [
        [as_dict(p) for p in store.list_pipelines()],
        [as_dict(s) for s in store.list_stages()],
        sorted((as_dict(e) for e in executions), key=lambda e: e["id"]),
        sorted((as_dict(a) for a in artifacts), key=lambda a: a["id"]),
        sorted((loc.artifact_id, loc.site, loc.uri) for a in artifacts
               for loc in store.artifact_locations(a.id)),
        sorted((e.execution_id, e.artifact_id, e.type.value) for e in store.events()),
        sorted((m.execution_id, m.name, m.value) for m in
               store.metrics([e.id for e in executions])),
    ]


def test_import_twice_changes_nothing(
        store: Store, cmflib_mlmd: tuple[Path, dict[str, Any]],
        kfp_mlmd: tuple[Path, dict[str, Any]]) -> None:
    for path in (cmflib_mlmd[0], kfp_mlmd[0]):
        import_mlmd(store, path)
    before = _everything(store)
    assert len(before[2]) == 9 and len(before[6]) == 5
    for path in (cmflib_mlmd[0], kfp_mlmd[0]):
        again = import_mlmd(store, path)
        assert again.new == {"executions": 0, "artifacts": 0}
    assert _everything(store) == before


def test_kfp_store_maps_tasks_runs_and_metrics(
        store: Store, kfp_mlmd: tuple[Path, dict[str, Any]]) -> None:
    path, built = kfp_mlmd
    report = import_mlmd(store, path)
    assert report.shape == "kfp"
    assert report.skipped["KFP root DAG execution (the run itself)"] == 1
    run_id = built["run_id"]
    executions = store.list_executions(ExecutionFilter(pipeline="churn-kfp"))
    assert sorted(e.stage for e in executions) == ["evaluate", "preprocess", "publish",
                                                    "score", "score", "train"]
    ex = {e.stage: e for e in executions}
    # the id the live KFP hook gives the same task, so live tracking and import agree
    assert ex["train"].id == kfp_execution_id(run_id, "train")
    assert ex["train"].params == {"n_estimators": 100.0}
    assert ex["preprocess"].params == {"test_size": 0.2}  # KFP's pipelinechannel-- dropped
    assert ex["preprocess"].custom_properties["inputs"]["pipelinechannel--source"] \
        == "s3://raw/churn.csv"
    assert ex["preprocess"].properties["kfp.output_parameters"] == {"n_rows": 1000.0}
    assert ex["preprocess"].properties["kfp.run"] == run_id
    assert ex["preprocess"].properties["kfp.run_properties"]["namespace"] == "kubeflow"
    assert ex["preprocess"].custom_properties["image"] == "python:3.11"
    assert ex["publish"].status.value == "failed"
    # the two loop iterations share a task name: ids from the MLMD records, distinct
    scores = [e for e in executions if e.stage == "score"]
    assert len({e.id for e in scores}) == 2
    assert kfp_execution_id(run_id, "score") not in {e.id for e in scores}
    metrics = {(m.name, m.value) for m in store.metrics([ex["train"].id])}
    assert metrics == {("accuracy", 0.93), ("f1", 0.88)}

    model = next(a for a in store.find_artifacts(type="Model"))
    assert model.name == "model" and model.uri.startswith("minio://mlpipeline/v2/artifacts/")
    assert model.custom_properties["framework"] == "sklearn"
    assert model.custom_properties["mlmd_type"] == "system.Model"
    report_art = next(a for a in store.find_artifacts() if a.name == "report")
    assert report_art.type == "Dataset"  # system.Markdown has no CMF type of its own
    readers = {e.execution_id for e in store.events(artifact_ids=[model.id])
               if e.type.value == "INPUT"}
    assert readers == {ex["evaluate"].id, ex["publish"].id, *(e.id for e in scores)}
    assert ("train", "evaluate") in store.stage_edges("churn-kfp")


def test_pipeline_filter_and_unknown_pipeline(
        store: Store, cmflib_mlmd: tuple[Path, dict[str, Any]],
        tmp_path: Path) -> None:
    path, _ = cmflib_mlmd
    built = build_kfp_store(sqlite_config(path))  # a KFP run in the same MLMD file
    del built
    report = import_mlmd(store, path, pipelines=["churn-kfp"])
    assert report.pipelines == ["churn-kfp"]
    assert [p.name for p in store.list_pipelines()] == ["churn-kfp"]
    with pytest.raises(NotFoundError, match=r"'nope' not in MLMD store.*churn, churn-kfp"):
        import_mlmd(store, path, pipelines=["nope"])


def test_postgresql_mlmd_written_by_the_library(store: Store, postgres: TempPostgres) -> None:
    """An MLMD server's PostgreSQL database (ml-metadata's own PostgreSQL backend)."""
    db = f"mlmd_{uuid.uuid4().hex[:8]}"
    built = build_kfp_store(postgres_config("127.0.0.1", postgres.port, db))
    del built["store"], built["writer"]
    report = import_mlmd(store, postgres.url(db))
    assert report.shape == "kfp" and report.counts["executions"] == 6
    assert report.source.startswith("postgresql://")
    train = store.get_execution(kfp_execution_id(built["run_id"], "train"))
    assert train is not None and train.params == {"n_estimators": 100.0}


def test_newer_schema_version_is_refused(
        store: Store, cmflib_mlmd: tuple[Path, dict[str, Any]]) -> None:
    path, _ = cmflib_mlmd
    with sqlite3.connect(path) as c:  # what a future ml-metadata would leave
        c.execute("UPDATE MLMDEnv SET schema_version = 11")
    with pytest.raises(CmfError, match="schema version 11, newer than this reader knows"):
        import_mlmd(store, path)
    assert store.list_pipelines() == []


def test_corrupt_file_is_refused_and_nothing_stored(
        store: Store, cmflib_mlmd: tuple[Path, dict[str, Any]]) -> None:
    path, _ = cmflib_mlmd
    data = bytearray(path.read_bytes())
    data[4096:12288] = b"\xff" * 8192  # clobber pages after the header
    path.write_bytes(bytes(data))
    with pytest.raises(CmfError, match=r"corrupt"):
        import_mlmd(store, path)
    assert store.list_pipelines() == [] and store.list_executions() == []


def altered(cmflib_mlmd: tuple[Path, dict[str, Any]], sql: str) -> Path:
    """The cmflib MLMD file after ``sql`` (as a tool or a damaged disk could leave it)."""
    path, _ = cmflib_mlmd
    with sqlite3.connect(path) as c:
        c.execute(sql)
    return path


def test_association_to_a_missing_context_is_skipped(
        store: Store, cmflib_mlmd: tuple[Path, dict[str, Any]]) -> None:
    """MLMD's SQLite tables have no foreign keys: a context may be gone, its rows not."""
    report = import_mlmd(store, altered(cmflib_mlmd, "INSERT INTO Association (context_id, "
                                                     "execution_id) SELECT 999, MIN(id) "
                                                     "FROM Execution"))
    assert report.counts["executions"] == 3
    assert report.skipped == {"association to a missing context": 1}


@pytest.mark.parametrize("sql", [
    "UPDATE Execution SET create_time_since_epoch = 'yesterday'",
    "UPDATE ExecutionProperty SET int_value = 'x' WHERE name = 'Context_ID'",
    "UPDATE EventPath SET is_index_step = 1, step_index = NULL",
])
def test_wrongly_typed_column_is_refused_and_nothing_stored(
        store: Store, cmflib_mlmd: tuple[Path, dict[str, Any]], sql: str) -> None:
    """SQLite keeps any value in any column: one MLMD never writes is a clear error."""
    path = altered(cmflib_mlmd, sql)
    with pytest.raises(CmfError, match=r"holds a value of the wrong type \(.+\); the store is "
                                       r"corrupt"):
        import_mlmd(store, path)
    assert store.list_pipelines() == []


def test_locked_file_is_not_called_corrupt(
        sqlite_store: Store, cmflib_mlmd: tuple[Path, dict[str, Any]]) -> None:
    """cmflib may still be writing the file: say it is locked, not that it is corrupt."""
    path, _ = cmflib_mlmd
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN EXCLUSIVE")
        with pytest.raises(CmfError, match=r"is locked by another process") as err:
            import_mlmd(sqlite_store, path)
        assert "corrupt" not in str(err.value)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert sqlite_store.list_pipelines() == []


def test_text_that_is_not_utf8_is_read_with_replacement(
        store: Store, cmflib_mlmd: tuple[Path, dict[str, Any]]) -> None:
    """One bad byte in a property must not make the whole file unreadable."""
    report = import_mlmd(store, altered(cmflib_mlmd, "UPDATE ExecutionProperty SET "
                                                     "string_value = CAST(X'FF61' AS TEXT) "
                                                     "WHERE name = 'Execution'"))
    assert report.counts["executions"] == 3
    assert report.notes == ["3 text value(s) are not valid UTF-8; their bad bytes were read "
                            "as U+FFFD"]
    assert {e.properties["Execution"] for e in store.list_executions()} == {"\ufffda"}


@pytest.mark.parametrize(("sql", "record"), [
    ("UPDATE Execution SET create_time_since_epoch = -5 WHERE id = 2",
     r"MLMD execution 2 \(Featurize\): started_at -0.005 is not a time"),
    ("UPDATE Artifact SET uri = printf('%.600c', 'x') WHERE id = 1",
     r"MLMD artifact 1 \(Environment '.+'\): artifact uri 'x+'... is longer than 512"),
])
def test_value_error_names_the_mlmd_record(
        store: Store, cmflib_mlmd: tuple[Path, dict[str, Any]], sql: str, record: str) -> None:
    path, _ = cmflib_mlmd
    with sqlite3.connect(path) as c:
        c.execute(sql)
    with pytest.raises(CmfError, match=rf"^{re.escape(str(path))}: {record}"):
        import_mlmd(store, path)
    assert store.list_pipelines() == []


def test_text_stored_as_blob_is_read_as_text(
        store: Store, cmflib_mlmd: tuple[Path, dict[str, Any]]) -> None:
    """SQLite keeps a BLOB in a VARCHAR column; names and URIs are read as text all the same."""
    path, _ = cmflib_mlmd
    with sqlite3.connect(path) as c:
        c.execute("UPDATE Context SET name = CAST(name AS BLOB)")
        c.execute("UPDATE Artifact SET uri = CAST(uri AS BLOB), name = CAST(name AS BLOB)")
    report = import_mlmd(store, path)
    assert report.pipelines == ["churn"] and report.counts["executions"] == 3
    assert sorted(s.name for s in store.list_stages("churn")) == ["featurize", "prepare",
                                                                  "train"]


def test_user_properties_named_cmf_dot_are_kept(
        store: Store, cmflib_mlmd: tuple[Path, dict[str, Any]]) -> None:
    """Only cmf.record / cmf.metrics are export's own; a user's 'cmf.run' is data."""
    path, built = cmflib_mlmd
    with sqlite3.connect(path) as c:
        c.execute("INSERT INTO ExecutionProperty (execution_id, name, is_custom_property, "
                  "string_value) VALUES (?, 'cmf.run', 1, 'r7')", (built["train"].id,))
        c.execute("INSERT INTO ContextProperty (context_id, name, is_custom_property, "
                  "string_value) SELECT id, 'cmf.owner', 1, 'ana' FROM Context "
                  "WHERE name = 'churn'")
    import_mlmd(store, path)
    train = _by_stage(store, "churn")["train"]
    assert train.params["cmf.run"] == "r7" and train.custom_properties["cmf.run"] == "r7"
    pipeline = store.get_pipeline("churn")
    assert pipeline is not None and pipeline.custom_properties["cmf.owner"] == "ana"


def test_kfp_metrics_outputs_logging_the_same_name_keep_both(
        store: Store, tmp_path: Path) -> None:
    """train_metrics and eval_metrics both logging 'accuracy': each value is recorded under
    '<output>.<name>', the names the live KFP hook gives them (cmf_kubeflow.adapter); a name
    logged once keeps its plain name."""
    from cmf_kubeflow.adapter import RuntimeArtifact, output_metrics
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    from tests.mlmd.mlmd_builders import KfpWriter

    path = tmp_path / "kfp.sqlite"
    mlmd = metadata_store.MetadataStore(sqlite_config(path))
    k = KfpWriter(mlmd, "fit-kfp", "0b6f6a3e-2d0c-4f61-9f57-5a1d3e2c7b90")
    fit = k.execution("system.ContainerExecution", "fit", {"lr": 0.1})
    logged = {
        # the output names sort so that the first by MLMD artifact id is not the first by name
        "train_metrics": {"accuracy": 0.99, "loss": 0.02},
        "eval_metrics": {"accuracy": 0.81, "f1": 0.77},
    }
    k.publish(fit, {"model": ("system.Model", {"framework": "sklearn"}),
                    **{key: ("system.Metrics", values) for key, values in logged.items()}})
    k.finish(pb.Execution.COMPLETE)
    del k, mlmd

    import_mlmd(store, path)
    ex = _by_stage(store, "fit-kfp")["fit"]
    got = {m.name: m.value for m in store.metrics([ex.id])}
    assert got == {"train_metrics.accuracy": 0.99, "eval_metrics.accuracy": 0.81,
                   "loss": 0.02, "f1": 0.77}
    # the same names as the live hook records for the same task
    live = output_metrics([RuntimeArtifact(key=key, uri=f"/tmp/{key}",
                                           schema_title="system.Metrics", metadata=values)
                           for key, values in logged.items()])
    assert got == live


def test_cmflib_metrics_logging_the_same_name_keep_both(
        store: Store, tmp_path: Path) -> None:
    """cmflib's log_execution_metrics called twice with a shared name: the same rule, the
    output being the metrics name it was logged under."""
    from ml_metadata.metadata_store import metadata_store

    from tests.mlmd.mlmd_builders import CmflibWriter

    path = tmp_path / "mlmd"
    w = CmflibWriter(metadata_store.MetadataStore(sqlite_config(path)), "churn")
    w.create_context("train")
    w.create_execution("Train", {"seed": 1}, "['train.py']")
    w.log_execution_metrics("training_metrics", {"auc": 0.97, "loss": 0.1})
    w.log_execution_metrics("eval_metrics", {"auc": 0.88})
    del w

    import_mlmd(store, path)
    train = _by_stage(store, "churn")["train"]
    got = {m.name: m.value for m in store.metrics([train.id])}
    assert got == {"training_metrics.auc": 0.97, "eval_metrics.auc": 0.88, "loss": 0.1}
