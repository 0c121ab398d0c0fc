"""KFP control flow: conditions, exit handlers, loops fanned in with ``dsl.Collected``.

A real ``kfp.local`` run (SubprocessRunner) for what kfp.local 2.16.1 runs, and the cluster
reader against a loopback server answering in the KFP v2beta1 format for what it does not
(``dsl.Collected`` fails in kfp.local before any task runs; its exit handler does not run after
a failure). No KFP cluster is available to the test suite.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from cmf_kubeflow import KfpRunReader, adapter, import_local_run, track

from cmf_core.model import EventType, ExecutionStatus
from cmf_core.store import open_store
from tests.integrations.kubeflow import pipelines
from tests.integrations.kubeflow.conftest import SITE, LocalRun, run_local
from tests.integrations.kubeflow.kfp_api import DATA, TOKEN, RecordedKfpApi, serve_recorded_api


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parent(ex: Any) -> str:
    """The OpenLineage ``parent`` run an execution's events named."""
    return ex.properties["openlineage.run_facets"]["parent"]["run"]["runId"]


# kfp.local -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def branches_run(tmp_path_factory: pytest.TempPathFactory) -> LocalRun:
    tmp = tmp_path_factory.mktemp("branches")
    return run_local(tmp, track(pipelines.guarded_branches), side="tails")


def ran(run: LocalRun) -> set[str]:
    """The tasks kfp.local ran to the end: their folders hold an executor output."""
    return {p.parent.name for p in run.run_dir.rglob("executor_output.json")}


def test_what_ran_under_an_exit_handler_and_a_condition_is_recorded(
        branches_run: LocalRun) -> None:
    store = branches_run.store()
    executions = {e.stage: e for e in store.list_executions()}
    # exactly the executors kfp.local ran, each once: a branch it skipped ran no executor and
    # is no execution (kfp.local 2.16.1 runs every branch of an If/Elif/Else that is not in the
    # root DAG: docs/kubeflow.md)
    assert set(executions) == ran(branches_run)
    assert {"flip", "cleanup"} <= set(executions)  # the exit task, after the guarded tasks
    assert all(e.status is ExecutionStatus.COMPLETED for e in executions.values())
    assert dict(executions["flip"].params) == {"side": "tails"}
    branches = {stage: ex for stage, ex in executions.items() if stage.startswith("say")}
    assert branches  # at least the branch taken
    words = {dict(ex.params)["word"] for ex in branches.values()}
    assert "tails" in words and len(words) == len(branches)  # each branch its own params
    outputs = {stage: {ev.artifact_id for ev in store.events([ex.id])
                       if ev.type is EventType.OUTPUT} for stage, ex in branches.items()}
    assert all(len(ids) == 1 for ids in outputs.values())
    assert len(set().union(*outputs.values())) == len(branches)  # distinct artifacts
    for stage, ids in outputs.items():
        (out,) = ids
        assert out == sha256((branches_run.run_dir / stage / "out").read_bytes())
    run_key = branches_run.run_dir.name
    assert {e.id for e in executions.values()} == {
        adapter.execution_id(run_key, stage) for stage in executions}
    # tasks inside the exit handler's and the conditions' DAGs name the run as their parent
    assert {parent(e) for e in executions.values()} == {adapter.run_uuid(run_key)}


def test_an_import_of_the_run_agrees(branches_run: LocalRun, cmf_env: str) -> None:
    result = import_local_run(branches_run.run_dir, pipeline=pipelines.guarded_branches,
                              arguments={"side": "tails"})
    live = {e.id: e for e in branches_run.store().list_executions()}
    imported = {e.id: e for e in open_store(cmf_env, SITE).list_executions()}
    assert set(imported) == set(live) == set(result.executions.values())
    for ex_id, ex in imported.items():
        assert (ex.stage, dict(ex.params), ex.status) == (
            live[ex_id].stage, dict(live[ex_id].params), live[ex_id].status)
    assert result.run_execution is None  # kfp.local keeps no run status


# KFP cluster REST API ----------------------------------------------------------------------------
RUN = "9b1c2d3e-4f50-4a6b-8c7d-0e1f2a3b4c5d"
POD = "guarded-fan-in-q8w2z-system-container-impl-"


def _artifact(aid: str, task: str, key: str) -> dict[str, Any]:
    uri = f"minio://mlpipeline/v2/artifacts/guarded-fan-in/{RUN}/{task}/{aid}/{key}"
    return {"artifact_id": aid, "uri": uri, "artifact_type": "system.Dataset",
            "artifact_size": "2", "namespace": "kubeflow-user"}


def _task(tid: str, name: str, state: str, *, pod: str | None = None,
          inputs: dict[str, list[str]] | None = None,
          outputs: dict[str, list[str]] | None = None, **extra: Any) -> dict[str, Any]:
    out = {"run_id": RUN, "task_id": tid, "display_name": name, "state": state,
           "create_time": "2024-06-01T10:00:01Z", "start_time": "2024-06-01T10:00:02Z",
           "end_time": "2024-06-01T10:00:09Z",
           "inputs": {k: {"artifact_ids": v} for k, v in (inputs or {}).items()},
           "outputs": {k: {"artifact_ids": v} for k, v in (outputs or {}).items()}, **extra}
    if pod:
        out["pod_name"] = POD + pod
    return out


