"""The start-up hook on its own: which task run an executor is, and a cluster-style executor."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from cmf_kubeflow import adapter
from cmf_kubeflow.conf import task_identity

from cmf_core.lost import find_lost, mark_lost
from cmf_core.model import EventType, ExecutionStatus
from cmf_core.process import host_name
from cmf_core.store import open_store

RUN_ID = "3f6a9d2e-8c1b-4f5e-9a7d-2b4c6e8f0a13"
UNRESOLVED = {"KFP_CMF_JOB": "{{$.pipeline_job_name}}",
              "KFP_CMF_JOB_TASK": "{{$.pipeline_task_name}}"}


def test_identity_under_kfp_local() -> None:
    ident = task_identity({"KFP_CMF_PIPELINE": "p", "KFP_CMF_TASK": "train",
                           "KFP_CMF_JOB": "p-2024-05-01-12-00-00-000001",
                           "KFP_CMF_JOB_TASK": "train-2", "KFP_RUN_ID": "ignored"})
    assert (ident.pipeline, ident.run_key, ident.task, ident.source) == (
        "p", "p-2024-05-01-12-00-00-000001", "train-2", "kfp.local")
    nested = task_identity({"KFP_CMF_JOB": "p-2024-05-01-12-00-00-000001/for-loop-2-iteration-1",
                            "KFP_CMF_JOB_TASK": "step"})
    assert (nested.pipeline, nested.run_key, nested.scope) == (
        "p", "p-2024-05-01-12-00-00-000001", "for-loop-2-iteration-1")


def test_identity_on_a_cluster() -> None:
    env = {"KFP_CMF_PIPELINE": "p", "KFP_CMF_TASK": "train", **UNRESOLVED}
    ident = task_identity({**env, "KFP_RUN_ID": RUN_ID, "KFP_POD_NAME": "pod-1"})
    assert (ident.run_key, ident.task, ident.source) == (RUN_ID, "train", "cluster")
    assert ident.scope == ""
    looped = task_identity({**env, "KFP_CMF_LOOP": "1", "KFP_RUN_ID": RUN_ID,
                            "KFP_POD_NAME": "pod-1"})
    assert (looped.run_key, looped.scope) == (RUN_ID, "pod:pod-1")
    pod = task_identity({**env, "KFP_POD_NAME": "pod-1"})
    assert (pod.run_key, pod.source) == ("pod:pod-1", "pod")
    bare = task_identity(UNRESOLVED, function="fn", output_file="/tmp/kfp_outputs/out.json")
    assert (bare.pipeline, bare.task, bare.run_key) == ("kfp", "fn", "path:/tmp/kfp_outputs")


def test_artifacts_too_large_for_the_time_budget_are_not_read(tmp_path: Path) -> None:
    from cmf_kubeflow.bootstrap import _digester

    from cmf_core.config import load_settings

    big = tmp_path / "model"
    big.write_bytes(b"x" * 1000)
    art = adapter.RuntimeArtifact(key="model", uri=str(big), schema_title="system.Model")
    fast = adapter.describe(art, "s", digester=_digester(load_settings(hook_timeout_s=5)))
    assert fast.id == "sha256:" + hashlib.sha256(b"x" * 1000).hexdigest()
    budget = load_settings(hook_timeout_s=1e-6)  # 200 bytes: the file is not read
    slow = adapter.describe(art, "s", digester=_digester(budget))
    assert slow.id.startswith("version:") and slow.properties["kfp.identity"] == "size+mtime"
    assert adapter.describe(art, "s", digester=_digester(budget)).id == slow.id


def test_usage_error_is_exit_code_2() -> None:
    proc = subprocess.run([sys.executable, "-m", "cmf_kubeflow.bootstrap", "kfp"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "usage:" in proc.stderr


COMPONENT = textwrap.dedent("""
    from kfp.dsl import Dataset, Input, Model, Output

    def fit(data: Input[Dataset], epochs: int, model: Output[Model]) -> float:
        text = open(data.path).read()
        with open(model.path, "w") as fh:
            fh.write(text.upper() * epochs)
        model.metadata["epochs"] = epochs
        if epochs < 0:
            raise SystemExit(3)
        return 0.5
