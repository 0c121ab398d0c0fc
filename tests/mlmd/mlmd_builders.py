"""MLMD stores written by the real ``ml-metadata`` library in the shapes cmflib and KFP write.

* :func:`build_cmflib_store` writes through cmflib's own ``cmflib.metadata_helper`` functions,
  with the arguments ``cmflib.cmf.Cmf`` passes them (create_context, create_execution,
  log_python_env, log_dataset, log_model, log_execution_metrics, commit_metrics), minus the git
  and DVC calls that produce the hashes.
* :func:`build_kfp_store` writes what the KFP v2 driver and launcher write
  (backend/src/v2/metadata/client.go: system.Pipeline / system.PipelineRun contexts,
  system.DAGExecution / system.ContainerExecution executions with ``task_name``,
  ``display_name``, ``inputs``, ``outputs``, ..., system.* artifacts with ``display_name`` and
  ``store_session_info``), through MLMD's ``put_execution`` as KFP's ``PutExecution`` does.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

STRING = pb.STRING


def sqlite_config(path: Path | str) -> Any:
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return config


def postgres_config(host: str, port: int, dbname: str, user: str = "postgres") -> Any:
    config = pb.ConnectionConfig()
    config.postgresql.host = host
    config.postgresql.port = str(port)
    config.postgresql.user = user
    config.postgresql.dbname = dbname
    return config


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


# --- cmflib ------------------------------------------------------------------------------------
class CmflibWriter:
    """cmflib's Cmf logger, its MLMD calls only (cmflib.cmf.Cmf with git/DVC stubbed out)."""

    def __init__(self, store: Any, pipeline: str,
                 custom_properties: dict[str, Any] | None = None) -> None:
        from cmflib import metadata_helper as mh

        self.mh = mh
        self.store = store
        self.parent = mh.get_or_create_parent_context(store, pipeline, custom_properties or {})
        self.stage: Any = None
        self.execution: Any = None

    def create_context(self, stage: str, custom_properties: dict[str, Any] | None = None
                       ) -> Any:
        name = f"{self.parent.name}/{stage}"
        self.stage = self.mh.get_or_create_run_context(self.store, name, custom_properties or {})
        self.mh.associate_child_to_parent_context(self.store, self.parent, self.stage)
        return self.stage

    def create_execution(self, execution_type: str, custom_properties: dict[str, Any],
                         cmd: str, git_commit: str = "3ed2f5a") -> Any:
        ex = self.mh.create_new_execution_in_existing_run_context(
            store=self.store, execution_type_name=self.stage.name,
            execution_name=execution_type, context_id=self.stage.id, execution=cmd,
            pipeline_id=self.parent.id, pipeline_type=self.parent.name,
            git_repo="https://github.com/example/churn.git", git_start_commit=git_commit,
            custom_properties=dict(custom_properties))
        ex.properties["Execution_uuid"].string_value = str(uuid.uuid1())
        self.store.put_executions([ex])
        # Cmf.create_execution then records the Python environment (update_execution +
        # log_python_env)
        env = f"cmf_artifacts/python_env_{md5(cmd)[:8]}.txt"
        ex.custom_properties["Python_Env"].string_value = env
        self.store.put_executions([ex])
        self.execution = ex
        self._log("Environment", env, md5("numpy==2.0\n"), "INPUT", {})
        return ex

    def _log(self, type_name: str, path: str, c_hash: str, event: str,
             custom: dict[str, Any], **props: str) -> Any:
        url = f"{self.parent.name}:/remote/files/md5/{c_hash[:2]}/{c_hash[2:]}"
        event_type = pb.Event.INPUT if event == "INPUT" else pb.Event.OUTPUT
        existing = self.store.get_artifacts_by_uri(c_hash)
        if existing:  # Cmf.log_dataset on an artifact it has seen: link it
            return self.mh.link_execution_to_artifact(
                store=self.store, execution_id=self.execution.id, uri=c_hash,
                input_name=f"{path}:{c_hash}", event_type=event_type)
        name = f"{path}:{c_hash}"
        if type_name == "Model":
            name = f"{name}:{self.execution.id}"
        properties = {"git_repo": "https://github.com/example/churn.git", "Commit": c_hash,
                      "url": url, **props}
        return self.mh.create_new_artifact_event_and_attribution(
            store=self.store, execution_id=self.execution.id, context_id=self.stage.id,
            uri=c_hash, name=name, type_name=type_name, event_type=event_type,
            properties=properties, artifact_type_properties=dict.fromkeys(properties, STRING),
            custom_properties=custom, milliseconds_since_epoch=1_700_000_000_000)

    def log_dataset(self, path: str, event: str, custom: dict[str, Any] | None = None) -> Any:
        return self._log("Dataset", path, md5(path), event.upper(), custom or {})

    def log_model(self, path: str, event: str, framework: str = "SKlearn") -> Any:
        return self._log("Model", path, md5(path), event.upper(), {},
                         model_framework=framework, model_type="RandomForestClassifier",
                         model_name="RandomForestClassifier:default")

    def log_execution_metrics(self, metrics_name: str, values: dict[str, Any]) -> Any:
        uri = str(uuid.uuid1())
        name = f"{metrics_name}:{uri}:{self.execution.id}"
        return self.mh.create_new_artifact_event_and_attribution(
            store=self.store, execution_id=self.execution.id, context_id=self.stage.id,
            uri=uri, name=name, type_name="Metrics", event_type=pb.Event.OUTPUT,
            properties={"metrics_name": name},
            artifact_type_properties={"metrics_name": STRING}, custom_properties=values,
            milliseconds_since_epoch=1_700_000_000_000)

    def commit_metrics(self, metrics_name: str) -> Any:
        path = f"cmf_artifacts/{self.execution.properties['Execution_uuid'].string_value}/" \
               f"metrics/{metrics_name}"
        c_hash = md5(path)
        name = f"{path}:{c_hash}:{self.execution.id}:{uuid.uuid1()}"
        url = f"{self.parent.name}:/remote/files/md5/{c_hash[:2]}/{c_hash[2:]}"
        return self.mh.create_new_artifact_event_and_attribution(
            store=self.store, execution_id=self.execution.id, context_id=self.stage.id,
            uri=c_hash, name=name, type_name="Step_Metrics", event_type=pb.Event.OUTPUT,
            properties={"Commit": c_hash, "url": url},
            artifact_type_properties={"Commit": STRING, "url": STRING}, custom_properties={},
            milliseconds_since_epoch=1_700_000_000_000)


