"""Export CMF pipelines into a new MLMD SQLite file laid out the way cmflib lays it out.

Written with the real ``ml-metadata`` library (the ``mlmd`` extra, imported lazily), so the
file is what cmflib's own ``Cmf`` logger would have written and its ``CmfQuery`` reads it:

* each pipeline is a ``Parent_Context`` context (property ``Pipeline``), each stage a
  ``Pipeline_Stage`` context named ``<pipeline>/<stage>`` (property ``Pipeline_Stage``) whose
  parent is the pipeline's context;
* each execution is an execution of a type named after its stage, associated with the stage
  context, with cmflib's properties (``Context_Type``, ``Context_ID``, ``Execution``,
  ``Execution_type_name``, ``Pipeline_Type``, ``Pipeline_id``, ``Git_Repo``,
  ``Git_Start_Commit``, ``Git_End_Commit``, ``Execution_uuid`` = the CMF execution id) and its
  parameters and custom properties as custom properties;
* each artifact has its CMF type, ``uri`` = its content digest, name ``<uri>:<digest>``
  (cmflib's ``path:hash``), cmflib's properties (``Commit`` = digest, ``url`` =
  ``<pipeline>:<location>`` for each location, ...) and is attributed to the stage contexts
  that used it; INPUT / OUTPUT events link it to executions;
* an execution's metrics become a cmflib ``Metrics`` artifact it outputs, named
  ``metrics:<uuid>:<execution>``, with the scalar values as custom properties.

Every record also carries its exact CMF form as JSON in the custom property ``cmf.record``
(metrics: ``cmf.metrics``), so importing the file back gives the same records.
The file is written beside the target and renamed into place: a failed export leaves nothing.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmf_core import jsonutil
from cmf_core.errors import ConfigError, InvalidInputError, NotFoundError
from cmf_core.identity import NAMESPACE
from cmf_core.mlmd.mapping import (
    CMF_METRICS,
    CMF_RECORD,
    CMFLIB_PIPELINE,
    CMFLIB_STAGE,
)
from cmf_core.model import Artifact, Execution, ExecutionStatus, Metric
from cmf_core.model._base import as_dict
from cmf_core.store import ExecutionFilter, Store

INSTALL_HINT = (
    "exporting to MLMD needs the ml-metadata library: pip install 'cmf-foundation[mlmd]' "
    "(ml-metadata pins protobuf<5 and attrs<24, so install it in its own environment, without "
    "the airflow, prefect or kubeflow extras); importing MLMD stores needs no extra"
)

# cmflib's execution type properties (metadata_helper.create_new_execution_in_existing_run_context)
_EXECUTION_PROPS = {"Context_Type": "STRING", "Context_ID": "INT", "Execution": "STRING",
                    "Execution_type_name": "STRING", "Pipeline_Type": "STRING",
                    "Pipeline_id": "INT", "Git_Repo": "STRING", "Git_Start_Commit": "STRING",
                    "Git_End_Commit": "STRING", "Execution_uuid": "STRING"}
# cmflib's artifact type properties (cmf.py: log_dataset, log_model, log_execution_metrics, ...)
_ARTIFACT_PROPS: dict[str, tuple[str, ...]] = {
    "Dataset": ("git_repo", "Commit", "url"),
    "Environment": ("git_repo", "Commit", "url"),
    "Label": ("git_repo", "Commit", "url"),
    "Dataslice": ("git_repo", "Commit", "url"),
    "Model": ("model_framework", "model_type", "model_name", "Commit", "url"),
    "Metrics": ("metrics_name",),
    "Step_Metrics": ("Commit", "url"),
}
_STATES = {ExecutionStatus.RUNNING: "RUNNING", ExecutionStatus.COMPLETED: "COMPLETE",
           ExecutionStatus.FAILED: "FAILED", ExecutionStatus.ABORTED: "CANCELED",
           ExecutionStatus.SKIPPED: "CANCELED"}
_GIT = {"Git_Repo": ("Git_Repo", "git_repo", "git.repo"),
        "Git_Start_Commit": ("Git_Start_Commit", "git_start_commit", "git_commit", "git.commit"),
        "Git_End_Commit": ("Git_End_Commit", "git_end_commit")}
_COMMAND = ("Execution", "command", "cmd")


@dataclass(slots=True)
class MlmdExportReport:
    path: str
    pipelines: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "pipelines": self.pipelines, "counts": self.counts}


def _load_mlmd() -> tuple[Any, Any]:
    try:
        from ml_metadata.metadata_store import metadata_store
        from ml_metadata.proto import metadata_store_pb2
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return metadata_store, metadata_store_pb2


def _first(mapping: Mapping[str, Any], keys: Iterable[str]) -> str:
    for k in keys:
        v = mapping.get(k)
        if v not in (None, ""):
            return str(v)
    return ""


class _Writer:
    def __init__(self, pb: Any, mlmd: Any) -> None:
        self.pb = pb
        self.mlmd = mlmd
        self.types: dict[tuple[str, str], int] = {}

    # values ----------------------------------------------------------------------------------
    def value(self, v: Any) -> Any | None:
        """An MLMD Value for ``v`` (``None`` for no value: MLMD rejects an empty Value)."""
        pb = self.pb
        if v is None:
            return None
        if isinstance(v, bool):
            return pb.Value(bool_value=v)
        if isinstance(v, int):
            return pb.Value(int_value=v) if -(2**63) <= v < 2**63 else pb.Value(
                string_value=str(v))
        if isinstance(v, float):
            return pb.Value(double_value=v) if math.isfinite(v) else pb.Value(
                string_value=str(v))
        if isinstance(v, str):
            return pb.Value(string_value=v)
        if isinstance(v, (Mapping, list, tuple)):
            out = pb.Value()
            data = jsonutil.clean(v)
            out.struct_value.update(data if isinstance(data, dict) else {"items": data})
            return out
        return pb.Value(string_value=str(v))

    def fill(self, target: Any, values: Mapping[str, Any]) -> None:
        for k, v in values.items():
            mv = self.value(v)
            if mv is not None:
                target[str(k)].CopyFrom(mv)

    # types -----------------------------------------------------------------------------------
    def type_id(self, kind: str, name: str, props: Mapping[str, str]) -> int:
        key = (kind, name)
        if key not in self.types:
            pb = self.pb
            cls = {"context": pb.ContextType, "execution": pb.ExecutionType,
                   "artifact": pb.ArtifactType}[kind]
            t = cls(name=name)
            for p, dtype in props.items():
                t.properties[p] = getattr(pb, dtype)
            put = getattr(self.mlmd, f"put_{kind}_type")
            self.types[key] = put(t, can_add_fields=True)
        return self.types[key]


def export_mlmd(store: Store, path: str | os.PathLike[str],
                pipelines: Iterable[str] | None = None, *, force: bool = False,
                ) -> MlmdExportReport:
    """Write ``pipelines`` (default: all) of ``store`` into a new MLMD SQLite file ``path``."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise InvalidInputError(f"MLMD export target {target} is a directory; give a file "
                                f"path such as {target}/mlmd")
    own = getattr(store, "path", None)  # the SQLite backend's file
    if isinstance(own, Path) and target.exists() and own.exists() \
            and os.path.samefile(target, own):
        raise InvalidInputError(f"MLMD export target {target} is the CMF store being exported; "
                                "give another path (--force would replace the store)")
    if target.exists() and not force:
        raise InvalidInputError(f"MLMD export target {target} already exists; give another "
                                "path, or --force to replace it")
    if not target.parent.is_dir():
        raise InvalidInputError(f"directory {target.parent} of MLMD export target does not "
                                "exist; create it first")
    known = {p.name for p in store.list_pipelines()}
    names = list(dict.fromkeys(pipelines)) if pipelines else sorted(known)
    missing = [n for n in names if n not in known]
    if missing:
        raise NotFoundError(f"pipeline(s) {', '.join(map(repr, missing))} not in the store; "
                            f"it holds: {', '.join(sorted(known)) or 'no pipelines'}")
    metadata_store, pb = _load_mlmd()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    tmp.unlink(missing_ok=True)
    report = MlmdExportReport(path=str(target), pipelines=names)
    try:
        report.counts = _write(store, metadata_store, pb, tmp, names)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return report


