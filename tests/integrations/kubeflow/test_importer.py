"""Import of finished KFP runs: real kfp.local run folders, and a KFP cluster's REST API.

No KFP cluster is available to the test suite, so the cluster reader is tested against a real
HTTP server on loopback that answers with recorded-format KFP v2beta1 API responses
(``data/kfp_v2beta1_run.json``: a run, its artifacts, their signed download URLs; the pipeline
version carries the compiled ``three_step`` spec). The reader's own HTTP client, paging, auth
header, error handling and digesting all run for real against it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cmf_kubeflow import KfpRunReader, adapter, import_local_run, track
from cmf_kubeflow.importer import KfpApiError

from cmf_core.errors import AuthError, InvalidInputError, NotFoundError
from cmf_core.model import EventType, ExecutionStatus
from cmf_core.store import open_store
from tests.integrations.kubeflow import pipelines
from tests.integrations.kubeflow.conftest import SITE, LocalRun, run_local
from tests.integrations.kubeflow.kfp_api import (
    DATA,
    RUN_ID,
    TOKEN,
    RecordedKfpApi,
    serve_recorded_api,
)
from tests.support.postgres import free_port


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# kfp.local ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def plain_run(tmp_path_factory: pytest.TempPathFactory) -> LocalRun:
    """An *untracked* kfp.local run: nothing was recorded while it ran."""
    return run_local(tmp_path_factory.mktemp("plain"), pipelines.three_step, rows=30)


def test_local_run_import_recovers_the_lineage(plain_run: LocalRun, cmf_env: str) -> None:
    result = import_local_run(plain_run.run_dir, pipeline=pipelines.three_step,
                              arguments={"rows": 30})
    assert result.run_key == plain_run.run_dir.name
    assert result.pipeline == "three-step"
    assert result.sent == 6 and result.spooled == 0  # START + COMPLETE per task
    assert result.notes == []
    store = open_store(cmf_env, SITE)
    executions = {e.stage: e for e in store.list_executions()}
    assert result.executions == {k: v.id for k, v in executions.items()}
    for task, ex in executions.items():
        assert ex.id == adapter.execution_id(plain_run.run_dir.name, task)
        assert ex.status is ExecutionStatus.COMPLETED
    assert dict(executions["make-data"].params) == {"rows": 30, "seed": 7}
    assert dict(executions["train-model"].params) == {"threshold": 0.5}  # the spec default
    assert executions["make-data"].properties["kfp.output_parameters"] == {"Output": 30}
    data_id = sha256((plain_run.run_dir / "make-data" / "data").read_bytes())
    model_id = sha256((plain_run.run_dir / "train-model" / "model").read_bytes())
    evaluate = store.events([executions["evaluate-model"].id])
    assert {e.artifact_id for e in evaluate if e.type is EventType.INPUT} == {data_id, model_id}
    (metrics_id,) = [e.artifact_id for e in evaluate if e.type is EventType.OUTPUT]
    metrics = store.get_artifact(metrics_id)
    model = store.get_artifact(model_id)
    assert metrics is not None and metrics.type == "Metrics"
    assert model is not None and model.type == "Model"  # the type comes from the spec
    values = {m.name: m.value for m in store.metrics([executions["evaluate-model"].id])}
    assert values["rows"] == 30.0


def test_loop_iterations_and_nested_pipelines_are_linked_within_their_dag(
        tmp_path: Path, cmf_env: str) -> None:
    """Each ``read-square`` reads the ``square`` of its own iteration or nested pipeline,
    although the loop's and the nested pipeline's tasks share their names in the spec."""
    (tmp_path / "imported").write_text("25")
    arguments = {"square_uri": str(tmp_path / "imported")}
    run = run_local(tmp_path, pipelines.nested_loop, **arguments)
    import_local_run(run.run_dir, pipeline=pipelines.nested_loop, arguments=arguments)
    store = open_store(cmf_env, SITE)
    readers = [e for e in store.list_executions() if e.stage.startswith("read-square")]
    assert len(readers) == 4
    # the dsl.importer's artifact (kfp.local keeps no folder for it) is linked by its bytes
    (top,) = [e for e in readers if "kfp.scope" not in e.properties]
    (imported,) = [e for e in store.events([top.id]) if e.type is EventType.INPUT]
    assert imported.artifact_id == sha256(b"25")
    artifact = store.get_artifact(imported.artifact_id)
    assert artifact is not None and dict(artifact.custom_properties) == {"source": "elsewhere"}
    for ex in readers:
        if ex is top:
            continue
        folder = run.run_dir / ex.properties.get("kfp.scope", "")
        (produced,) = [p for p in folder.iterdir() if p.name.startswith("square")]
        inputs = {e.artifact_id for e in store.events([ex.id]) if e.type is EventType.INPUT}
        assert inputs == {sha256((produced / "out").read_bytes())}, folder
    # the nested pipeline's x comes from its caller (x=3), not from a pipeline parameter
    (nested,) = [e for e in store.list_executions() if e.properties.get("kfp.scope") == "squared"
                 and e.stage.startswith("square")]
    assert dict(nested.params) == {"x": 3}


def test_local_import_is_idempotent(plain_run: LocalRun, cmf_env: str) -> None:
    first = import_local_run(plain_run.run_dir, pipeline=pipelines.three_step)
    store = open_store(cmf_env, SITE)
    before = (store.max_seq(), store.count_executions(), len(store.find_artifacts()),
              len(store.events()))
    second = import_local_run(plain_run.run_dir, pipeline=pipelines.three_step)
    assert second.executions == first.executions
    assert (store.count_executions(), len(store.find_artifacts()), len(store.events())) \
        == before[1:]


def test_local_import_without_the_pipeline_records_outputs(plain_run: LocalRun,
                                                           cmf_env: str) -> None:
    result = import_local_run(plain_run.run_dir)
    assert result.pipeline == "three-step"  # from the run folder name
    assert "no pipeline given" in result.notes[0]
    store = open_store(cmf_env, SITE)
    assert store.count_executions() == 3
    events = store.events()
    assert {e.type for e in events} == {EventType.OUTPUT}
    assert len(events) == 3


def test_importing_a_tracked_run_adds_nothing(tmp_path: Path) -> None:
    run = run_local(tmp_path, track(pipelines.three_step), rows=20)
    store = run.store()
    live = {e.stage: e for e in store.list_executions()}
    counts = (len(store.find_artifacts()), len(store.events()), len(store.energy()))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CMF_STORE_URL", run.store_url)
        mp.setenv("CMF_SITE", SITE)
        result = import_local_run(run.run_dir, pipeline=pipelines.three_step,
                                  arguments={"rows": 20})
    assert result.executions == {k: v.id for k, v in live.items()}
    after = {e.stage: e for e in store.list_executions()}
    for stage, e in after.items():  # times, status and params as recorded live
        was = live[stage]
        assert (e.started_at, e.ended_at, e.status, e.params, e.custom_properties) == (
            was.started_at, was.ended_at, was.status, was.params, was.custom_properties)
        # the store merges properties: the live ones are all kept (they win a shared key), and
        # the import only adds its note of where it also found the run
        assert e.properties == {**was.properties, "kfp.imported_from": "kfp.local",
                                "kfp.times": "file modification"}
    assert (len(store.find_artifacts()), len(store.events()), len(store.energy())) == counts


def test_a_local_task_without_output_is_failed(plain_run: LocalRun, tmp_path: Path,
                                               cmf_env: str) -> None:
    copy = tmp_path / plain_run.run_dir.name
    for task in ("make-data", "train-model"):
        (copy / task).mkdir(parents=True)
        for f in (plain_run.run_dir / task).iterdir():
            (copy / task / f.name).write_bytes(f.read_bytes())
    (copy / "train-model" / "executor_output.json").unlink()
    import_local_run(copy, pipeline=pipelines.three_step)
    executions = {e.stage: e for e in open_store(cmf_env, SITE).list_executions()}
    assert executions["make-data"].status is ExecutionStatus.COMPLETED
    assert executions["train-model"].status is ExecutionStatus.FAILED
    assert "evaluate-model" not in executions  # never ran


def test_local_import_rejects_what_is_not_a_run(tmp_path: Path, cmf_env: str) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        import_local_run(tmp_path / "nope")
    (tmp_path / "run.json").write_text("{}")  # a file was said not to exist
    with pytest.raises(InvalidInputError, match=r"run\.json is a file, not a folder"):
        import_local_run(tmp_path / "run.json")
    with pytest.raises(NotFoundError, match="no task folders"):
        import_local_run(tmp_path)


# KFP cluster REST API ----------------------------------------------------------------------------
@pytest.fixture
def kfp_api() -> Iterator[RecordedKfpApi]:
    with serve_recorded_api(pipelines.three_step) as server:
        yield server


def test_cluster_run_import(kfp_api: RecordedKfpApi, cmf_env: str,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KF_PIPELINES_UI_ENDPOINT", raising=False)
    with KfpRunReader(kfp_api.url, token=TOKEN) as reader:
        result = reader.import_run(RUN_ID)
    assert result.run_key == RUN_ID and result.pipeline == "three-step"
    store = open_store(cmf_env, SITE)
    executions = {e.stage: e for e in store.list_executions()
                  if e.id != result.run_execution}
    assert sorted(executions) == ["evaluate-model", "make-data", "train-model"]  # no "root"
    run = store.get_execution(adapter.run_uuid(RUN_ID))  # the run itself, as KFP ended it
    assert run is not None and result.run_execution == run.id
    assert (run.stage, run.status) == ("three-step", ExecutionStatus.FAILED)
    assert run.error == "FAILED: evaluate-model failed"
    assert dict(run.params) == {"rows": 40, "threshold": 0.4}
    assert (run.started_at, run.ended_at) == (1714564800.0, 1714564990.0)
    for task, ex in executions.items():
        assert ex.id == adapter.execution_id(RUN_ID, task)
        assert ex.properties["kfp.imported_from"] == "kfp-api"
        # the run's page in the KFP UI, served by the host read from (as kfp.Client links)
        assert ex.properties["cmf.run_url"] == f"{kfp_api.url}/#/runs/details/{RUN_ID}"
    make, train, evaluate = (executions[t] for t in ("make-data", "train-model",
                                                     "evaluate-model"))
    assert make.status is ExecutionStatus.COMPLETED
    assert train.status is ExecutionStatus.SKIPPED  # a cache hit
    assert evaluate.status is ExecutionStatus.FAILED
    assert evaluate.error == "failed to execute component: exit status 1"
    assert (make.started_at, make.ended_at) == (1714564806.0, 1714564840.0)
    assert dict(make.params) == {"rows": 40, "seed": 7}  # runtime_config + spec constants
    assert dict(train.params) == {"threshold": 0.4}
    assert make.properties["kfp.pod_name"].endswith("1111111111")
    data_id = sha256(DATA["downloads"]["11"].encode())
    model_id = sha256(DATA["downloads"]["12"].encode())
    data = store.get_artifact(data_id)
    assert data is not None and data.type == "Dataset"
    assert data.uri == DATA["artifacts"]["11"]["uri"]
    assert data.properties["kfp.identity"] == "bytes"
    assert data.properties["size_bytes"] == 37
    assert {(e.type, e.artifact_id) for e in store.events([evaluate.id])} == {
        (EventType.INPUT, data_id), (EventType.INPUT, model_id)}
    assert store.upstream(model_id).executions == frozenset({make.id, train.id})
    assert all(auth == f"Bearer {TOKEN}" for path, auth in kfp_api.requests
               if path.startswith("/apis/"))
    downloads = [auth for path, auth in kfp_api.requests if path.startswith("/signed/")]
    assert downloads and not any(downloads)  # the object store never sees the KFP token


def test_the_run_link_names_the_kfp_ui_where_it_is_served(kfp_api: RecordedKfpApi,
                                                          cmf_env: str,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """KF_PIPELINES_UI_ENDPOINT (kfp.Client's variable) names the UI when the API host is not
    it; an explicit ui_host wins; a value that is no http(s) URL is never a link."""
    monkeypatch.setenv("KF_PIPELINES_UI_ENDPOINT", "https://kubeflow.example.org/pipeline/")
    KfpRunReader(kfp_api.url, token=TOKEN).import_run(RUN_ID)
    store = open_store(cmf_env, SITE)
    assert {e.properties["cmf.run_url"] for e in store.list_executions()} == {
        f"https://kubeflow.example.org/pipeline/#/runs/details/{RUN_ID}"}
    reader = KfpRunReader(kfp_api.url, token=TOKEN, ui_host="https://kfp.example.org")
    assert reader.ui_host == "https://kfp.example.org"
    monkeypatch.setenv("KF_PIPELINES_UI_ENDPOINT", "javascript:alert(1)")
    assert KfpRunReader(kfp_api.url, token=TOKEN).ui_host == kfp_api.url  # ignored


def test_cluster_import_is_idempotent(kfp_api: RecordedKfpApi, cmf_env: str) -> None:
    reader = KfpRunReader(kfp_api.url, token=TOKEN)
    first = reader.import_run(RUN_ID)
    store = open_store(cmf_env, SITE)
    counts = (store.count_executions(), len(store.find_artifacts()), len(store.events()))
    second = KfpRunReader(kfp_api.url, token=TOKEN).import_run(RUN_ID)
    assert second.executions == first.executions
    assert (store.count_executions(), len(store.find_artifacts()), len(store.events())) == counts


def test_artifacts_not_downloaded_are_identified_by_uri(kfp_api: RecordedKfpApi,
                                                        cmf_env: str) -> None:
    KfpRunReader(kfp_api.url, token=TOKEN, download_max_bytes=0).import_run(RUN_ID)
    arts = {a.uri: a for a in open_store(cmf_env, SITE).find_artifacts()}
    data = arts[DATA["artifacts"]["11"]["uri"]]
    assert data.id.startswith("version:")
    assert data.properties["kfp.identity"] == "uri+artifact-id"
    assert not any(path.startswith("/signed/") for path, _ in kfp_api.requests)


def test_listing_runs_follows_pages(kfp_api: RecordedKfpApi) -> None:
    with KfpRunReader(kfp_api.url, token=TOKEN) as reader:
        ids = [r["run_id"] for r in reader.list_runs(namespace="kubeflow-user", page_size=1)]
    assert ids == [RUN_ID, "second"]
    pages = [path for path, _ in kfp_api.requests if path == "/apis/v2beta1/runs"]
    assert len(pages) == 2


def test_cluster_reader_errors_name_the_fix(kfp_api: RecordedKfpApi, cmf_env: str) -> None:
    with pytest.raises(AuthError, match="pass a valid token"):
        KfpRunReader(kfp_api.url, token="wrong").get_run(RUN_ID)
    with pytest.raises(NotFoundError, match="404"):
        KfpRunReader(kfp_api.url, token=TOKEN).import_run("no-such-run")
    with pytest.raises(InvalidInputError, match="must be a URL"):
        KfpRunReader("localhost:8888")
    with pytest.raises(KfpApiError, match="could not be reached"):
        KfpRunReader(f"http://127.0.0.1:{free_port()}", token=TOKEN).get_run(RUN_ID)


def test_f_string_parameters_are_imported_as_the_executor_saw_them(tmp_path: Path,
                                                                      cmf_env: str) -> None:
    """An f-string (or a pipeline channel inside a constant dict) is a constant with
    placeholders in the spec; the import records the value the component got, not the
    placeholder text. Each ``greet`` returns its parameters as it received them."""
    run = run_local(tmp_path, pipelines.f_strings, who="hpc")
    result = import_local_run(run.run_dir, pipeline=pipelines.f_strings,
                              arguments={"who": "hpc"})
    assert result.notes == []
    executions = {e.stage: e for e in open_store(cmf_env, SITE).list_executions()}
    assert sorted(executions) == ["greet", "greet-2"]
    for ex in executions.values():
        assert "{{$" not in str(dict(ex.params))
        options = ",".join(f"{k}={v}" for k, v in sorted(ex.params["options"].items()))
        assert ex.properties["kfp.output_parameters"]["Output"] == f"{ex.params['name']}|{options}"
    assert executions["greet"].params["name"].startswith("hpc-3")
    assert executions["greet"].params["options"] == {"fixed": "{{not-a-placeholder}}"}
    assert executions["greet-2"].params["options"]["from"].startswith("hpc-3")


def _recorded(store_url: str) -> dict[tuple[str, str], tuple[dict, set[str], set[str]]]:
    """(scope, stage) -> (params, input artifact ids, output artifact ids)."""
    store = open_store(store_url, SITE)
    out = {}
    for ex in store.list_executions():
        events = store.events([ex.id])
        out[(ex.properties.get("kfp.scope", ""), ex.stage)] = (
            dict(ex.params), {e.artifact_id for e in events if e.type is EventType.INPUT},
            {e.artifact_id for e in events if e.type is EventType.OUTPUT})
    return out


@pytest.mark.parametrize("name", ["items_and_outputs", "flat_nested"])
def test_an_import_records_loop_items_and_nested_outputs_as_tracked_live(
        name: str, tmp_path: Path, cmf_env: str) -> None:
    """The same run tracked live and imported into another store: the same parameters (each
    iteration's loop item: from a pipeline parameter, a constant list, a field of a task's
    output) and the same lineage (a nested pipeline's output linked to the task that reads it,
    in group folders and in kfp.local's flat layout)."""
    pipeline = getattr(pipelines, name)
    run = run_local(tmp_path / "live", track(pipeline))
    result = import_local_run(run.run_dir, pipeline=pipeline)
    assert result.notes == []
    live, imported = _recorded(run.store_url), _recorded(cmf_env)
    assert imported == live
    out = {key: sha256((run.run_dir / key / "out").read_bytes())
           for key in ("squared-loop/square-2", "square", "square-2") if
           (run.run_dir / key / "out").is_file()}
    if name == "items_and_outputs":
        assert sorted(p["x"] for (scope, stage), (p, _, _) in imported.items()
                      if scope.startswith("for-loop-1")) == [2, 3]
        assert sorted(p["x"] for (scope, stage), (p, _, _) in imported.items()
                      if scope.startswith("squared-loop/for-loop")) == [5, 6]
        assert sorted(p["name"] for (scope, stage), (p, _, _) in imported.items()
                      if stage == "greet") == ["a", "b"]
        assert imported[("", "label")][:2] == ({"tag": "w"}, {out["squared-loop/square-2"]})
    else:  # the outer square gets the nested pipeline's output parameter; its reader its file
        params = {stage: p for (_, stage), (p, _, _) in imported.items()}
        assert params["square"] == {"x": 3} and params["square-2"] == {"x": 9}
        assert imported[("", "read-square-2")][1] == {out["square-2"]}
