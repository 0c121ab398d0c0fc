"""Export CMF pipelines to MLMD, read them with cmflib's real CmfQuery, and import them back."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cmflib.cmfquery import CmfQuery

from cmf_core.errors import CmfError, NotFoundError
from cmf_core.mlmd import export_mlmd, import_mlmd
from cmf_core.model._base import as_dict
from cmf_core.store import ExecutionFilter, Store, open_store

# cmflib's own CmfQuery calls DataFrame.drop_duplicates(inplace=...), which pandas 3 deprecates
# (Pandas4Warning): cmflib's code, not ours, and nothing this test can change
pytestmark = pytest.mark.filterwarnings(
    "ignore:The inplace keyword in DataFrame.drop_duplicates is deprecated")


def _snapshot(store: Store, pipeline: str) -> dict[str, Any]:
    """Every record of ``pipeline`` in comparable form."""
    executions = store.list_executions(ExecutionFilter(pipeline=pipeline))
    ids = [e.id for e in executions]
    events = store.events(execution_ids=ids)
    arts = store.find_artifacts(ids=sorted({e.artifact_id for e in events}))
    pipe = store.get_pipeline(pipeline)
    assert pipe is not None
    return {
        "pipeline": as_dict(pipe),
        "stages": sorted((as_dict(s) for s in store.list_stages(pipeline)),
                         key=lambda s: s["name"]),
        "executions": sorted((as_dict(e) for e in executions), key=lambda e: e["id"]),
        "artifacts": sorted((as_dict(a) for a in arts), key=lambda a: a["id"]),
        "locations": sorted((loc.artifact_id, loc.site, loc.uri) for a in arts
                            for loc in store.artifact_locations(a.id)),
        "events": sorted((e.execution_id, e.artifact_id, e.type.value) for e in events),
        "metrics": sorted((m.execution_id, m.name, m.step if m.step is not None else -1,
                           m.value, m.timestamp) for m in store.metrics(ids)),
    }


@pytest.fixture
def exported(cmf_source: str, tmp_path: Path) -> tuple[Path, Store]:
    source = open_store(cmf_source, site="hpc")
    path = tmp_path / "export" / "mlmd"
    path.parent.mkdir()
    report = export_mlmd(source, path, ["churn"])
    assert report.counts == {"pipelines": 1, "stages": 3, "executions": 3, "artifacts": 4,
                             "events": 6, "metrics": 4}
    return path, source


def test_cmfquery_reads_the_export(exported: tuple[Path, Store]) -> None:
    path, source = exported
    q = CmfQuery(str(path))
    assert q.get_pipeline_names() == ["churn"]
    assert sorted(q.get_pipeline_stages("churn")) == ["churn/evaluate", "churn/prepare",
                                                       "churn/train"]
    train = source.list_executions(ExecutionFilter(pipeline="churn", stage="train"))[0]
    [mlmd_train] = q.get_all_exe_in_stage("churn/train")
    assert mlmd_train.properties["Execution_uuid"].string_value == train.id
    df = q.get_all_executions_in_stage("churn/train")
    assert list(df["Execution_uuid"]) == [train.id]
    assert list(df["Pipeline_Type"]) == ["churn"]
    assert list(df["custom_properties_lr"]) == [0.1]
    assert list(df["custom_properties_epochs"]) == [3]

    arts = q.get_all_artifacts_for_execution(mlmd_train.id)
    by_event = {(row["event"], row["type"]) for _, row in arts.iterrows()}
    assert by_event == {("INPUT", "Dataset"), ("OUTPUT", "Model"), ("OUTPUT", "Metrics")}
    # the execution's metrics, as cmflib's log_execution_metrics stores them
    carrier = arts[arts["name"].str.startswith("metrics:")]
    assert list(carrier["custom_properties_auc"]) == [0.9]
    model = source.find_artifacts(type="Model")[0]
    model_name = f"{model.uri}:{model.id}"
    assert q.get_artifact(model_name)["uri"].iloc[0] == model.id

    parents = q.get_all_parent_artifacts(model_name)
    assert sorted(n.rsplit("/", 1)[-1].split(":")[0] for n in parents["name"]) == [
        "raw.csv", "train.csv"]
    raw = next(a for a in source.find_artifacts(type="Dataset") if a.name == "raw.csv")
    children = q.get_all_child_artifacts(f"{raw.uri}:{raw.id}")
    assert {n.rsplit("/", 1)[-1].split(":")[0] for n in children["name"]} >= {
        "train.csv", "model.pkl"}
    # the pipeline's artifacts, as cmflib's UI lists them
    assert len(q.get_all_artifacts_by_context("churn")) >= 4


def test_round_trip_preserves_every_record(exported: tuple[Path, Store],
                                           tmp_path: Path) -> None:
    path, source = exported
    target = open_store(f"sqlite:///{tmp_path / 'target.db'}", site="elsewhere")
    report = import_mlmd(target, path)
    assert report.pipelines == ["churn"]
    assert _snapshot(target, "churn") == _snapshot(source, "churn")
    assert [p.name for p in target.list_pipelines()] == ["churn"]  # only what was exported
    model = source.find_artifacts(type="Model")[0]
    assert target.upstream(model.id) == source.upstream(model.id)


def test_cmf_record_without_site_is_mapped_from_mlmd(exported: tuple[Path, Store],
                                                   tmp_path: Path) -> None:
    """A cmf.record the store would refuse must not be written (and then dropped)."""
    path, _ = exported
    with sqlite3.connect(path) as c:
        for table in ("ContextProperty", "ExecutionProperty"):
            c.execute(f"UPDATE {table} SET string_value = json_set(string_value, '$.site', "
                      "json('null')) WHERE name = 'cmf.record'")
    with open_store(f"sqlite:///{tmp_path / 'target.db'}", site="here") as target:
        report = import_mlmd(target, path)
        assert any("pipeline 'churn': its cmf.record is unreadable" in n for n in report.notes)
        assert [(p.name, p.site) for p in target.list_pipelines()] == [("churn", "here")]
        assert {e.site for e in target.list_executions()} == {"here"}


def test_round_trip_into_postgresql(exported: tuple[Path, Store], store: Store) -> None:
    path, source = exported
    import_mlmd(store, path)
    assert _snapshot(store, "churn") == _snapshot(source, "churn")


def test_cmflib_store_through_cmf_and_back(cmflib_mlmd: tuple[Path, dict[str, Any]],
                                           tmp_path: Path) -> None:
    """cmflib's MLMD -> CMF -> MLMD: cmflib's CmfQuery sees the same lineage in both."""
    original, _ = cmflib_mlmd
    cmf = open_store(f"sqlite:///{tmp_path / 'cmf.db'}", site="hpc")
    import_mlmd(cmf, original)
    out = tmp_path / "again"
    export_mlmd(cmf, out)
    a, b = CmfQuery(str(original)), CmfQuery(str(out))
    assert a.get_pipeline_names() == b.get_pipeline_names() == ["churn"]
    assert sorted(a.get_pipeline_stages("churn")) == sorted(b.get_pipeline_stages("churn"))
    for stage in a.get_pipeline_stages("churn"):
        ua = sorted(a.get_all_executions_in_stage(stage)["Execution_uuid"])
        ub = sorted(b.get_all_executions_in_stage(stage)["Execution_uuid"])
        assert ua == ub

    def parents(q: CmfQuery, model: str) -> set[str]:
        return {n.split(":")[0] for n in q.get_all_parent_artifacts(model)["name"]}

    [model_a] = [n for n in a.get_all_artifacts() if n.startswith("artifacts/model/")]
    [model_b] = [n for n in b.get_all_artifacts() if n.startswith("artifacts/model/")]
    assert parents(a, model_a) == parents(b, model_b)
    assert {"artifacts/data.xml.gz", "artifacts/features/train.pkl"} <= parents(b, model_b)


def test_export_refuses_existing_file_unless_forced(exported: tuple[Path, Store]) -> None:
    path, source = exported
    before = path.read_bytes()
    with pytest.raises(CmfError, match="already exists; give another path, or --force"):
        export_mlmd(source, path, ["churn"])
    assert path.read_bytes() == before
    report = export_mlmd(source, path, ["other"], force=True)
    assert report.pipelines == ["other"]
    assert CmfQuery(str(path)).get_pipeline_names() == ["other"]
    assert not list(path.parent.glob("*.part"))


def test_export_never_replaces_the_store_it_reads(cmf_source: str) -> None:
    """--force onto the CMF store's own file would replace the store with the export."""
    source = open_store(cmf_source, site="hpc")
    own = Path(cmf_source.removeprefix("sqlite:///"))
    with pytest.raises(CmfError, match="is the CMF store being exported; give another path"):
        export_mlmd(source, own, ["churn"], force=True)
    source.close()
    with open_store(cmf_source, site="hpc") as again:
        assert sorted(p.name for p in again.list_pipelines()) == ["churn", "other"]


def test_export_unknown_pipeline(cmf_source: str, tmp_path: Path) -> None:
    source = open_store(cmf_source, site="hpc")
    with pytest.raises(NotFoundError, match="'nope' not in the store; it holds: churn, other"):
        export_mlmd(source, tmp_path / "mlmd", ["nope"])
    assert not (tmp_path / "mlmd").exists()
