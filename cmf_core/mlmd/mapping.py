"""MLMD records -> CMF records (see docs/mlmd.md for the whole mapping).

Three shapes are recognised, per execution, by the contexts it is associated with:

* **cmflib**: a ``Parent_Context`` context is the pipeline; a ``Pipeline_Stage`` context named
  ``<pipeline>/<stage>`` (child of it) is the stage. The execution's ``Execution_uuid``
  property (the first of a comma-separated list) is its id; its custom properties are its
  parameters. Artifacts are identified by their ``uri``, which cmflib sets to the DVC content
  hash: the CMF id is ``version:`` over ``cmflib`` and that hash, so the same bytes logged in two
  cmflib stores are one artifact. ``Metrics`` artifacts carry the metric values as custom
  properties: they become CMF metrics of the execution that output them.
* **Kubeflow Pipelines** (v2): a ``system.Pipeline`` context is the pipeline, the
  ``system.PipelineRun`` context the run; the custom property ``task_name`` is the stage and
  ``inputs`` the parameters; the run's root ``system.DAGExecution`` (no task name) is the run
  itself and is not an execution. The execution id is the one the live KFP hook gives the same task
  (``uuid5`` over the run id and task name, see ``cmf_kubeflow.adapter.execution_id``) when the
  task name is unique in its run; else it is derived from the MLMD record. Artifacts with a URI
  get ``version:`` over the URI and the digest of their metadata (custom properties without
  KFP's ``display_name`` and ``store_session_info``); numeric metadata of ``system.Metrics``
  artifacts become CMF metrics.

In both, a metric name that several metrics outputs of one execution hold is recorded per
output, as ``<output>.<name>`` (the output: the OUTPUT event's key, KFP's output name, else the
artifact's name, cmflib's metrics name), the rule of the live KFP hook
(:func:`cmf_core.model.metric.output_metric_names`).
* **TFX** and other MLMD writers: a context of type ``pipeline`` is the pipeline, a ``node``
  context (``<pipeline>.<node>``) the stage, else the execution type's name.

Every MLMD property and custom property is kept (``properties`` / ``custom_properties``), with
the MLMD origin added as custom properties ``mlmd_id``, ``mlmd_type`` (and ``mlmd_state``,
``mlmd_name``, ``mlmd_uri``). Records that ``cmf export --mlmd`` wrote carry their CMF form in
the custom property ``cmf.record`` and are read back from it unchanged. Ids are deterministic,
so importing the same store twice writes the same records (the store's upserts then change
nothing).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cmf_core import jsonutil
from cmf_core.errors import CmfError, InvalidInputError
from cmf_core.identity import NAMESPACE, check_digest, kfp_task_id, remote_digest
from cmf_core.mlmd.reader import EVENT_TYPES, EXECUTION_STATES, Node, Snapshot
from cmf_core.model import (
    ARTIFACT_TYPES,
    Artifact,
    ArtifactLocation,
    Event,
    EventType,
    Execution,
    ExecutionStatus,
    Metric,
    Pipeline,
    Record,
    Stage,
)
from cmf_core.model._base import check_name
from cmf_core.model.metric import output_metric_names

# cmflib (cmflib/metadata_helper.py)
CMFLIB_PIPELINE = "Parent_Context"
CMFLIB_STAGE = "Pipeline_Stage"
CMFLIB_EXECUTION_UUID = "Execution_uuid"
CMFLIB_PIPELINE_NAME = "Pipeline_Type"
CMFLIB_BOOKKEEPING = frozenset({"Python_Env"})
"""Execution custom properties cmflib sets itself (not the user's parameters)."""
# Kubeflow Pipelines v2 (backend/src/v2/metadata/client.go)
KFP_PIPELINE = "system.Pipeline"
KFP_RUN = "system.PipelineRun"
KFP_TASK_NAME = "task_name"
KFP_DAG = "system.DAGExecution"
KFP_INTERNAL_PARAM_PREFIX = "pipelinechannel--"
KFP_BOOKKEEPING = frozenset({"display_name", "store_session_info"})
KFP_TYPES: dict[str, str] = {
    "system.Dataset": "Dataset",
    "system.Model": "Model",
    "system.Metrics": "Metrics",
    "system.ClassificationMetrics": "Metrics",
    "system.SlicedClassificationMetrics": "Metrics",
}
# TFX
TFX_PIPELINE = "pipeline"
TFX_NODE = "node"

PIPELINE_CONTEXT_TYPES = (CMFLIB_PIPELINE, KFP_PIPELINE, TFX_PIPELINE)

# what cmf export --mlmd writes
CMF_RECORD = "cmf.record"
CMF_METRICS = "cmf.metrics"
CMF_PREFIX = "cmf."
CMF_CARRIERS = frozenset({CMF_RECORD, CMF_METRICS})
"""The custom properties export writes for import; other ``cmf.*`` keys are the user's."""

_STATES: dict[int, ExecutionStatus] = {
    0: ExecutionStatus.COMPLETED,  # UNKNOWN: cmflib never sets a state; it logs finished work
    1: ExecutionStatus.RUNNING,
    2: ExecutionStatus.RUNNING,
    3: ExecutionStatus.COMPLETED,
    4: ExecutionStatus.FAILED,
    5: ExecutionStatus.COMPLETED,  # CACHED: outputs reused (mlmd_state says so)
    6: ExecutionStatus.SKIPPED,  # CANCELED: KFP's "not triggered"
}
_EVENTS: dict[int, EventType] = {
    1: EventType.OUTPUT, 2: EventType.INPUT, 3: EventType.INPUT, 4: EventType.OUTPUT,
    5: EventType.INPUT, 6: EventType.OUTPUT,
}


@dataclass(slots=True)
class ImportPlan:
    """The CMF records one MLMD store maps to, with what was left out and why."""

    source: str
    schema_version: int
    shape: str
    records: list[Record] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def count(self, kind: type) -> int:
        return sum(1 for r in self.records if type(r) is kind)


def _ms(value: int) -> float:
    return value / 1000.0


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _record_of(node: Node) -> dict[str, Any] | None:
    """The CMF record ``cmf export --mlmd`` stored on ``node``, if any."""
    text = node.custom_properties.get(CMF_RECORD)
    if not isinstance(text, str):
        return None
    try:
        data = jsonutil.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


R = TypeVar("R", Pipeline, Stage, Execution)


def _build(cls: type[R], rec: dict[str, Any]) -> R:
    """``cls(**rec)``, its ``site`` checked as a name first (non-empty, storable text, at most
    512 characters). The models take any string there, so that records already stored stay
    readable; a site the store refuses would make it set the whole import's write aside after
    the import has reported success."""
    check_name(rec.get("site"), "site")
    return cls(**rec)


def _origin(node: Node, **extra: Any) -> dict[str, Any]:
    out = {k: v for k, v in node.custom_properties.items() if k not in CMF_CARRIERS}
    out["mlmd_id"] = node.id
    out["mlmd_type"] = node.type
    for key, value in extra.items():
        if value not in (None, ""):
            out[key] = value
    return out


def _uuid_or_none(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    for part in text.split(","):
        try:
            return str(uuid.UUID(part.strip()))
        except ValueError:
            continue
    return None


def kfp_execution_id(run_id: str, task: str) -> str:
    """The id the live KFP hook gives task ``task`` of run ``run_id``."""
    return kfp_task_id(run_id, task)


def _fallback_execution_id(pipeline: str, stage: str, node: Node) -> str:
    return str(uuid.uuid5(NAMESPACE, "\x1f".join(
        ("mlmd-execution", pipeline, stage, node.type, str(node.id), str(node.create_ms)))))


class _Mapper:
    def __init__(self, snap: Snapshot, site: str, pipelines: Iterable[str] | None) -> None:
        self.snap = snap
        self.site = site
        self.only = set(pipelines) if pipelines else None
        types = snap.context_types()
        self.cmflib = CMFLIB_PIPELINE in types
        self.kfp = KFP_PIPELINE in types or KFP_RUN in types
        shapes = [n for n, on in (("cmflib", self.cmflib), ("kfp", self.kfp)) if on]
        self.plan = ImportPlan(snap.source, snap.schema_version, "+".join(shapes) or "mlmd",
                               notes=list(snap.notes))
        ctx = snap.contexts
        self.pipeline_ctx = {i: c.name or "" for i, c in ctx.items()
                             if c.type in PIPELINE_CONTEXT_TYPES and c.name}
        self.stage_ctx: dict[int, tuple[str, str]] = {}
        for i, c in ctx.items():
            if c.type == CMFLIB_STAGE and c.name:
                pipeline = self._parent_pipeline(i) or self._pipeline_by_prefix(c.name, "/")
                if pipeline is not None:
                    stage = c.name[len(pipeline) + 1:] if c.name.startswith(pipeline + "/") \
                        else c.name
                    self.stage_ctx[i] = (pipeline, stage or c.name)
            elif c.type == TFX_NODE and c.name:
                pipeline = self._parent_pipeline(i) or self._pipeline_by_prefix(c.name, ".")
                if pipeline is not None:
                    stage = c.name[len(pipeline) + 1:] if c.name.startswith(pipeline + ".") \
                        else c.name
                    self.stage_ctx[i] = (pipeline, stage or c.name)
        self.run_ctx = {i: c for i, c in ctx.items() if c.type == KFP_RUN and c.name}
        # KFP task names that occur more than once in a run cannot use the hook's id formula
        self.task_counts: Counter[tuple[int, str]] = Counter()
        for eid, node in snap.executions.items():
            task = node.custom_properties.get(KFP_TASK_NAME)
            for c in snap.associations.get(eid, ()):
                if c in self.run_ctx and isinstance(task, str):
                    self.task_counts[(c, task)] += 1
        self.pipelines: dict[str, Pipeline] = {}
        self.stages: dict[tuple[str, str], Stage] = {}
        self.executions: dict[int, Execution] = {}
        self.execution_ids: set[str] = set()

    # contexts --------------------------------------------------------------------------------
    def _parent_pipeline(self, ctx_id: int) -> str | None:
        for parent in self.snap.parents.get(ctx_id, ()):
            if parent in self.pipeline_ctx:
                return self.pipeline_ctx[parent]
        return None

    def _pipeline_by_prefix(self, name: str, sep: str) -> str | None:
        matches = [p for p in self.pipeline_ctx.values() if name.startswith(p + sep)]
        return max(matches, key=len) if matches else None

    def _wanted(self, pipeline: str) -> bool:
        return self.only is None or pipeline in self.only

    def add_pipeline(self, name: str, node: Node | None, created_at: float) -> None:
        if name in self.pipelines or not self._wanted(name):
            return
        rec = _record_of(node) if node is not None else None
        if rec is not None:
            try:
                self.pipelines[name] = _build(Pipeline, rec)
                return
            except (CmfError, TypeError):
                self.plan.notes.append(f"pipeline {name!r}: its cmf.record is unreadable; "
                                       "mapped from MLMD instead")
        if node is None:
            self.pipelines[name] = Pipeline(name=name, site=self.site, created_at=created_at)
            return
        self.pipelines[name] = Pipeline(
            name=name, site=self.site, created_at=_ms(node.create_ms),
            properties=node.properties, custom_properties=_origin(node))

    def add_stage(self, pipeline: str, name: str, node: Node | None, created_at: float) -> None:
        key = (pipeline, name)
        if key in self.stages or not self._wanted(pipeline):
            return
        rec = _record_of(node) if node is not None else None
        if rec is not None:
            try:
                self.stages[key] = _build(Stage, rec)
                return
            except (CmfError, TypeError):
                self.plan.notes.append(f"stage {pipeline}/{name}: its cmf.record is "
                                       "unreadable; mapped from MLMD instead")
        if node is None:
            self.stages[key] = Stage(pipeline=pipeline, name=name, site=self.site,
                                     created_at=created_at)
            return
        self.stages[key] = Stage(pipeline=pipeline, name=name, site=self.site,
                                 created_at=_ms(node.create_ms), properties=node.properties,
                                 custom_properties=_origin(node, mlmd_name=node.name))

    # executions ------------------------------------------------------------------------------
    def map_execution(self, node: Node) -> Execution | None:
        associated = self.snap.associations.get(node.id, [])
        ctx_ids = [c for c in associated if c in self.snap.contexts]
        if len(ctx_ids) < len(associated):
            self.plan.skipped["association to a missing context"] += len(associated) - len(
                ctx_ids)
        pipeline = stage = None
        run: Node | None = None
        for c in ctx_ids:
            if c in self.stage_ctx:
                pipeline, stage = self.stage_ctx[c]
        for c in ctx_ids:
            if pipeline is None and c in self.pipeline_ctx:
                pipeline = self.pipeline_ctx[c]
            if c in self.run_ctx:
                run = self.run_ctx[c]
                if pipeline is None:
                    pipeline = self._parent_pipeline(c)
        if pipeline is None and isinstance(node.properties.get(CMFLIB_PIPELINE_NAME), str):
            pipeline = node.properties[CMFLIB_PIPELINE_NAME] or None
        if pipeline is None:
            self.plan.skipped["execution in no pipeline context"] += 1
            return None
        if not self._wanted(pipeline):
            return None
        custom = node.custom_properties
        task = custom.get(KFP_TASK_NAME)
        task = task if isinstance(task, str) and task else None
        if node.type == KFP_DAG and task is None and "parent_dag_id" not in custom:
            self.plan.skipped["KFP root DAG execution (the run itself)"] += 1
            return None
        if stage is None:
            display = custom.get("display_name")
            stage = task or (display if isinstance(display, str) and display else None) \
                or node.name or node.type
        rec = _record_of(node)
        if rec is not None:
            try:
                ex = _build(Execution, rec)
                self._register(ex, node)
                return ex
            except (CmfError, TypeError):
                self.plan.notes.append(f"execution {node.id}: its cmf.record is unreadable; "
                                       "mapped from MLMD instead")
        state = node.state or 0
        status = _STATES.get(int(state), ExecutionStatus.COMPLETED)
        props: dict[str, Any] = dict(node.properties)
        params: dict[str, Any] = {}
        ex_id = _uuid_or_none(node.properties.get(CMFLIB_EXECUTION_UUID))
        if run is not None and task is not None:
            props["kfp.run"] = run.name
            props["kfp.task"] = task
            if run.custom_properties:
                props["kfp.run_properties"] = dict(run.custom_properties)
            outputs = custom.get("outputs")
            if isinstance(outputs, Mapping) and outputs:
                props["kfp.output_parameters"] = dict(outputs)
            run_ctx_id = next(c for c in ctx_ids if c in self.run_ctx)
            if (ex_id is None and self.task_counts[(run_ctx_id, task)] == 1
                    and "iteration_index" not in custom):
                ex_id = kfp_execution_id(run.name or "", task)
        inputs = custom.get("inputs")
        if isinstance(inputs, Mapping):
            params = {k: v for k, v in inputs.items()
                      if not k.startswith(KFP_INTERNAL_PARAM_PREFIX)}
        elif any(c in self.stage_ctx and self.snap.contexts[c].type == CMFLIB_STAGE
                 for c in ctx_ids):
            params = {k: v for k, v in custom.items()
                      if k not in CMFLIB_BOOKKEEPING and k not in CMF_CARRIERS}
        others = [f"{self.snap.contexts[c].type}:{self.snap.contexts[c].name}" for c in ctx_ids
                  if c not in self.stage_ctx and c not in self.pipeline_ctx]
        if others:
            props["mlmd_contexts"] = sorted(others)
        ex = Execution(
            pipeline=pipeline, stage=stage, site=self.site,
            id=ex_id or _fallback_execution_id(pipeline, stage, node), status=status,
            started_at=_ms(node.create_ms),
            ended_at=_ms(node.update_ms) if status.is_terminal else None,
            params=params, properties=props,
            custom_properties=_origin(node, mlmd_state=EXECUTION_STATES.get(int(state)),
                                      mlmd_name=node.name))
        self._register(ex, node)
        return ex

    def _register(self, ex: Execution, node: Node) -> None:
        if ex.id in self.execution_ids:
            self.plan.notes.append(f"MLMD execution {node.id} has the same id as another "
                                   f"({ex.id}); their lineage is merged")
        self.execution_ids.add(ex.id)
        self.executions[node.id] = ex
        self.add_pipeline(ex.pipeline, None, ex.started_at)
        self.add_stage(ex.pipeline, ex.stage, None, ex.started_at)

    # artifacts -------------------------------------------------------------------------------
    def artifact_id(self, node: Node) -> str:
        uri = node.uri or ""
        try:
            return check_digest(uri)
        except CmfError:
            pass
        if uri and self.cmflib and "://" not in uri and node.type in ARTIFACT_TYPES:
            return remote_digest("cmflib", uri)  # the DVC content hash (a uuid for Metrics)
        if uri:
            meta = {k: v for k, v in node.custom_properties.items()
                    if k not in KFP_BOOKKEEPING and not k.startswith(CMF_PREFIX)}
            digest = hashlib.sha256(jsonutil.dumps(meta).encode()).hexdigest()
            return remote_digest(uri, f"mlmd-metadata:{digest}")
        return remote_digest(f"mlmd:{node.type}:{node.name or ''}",
                             f"mlmd-artifact:{node.id}:{node.create_ms}")

    def map_artifact(self, node: Node, event_keys: list[str]) -> tuple[Artifact,
                                                                       list[ArtifactLocation]]:
        rec = _record_of(node)
        if rec is not None:
            locations = rec.pop("locations", [])
            try:
                art = Artifact(**rec)
                return art, [ArtifactLocation(art.id, site, uri) for site, uri in locations]
            except (CmfError, TypeError, ValueError):
                self.plan.notes.append(f"artifact {node.id}: its cmf.record is unreadable; "
                                       "mapped from MLMD instead")
        digest = self.artifact_id(node)
        cmf_type = node.type if node.type in ARTIFACT_TYPES else KFP_TYPES.get(node.type,
                                                                               "Dataset")
        name, uri = self._name_and_uri(node, event_keys)
        locations: list[ArtifactLocation] = []
        urls = node.properties.get("url")
        if self.cmflib and isinstance(urls, str):
            for entry in urls.split(","):
                location = self._strip_pipeline(entry.strip())
                if location:
                    locations.append(ArtifactLocation(digest, self.site, location))
        art = Artifact(id=digest, type=cmf_type, name=name, uri=uri, site=self.site,
                       created_at=_ms(node.create_ms), properties=node.properties,
                       custom_properties=_origin(node, mlmd_name=node.name,
                                                 mlmd_uri=node.uri or None))
        return art, locations

    def _strip_pipeline(self, url: str) -> str:
        for p in sorted(self.pipeline_ctx.values(), key=len, reverse=True):
            if url.startswith(p + ":"):
                return url[len(p) + 1:]
        return url

    def _name_and_uri(self, node: Node, event_keys: list[str]) -> tuple[str, str]:
        raw_uri = node.uri or ""
        if self.cmflib and node.name and raw_uri and f":{raw_uri}" in node.name:
            path = node.name.split(f":{raw_uri}", 1)[0]  # cmflib names are path:hash[:...]
            if path:
                return path, path
        display = node.custom_properties.get("display_name")
        if isinstance(display, str) and display:
            name = display
        elif node.name:
            name = node.name
        elif event_keys:
            name = event_keys[0]
        else:
            name = raw_uri.rstrip("/").rsplit("/", 1)[-1] or f"mlmd-artifact-{node.id}"
        return name, raw_uri or f"mlmd:{node.type}/{node.id}"

    def carried_metrics(self, node: Node, producers: list[Execution]) -> list[Metric]:
        """The metrics ``cmf export --mlmd`` stored on ``node`` (``cmf.metrics``), as they
        were."""
        out: list[Metric] = []
        try:
            rows = jsonutil.loads(node.custom_properties[CMF_METRICS])
            by_id = {ex.id: ex for ex in producers}
            for exec_id, name, step, value, ts in rows:
                if exec_id in by_id:
                    out.append(Metric(execution_id=exec_id, name=name, value=value,
                                      step=step, timestamp=ts))
            return out
        except (ValueError, TypeError, CmfError):
            self.plan.notes.append(f"artifact {node.id}: its cmf.metrics is unreadable")
            return []

    def logged_values(self, node: Node) -> list[tuple[str, float]]:
        """The metric values a ``Metrics`` / ``system.Metrics`` artifact holds (its finite
        numeric custom properties), by name."""
        if node.type not in ("Metrics", "system.Metrics"):
            return []
        out: list[tuple[str, float]] = []
        for key, value in sorted(node.custom_properties.items()):
            number = _number(value)
            if (number is None or key in KFP_BOOKKEEPING or key.startswith(CMF_PREFIX)
                    or key.startswith("mlmd_")):
                continue
            if not math.isfinite(number):
                self.plan.skipped["metric that is not a finite number"] += 1
                continue
            out.append((key, number))
        return out

    def output_name(self, node: Node, event_keys: list[str]) -> str:
        """The output of its execution that ``node`` is: the key of the execution's OUTPUT
        event (KFP's output name), else the artifact's name (cmflib's metrics name)."""
        return event_keys[0] if event_keys else self._name_and_uri(node, [])[0]

    def metrics_of(self, producers: Mapping[int, list[Execution]],
                   output_keys: Mapping[tuple[str, int], list[str]]) -> list[Metric]:
        """The metrics of the executions that output metrics artifacts. A name that several
        metrics outputs of one execution log is recorded per output, as ``<output>.<name>``
        (:func:`output_metric_names`, the live Kubeflow hook's rule); a name logged once keeps
        its plain name."""
        out: list[Metric] = []
        logged: dict[str, list[tuple[str, str, float, float]]] = {}
        for aid in sorted(producers):
            node = self.snap.artifacts.get(aid)
            if node is None:
                continue
            if isinstance(node.custom_properties.get(CMF_METRICS), str):
                out.extend(self.carried_metrics(node, producers[aid]))
                continue
            values = self.logged_values(node)
            if not values:
                continue
            seen: set[str] = set()
            for ex in producers[aid]:
                if ex.id in seen:
                    continue
                seen.add(ex.id)
                output = self.output_name(node, output_keys.get((ex.id, aid), []))
                logged.setdefault(ex.id, []).extend(
                    (output, name, value, _ms(node.create_ms)) for name, value in values)
        for ex_id, values in logged.items():
            names = output_metric_names((output, name) for output, name, _, _ in values)
            for name, (_, _, value, ts) in zip(names, values, strict=True):
                try:
                    out.append(Metric(execution_id=ex_id, name=name, value=value,
                                      timestamp=ts))
                except CmfError:
                    self.plan.skipped["metric whose name cannot be stored"] += 1
        return out

    # all -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _about(self, kind: str, node: Node) -> Iterator[None]:
        """Name the MLMD record in a value error raised while mapping it."""
        try:
            yield
        except InvalidInputError as e:
            what = f"{node.type} {node.name!r}" if node.name else node.type
            raise InvalidInputError(f"{self.snap.source}: MLMD {kind} {node.id} ({what}): "
                                    f"{e}") from None

    def run(self) -> ImportPlan:
        snap = self.snap
        for cid, c in sorted(snap.contexts.items()):
            if cid in self.pipeline_ctx:
                with self._about("context", c):
                    self.add_pipeline(self.pipeline_ctx[cid], c, 0.0)
        for cid, (pipeline, stage) in sorted(self.stage_ctx.items()):
            with self._about("context", snap.contexts[cid]):
                self.add_stage(pipeline, stage, snap.contexts[cid], 0.0)
        for _, node in sorted(snap.executions.items()):
            with self._about("execution", node):
                self.map_execution(node)

        keys: dict[int, list[str]] = {}
        for ev in snap.events:
            keys.setdefault(ev.artifact_id, []).extend(s for s in ev.path if isinstance(s, str))
        used = {ev.artifact_id for ev in snap.events if ev.execution_id in self.executions}
        artifacts: dict[str, Artifact] = {}
        locations: dict[tuple[str, str, str], ArtifactLocation] = {}
        digest_of: dict[int, str] = {}
        carriers: set[int] = set()
        for aid in sorted(used):
            node = snap.artifacts.get(aid)
            if node is None:
                self.plan.skipped["event to a missing artifact"] += 1
                continue
            if CMF_METRICS in node.custom_properties:
                carriers.add(aid)
                continue
            with self._about("artifact", node):
                art, locs = self.map_artifact(node, keys.get(aid, []))
            digest_of[aid] = art.id
            artifacts.setdefault(art.id, art)
            for loc in locs:
                locations.setdefault((loc.artifact_id, loc.site, loc.uri), loc)
        self.plan.skipped["artifact used by no imported execution"] += sum(
            1 for a in snap.artifacts if a not in used)

        events: dict[tuple[str, str, EventType], Event] = {}
        producers: dict[int, list[Execution]] = {}
        output_keys: dict[tuple[str, int], list[str]] = {}
        for ev in snap.events:
            ex = self.executions.get(ev.execution_id)
            if ex is None:
                continue
            etype = _EVENTS.get(ev.type)
            if etype is None:
                self.plan.skipped[f"{EVENT_TYPES.get(ev.type, ev.type)} event"] += 1
                continue
            if etype is EventType.OUTPUT:
                producers.setdefault(ev.artifact_id, []).append(ex)
                output_keys.setdefault((ex.id, ev.artifact_id), []).extend(
                    s for s in ev.path if isinstance(s, str))
            digest = digest_of.get(ev.artifact_id)
            if digest is None:
                continue
            events.setdefault((ex.id, digest, etype),
                              Event(execution_id=ex.id, artifact_id=digest, type=etype))
        metrics: dict[tuple[str, str, int | None], Metric] = {}
        for m in self.metrics_of(producers, output_keys):
            metrics.setdefault((m.execution_id, m.name, m.step), m)
        if carriers - producers.keys():
            self.plan.skipped["cmf metrics with no producing execution"] += len(
                carriers - producers.keys())

        executions: dict[str, Execution] = {}
        for ex in self.executions.values():
            executions.setdefault(ex.id, ex)
        self.plan.records = [*self.pipelines.values(), *self.stages.values(),
                             *artifacts.values(), *locations.values(), *executions.values(),
                             *events.values(), *metrics.values()]
        self.plan.skipped = Counter({k: v for k, v in self.plan.skipped.items() if v})
        return self.plan


def map_snapshot(snap: Snapshot, site: str,
                 pipelines: Iterable[str] | None = None) -> ImportPlan:
    """The CMF records of an MLMD snapshot (only ``pipelines``' executions when given)."""
    return _Mapper(snap, site, pipelines).run()
