"""KFP task runs -> CMF records -> OpenLineage RunEvents.

Everything that turns what a KFP executor saw into CMF lineage lives here, so the live hook
(:mod:`cmf_kubeflow.bootstrap`) and the importers (:mod:`cmf_kubeflow.importer`) record the
*same* records for the same task run:

* **ids**: a task run's execution id is :func:`execution_id` (``uuid5`` over the KFP run key, the
  task name and, inside a loop, which iteration), the pipeline run's id (the OpenLineage
  ``parent`` run) is :func:`run_uuid`.
  The run key is the ``kfp.local`` run folder name (``<pipeline>-<timestamp>``) or, on a
  cluster, the KFP run id. Recording or importing the same task run twice writes the same ids.
* **artifacts**: a KFP runtime artifact (``Input[...]``/``Output[...]``) becomes a CMF artifact:
  type from its ``schema_title`` (:data:`SCHEMA_TYPES`, else ``Dataset``), the KFP ``metadata``
  as custom properties, and as id the ``sha256`` digest of its bytes when they are reachable
  (a local path, or the ``/gcs``, ``/minio``, ``/s3`` mount of a remote URI inside a pod); else
  ``version:`` over the URI and the digest of its metadata (property ``kfp.identity`` says which).
* **metrics**: numeric metadata of ``system.Metrics`` artifacts become CMF metrics.

Nothing here swallows errors: callers at a hook boundary wrap it with :mod:`cmf_core.guard`.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmf_core import jsonutil
from cmf_core.identity import NAMESPACE, kfp_task_id, path_digest, remote_digest
from cmf_core.model import Artifact, EnergyRecord, Execution, ExecutionStatus, Metric
from cmf_core.model.metric import output_metric_names
from cmf_core.task_values import redact

SCHEMA_TYPES: dict[str, str] = {
    "system.Dataset": "Dataset",
    "system.Model": "Model",
    "system.Metrics": "Metrics",
    "system.ClassificationMetrics": "Metrics",
    "system.SlicedClassificationMetrics": "Metrics",
}
"""KFP artifact schema title -> CMF artifact type; any other title is recorded as ``Dataset``."""

INTERNAL_PARAM_PREFIX = "pipelinechannel--"
"""Executor input parameters KFP injects for f-strings and loops; not the component's own."""

MOUNT_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gs://", "/gcs/"),
    ("minio://", "/minio/"),
    ("s3://", "/s3/"),
)
"""Where the KFP launcher puts the bytes of a remote URI inside a pod (kfp ``Artifact.path``)."""

PROPERTY_PREFIX = "kfp."


def run_uuid(run_key: str) -> str:
    """Id of a KFP pipeline run (the OpenLineage parent run of its tasks)."""
    return str(uuid.uuid5(NAMESPACE, f"kfp-run\x1f{run_key}"))


def execution_id(run_key: str, task: str, scope: str = "") -> str:
    """Deterministic execution id of task ``task`` in KFP run ``run_key``.

    ``scope`` tells the iterations of a loop apart (see :class:`cmf_kubeflow.conf.TaskIdentity`).
    """
    return kfp_task_id(run_key, task, scope)


def cmf_type(schema_title: str) -> str:
    return SCHEMA_TYPES.get(schema_title, "Dataset")


def local_path(uri: str) -> Path | None:
    """Where the bytes of ``uri`` are on this machine, if anywhere (KFP's mount convention)."""
    if not uri:
        return None
    for prefix, mount in MOUNT_PREFIXES:
        if uri.startswith(prefix):
            return Path(mount + uri[len(prefix):])
    if uri.startswith("file://"):
        return Path(uri[len("file://"):])
    if "://" in uri:
        return None
    return Path(uri)