def build_cmflib_store(path: Path | str, pipeline: str = "churn") -> dict[str, Any]:
    """prepare -> featurize -> train, as cmflib's example-get-started logs it."""
    store = metadata_store.MetadataStore(sqlite_config(path))
    w = CmflibWriter(store, pipeline, {"owner": "ana"})
    w.create_context("prepare", {"team": "data"})
    prep = w.create_execution("Prepare", {"split": 0.2, "seed": 20170428},
                              "['prepare.py', 'artifacts/data.xml.gz']")
    w.log_dataset("artifacts/data.xml.gz", "input", {"source": "kaggle"})
    w.log_dataset("artifacts/train.tsv", "output")
    w.log_dataset("artifacts/test.tsv", "output")

    w.create_context("featurize")
    feat = w.create_execution("Featurize", {"max_features": 3000, "ngrams": 2},
                              "['featurize.py']")
    w.log_dataset("artifacts/train.tsv", "input")
    w.log_dataset("artifacts/test.tsv", "input")
    w.log_dataset("artifacts/features/train.pkl", "output")

    w.create_context("train")
    train = w.create_execution("Train", {"seed": 20170428, "n_est": 100, "min_split": 64},
                               "['train.py']")
    w.log_dataset("artifacts/features/train.pkl", "input")
    w.log_model("artifacts/model/model.pkl", "output")
    w.log_execution_metrics("training_metrics", {"auc": 0.91, "loss": 0.27, "epochs": 10})
    w.commit_metrics("training_loss")
    return {"store": store, "prepare": prep, "featurize": feat, "train": train,
            "pipeline": pipeline}