def _write(store: Store, metadata_store: Any, pb: Any, path: Path,
           names: list[str]) -> dict[str, int]:
    """Write the pipelines into a new MLMD file; the connection closes when this returns."""
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    writer = _Writer(pb, metadata_store.MetadataStore(config))
    counts = {"pipelines": 0, "stages": 0, "executions": 0, "artifacts": 0, "events": 0,
              "metrics": 0}
    artifact_ids: dict[str, int] = {}
    for name in names:
        _export_pipeline(store, writer, name, artifact_ids, counts)
    counts["artifacts"] = len(artifact_ids)
    return counts


def _export_pipeline(store: Store, w: _Writer, name: str, artifact_ids: dict[str, int],
                     counts: dict[str, int]) -> None:
    pb, mlmd = w.pb, w.mlmd
    pipeline = store.get_pipeline(name)
    assert pipeline is not None
    pctx = pb.Context(name=name, type_id=w.type_id("context", CMFLIB_PIPELINE,
                                                    {"Pipeline": "STRING"}))
    pctx.properties["Pipeline"].string_value = name
    w.fill(pctx.custom_properties, pipeline.custom_properties)
    pctx.custom_properties[CMF_RECORD].string_value = jsonutil.dumps(as_dict(pipeline))
    [pctx_id] = mlmd.put_contexts([pctx])
    counts["pipelines"] += 1

    executions = store.list_executions(ExecutionFilter(pipeline=name))
    executions.sort(key=lambda e: (e.started_at, e.id))
    stages = {s.name: s for s in store.list_stages(name)}
    first: dict[str, float] = {s: rec.created_at for s, rec in stages.items()}
    for e in executions:
        first[e.stage] = min(first.get(e.stage, e.started_at), e.started_at)
    stage_names = sorted(first, key=lambda s: (first[s], s))  # pipeline order, as cmflib
    stage_type = w.type_id("context", CMFLIB_STAGE, {CMFLIB_STAGE: "STRING"})
    stage_ctx: dict[str, int] = {}
    contexts = []
    for s in stage_names:
        full = f"{name}/{s}"
        ctx = pb.Context(name=full, type_id=stage_type)
        ctx.properties[CMFLIB_STAGE].string_value = full
        rec = stages.get(s)
        if rec is not None:
            w.fill(ctx.custom_properties, rec.custom_properties)
            ctx.custom_properties[CMF_RECORD].string_value = jsonutil.dumps(as_dict(rec))
        contexts.append(ctx)
    for s, cid in zip(stage_names, mlmd.put_contexts(contexts) if contexts else [],
                      strict=True):
        stage_ctx[s] = cid
    if stage_ctx:
        mlmd.put_parent_contexts([pb.ParentContext(child_id=cid, parent_id=pctx_id)
                                  for cid in stage_ctx.values()])
    counts["stages"] += len(stage_ctx)

    mlmd_exec: dict[str, int] = {}
    batch = [_execution(w, ex, name, stage_ctx[ex.stage], pctx_id) for ex in executions]
    for ex, mid in zip(executions, mlmd.put_executions(batch) if batch else [], strict=True):
        mlmd_exec[ex.id] = mid
    mlmd.put_attributions_and_associations(
        [], [pb.Association(execution_id=mlmd_exec[ex.id], context_id=stage_ctx[ex.stage])
             for ex in executions])
    counts["executions"] += len(executions)

    exec_ids = [ex.id for ex in executions]
    by_id = {ex.id: ex for ex in executions}
    events = store.events(execution_ids=exec_ids) if exec_ids else []
    wanted = sorted({ev.artifact_id for ev in events} - artifact_ids.keys())
    arts: list[Artifact] = []
    for i in range(0, len(wanted), 500):
        arts.extend(store.find_artifacts(ids=wanted[i:i + 500]))
    arts.sort(key=lambda a: a.id)
    batch = [_artifact(w, store, a, name) for a in arts]
    for a, mid in zip(arts, mlmd.put_artifacts(batch) if batch else [], strict=True):
        artifact_ids[a.id] = mid
    names = {a.id: f"{a.uri}:{a.id}" for a in arts}

    attributions: set[tuple[int, int]] = set()
    mevents = []
    for ev in events:
        ex = by_id[ev.execution_id]
        aid = artifact_ids.get(ev.artifact_id)
        if aid is None:
            continue
        output = ev.type.value == "OUTPUT"
        when = ex.ended_at if output and ex.ended_at is not None else ex.started_at
        me = pb.Event(artifact_id=aid, execution_id=mlmd_exec[ex.id],
                      type=pb.Event.OUTPUT if output else pb.Event.INPUT,
                      milliseconds_since_epoch=int(when * 1000))
        me.path.steps.add().key = names.get(ev.artifact_id, ev.artifact_id)
        mevents.append(me)
        attributions.add((stage_ctx[ex.stage], aid))
    counts["events"] += len(mevents)

    metrics = store.metrics(exec_ids) if exec_ids else []
    per_exec: dict[str, list[Metric]] = {}
    for m in metrics:
        per_exec.setdefault(m.execution_id, []).append(m)
    carriers, carried_for = [], []
    for ex_id, ms in sorted(per_exec.items()):
        ex = by_id[ex_id]
        uri = str(uuid.uuid5(NAMESPACE, f"cmf-metrics\x1f{ex_id}"))
        metrics_name = f"metrics:{uri}:{mlmd_exec[ex_id]}"
        art = pb.Artifact(uri=uri, name=metrics_name, type_id=w.type_id(
            "artifact", "Metrics", dict.fromkeys(_ARTIFACT_PROPS["Metrics"], "STRING")))
        art.properties["metrics_name"].string_value = metrics_name
        w.fill(art.custom_properties, {m.name: m.value for m in ms if m.step is None})
        rows = sorted(([m.execution_id, m.name, m.step, m.value, m.timestamp] for m in ms),
                      key=lambda r: (r[1], -1 if r[2] is None else r[2]))
        art.custom_properties[CMF_METRICS].string_value = jsonutil.dumps(rows)
        carriers.append(art)
        carried_for.append(ex)
        counts["metrics"] += len(ms)
    for ex, aid in zip(carried_for, mlmd.put_artifacts(carriers) if carriers else [],
                       strict=True):
        me = pb.Event(artifact_id=aid, execution_id=mlmd_exec[ex.id], type=pb.Event.OUTPUT,
                      milliseconds_since_epoch=int((ex.ended_at or ex.started_at) * 1000))
        me.path.steps.add().key = "metrics"
        mevents.append(me)
        attributions.add((stage_ctx[ex.stage], aid))
    if mevents:
        mlmd.put_events(mevents)
    if attributions:
        mlmd.put_attributions_and_associations(
            [pb.Attribution(context_id=c, artifact_id=a) for c, a in sorted(attributions)], [])