""")


def _executor_input(tmp: Path, epochs: int) -> dict[str, object]:
    data = tmp / "in" / "data"
    data.parent.mkdir(exist_ok=True)
    data.write_text("hits\n")
    return {
        "inputs": {
            "parameterValues": {"epochs": epochs},
            "artifacts": {"data": {"artifacts": [{
                "name": "data", "uri": str(data), "metadata": {"rows": 1},
                "type": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"}}]}},
        },
        "outputs": {
            "artifacts": {"model": {"artifacts": [{
                "name": "model", "uri": str(tmp / "out" / "model"),
                "type": {"schemaTitle": "system.Model", "schemaVersion": "0.0.1"}}]}},
            "outputFile": str(tmp / "kfp_outputs" / "output_metadata.json"),
        },
    }


@pytest.mark.parametrize("epochs", [2, -1])
def test_a_cluster_executor_records_under_the_run_id(tmp_path: Path, epochs: int) -> None:
    """The command a cluster runs: placeholders unresolved, KFP_RUN_ID from the pod label."""
    module = tmp_path / "component.py"
    module.write_text(COMPONENT)
    store_url = f"sqlite:///{tmp_path / 'cmf.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    env.update(UNRESOLVED, KFP_CMF_PIPELINE="hep", KFP_CMF_TASK="fit", KFP_RUN_ID=RUN_ID,
               KFP_POD_NAME="hep-x-system-container-impl-1", CMF_STORE_URL=store_url,
               CMF_SITE="cluster-a", CMF_HOME=str(tmp_path / "home"), _KFP_RUNTIME="true")
    env.pop("KF_PIPELINES_UI_ENDPOINT", None)
    if epochs > 0:  # the KFP UI's address known (kfp.Client's variable): a link to the run
        env["KF_PIPELINES_UI_ENDPOINT"] = "https://kubeflow.example.org/pipeline/"
    proc = subprocess.run(
        [sys.executable, "-m", "cmf_kubeflow.bootstrap", "-m", "kfp.dsl.executor_main",
         "--component_module_path", str(module), "--executor_input",
         json.dumps(_executor_input(tmp_path, epochs)), "--function_to_execute", "fit"],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == (0 if epochs > 0 else 3), proc.stdout + proc.stderr
    store = open_store(store_url, "cluster-a")
    (ex,) = store.list_executions()
    assert ex.id == adapter.execution_id(RUN_ID, "fit")  # what KfpRunReader derives
    assert (ex.pipeline, ex.stage, ex.site) == ("hep", "fit", "cluster-a")
    assert ex.properties["kfp.identity_source"] == "cluster"
    assert ex.properties["kfp.pod_name"] == "hep-x-system-container-impl-1"
    assert dict(ex.params) == {"epochs": epochs}
    if epochs > 0:
        assert ex.properties["cmf.run_url"] == \
            f"https://kubeflow.example.org/pipeline/#/runs/details/{RUN_ID}"
    else:  # no UI address: no link (never a guessed one)
        assert "cmf.run_url" not in ex.properties
    events = {(e.type, e.artifact_id) for e in store.events([ex.id])}
    data_id = "sha256:" + hashlib.sha256(b"hits\n").hexdigest()
    assert (EventType.INPUT, data_id) in events
    if epochs > 0:
        assert ex.status is ExecutionStatus.COMPLETED
        assert ex.properties["kfp.output_parameters"] == {"Output": 0.5}
        model = (tmp_path / "out" / "model").read_bytes()
        model_id = "sha256:" + hashlib.sha256(model).hexdigest()
        assert (EventType.OUTPUT, model_id) in events
        art = store.get_artifact(model_id)
        assert art is not None and dict(art.custom_properties) == {"epochs": 2}
    else:
        assert ex.status is ExecutionStatus.FAILED
        assert ex.error == "SystemExit: exit code 3"
        assert [t for t, _ in events] == [EventType.INPUT]


FIFO_COMPONENT = textwrap.dedent("""
    import os

    from kfp.dsl import Dataset, Output

    def produce(data: Output[Dataset], logs: Output[Dataset]) -> int:
        os.mkfifo(data.path)  # not a regular file: reading it would block
        os.makedirs(logs.path)
        with open(os.path.join(logs.path, "ok.txt"), "w") as fh:
            fh.write("ok")
        os.symlink("/proc/self/mem", os.path.join(logs.path, "mem"))  # reading it fails (EIO)
        return 1
