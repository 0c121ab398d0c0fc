"""Zero-change tracking: real kfp.local runs of unmodified components, and the compiled IR."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from cmf_kubeflow import adapter, import_local_run, track, track_file
from cmf_kubeflow.conf import task_identity
from cmf_kubeflow.importer import list_local_runs
from cmf_kubeflow.tracking import BEGIN_MARK, END_MARK, HOOK_MODULE, track_spec
from google.protobuf import json_format
from kfp import compiler, components

from cmf_core.errors import ConfigError, InvalidInputError
from cmf_core.model import EventType, ExecutionStatus
from tests.integrations.kubeflow import pipelines
from tests.integrations.kubeflow.conftest import SITE, LocalRun, run_local


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def commands(component: object) -> dict[str, list[str]]:
    spec = json_format.MessageToDict(component.pipeline_spec)  # type: ignore[attr-defined]
    return {k: v["container"]["command"]
            for k, v in spec["deploymentSpec"]["executors"].items() if "container" in v}


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory: pytest.TempPathFactory) -> LocalRun:
    tmp = tmp_path_factory.mktemp("tracked")
    return run_local(tmp, track(pipelines.three_step), rows=40, threshold=0.4)


def test_every_component_run_is_recorded(tracked_run: LocalRun) -> None:
    store = tracked_run.store()
    run_key = tracked_run.run_dir.name
    executions = {e.stage: e for e in store.list_executions()}
    assert sorted(executions) == ["evaluate-model", "make-data", "train-model"]
    for task, ex in executions.items():
        assert ex.id == adapter.execution_id(run_key, task)
        assert ex.pipeline == "three-step"
        assert ex.site == SITE
        assert ex.status is ExecutionStatus.COMPLETED
        assert ex.ended_at is not None and ex.ended_at >= ex.started_at
        assert ex.properties["kfp.run"] == run_key
        assert ex.properties["kfp.identity_source"] == "kfp.local"
    assert dict(executions["make-data"].params) == {"rows": 40, "seed": 7}
    assert dict(executions["train-model"].params) == {"threshold": 0.4}
    assert executions["make-data"].properties["kfp.output_parameters"] == {"Output": 40}
    assert executions["make-data"].properties["kfp.function"] == "make_data"


def test_artifacts_are_linked_by_their_bytes(tracked_run: LocalRun) -> None:
    store = tracked_run.store()
    ex = {e.stage: e.id for e in store.list_executions()}
    data_file = tracked_run.run_dir / "make-data" / "data"
    model_file = tracked_run.run_dir / "train-model" / "model"
    data_id, model_id = sha256(data_file), sha256(model_file)

    def sides(task: str) -> dict[EventType, set[str]]:
        out: dict[EventType, set[str]] = {EventType.INPUT: set(), EventType.OUTPUT: set()}
        for ev in store.events([ex[task]]):
            out[ev.type].add(ev.artifact_id)
        return out

    assert sides("make-data") == {EventType.INPUT: set(), EventType.OUTPUT: {data_id}}
    assert sides("train-model") == {EventType.INPUT: {data_id}, EventType.OUTPUT: {model_id}}
    evaluate = sides("evaluate-model")
    assert evaluate[EventType.INPUT] == {data_id, model_id}
    (metrics_id,) = evaluate[EventType.OUTPUT]
    data, model, metrics = (store.get_artifact(i) for i in (data_id, model_id, metrics_id))
    assert data is not None and model is not None and metrics is not None
    assert (data.type, model.type, metrics.type) == ("Dataset", "Model", "Metrics")
    assert data.uri == str(data_file)
    assert dict(data.custom_properties) == {"rows": 40}
    assert data.properties["size_bytes"] == data_file.stat().st_size
    assert dict(model.custom_properties) == {"framework": "rule"}
    assert metrics.properties["kfp.identity"] == "uri+metadata"  # metadata only, no file
    assert store.upstream(metrics_id).executions == frozenset(ex.values())


def test_metrics_and_energy_are_recorded(tracked_run: LocalRun) -> None:
    store = tracked_run.store()
    ex = {e.stage: e.id for e in store.list_executions()}
    metrics = {m.name: m.value for m in store.metrics([ex["evaluate-model"]])}
    assert metrics["rows"] == 40.0
    assert 0.0 <= metrics["accuracy"] <= 1.0
    energy = {r.execution_id: r for r in store.energy(list(ex.values()))}
    assert set(energy) == set(ex.values())
    for record in energy.values():
        assert record.energy_kwh > 0
        assert record.co2e_kg >= 0
        assert record.details["components"]  # each component names its method


def test_component_code_is_unchanged(tracked_run: LocalRun) -> None:
    original = commands(pipelines.three_step)
    tracked = commands(track(pipelines.three_step))
    assert original == commands(pipelines.three_step)  # track() returns a copy
    for label, command in original.items():
        assert tracked[label][-1] == command[-1]  # the component source text, byte for byte
        assert len(tracked[label]) == len(command)
        assert BEGIN_MARK in tracked[label][-2] and f"-m {HOOK_MODULE}" in tracked[label][-2]


def test_a_failing_component_is_recorded_as_failed(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="Inner task failed"):  # exactly as untracked
        run_local(tmp_path, track(pipelines.failing))
    store = LocalRun(tmp_path, tmp_path, f"sqlite:///{tmp_path / 'cmf.db'}", None).store()
    executions = {e.stage: e for e in store.list_executions()}
    assert executions["make-data"].status is ExecutionStatus.COMPLETED
    failed = executions["explode"]
    assert failed.status is ExecutionStatus.FAILED
    assert failed.error is not None and failed.error.startswith("ValueError: boom")
    assert "kfp.output_parameters" not in failed.properties  # nor its OutputPath file
    inputs = store.events([failed.id])
    assert [e.type for e in inputs] == [EventType.INPUT]
    with pytest.MonkeyPatch.context() as mp:  # an import of the run agrees
        mp.setenv("CMF_STORE_URL", f"sqlite:///{tmp_path / 'imported.db'}")
        mp.setenv("CMF_SITE", SITE)
        import_local_run(list_local_runs(tmp_path / "pipeline-root")[-1],
                         pipeline=pipelines.failing)
    imported = LocalRun(tmp_path, tmp_path, f"sqlite:///{tmp_path / 'imported.db'}", None)
    (again,) = [e for e in imported.store().list_executions() if e.stage == "explode"]
    assert again.status is ExecutionStatus.FAILED
    assert "kfp.output_parameters" not in again.properties


def test_a_tracking_failure_never_breaks_the_task(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run = run_local(tmp_path, track(pipelines.three_step), env={"CMF_PUE": "99"})
    out = capsys.readouterr().out
    assert out.count("no impact on the task") == 3
    assert (run.run_dir / "evaluate-model" / "executor_output.json").is_file()
    assert not (tmp_path / "cmf.db").exists() or run.store().list_executions() == []


def test_cmf_disabled_records_nothing(tmp_path: Path) -> None:
    run = run_local(tmp_path, track(pipelines.three_step), env={"CMF_DISABLED": "1"})
    assert (run.run_dir / "evaluate-model" / "executor_output.json").is_file()
    assert not (tmp_path / "cmf.db").exists() or run.store().list_executions() == []


def test_an_image_without_cmf_runs_untracked(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    # a package named cmf_kubeflow earlier on the path hides the real one, like an image
    # where cmf-foundation is not installed
    shadow = tmp_path / "shadow" / "cmf_kubeflow"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    run = run_local(tmp_path, track(pipelines.three_step),
                    env={"PYTHONPATH": str(shadow.parent)})
    assert "cmf-foundation is not installed in this image" in capsys.readouterr().out
    assert (run.run_dir / "evaluate-model" / "executor_output.json").is_file()
    assert not (tmp_path / "cmf.db").exists() or run.store().list_executions() == []


def test_tracked_pipeline_compiles_to_valid_ir(tmp_path: Path) -> None:
    tracked = track(pipelines.three_step, site="hpc-a", settings={"pue": 1.2},
                    secret="cmf-server", secret_keys={"token": "CMF_SERVER_TOKEN",
                                                      "url": "CMF_SERVER_URL"})
    path = tmp_path / "tracked.yaml"
    compiler.Compiler().compile(tracked, str(path))
    spec, platform = (d for d in yaml.safe_load_all(path.read_text()) if d)
    executors = spec["deploymentSpec"]["executors"]
    assert sorted(executors) == ["exec-evaluate-model", "exec-make-data", "exec-train-model"]
    for label, executor in executors.items():
        container = executor["container"]
        assert {"name": "CMF_SITE", "value": "hpc-a"} in container["env"]
        assert {"name": "CMF_PUE", "value": "1.2"} in container["env"]
        script = container["command"][-2]
        assert 'if [ -z "${CMF_SITE:-}" ]; then CMF_SITE=hpc-a; fi; export CMF_SITE' in script
        assert "KFP_CMF_TASK=" + label.removeprefix("exec-") in script
        k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][label]
        assert k8s["fieldPathAsEnv"] == [
            {"name": "KFP_RUN_ID", "fieldPath": "metadata.labels['pipeline/runid']"}]
        assert k8s["secretAsEnv"] == [{"secretName": "cmf-server", "keyToEnv": [
            {"secretKey": "token", "envVar": "CMF_SERVER_TOKEN"},
            {"secretKey": "url", "envVar": "CMF_SERVER_URL"}]}]
    loaded = components.load_component_from_file(str(path))
    assert commands(loaded) == commands(tracked)
    again = tmp_path / "again.yaml"
    compiler.Compiler().compile(loaded, str(again))  # the loaded IR compiles again
    assert yaml.safe_load_all(again.read_text()) is not None
    assert commands(components.load_component_from_file(str(again))) == commands(tracked)


def test_a_compiled_pipeline_file_is_tracked_and_runs(tmp_path: Path) -> None:
    plain, tracked_yaml = tmp_path / "plain.yaml", tmp_path / "tracked.yaml"
    compiler.Compiler().compile(pipelines.three_step, str(plain))
    report = track_file(plain, tracked_yaml)
    assert sorted(report.tracked) == ["exec-evaluate-model", "exec-make-data",
                                      "exec-train-model"]
    loaded = components.load_component_from_file(str(tracked_yaml))
    assert commands(loaded) == commands(track(pipelines.three_step))
    run = run_local(tmp_path / "run", loaded, rows=10)
    stages = sorted(e.stage for e in run.store().list_executions()
                    if e.status is ExecutionStatus.COMPLETED)
    assert stages == ["evaluate-model", "make-data", "train-model"]


def test_loop_iterations_are_separate_executions(tmp_path: Path) -> None:
    run = run_local(tmp_path, track(pipelines.looped))
    store = run.store()
    executions = store.list_executions()
    scopes = sorted(e.properties["kfp.scope"] for e in executions)
    assert scopes == [f"for-loop-2-iteration-{i}" for i in range(3)]
    assert {e.stage for e in executions} == {"square"}
    assert sorted(e.params["x"] for e in executions) == [1, 2, 3]
    for e in executions:
        assert e.id == adapter.execution_id(run.run_dir.name, "square", e.properties["kfp.scope"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CMF_STORE_URL", run.store_url)
        mp.setenv("CMF_SITE", SITE)
        result = import_local_run(run.run_dir, pipeline=pipelines.looped)
    assert sorted(result.executions.values()) == sorted(e.id for e in executions)
    assert store.count_executions() == 3
    script = commands(track(pipelines.looped))["exec-square"][-2]
    assert "KFP_CMF_LOOP=1" in script


def test_a_loop_task_named_like_a_nested_one_is_marked_as_looped() -> None:
    """``square`` runs in a loop and in a nested pipeline: each executor keeps its own marks,
    so on a cluster (pod name as scope) the loop's iterations are separate executions, and so
    are the two ``square`` tasks (the same ``taskInfo.name`` in two DAGs) and the attempts of
    the ``read-square`` with ``set_retry``."""
    scripts = {k: v[-2] for k, v in commands(track(pipelines.nested_loop)).items()}
    loop = {k for k, s in scripts.items() if "KFP_CMF_LOOP=1" in s}
    assert sorted(label.rstrip("-0123456789") for label in loop) == [
        "exec-read-square", "exec-read-square", "exec-read-square", "exec-square",
        "exec-square"]
    assert all("KFP_CMF_TASK=''" not in s for s in scripts.values())
    ids = set()
    for label, script in scripts.items():  # as on a cluster: run id, pod name, no job folder
        task = script.split("KFP_CMF_TASK=", 1)[1].split("\n", 1)[0]
        env = {"KFP_CMF_TASK": task, "KFP_CMF_LOOP": "1" if label in loop else "",
               "KFP_RUN_ID": "run-1", "KFP_POD_NAME": f"pod-{label}"}
        ident = task_identity(env)
        ids.add(adapter.execution_id(ident.run_key, ident.task, ident.scope))
    assert len(ids) == len(scripts)


def test_settings_are_shell_safe_defaults(tmp_path: Path) -> None:
    """The preamble gives any value exactly, and a value already in the environment wins."""
    url = "postgresql://cmf@db.example/cmf?sslmode=require&x='y' $HOME"
    tracked = track(pipelines.three_step, store_url=url)
    script = commands(tracked)["exec-make-data"][-2]
    preamble = script[:script.index(END_MARK)]
    probe = preamble + 'printf "%s|%s" "$CMF_STORE_URL" "$KFP_CMF_TASK"'
    env = {"PATH": os.environ["PATH"]}
    out = subprocess.run(["sh", "-ec", probe], env=env, capture_output=True, text=True)
    assert out.stdout == f"{url}|make-data"
    out = subprocess.run(["sh", "-ec", probe], env={**env, "CMF_STORE_URL": "sqlite:///x.db"},
                         capture_output=True, text=True)
    assert out.stdout == "sqlite:///x.db|make-data"


def test_tracking_is_idempotent_and_copies() -> None:
    once = track(pipelines.three_step)
    twice = track(once, site="b")
    for label, command in commands(twice).items():
        assert command[-2].count(BEGIN_MARK) == 1
        assert "then CMF_SITE=b; fi" in command[-2]
        assert command[-1] == commands(once)[label][-1]


def test_container_components_are_reported_untracked() -> None:
    spec = json_format.MessageToDict(pipelines.mixed.pipeline_spec)
    _, _, report = track_spec(spec)
    assert report.tracked == ["exec-make-data"]
    assert list(report.untracked) == ["exec-shell-step"]


def test_secrets_never_go_into_the_spec() -> None:
    with pytest.raises(ConfigError, match="Kubernetes secret"):
        track(pipelines.three_step, settings={"server_token": "s3cr3t"})
    with pytest.raises(ConfigError, match="unknown CMF setting 'colour'"):
        track(pipelines.three_step, settings={"colour": "red"})
    with pytest.raises(ConfigError, match="not a CMF_\\* setting"):
        track(pipelines.three_step, secret="s", secret_keys={"token": "CMF_TOKEN_X"})
    with pytest.raises(InvalidInputError, match="single component"):
        track(pipelines.make_data)