def _execution(w: _Writer, ex: Execution, pipeline: str, stage_ctx_id: int,
               pipeline_ctx_id: int) -> Any:
    pb = w.pb
    full = f"{pipeline}/{ex.stage}"
    me = pb.Execution(type_id=w.type_id("execution", ex.stage, _EXECUTION_PROPS))
    me.last_known_state = getattr(pb.Execution, _STATES[ex.status])
    props = {"Context_Type": full, "Context_ID": stage_ctx_id,
             "Execution": _first(ex.properties, _COMMAND) or _first(ex.custom_properties,
                                                                     _COMMAND),
             "Execution_type_name": full, "Pipeline_Type": pipeline,
             "Pipeline_id": pipeline_ctx_id, "Execution_uuid": ex.id}
    for key, aliases in _GIT.items():
        props[key] = _first(ex.properties, aliases) or _first(ex.custom_properties, aliases)
    w.fill(me.properties, props)
    w.fill(me.custom_properties, {**ex.custom_properties, **ex.params})
    me.custom_properties[CMF_RECORD].string_value = jsonutil.dumps(as_dict(ex))
    return me


def _artifact(w: _Writer, store: Store, a: Artifact, pipeline: str) -> Any:
    pb = w.pb
    names = _ARTIFACT_PROPS.get(a.type, ("Commit", "url"))
    art = pb.Artifact(uri=a.id, name=f"{a.uri}:{a.id}", type_id=w.type_id(
        "artifact", a.type, dict.fromkeys(names, "STRING")))
    locations = sorted({(loc.site, loc.uri) for loc in store.artifact_locations(a.id)}
                       | {(a.site, a.uri)})
    values = {"Commit": a.id, "url": ",".join(f"{pipeline}:{uri}" for _, uri in locations),
              "metrics_name": a.name}
    for key in names:
        if key not in values:
            values[key] = _first(a.properties, (key,)) or _first(a.custom_properties, (key,)) \
                or ("Default" if key.startswith("model_") else "")
    w.fill(art.properties, {k: values[k] for k in names})
    w.fill(art.custom_properties, a.custom_properties)
    record = as_dict(a)
    record["locations"] = [list(loc) for loc in locations]
    art.custom_properties[CMF_RECORD].string_value = jsonutil.dumps(record)
    return art