FAN_IN_RUN = {
    "run_id": RUN, "display_name": "guarded fan-in", "state": "FAILED",
    "pipeline_version_reference": DATA["pipeline_version"],
    "runtime_config": {"parameters": {"side": "heads"}},
    "created_at": "2024-06-01T10:00:00Z", "finished_at": "2024-06-01T10:05:00Z",
    "run_details": {"task_details": [
        _task("1", "root", "FAILED"),
        _task("2", "exit-handler-1", "FAILED"),
        _task("3", "flip", "SUCCEEDED", pod="1"),
        _task("4", "for-loop-3", "SUCCEEDED"),
        _task("5", "square", "SUCCEEDED", pod="2", outputs={"out": ["21"]}),
        _task("6", "square", "SUCCEEDED", pod="3", outputs={"out": ["22"]}),
        _task("7", "total", "SUCCEEDED", pod="4", inputs={"parts": ["21", "22"]},
              outputs={"out": ["23"]}),
        _task("8", "condition-branches-4", "SUCCEEDED"),
        _task("9", "condition-5", "SUCCEEDED"),
        _task("10", "say", "SUCCEEDED", pod="5", outputs={"out": ["24"]}),
        _task("11", "make-data", "SUCCEEDED", pod="6", outputs={"data": ["25"]}),
        _task("12", "explode", "FAILED", pod="7", inputs={"data": ["25"]},
              error={"code": 2, "message": "failed to execute component: exit status 1"}),
        _task("13", "cleanup", "SUCCEEDED", pod="8"),  # the exit task runs after a failure
    ]},
}
FAN_IN_ARTIFACTS = {"21": _artifact("21", "square", "out"), "22": _artifact("22", "square", "out"),
                    "23": _artifact("23", "total", "out"), "24": _artifact("24", "say", "out"),
                    "25": _artifact("25", "make-data", "data")}
FAN_IN_BYTES = {"21": "1\n", "22": "4\n", "23": "5\n", "24": "hi", "25": "x\n"}


@pytest.fixture
def fan_in_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordedKfpApi]:
    monkeypatch.setitem(DATA, "run", FAN_IN_RUN)
    monkeypatch.setitem(DATA, "artifacts", FAN_IN_ARTIFACTS)
    monkeypatch.setitem(DATA, "downloads", FAN_IN_BYTES)
    with serve_recorded_api(pipelines.guarded_fan_in) as server:
        yield server


def test_cluster_control_flow_import(fan_in_api: RecordedKfpApi, cmf_env: str) -> None:
    with KfpRunReader(fan_in_api.url, token=TOKEN) as reader:
        result = reader.import_run(RUN)
    store = open_store(cmf_env, SITE)
    executions = store.list_executions()
    tasks = [e for e in executions if e.id != result.run_execution]
    # executor tasks only (no DAG drivers: root, exit-handler-1, for-loop-3, condition-*),
    # each iteration of the loop an execution of its own: no two tasks share an id
    assert sorted(e.stage for e in tasks) == [
        "cleanup", "explode", "flip", "make-data", "say", "square", "square", "total"]
    assert len({e.id for e in tasks}) == len(tasks) == len(result.executions)
    by_stage = {e.stage: e for e in tasks}
    assert by_stage["explode"].status is ExecutionStatus.FAILED
    assert by_stage["cleanup"].status is ExecutionStatus.COMPLETED
    squares = [e for e in tasks if e.stage == "square"]
    assert {e.properties["kfp.pod_name"] for e in squares} == {POD + "2", POD + "3"}
    # the fan-in reads every iteration's output: an edge from each
    square_outs = {ev.artifact_id for e in squares for ev in store.events([e.id])
                   if ev.type is EventType.OUTPUT}
    assert square_outs == {sha256(b"1\n"), sha256(b"4\n")}
    assert {ev.artifact_id for ev in store.events([by_stage["total"].id])
            if ev.type is EventType.INPUT} == square_outs
    assert store.upstream(sha256(b"5\n")).executions >= {e.id for e in squares}
    # the pipeline run itself: failed, though its exit task succeeded; the tasks' parent
    assert result.run_execution == adapter.run_uuid(RUN)
    run = store.get_execution(result.run_execution)
    assert run is not None
    assert (run.pipeline, run.stage) == ("guarded-fan-in", "guarded-fan-in")
    assert run.status is ExecutionStatus.FAILED
    assert run.error == "FAILED: explode failed"
    assert dict(run.params) == {"side": "heads"}
    assert (run.started_at, run.ended_at) == (1717236000.0, 1717236300.0)
    assert run.properties["kfp.state"] == "FAILED"
    assert run.properties["cmf.run_url"] == f"{fan_in_api.url}/#/runs/details/{RUN}"
    assert {parent(e) for e in tasks} == {run.id}