""")


def _component(tmp_path: Path, source: str, pipeline: str, task: str
               ) -> tuple[Path, str, dict[str, str]]:
    """The component module written from ``source``, a store URL, and the environment of a
    KFP executor run as ``pipeline``/``task`` (site ``s``) recording into that store."""
    module = tmp_path / "component.py"
    module.write_text(source)
    store_url = f"sqlite:///{tmp_path / 'cmf.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    env.update(UNRESOLVED, KFP_CMF_PIPELINE=pipeline, KFP_CMF_TASK=task, KFP_RUN_ID=RUN_ID,
               CMF_STORE_URL=store_url, CMF_SITE="s", CMF_HOME=str(tmp_path / "home"),
               _KFP_RUNTIME="true")
    return module, store_url, env


def _executor(tmp_path: Path, outputs: dict[str, str] | None = None,
              epochs: int | None = None) -> dict[str, Any]:
    """The ``--executor_input`` of a component: output artifacts ``name -> schema title``
    under tmp_path/out (created), parameter ``epochs`` when given."""
    out: dict[str, Any] = {"outputFile": str(tmp_path / "kfp_outputs" / "output_metadata.json")}
    if outputs:
        (tmp_path / "out").mkdir()
        out["artifacts"] = {key: {"artifacts": [{
            "name": key, "uri": str(tmp_path / "out" / key),
            "type": {"schemaTitle": title, "schemaVersion": "0.0.1"}}]}
            for key, title in outputs.items()}
    inputs = {} if epochs is None else {"parameterValues": {"epochs": epochs}}
    return {"inputs": inputs, "outputs": out}


def _run(module: Path, executor_input: dict[str, Any], function: str, env: dict[str, str]
         ) -> subprocess.CompletedProcess[str]:
    """The component run as a KFP executor under cmf_kubeflow.bootstrap."""
    return subprocess.run(
        [sys.executable, "-m", "cmf_kubeflow.bootstrap", "-m", "kfp.dsl.executor_main",
         "--component_module_path", str(module), "--executor_input",
         json.dumps(executor_input), "--function_to_execute", function],
        env=env, capture_output=True, text=True, timeout=300)


def test_outputs_that_cannot_be_read_still_end_the_execution(tmp_path: Path) -> None:
    module, store_url, env = _component(tmp_path, FIFO_COMPONENT, "fifo", "produce")
    executor_input = _executor(tmp_path, {"data": "system.Dataset", "logs": "system.Dataset"})
    proc = _run(module, executor_input, "produce", env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    store = open_store(store_url, "s")
    (ex,) = store.list_executions()
    assert ex.status is ExecutionStatus.COMPLETED, proc.stderr
    outputs = [store.get_artifact(e.artifact_id) for e in store.events([ex.id])
               if e.type is EventType.OUTPUT]
    assert sorted(a.name for a in outputs) == ["data", "logs"]
    assert {a.properties["kfp.identity"] for a in outputs} == {"size+mtime"}


KILLED_COMPONENT = textwrap.dedent("""
    import os
    import signal

    def fit(epochs: int) -> float:
        os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer ends a task
        return 0.5