def metadata_digest(metadata: Mapping[str, Any]) -> str:
    return hashlib.sha256(jsonutil.dumps(dict(metadata)).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class RuntimeArtifact:
    """One KFP runtime artifact as the executor input/output JSON gives it."""

    key: str
    """The component's input or output name."""
    uri: str
    schema_title: str = "system.Artifact"
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_executor(cls, key: str, data: Mapping[str, Any]) -> RuntimeArtifact:
        """From an ``ArtifactList`` entry of ExecutorInput/ExecutorOutput (camelCase JSON)."""
        type_ = data.get("type") or {}
        return cls(key=key, uri=str(data.get("uri") or ""),
                   schema_title=str(type_.get("schemaTitle") or type_.get("schema_title")
                                    or "system.Artifact"),
                   metadata=dict(data.get("metadata") or {}))

    def merged(self, update: Mapping[str, Any]) -> RuntimeArtifact:
        """This artifact updated by the executor output's entry (new uri, added metadata)."""
        return RuntimeArtifact(key=self.key, uri=str(update.get("uri") or self.uri),
                               schema_title=self.schema_title,
                               metadata={**self.metadata, **(update.get("metadata") or {})})


Digester = Callable[[Path], str | None]


def describe(art: RuntimeArtifact, site: str, *, digester: Digester = path_digest,
             reachable: bool = True, known_digest: str | None = None) -> Artifact:
    """The CMF artifact of a KFP runtime artifact (see the module docs for its identity).

    ``digester`` computes the digest of local bytes (callers bound its time; None: unknown,
    the metadata identifies it); ``reachable=False``
    skips looking for bytes; ``known_digest`` is a digest computed elsewhere (a download).
    """
    props: dict[str, Any] = {f"{PROPERTY_PREFIX}schema_title": art.schema_title,
                             f"{PROPERTY_PREFIX}key": art.key}
    digest = known_digest
    path = local_path(art.uri) if reachable and known_digest is None else None
    if digest is None and path is not None and path.exists():
        digest = digester(path)
        if path.is_file():
            props["size_bytes"] = path.stat().st_size
    if digest is None:
        digest = remote_digest(art.uri or f"kfp:{art.key}",
                               f"kfp-metadata:{metadata_digest(art.metadata)}")
        props[f"{PROPERTY_PREFIX}identity"] = "uri+metadata"
    else:  # a digester may fall back to size and time for bytes too large to read in time
        props[f"{PROPERTY_PREFIX}identity"] = (
            "bytes" if digest.startswith("sha256:") else "size+mtime")
    uri = art.uri or f"kfp:{art.key}"
    name = Path(uri.rstrip("/")).name or art.key
    return Artifact(id=digest, type=cmf_type(art.schema_title), name=name, uri=uri, site=site,
                    properties=props, custom_properties=dict(art.metadata))


def scalar_metrics(art: RuntimeArtifact) -> dict[str, float]:
    """Numeric metadata of a ``system.Metrics`` artifact (``Metrics.log_metric`` values); a
    value that is not finite (a NaN loss) stays in the artifact's metadata only, as a Metric
    refuses it (and would cost the run its terminal event)."""
    if art.schema_title != "system.Metrics":
        return {}
    return {k: float(v) for k, v in art.metadata.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "display_name"
            and _finite(v)}


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond any float
        return False


def component_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """Executor input parameter values without the ones KFP injects for plumbing."""
    return {k: v for k, v in values.items() if not k.startswith(INTERNAL_PARAM_PREFIX)}


@dataclass(slots=True)
class TaskRun:
    """What one execution of a KFP task did, whoever observed it (hook or importer)."""

    pipeline: str
    run_key: str
    task: str
    status: ExecutionStatus = ExecutionStatus.RUNNING
    started_at: float | None = None
    ended_at: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    inputs: list[RuntimeArtifact] = field(default_factory=list)
    outputs: list[RuntimeArtifact] = field(default_factory=list)
    output_params: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    scope: str = ""

    @property
    def execution_id(self) -> str:
        return execution_id(self.run_key, self.task, self.scope)

    def execution(self, site: str) -> Execution:
        props = {f"{PROPERTY_PREFIX}run": self.run_key, f"{PROPERTY_PREFIX}task": self.task,
                 **self.properties}
        if self.scope:
            props[f"{PROPERTY_PREFIX}scope"] = self.scope
        if self.output_params:
            props[f"{PROPERTY_PREFIX}output_parameters"] = redact(dict(self.output_params))
        kwargs: dict[str, Any] = {}
        if self.started_at is not None:
            kwargs["started_at"] = self.started_at
        ex = Execution(pipeline=self.pipeline, stage=self.task, site=site, id=self.execution_id,
                       params=redact(self.params), properties=props, **kwargs)
        if self.status.is_terminal:
            ex = ex.ended(self.status, error=self.error, ended_at=self.ended_at)
        return ex


def run_events(run: TaskRun, site: str, inputs: Iterable[Artifact] = (),
               outputs: Iterable[Artifact] = (), energy: EnergyRecord | None = None,
               *, terminal_only: bool = False) -> list[Any]:
    """The OpenLineage RunEvents (START, then the terminal one once ended) of a task run."""
    from cmf_core.openlineage.convert import ExecutionLineage, to_run_events

    ex = run.execution(site)
    outs = tuple(outputs)
    metrics = tuple(
        Metric(execution_id=ex.id, name=name, value=value)
        for name, value in output_metrics(run.outputs).items()
    ) if ex.status.is_terminal else ()
    lineage = ExecutionLineage(
        execution=ex,
        inputs=tuple(sorted({a.id: a for a in inputs}.values(), key=lambda a: a.id)),
        outputs=tuple(sorted({a.id: a for a in outs}.values(), key=lambda a: a.id)),
        metrics=metrics,
        energy=energy,
    )
    events = to_run_events(lineage, parent_run_id=run_uuid(run.run_key))
    return events[-1:] if terminal_only else events


def pipeline_run_events(pipeline: str, run_key: str, site: str, *,
                        status: ExecutionStatus, started_at: float | None,
                        ended_at: float | None, params: Mapping[str, Any],
                        properties: Mapping[str, Any], error: str | None = None) -> list[Any]:
    """The RunEvents of a KFP pipeline run itself: an execution of stage ``<pipeline>`` whose
    id is :func:`run_uuid`, the ``parent`` every task run of it names (as an Airflow DAG run
    is one of stage ``<dag_id>``)."""
    from cmf_core.openlineage.convert import ExecutionLineage, to_run_events

    props = {f"{PROPERTY_PREFIX}run": run_key, **properties}
    kwargs: dict[str, Any] = {} if started_at is None else {"started_at": started_at}
    ex = Execution(pipeline=pipeline, stage=pipeline, site=site, id=run_uuid(run_key),
                   params=redact(dict(params)), properties=props, **kwargs)
    if status.is_terminal:
        ex = ex.ended(status, error=error, ended_at=ended_at)
    return to_run_events(ExecutionLineage(execution=ex))


def output_metrics(outputs: Iterable[RuntimeArtifact]) -> dict[str, float]:
    """The CMF metrics of a task's ``Metrics`` outputs: each ``log_metric`` value under its
    name, or, for a name that several outputs log (``train_metrics`` and ``eval_metrics`` both
    logging ``accuracy``), under ``<output name>.<name>`` for each of them, so that no value
    silently replaces another (the rule is :func:`cmf_core.model.metric.output_metric_names`,
    which the ML Metadata import follows too)."""
    logged = [(art.key, name, value) for art in outputs
              for name, value in sorted(scalar_metrics(art).items())]
    out: dict[str, float] = {}
    names = output_metric_names((key, name) for key, name, _ in logged)
    for name, (_, _, value) in zip(names, logged, strict=True):
        out.setdefault(name, value)
    return out