# --- Kubeflow Pipelines -----------------------------------------------------------------------
def _type(store: Any, kind: str, name: str) -> int:
    cls = {"context": pb.ContextType, "execution": pb.ExecutionType,
           "artifact": pb.ArtifactType}[kind]
    return getattr(store, f"put_{kind}_type")(cls(name=name))


def _sv(value: Any) -> Any:
    if isinstance(value, dict):
        v = pb.Value()
        v.struct_value.update(value)
        return v
    if isinstance(value, bool):
        return pb.Value(bool_value=value)
    if isinstance(value, int):
        return pb.Value(int_value=value)
    if isinstance(value, float):
        return pb.Value(double_value=value)
    return pb.Value(string_value=str(value))


def _with(msg: Any, custom: dict[str, Any]) -> Any:
    for k, v in custom.items():
        msg.custom_properties[k].CopyFrom(_sv(v))
    return msg


class KfpWriter:
    """The MLMD calls of KFP v2's driver (CreateExecution) and launcher (RecordArtifact,
    PublishExecution) for one pipeline run."""

    SESSION = json.dumps({"Provider": "minio", "Params": {"region": "minio",
                                                          "endpoint": "minio-service:9000"}})

    def __init__(self, store: Any, pipeline: str, run_id: str) -> None:
        self.store = store
        self.pipeline_name = pipeline
        self.run_id = run_id
        self.root = f"minio://mlpipeline/v2/artifacts/{pipeline}/{run_id}"
        self.pipeline = self._context("system.Pipeline", pipeline, {})
        self.run = self._context("system.PipelineRun", run_id, {
            "namespace": "kubeflow", "resource_name": f"{pipeline}-{run_id[:5]}",
            "pipeline_root": self.root, "store_session_info": self.SESSION})
        store.put_parent_contexts([pb.ParentContext(child_id=self.run.id,
                                                    parent_id=self.pipeline.id)])
        self.dag = self.execution("system.DAGExecution", "", {}, state=pb.Execution.RUNNING)

    def _context(self, type_name: str, name: str, custom: dict[str, Any]) -> Any:
        found = self.store.get_context_by_type_and_name(type_name, name)
        if found is not None:
            return found
        ctx = _with(pb.Context(name=name, type_id=_type(self.store, "context", type_name)),
                    custom)
        ctx.id = self.store.put_contexts([ctx])[0]
        return ctx

    def execution(self, type_name: str, task: str, inputs: dict[str, Any],
                  state: int = pb.Execution.RUNNING, input_artifacts: dict[str, Any] | None = None,
                  extra: dict[str, Any] | None = None) -> Any:
        custom: dict[str, Any] = {"display_name": task or self.run_id, "task_name": task}
        if type_name == "system.ContainerExecution":
            custom.update({"pod_name": f"{self.run_id[:5]}-{task}-driver",
                           "pod_uid": str(uuid.uuid4()), "namespace": "kubeflow",
                           "image": "python:3.11", "cache_fingerprint": md5(task)})
            custom["parent_dag_id"] = self.dag.id
        if inputs:
            custom["inputs"] = inputs
        custom.update(extra or {})
        ex = _with(pb.Execution(type_id=_type(self.store, "execution", type_name),
                                last_known_state=state), custom)
        pairs = []
        for key, art in (input_artifacts or {}).items():
            ev = pb.Event(artifact_id=art.id, type=pb.Event.INPUT)
            ev.path.steps.add().key = key
            pairs.append((None, ev))
        ex_id, _, _ = self.store.put_execution(ex, [(a, e) for a, e in pairs if a] or [],
                                               [self.pipeline, self.run],
                                               reuse_context_if_already_exist=True)
        ex.id = ex_id
        events = [e for _, e in pairs]
        for e in events:
            e.execution_id = ex_id
        if events:
            self.store.put_events(events)
        return ex

    def publish(self, ex: Any, outputs: dict[str, tuple[str, dict[str, Any]]],
                output_params: dict[str, Any] | None = None,
                state: int = pb.Execution.COMPLETE) -> dict[str, Any]:
        """Launcher: RecordArtifact for each output, then PublishExecution."""
        arts = {}
        pairs = []
        task = ex.custom_properties["task_name"].string_value
        for key, (schema, metadata) in outputs.items():
            art = _with(pb.Artifact(
                type_id=_type(self.store, "artifact", schema),
                uri=f"{self.root}/{task}/{ex.id}/{key}", state=pb.Artifact.LIVE),
                {"display_name": key, "store_session_info": self.SESSION, **metadata})
            art.id = self.store.put_artifacts([art])[0]
            arts[key] = art
            ev = pb.Event(artifact_id=art.id, type=pb.Event.OUTPUT)
            ev.path.steps.add().key = key
            pairs.append((art, ev))
        ex.last_known_state = state
        if output_params:
            ex.custom_properties["outputs"].CopyFrom(_sv(output_params))
        self.store.put_execution(ex, pairs, [self.pipeline, self.run],
                                 reuse_context_if_already_exist=True)
        return arts

    def finish(self, state: int = pb.Execution.COMPLETE) -> None:
        self.dag.last_known_state = state
        self.store.put_executions([self.dag])