""")


def test_an_executor_killed_outright_is_found_lost_and_marked_failed(tmp_path: Path) -> None:
    module, store_url, env = _component(tmp_path, KILLED_COMPONENT, "hep", "fit")
    executor_input = _executor(tmp_path, epochs=2)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cmf_kubeflow.bootstrap", "-m", "kfp.dsl.executor_main",
         "--component_module_path", str(module), "--executor_input",
         json.dumps(executor_input), "--function_to_execute", "fit"], env=env)
    assert proc.wait(timeout=300) == -signal.SIGKILL
    with open_store(store_url, "s") as store:
        (ex,) = store.list_executions()
        assert ex.status is ExecutionStatus.RUNNING  # its end was never sent
        assert ex.properties["cmf.process"]["pid"] == proc.pid
        (lost,) = find_lost(store).lost
        assert lost.execution.id == ex.id
        mark_lost(store, [lost])
        ex = store.get_execution(ex.id)
        assert ex.status is ExecutionStatus.FAILED
        assert ex.error == (f"process {proc.pid} on host {host_name()} ended without "
                            "reporting an end (killed, e.g. out of memory?)")


NAN_METRIC_COMPONENT = textwrap.dedent("""
    from kfp.dsl import Metrics, Output

    def fit(metrics: Output[Metrics]) -> float:
        metrics.log_metric("loss", float("nan"))  # a diverged training run
        metrics.log_metric("acc", 0.9)
        return 0.5
""")


def test_a_metric_that_is_not_finite_does_not_cost_the_run_its_end(tmp_path: Path) -> None:
    """A NaN metric (KFP writes it as JSON NaN) is no CMF Metric: it was the terminal event's
    undoing, and the execution stayed running though the task completed."""
    module, store_url, env = _component(tmp_path, NAN_METRIC_COMPONENT, "hep", "fit")
    proc = _run(module, _executor(tmp_path, {"metrics": "system.Metrics"}), "fit", env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open_store(store_url, "s") as store:
        (ex,) = store.list_executions()
        assert ex.status is ExecutionStatus.COMPLETED, proc.stdout
        assert [(m.name, m.value) for m in store.metrics([ex.id])] == [("acc", 0.9)]


UNPRINTABLE_COMPONENT = textwrap.dedent("""
    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("no text for this error")

    def fit(epochs: int) -> float:
        raise Unprintable()
""")


def test_an_error_that_cannot_be_printed_fails_the_task_as_it_would_untracked(
        tmp_path: Path) -> None:
    """str() of the component's error raises: the task still fails with that error alone (not
    with the hook's own exception raised while handling it), and is recorded as failed."""
    module, store_url, env = _component(tmp_path, UNPRINTABLE_COMPONENT, "hep", "fit")
    proc = _run(module, _executor(tmp_path, epochs=2), "fit", env)
    assert proc.returncode == 1
    assert "Unprintable" in proc.stderr
    assert "During handling of the above exception" not in proc.stderr, proc.stderr
    with open_store(store_url, "s") as store:
        (ex,) = store.list_executions()
        assert ex.status is ExecutionStatus.FAILED
        assert ex.error == "Unprintable: <exception str() failed>"


TWO_METRICS_COMPONENT = textwrap.dedent("""
    from kfp.dsl import Metrics, Output

    def fit(train_metrics: Output[Metrics], eval_metrics: Output[Metrics]) -> float:
        train_metrics.log_metric("accuracy", 0.99)
        train_metrics.log_metric("loss", 0.01)
        eval_metrics.log_metric("accuracy", 0.81)
        eval_metrics.log_metric("auc", 0.9)
        return 0.5
""")


def test_a_metric_name_two_metrics_outputs_log_keeps_both_values(tmp_path: Path) -> None:
    """Train and eval metrics both logging ``accuracy``: each value is recorded, under its
    output's name; before, the first output's value alone was, with no sign of the other."""
    module, store_url, env = _component(tmp_path, TWO_METRICS_COMPONENT, "hep", "fit")
    proc = _run(module, _executor(tmp_path, {"train_metrics": "system.Metrics",
                                             "eval_metrics": "system.Metrics"}), "fit", env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open_store(store_url, "s") as store:
        (ex,) = store.list_executions()
        assert ex.status is ExecutionStatus.COMPLETED, proc.stdout
        assert {m.name: m.value for m in store.metrics([ex.id])} == {
            "train_metrics.accuracy": 0.99, "eval_metrics.accuracy": 0.81,
            "loss": 0.01, "auc": 0.9}