def build_kfp_store(config: Any, pipeline: str = "churn-kfp",
                    run_id: str = "5f0e2b58-6c3e-4a21-9d7b-2c1a0f4e8b11") -> dict[str, Any]:
    """One KFP run: preprocess -> train -> evaluate, a 2-iteration ParallelFor 'score' and a
    failed 'publish' task."""
    store = metadata_store.MetadataStore(config)
    k = KfpWriter(store, pipeline, run_id)
    pre = k.execution("system.ContainerExecution", "preprocess",
                      {"test_size": 0.2, "pipelinechannel--source": "s3://raw/churn.csv"})
    pre_out = k.publish(pre, {"dataset": ("system.Dataset", {"rows": 1000.0})},
                        {"n_rows": 1000.0})
    train = k.execution("system.ContainerExecution", "train", {"n_estimators": 100.0},
                        input_artifacts={"dataset": pre_out["dataset"]})
    train_out = k.publish(train, {
        "model": ("system.Model", {"framework": "sklearn"}),
        "metrics": ("system.Metrics", {"accuracy": 0.93, "f1": 0.88}),
    })
    ev = k.execution("system.ContainerExecution", "evaluate", {},
                     input_artifacts={"model": train_out["model"],
                                      "dataset": pre_out["dataset"]})
    ev_out = k.publish(ev, {"report": ("system.Markdown", {})})
    scores = []
    for i in range(2):
        s = k.execution("system.ContainerExecution", "score", {"shard": float(i)},
                        input_artifacts={"model": train_out["model"]},
                        extra={"iteration_index": i})
        scores.append(s)
        k.publish(s, {"scores": ("system.Dataset", {"shard": float(i)})})
    fail = k.execution("system.ContainerExecution", "publish", {},
                       input_artifacts={"model": train_out["model"]})
    k.publish(fail, {}, state=pb.Execution.FAILED)
    k.finish(pb.Execution.FAILED)
    return {"store": store, "writer": k, "preprocess": pre, "train": train, "evaluate": ev,
            "score": scores, "publish": fail, "artifacts": {**pre_out, **train_out, **ev_out},
            "pipeline": pipeline, "run_id": run_id}
