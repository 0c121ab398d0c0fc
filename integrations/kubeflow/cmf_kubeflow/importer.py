"""Import finished KFP runs into CMF: a ``kfp.local`` run folder, or a run on a KFP cluster.

Both readers build the same :class:`~cmf_kubeflow.adapter.TaskRun` records as the live hook
(:mod:`cmf_kubeflow.bootstrap`) and send them as OpenLineage RunEvents through
:func:`cmf_core.openlineage.emit.get_emitter`. Execution ids are derived from the run key and
the task name (:func:`cmf_kubeflow.adapter.execution_id`), artifact ids from the bytes, so
importing a run twice adds nothing, and importing a run that was also tracked live adds no
execution, artifact or event (the live execution's properties gain the import's note).

``kfp.local`` (:func:`import_local_run`)
    reads ``<pipeline_root>/<pipeline>-<timestamp>/<task>/``: ``executor_output.json`` (output
    artifacts with their URI and metadata, output parameters), ``OutputPath`` parameter files
    and the artifact files (digested). kfp.local does not keep the executor *input*: give the
    pipeline (function, compiled YAML or spec) to also get input artifacts, parameters and
    artifact types from the DAG, and ``arguments`` for the pipeline's own parameters. Times are
    the files' modification times. A task folder without ``executor_output.json`` is a failed
    task.

KFP cluster (:class:`KfpRunReader`)
    reads the KFP v2beta1 REST API: ``GET /apis/v2beta1/runs/{run_id}`` (task details: name,
    state, times, input/output artifact ids), ``GET /apis/v2beta1/artifacts/{id}`` (URI, type,
    size; with ``view=DOWNLOAD`` a signed URL) and the pipeline spec (in the run, else
    ``GET /apis/v2beta1/pipelines/{pipeline_id}/versions/{version_id}``) for parameters. An
    artifact whose bytes can be downloaded (a single object up to ``download_max_bytes``) gets
    its ``sha256`` digest, as when tracked live; others are identified by URI and KFP artifact
    id. The REST API carries no artifact metadata, so metrics logged into ``Metrics`` artifacts
    only reach CMF through live tracking (or the MLMD route, handled separately). The run
    itself becomes an execution of stage ``<pipeline>`` (id :func:`adapter.run_uuid`, the
    tasks' ``parent``) with the run's state, times and arguments.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmf_core.errors import CmfError, InvalidInputError, NotFoundError
from cmf_core.model import Artifact, ExecutionStatus
from cmf_kubeflow import adapter
from cmf_kubeflow.conf import local_run_pipeline, run_link
from cmf_kubeflow.spec import SpecTask, all_tasks, load_spec, repeated_names, spec_tasks

EXECUTOR_OUTPUT = "executor_output.json"


@dataclass(slots=True)
class ImportResult:
    """What an import recorded."""

    run_key: str
    pipeline: str
    executions: dict[str, str] = field(default_factory=dict)
    """Task name (``<scope>/<task>`` for loop iterations) -> execution id."""
    sent: int = 0
    spooled: int = 0
    """Events the emitter could not record now; they wait in the spool for a retry."""
    notes: list[str] = field(default_factory=list)
    run_execution: str | None = None
    """The execution of the pipeline run itself (a cluster run: its state and times), the
    ``parent`` of its task runs; ``None`` for a ``kfp.local`` run, whose status is not kept."""


# the pipeline spec: DAG wiring shared by both readers -------------------------------------------
def _typed(value: Any, ptype: str | None) -> Any:
    if ptype == "NUMBER_INTEGER" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _param_types(cspec: Mapping[str, Any], side: str) -> dict[str, str]:
    defs = ((cspec.get(side) or {}).get("parameters") or {})
    return {k: v.get("parameterType") for k, v in defs.items()}


def _artifact_types(cspec: Mapping[str, Any], side: str) -> dict[str, str]:
    defs = ((cspec.get(side) or {}).get("artifacts") or {})
    return {k: ((v.get("artifactType") or {}).get("schemaTitle") or "system.Artifact")
            for k, v in defs.items()}


_PARAM_PLACEHOLDER = re.compile(r"\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}")


def _substituted(value: Any, channels: Mapping[str, Any]) -> Any:
    """``value`` with the ``{{$.inputs.parameters['pipelinechannel--x']}}`` placeholders of an
    f-string (or of a channel inside a constant list or dict) replaced as the executor sees
    them: a string as it is, any other value as JSON (what ``kfp.local`` substitutes). A
    placeholder whose channel is not known stays as written."""
    if isinstance(value, str):
        def one(m: re.Match[str]) -> str:
            if m.group(1) not in channels:
                return m.group(0)
            v = channels[m.group(1)]
            return v if isinstance(v, str) else json.dumps(v)

        return _PARAM_PLACEHOLDER.sub(one, value)
    if isinstance(value, list):
        return [_substituted(v, channels) for v in value]
    if isinstance(value, dict):
        return {_substituted(k, channels): _substituted(v, channels) for k, v in value.items()}
    return value


_Produced = tuple[dict[str, Any], dict[str, adapter.RuntimeArtifact]]
_UNKNOWN: Any = object()
_SELECTOR = re.compile(r'parseJson\(string_value\)((?:\["[^"\]]*"\])*)')


def _select(value: Any, selector: str) -> Any:
    """``parameterExpressionSelector`` applied to a value (a loop item), as ``kfp.local`` does:
    ``parseJson(string_value)["field"]``; :data:`_UNKNOWN` for what it cannot evaluate."""
    m = _SELECTOR.fullmatch(selector)
    if m is None:
        return _UNKNOWN
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return _UNKNOWN
    for key in re.findall(r'\["([^"\]]*)"\]', m.group(1)):
        if not isinstance(value, dict) or key not in value:
            return _UNKNOWN
        value = value[key]
    return value


@dataclass(frozen=True, slots=True)
class TaskContext:
    """Where one run of a task happened, beyond its DAG: for each of its enclosing DAG tasks
    (:attr:`SpecTask.dags`), the loop iteration it ran in (``None``: not a loop, or not known),
    and ``lookup(level, task)``: the outputs of task ``task`` in the DAG at that level (0: the
    pipeline's root DAG; ``len(dags)``: the task's own DAG), a nested pipeline's outputs
    included, or ``None`` when not known."""

    iterations: tuple[int | None, ...] = ()
    lookup: Callable[[int, str], _Produced | None] | None = None


class _Wiring:
    """Resolves a task's input sources up through its enclosing DAGs."""

    def __init__(self, spec: Mapping[str, Any], task: SpecTask, arguments: Mapping[str, Any],
                 context: TaskContext) -> None:
        self.task, self.arguments, self.context = task, arguments, context
        self.root_params = (((spec.get("root") or {}).get("inputDefinitions") or {})
                            .get("parameters") or {})
        self._items: dict[int, Any] = {}

    def produced(self, level: int, name: str) -> _Produced | None:
        lookup = self.context.lookup
        return lookup(level, name) if lookup else None

    def item(self, level: int) -> tuple[Any, str]:
        """The loop item of the iteration of ``dags[level]`` this run was in."""
        dag = self.task.dags[level]
        loop = (dag.get("taskInfo") or {}).get("name") or "the loop"
        its = self.context.iterations
        index = its[level] if level < len(its) else None
        if index is None:
            return _UNKNOWN, f"the iteration of {loop} is not known"
        if level not in self._items:
            items = (dag.get("parameterIterator") or {}).get("items") or {}
            if "raw" in items:
                value, why = json.loads(items["raw"]), ""
            elif "inputParameter" in items:
                src = ((dag.get("inputs") or {}).get("parameters") or {}).get(
                    items["inputParameter"])
                value, why = (self.param(src, level) if src is not None
                              else (_UNKNOWN, f"the items of {loop} are not known"))
            else:
                value, why = _UNKNOWN, f"{loop} iterates over artifacts"
            if isinstance(value, str):
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            self._items[level] = (value, why)
        items, why = self._items[level]
        if items is _UNKNOWN:
            return _UNKNOWN, why
        if not isinstance(items, list) or index >= len(items):
            return _UNKNOWN, f"{loop} has no item {index} in {items!r}"
        return items[index], ""

    def param(self, src: Mapping[str, Any], level: int) -> tuple[Any, str]:
        """The value of a parameter source of a task at DAG ``level``, or (_UNKNOWN, why)."""
        value, why = _UNKNOWN, f"not resolved ({dict(src)})"
        if "runtimeValue" in src:
            value = (src["runtimeValue"] or {}).get("constant")
        elif "componentInputParameter" in src:
            name = src["componentInputParameter"]
            if level == 0:
                # inside a sub-DAG the root's parameter ``x`` arrives as ``pipelinechannel--x``
                name = name.removeprefix(adapter.INTERNAL_PARAM_PREFIX)
                if name in self.arguments:
                    value = self.arguments[name]
                elif "defaultValue" in (self.root_params.get(name) or {}):
                    value = self.root_params[name]["defaultValue"]
                else:
                    why = f"pipeline parameter {name!r} not given"
            else:
                dag = self.task.dags[level - 1]
                if (dag.get("parameterIterator") or {}).get("itemInput") == name:
                    value, why = self.item(level - 1)
                    if value is _UNKNOWN:
                        why = f"loop item not known: {why}"
                else:
                    given = ((dag.get("inputs") or {}).get("parameters") or {}).get(name)
                    if given is not None:
                        value, why = self.param(given, level - 1)
                    else:
                        why = f"not resolved in its enclosing DAG ({dict(src)})"
        elif "taskOutputParameter" in src:
            ref = src["taskOutputParameter"]
            produced = self.produced(level, ref.get("producerTask") or "")
            if produced is not None and ref.get("outputParameterKey") in produced[0]:
                value = produced[0][ref["outputParameterKey"]]
            else:
                why = f"output {ref} not found"
        selector = src.get("parameterExpressionSelector")
        if value is not _UNKNOWN and selector:
            picked = _select(value, selector)
            if picked is _UNKNOWN:
                why = f"{selector} not found in {value!r}"
            value = picked
        return value, why

    def artifact(self, src: Mapping[str, Any], level: int
                 ) -> tuple[adapter.RuntimeArtifact | None, str]:
        if "taskOutputArtifact" in src:
            ref = src["taskOutputArtifact"]
            produced = self.produced(level, ref.get("producerTask") or "")
            art = produced[1].get(ref.get("outputArtifactKey")) if produced else None
            return art, "" if art else f"output {ref} not found"
        name = src.get("componentInputArtifact")
        if name and level > 0:
            dag = self.task.dags[level - 1]
            given = ((dag.get("inputs") or {}).get("artifacts") or {}).get(name)
            if given is not None:
                return self.artifact(given, level - 1)
            if (dag.get("artifactIterator") or {}).get("itemInput") == name:
                return None, "an item of a loop over artifacts; not linked"
        return None, "input artifact is not a task output; not linked"


def wire_inputs(spec: Mapping[str, Any], task: SpecTask, arguments: Mapping[str, Any],
                outputs: Mapping[str, _Produced], context: TaskContext | None = None
                ) -> tuple[dict[str, Any], list[adapter.RuntimeArtifact], list[str]]:
    """Parameters and input artifacts of ``task`` from the DAG wiring.

    ``outputs`` maps producer task -> (output parameters, output artifacts by key), for the
    producers in the task's own DAG; ``context`` (loop iterations, producers in any enclosing
    DAG) replaces it where given. Returns (params, input artifacts, notes about what could not
    be resolved).
    """
    if context is None:
        level = len(task.dags)
        context = TaskContext(lookup=lambda lv, name: outputs.get(name) if lv == level else None)
    wiring = _Wiring(spec, task, arguments, context)
    own = len(task.dags)
    types = _param_types(task.component_spec, "inputDefinitions")
    params: dict[str, Any] = {}
    found: list[tuple[str, str]] = []  # (input, why it is not known)
    for key, src in (task.inputs.get("parameters") or {}).items():
        value, why = wiring.param(src, own)
        if value is _UNKNOWN:
            found.append((key, f"{task.name}.{key}: {why}"))
        else:
            params[key] = _typed(value, types.get(key))
    # the channels (``pipelinechannel--*``) KFP adds for f-strings and values inside constants:
    # not the component's own parameters, but what their placeholders stand for
    channels = {k: v for k, v in params.items() if k.startswith(adapter.INTERNAL_PARAM_PREFIX)}
    params = {k: _substituted(v, channels) for k, v in params.items() if k not in channels}
    written = json.dumps(params)  # a channel not resolved matters where it is still used
    notes = [note for key, note in found
             if not key.startswith(adapter.INTERNAL_PARAM_PREFIX) or f"['{key}']" in written]
    arts: list[adapter.RuntimeArtifact] = []
    for key, src in sorted((task.inputs.get("artifacts") or {}).items()):
        art, why = wiring.artifact(src, own)
        if art is None:
            notes.append(f"{task.name}.{key}: {why}")
            continue
        arts.append(adapter.RuntimeArtifact(key=key, uri=art.uri, schema_title=art.schema_title,
                                            metadata=dict(art.metadata)))
    return params, arts, notes


def imported_artifacts(spec: Mapping[str, Any], arguments: Mapping[str, Any]
                       ) -> dict[str, tuple[dict[str, Any], dict[str, adapter.RuntimeArtifact]]]:
    """Output of each ``dsl.importer`` task by task name, from the spec: its URI (a constant
    or a parameter) and metadata (``kfp.local`` keeps no folder for importers)."""
    executors = (spec.get("deploymentSpec") or {}).get("executors") or {}
    out: dict[str, tuple[dict[str, Any], dict[str, adapter.RuntimeArtifact]]] = {}
    for task in all_tasks(spec):
        imp = (executors.get(task.executor or "") or {}).get("importer")
        if not imp:
            continue
        where = imp.get("artifactUri") or {}
        uri = where.get("constant")
        if uri is None:
            uri = wire_inputs(spec, task, arguments, {})[0].get(where.get("runtimeParameter"))
        if isinstance(uri, str) and uri:
            title = (imp.get("typeSchema") or {}).get("schemaTitle") or "system.Artifact"
            out[task.name] = ({}, {"artifact": adapter.RuntimeArtifact(
                key="artifact", uri=uri, schema_title=title,
                metadata=dict(imp.get("metadata") or {}))})
    return out


def _emit(runs: list[tuple[adapter.TaskRun, list[Artifact], list[Artifact]]], site: str,
          settings: Any, result: ImportResult) -> None:
    from cmf_core.openlineage.emit import get_emitter

    emitter = get_emitter(settings)
    for run, inputs, outputs in runs:
        result.executions[f"{run.scope}/{run.task}" if run.scope else run.task] = \
            run.execution_id
        _send(adapter.run_events(run, site, inputs, outputs), emitter, result)


def _send(events: Iterable[Any], emitter: Any, result: ImportResult) -> None:
    """Emit ``events``, counting each as sent or spooled in ``result``."""
    for event in events:
        if emitter.emit(event):
            result.sent += 1
        else:
            result.spooled += 1


# kfp.local ---------------------------------------------------------------------------------------
def list_local_runs(pipeline_root: str | os.PathLike[str]) -> list[Path]:
    """The run folders under a ``kfp.local`` pipeline root, oldest first."""
    root = Path(pipeline_root)
    if not root.is_dir():
        raise InvalidInputError(f"pipeline root {root} is not a folder")
    return sorted(p for p in root.iterdir() if p.is_dir() and local_run_pipeline(p.name))


def _task_folders(run_dir: Path) -> Iterator[Path]:
    """Task folders, also inside the group folders of control-flow runs."""
    for child in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        files = [p for p in child.iterdir() if p.is_file()]
        subdirs = [p for p in child.iterdir() if p.is_dir()]
        if files or not subdirs:
            yield child
        else:
            yield from _task_folders(child)


def _mtimes(folder: Path) -> tuple[float, float | None]:
    entries = [folder, *folder.rglob("*")]
    times = [p.stat().st_mtime for p in entries]
    out = folder / EXECUTOR_OUTPUT
    return min(times), (out.stat().st_mtime if out.is_file() else None)


_Outputs = dict[str, adapter.RuntimeArtifact]


def _read_local_task(folder: Path, cspec: Mapping[str, Any]
                     ) -> tuple[ExecutionStatus, dict[str, Any], _Outputs]:
    out_file = folder / EXECUTOR_OUTPUT
    written: dict[str, Any] = {}
    status = ExecutionStatus.FAILED
    if out_file.is_file():
        written = json.loads(out_file.read_text(encoding="utf-8") or "{}")
        status = ExecutionStatus.COMPLETED
    titles = _artifact_types(cspec, "outputDefinitions")
    ptypes = _param_types(cspec, "outputDefinitions")
    artifacts: dict[str, adapter.RuntimeArtifact] = {}
    for key, lst in sorted((written.get("artifacts") or {}).items()):
        for art in lst.get("artifacts") or []:
            artifacts[key] = adapter.RuntimeArtifact(
                key=key, uri=str(art.get("uri") or folder / key),
                schema_title=titles.get(key, "system.Artifact"),
                metadata=dict(art.get("metadata") or {}))
    params = {k: _typed(v, ptypes.get(k))
              for k, v in (written.get("parameterValues") or {}).items()}
    if status is ExecutionStatus.FAILED:  # KFP publishes nothing of a failed task
        return status, params, artifacts
    # OutputPath parameters are plain files named after the output; artifacts are listed above
    wanted = set(ptypes) if ptypes else None
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name == EXECUTOR_OUTPUT or path.name in artifacts:
            continue
        if path.name in params or (wanted is not None and path.name not in wanted):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            params[path.name] = _typed(json.loads(text), ptypes.get(path.name))
        except ValueError:
            params[path.name] = text
    return status, params, artifacts


def import_local_run(run_dir: str | os.PathLike[str], *, pipeline: Any = None,
                     arguments: Mapping[str, Any] | None = None, site: str | None = None,
                     settings: Any = None) -> ImportResult:
    """Record a finished ``kfp.local`` run folder into CMF (see the module docs).

    ``run_dir`` is ``<pipeline_root>/<pipeline>-<timestamp>``; ``pipeline`` (optional) is the
    pipeline that ran, for input lineage, parameters and artifact types; ``arguments`` are the
    pipeline arguments of that run (defaults come from the spec). ``settings`` are cmf_core
    Settings (default: the configured ones); ``site`` overrides their site.
    """
    from cmf_core.config import load_settings

    folder = Path(run_dir)
    if not folder.is_dir():
        raise InvalidInputError(f"kfp.local run folder {folder} "
                                + ("is a file, not a folder" if folder.exists()
                                   else "does not exist"))
    settings = settings or load_settings(site=site)
    site = site or settings.site
    spec = load_spec(pipeline)
    tasks = spec_tasks(spec)
    by_component = {t.component: t for t in all_tasks(spec)}
    pipeline_name = ((spec.get("pipelineInfo") or {}).get("name")
                     or local_run_pipeline(folder.name) or folder.name)
    result = ImportResult(run_key=folder.name, pipeline=pipeline_name)
    if not spec:
        result.notes.append("no pipeline given: input artifacts and parameters are not known")
    found: dict[str, tuple[Path, SpecTask | None]] = {}
    nested = _has_group_folders(spec)
    for task_dir in _task_folders(folder):
        key = task_dir.relative_to(folder).as_posix()
        stask = (_in_group(spec, key, nested) or by_component.get(f"comp-{task_dir.name}")
                 or tasks.get(task_dir.name))
        found[key] = (task_dir, stask)
    if not found:
        raise NotFoundError(f"no task folders in kfp.local run folder {folder}")
    # producers first (the order events are sent in); a producer is in the consumer's DAG, so
    # in its folder (a loop iteration, a nested pipeline)
    order = _topological(
        [(key, {_scoped(key, p) for p in _producers(s)}) for key, (_, s) in found.items()],
        {key: _scoped(key, s.name if s else d.name) for key, (d, s) in found.items()})
    # every task's outputs first: a consumer may read them from another DAG (a nested
    # pipeline's output, a loop's items)
    read = {key: _read_local_task(d, s.component_spec if s else {})
            for key, (d, s) in found.items()}
    outputs = {key: (out_params, out_arts) for key, (_, out_params, out_arts) in read.items()}
    imported = imported_artifacts(spec, arguments or {})
    layout = _LocalLayout(spec, {(key.rpartition("/")[0], s.component): outputs[key]
                                 for key, (_, s) in found.items() if s is not None}, imported)
    runs = []
    for key in order:
        task_dir, stask = found[key]
        name, scope = task_dir.name, key.rpartition("/")[0]
        status, out_params, out_arts = read[key]
        params: dict[str, Any] = {}
        inputs: list[adapter.RuntimeArtifact] = []
        if stask is not None:
            params, inputs, notes = wire_inputs(spec, stask, arguments or {}, {},
                                                layout.context(stask, scope))
            result.notes.extend(notes)
        started, ended = _mtimes(task_dir)
        run = adapter.TaskRun(
            pipeline=pipeline_name, run_key=folder.name, task=name, scope=scope, status=status,
            started_at=started, ended_at=ended or started, params=params, inputs=inputs,
            outputs=list(out_arts.values()), output_params=out_params,
            properties={"kfp.imported_from": "kfp.local", "kfp.times": "file modification"},
            error=None if status is ExecutionStatus.COMPLETED else
            f"kfp.local task {name} wrote no {EXECUTOR_OUTPUT}",
        )
        runs.append((run, [adapter.describe(a, site) for a in inputs],
                     [adapter.describe(a, site) for a in run.outputs]))
    _emit(runs, site, settings, result)
    return result


class _LocalLayout:
    """Where ``kfp.local`` put each task's folder. A pipeline whose root DAG has control flow
    (a loop, a condition) runs every DAG task (loop iteration ``<loop>-iteration-<i>``, nested
    pipeline, condition) in a folder of its own; otherwise every task runs in the run folder.
    A task folder is named after the task's component (``comp-square-2`` -> ``square-2``)."""

    def __init__(self, spec: Mapping[str, Any], outputs: Mapping[tuple[str, str], _Produced],
                 imported: Mapping[str, _Produced]) -> None:
        self.components = spec.get("components") or {}
        self.root = spec.get("root") or {}
        self.outputs, self.imported = outputs, imported
        """Outputs by (group folder, component of the task that ran there)."""
        self.nested = _has_group_folders(spec)

    def context(self, task: SpecTask, scope: str) -> TaskContext:
        """Loop iterations and producers of ``task`` run in group folder ``scope``."""
        parts = scope.split("/") if scope else []
        names = [(d.get("taskInfo") or {}).get("name") or "" for d in task.dags]
        iterations: list[int | None] = [None] * len(names)
        scopes: list[str | None] = [None] * len(names) + [scope]
        if self.nested and len(parts) == len(names):
            for level, (part, name) in enumerate(zip(parts, names, strict=True)):
                m = re.fullmatch(re.escape(name) + r"-iteration-(\d+)", part)
                if m:
                    iterations[level] = int(m.group(1))
                elif part != name:
                    break
                scopes[level] = "/".join(parts[:level])
            else:
                scopes[:len(names)] = ["/".join(parts[:lv]) for lv in range(len(names))]
        elif not self.nested and not parts:
            scopes = [""] * (len(names) + 1)
        dag_specs = [self.root] + [self.components.get(
            (d.get("componentRef") or {}).get("name") or "") or {} for d in task.dags]

        def lookup(level: int, name: str) -> _Produced | None:
            where = scopes[level] if level < len(scopes) else None
            return None if where is None else self.produced(where, dag_specs[level], name)

        return TaskContext(tuple(iterations), lookup)

    def produced(self, scope: str, dag: Mapping[str, Any], name: str, depth: int = 0
                 ) -> _Produced | None:
        """The outputs of task ``name`` of DAG component ``dag`` run in group folder ``scope``;
        a nested pipeline's are those its ``dag.outputs`` select from its own tasks."""
        task = ((dag.get("dag") or {}).get("tasks") or {}).get(name)
        if task is None or depth > 50:
            return None
        ref = (task.get("componentRef") or {}).get("name") or ""
        comp = self.components.get(ref) or {}
        if "executorLabel" in comp:
            return (self.outputs.get((scope, ref))
                    or self.imported.get((task.get("taskInfo") or {}).get("name") or name))
        if "dag" not in comp or "parameterIterator" in task or "artifactIterator" in task:
            return None  # a loop's outputs are lists over its iterations
        inner = f"{scope}/{name}" if scope else name
        inner = inner if self.nested else scope
        selected = (comp.get("dag") or {}).get("outputs") or {}
        params: dict[str, Any] = {}
        arts: dict[str, adapter.RuntimeArtifact] = {}
        for key, sel in (selected.get("parameters") or {}).items():
            options = ([sel["valueFromParameter"]] if "valueFromParameter" in sel else
                       (sel.get("valueFromOneof") or {}).get("parameterSelectors") or [])
            for option in options:
                got = self.produced(inner, comp, option.get("producerSubtask") or "", depth + 1)
                if got is not None and option.get("outputParameterKey") in got[0]:
                    params[key] = got[0][option["outputParameterKey"]]
                    break
        for key, sel in (selected.get("artifacts") or {}).items():
            for option in sel.get("artifactSelectors") or []:
                got = self.produced(inner, comp, option.get("producerSubtask") or "", depth + 1)
                if got is not None and option.get("outputArtifactKey") in got[1]:
                    arts[key] = got[1][option["outputArtifactKey"]]
                    break
        return params, arts


def _has_group_folders(spec: Mapping[str, Any]) -> bool:
    """Whether ``kfp.local`` runs each DAG task in a group folder of its own: when the root DAG
    has control flow (a loop, a condition), as kfp.local decides."""
    tasks = (((spec.get("root") or {}).get("dag") or {}).get("tasks") or {}).values()
    return any((t.get("triggerPolicy") or {}).get("condition") or "parameterIterator" in t
               or "artifactIterator" in t for t in tasks)


def _in_group(spec: Mapping[str, Any], key: str, nested: bool) -> SpecTask | None:
    """The task of task folder ``key`` (``<group folders>/<component>``), found in the DAG its
    group folders name. kfp numbers the components of tasks that share one (``comp-square``,
    ``comp-square-2``) in an order that can change from one Python process to the next, so the
    pipeline given to the import may number them otherwise than the run did: within its DAG,
    a task is told apart by its component's name without the number."""
    *parts, folder = key.split("/")
    if not nested:
        return None  # every task in the run folder: by component name alone

    def in_dag(task: SpecTask) -> bool:
        names = [(d.get("taskInfo") or {}).get("name") or "" for d in task.dags]
        return len(names) == len(parts) and all(
            p == n or re.fullmatch(re.escape(n) + r"-iteration-\d+", p)
            for p, n in zip(parts, names, strict=True))

    candidates = [t for t in all_tasks(spec) if in_dag(t)]
    exact = [t for t in candidates if t.component == f"comp-{folder}"]
    if exact:
        return exact[0]
    base = _COMPONENT_NUMBER.sub("", folder)
    same = [t for t in candidates if _COMPONENT_NUMBER.sub("", t.component) == f"comp-{base}"]
    return same[0] if len(same) == 1 else None


_COMPONENT_NUMBER = re.compile(r"(-\d+)+$")


def _scoped(key: str, task: str) -> str:
    """``task`` in the group folder of task folder ``key`` (``<scope>/<task>``)."""
    return f"{key.rpartition('/')[0]}/{task}"


def _producers(task: SpecTask | None) -> set[str]:
    if task is None:
        return set()
    found = set()
    for side in ("artifacts", "parameters"):
        for src in (task.inputs.get(side) or {}).values():
            for ref_key in ("taskOutputArtifact", "taskOutputParameter"):
                if ref_key in src:
                    found.add(src[ref_key].get("producerTask"))
    return found


def _topological(nodes: list[tuple[str, set[str]]], names: Mapping[str, str]) -> list[str]:
    """Node keys, producers first; ``names`` maps a key to the task name producers refer to."""
    keys_of: dict[str, list[str]] = {}
    for key, _ in nodes:
        keys_of.setdefault(names[key], []).append(key)
    deps = {key: {k for d in ds for k in keys_of.get(d, [])} for key, ds in nodes}
    order: list[str] = []
    while deps:
        ready = sorted(k for k, ds in deps.items() if not ds - set(order))
        if not ready:  # a cycle cannot happen in a KFP DAG; keep going in name order
            ready = sorted(deps)[:1]
        for k in ready:
            order.append(k)
            del deps[k]
    return order


# KFP cluster: the v2beta1 REST API ---------------------------------------------------------------
class KfpApiError(CmfError):
    """The KFP API could not be reached or answered an error."""


_STATES = {
    "SUCCEEDED": ExecutionStatus.COMPLETED,
    "FAILED": ExecutionStatus.FAILED,
    "CANCELED": ExecutionStatus.ABORTED,
    "SKIPPED": ExecutionStatus.SKIPPED,
}


def _get(data: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """Field ``name`` (snake_case) in either JSON spelling the KFP API gateway may use."""
    if name in data:
        return data[name]
    head, *rest = name.split("_")
    camel = head + "".join(p.title() for p in rest)
    return data.get(camel, default)


class KfpRunReader:
    """Read runs from a KFP cluster's v2beta1 REST API and record them into CMF.

    ``host`` is the API endpoint (e.g. ``http://ml-pipeline-ui.kubeflow`` or
    ``https://<host>/pipeline``); ``token`` a bearer token (e.g. a service-account token; default
    ``$KFP_API_TOKEN``). ``ui_host`` is where the KFP UI is served (default
    ``$KF_PIPELINES_UI_ENDPOINT``, else ``host``, as ``kfp.Client`` links its runs): each imported
    execution gets ``cmf.run_url`` = ``<ui_host>/#/runs/details/<run id>``.
    ``download_max_bytes`` bounds the artifacts downloaded to be digested (0 disables downloads).
    ``client`` replaces the ``httpx.Client``.
    """

    def __init__(self, host: str, token: str | None = None, *, timeout: float = 30.0,
                 download_max_bytes: int = 64 << 20, verify: bool = True,
                 headers: Mapping[str, str] | None = None, client: Any = None,
                 ui_host: str | None = None) -> None:
        import httpx

        from cmf_kubeflow.conf import ui_endpoint

        if not host or "://" not in host:
            raise InvalidInputError(
                f"KFP API host {host!r} must be a URL such as http://ml-pipeline-ui.kubeflow")
        token = token if token is not None else os.environ.get("KFP_API_TOKEN")
        hdrs = {"Accept": "application/json", **dict(headers or {})}
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        self.host = host.rstrip("/")
        self.ui_host = ui_endpoint(ui_host) or ui_endpoint(self.host)
        self.download_max_bytes = download_max_bytes
        self._client = client or httpx.Client(base_url=self.host, headers=hdrs, timeout=timeout,
                                              verify=verify, follow_redirects=True)
        # signed download URLs point at the object store: never send it the KFP token
        self._downloads = httpx.Client(timeout=timeout, verify=verify, follow_redirects=True)
        self._artifacts: dict[str, dict[str, Any]] = {}
        self._digests: dict[str, str | None] = {}

    def close(self) -> None:
        self._client.close()
        self._downloads.close()

    def __enter__(self) -> KfpRunReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # raw API ---------------------------------------------------------------------------------
    def _json(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        import httpx

        try:
            r = self._client.get(path, params=dict(params or {}))
        except httpx.HTTPError as e:
            raise KfpApiError(f"KFP API {self.host} could not be reached ({type(e).__name__}: "
                              f"{e}); check the host URL and the network") from e
        if r.status_code == 404:
            raise NotFoundError(f"KFP API {self.host}{path} answered 404 (not found)")
        if r.status_code in (401, 403):
            from cmf_core.errors import AuthError

            raise AuthError(f"KFP API {self.host}{path} answered {r.status_code}; pass a valid "
                            "token (KfpRunReader(host, token=...) or $KFP_API_TOKEN)")
        if r.status_code >= 400:
            raise KfpApiError(f"KFP API {self.host}{path} answered {r.status_code}: "
                              f"{r.text[:300]}")
        try:
            return r.json()
        except ValueError:
            raise KfpApiError(
                f"KFP API {self.host}{path} did not answer JSON; is {self.host} the KFP API "
                "endpoint (e.g. http://ml-pipeline-ui.kubeflow)?") from None

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self._json(f"/apis/v2beta1/runs/{run_id}")

    def list_runs(self, *, experiment_id: str | None = None, namespace: str | None = None,
                  page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every run (newest pages as the API orders them), following ``next_page_token``."""
        params: dict[str, Any] = {"page_size": page_size}
        if experiment_id:
            params["experiment_id"] = experiment_id
        if namespace:
            params["namespace"] = namespace
        while True:
            page = self._json("/apis/v2beta1/runs", params)
            yield from page.get("runs") or []
            token = _get(page, "next_page_token")
            if not token:
                return
            params["page_token"] = token

    def get_artifact(self, artifact_id: str, *, download: bool = False) -> dict[str, Any]:
        key = f"{artifact_id}:{download}"
        if key not in self._artifacts:
            view = {"view": "DOWNLOAD"} if download else {}
            self._artifacts[key] = self._json(f"/apis/v2beta1/artifacts/{artifact_id}", view)
        return self._artifacts[key]

    def pipeline_spec(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """The run's pipeline spec (inline, else from its pipeline version; ``{}`` if neither)."""
        spec = _get(run, "pipeline_spec")
        if spec:  # a spec with a platform spec is stored as {"pipeline_spec", "platform_spec"}
            return dict(spec.get("pipeline_spec") or spec)
        ref = _get(run, "pipeline_version_reference") or {}
        pid, vid = _get(ref, "pipeline_id"), _get(ref, "pipeline_version_id")
        if not (pid and vid):
            return {}
        version = self._json(f"/apis/v2beta1/pipelines/{pid}/versions/{vid}")
        spec = _get(version, "pipeline_spec") or {}
        return dict(spec.get("pipeline_spec") or spec)

    # artifacts -----------------------------------------------------------------------------------
    def _download_digest(self, artifact_id: str, size: int | None) -> str | None:
        if artifact_id not in self._digests:
            self._digests[artifact_id] = self._download(artifact_id, size)
        return self._digests[artifact_id]

    def _download(self, artifact_id: str, size: int | None) -> str | None:
        if not self.download_max_bytes or size is None or size > self.download_max_bytes:
            return None
        url = _get(self.get_artifact(artifact_id, download=True), "download_url")
        if not url:
            return None
        h = hashlib.sha256()
        with self._downloads.stream("GET", url) as r:
            if r.status_code != 200:
                return None
            for chunk in r.iter_bytes():
                h.update(chunk)
        return "sha256:" + h.hexdigest()

    def _artifact(self, key: str, artifact_id: str, site: str
                  ) -> tuple[adapter.RuntimeArtifact, Artifact]:
        data = self.get_artifact(artifact_id)
        uri = _get(data, "uri") or f"kfp-artifact:{artifact_id}"
        size = _get(data, "artifact_size")
        size = int(size) if size not in (None, "") else None
        runtime = adapter.RuntimeArtifact(key=key, uri=uri,
                                          schema_title=_get(data, "artifact_type") or
                                          "system.Artifact")
        digest = self._download_digest(artifact_id, size)
        if digest is None:
            from cmf_core.identity import remote_digest

            digest = remote_digest(uri, f"kfp-artifact:{artifact_id}")
        art = adapter.describe(runtime, site, reachable=False, known_digest=digest)
        props = dict(art.properties)
        props["kfp.artifact_id"] = str(artifact_id)
        props["kfp.identity"] = "bytes" if digest.startswith("sha256:") else "uri+artifact-id"
        if size is not None:
            props["size_bytes"] = size
        return runtime, Artifact(id=art.id, type=art.type, name=art.name, uri=art.uri,
                                 site=art.site, properties=props,
                                 custom_properties=dict(art.custom_properties))

    def _side(self, task: Mapping[str, Any], side: str, site: str
              ) -> list[tuple[adapter.RuntimeArtifact, Artifact]]:
        out = []
        for key, lst in sorted((task.get(side) or {}).items()):
            for aid in _get(lst, "artifact_ids") or []:
                out.append(self._artifact(key, str(aid), site))
        return out

    # runs ----------------------------------------------------------------------------------------
    def import_run(self, run_id: str, *, site: str | None = None, settings: Any = None
                   ) -> ImportResult:
        """Record run ``run_id`` into CMF (see the module docs); safe to repeat."""
        from cmf_core.config import load_settings
        from cmf_core.openlineage.times import parse_time

        settings = settings or load_settings(site=site)
        site = site or settings.site
        run = self.get_run(run_id)
        run_key = _get(run, "run_id") or run_id
        spec = self.pipeline_spec(run)
        tasks = spec_tasks(spec)
        repeated = repeated_names(spec)
        pipeline_name = ((spec.get("pipelineInfo") or {}).get("name")
                         or _get(run, "display_name") or "kfp")
        result = ImportResult(run_key=run_key, pipeline=pipeline_name)
        arguments = dict((_get(run, "runtime_config") or {}).get("parameters") or {})
        details = list((_get(run, "run_details") or {}).get("task_details") or [])
        names = [_get(t, "display_name") or "" for t in details]
        runs = []
        outputs: dict[str, tuple[dict[str, Any], dict[str, adapter.RuntimeArtifact]]] = {}
        for detail, name in zip(details, names, strict=True):
            if not name or name == "root" or (tasks and name not in tasks):
                continue  # DAG drivers and sub-DAGs: only executor tasks are executions
            scope = ""
            if (name in repeated if name in tasks else names.count(name) > 1):
                pod = _get(detail, "pod_name")
                scope = f"pod:{pod}" if pod else f"task:{_get(detail, 'task_id')}"
            state = str(_get(detail, "state") or "")
            status = _STATES.get(state, ExecutionStatus.RUNNING)
            times = [_get(detail, k) for k in ("start_time", "create_time", "end_time")]
            started = next((parse_time(t, "task start_time") for t in times[:2] if t), None)
            ended = parse_time(times[2], "task end_time") if times[2] else None
            ins = self._side(detail, "inputs", site)
            outs = self._side(detail, "outputs", site)
            outputs[name] = ({}, {r.key: r for r, _ in outs})
            params: dict[str, Any] = {}
            if name in tasks:
                params, _, notes = wire_inputs(spec, tasks[name], arguments, outputs)
                result.notes.extend(notes)
            error = _get(detail, "error") or {}
            props: dict[str, Any] = {"kfp.imported_from": "kfp-api",
                                     "kfp.task_id": str(_get(detail, "task_id") or "")}
            if _get(detail, "pod_name"):
                props["kfp.pod_name"] = _get(detail, "pod_name")
            props.update(run_link(self.ui_host, run_key))
            runs.append((adapter.TaskRun(
                pipeline=pipeline_name, run_key=run_key, task=name, scope=scope, status=status,
                started_at=started, ended_at=ended or started, params=params,
                inputs=[r for r, _ in ins], outputs=[r for r, _ in outs], properties=props,
                error=(error.get("message") or state) if status in (
                    ExecutionStatus.FAILED, ExecutionStatus.ABORTED) else None,
            ), [a for _, a in ins], [a for _, a in outs]))
        _emit(runs, site, settings, result)
        self._emit_run(run, run_key, pipeline_name, arguments, runs, site, settings, result)
        return result

    def _emit_run(self, run: Mapping[str, Any], run_key: str, pipeline: str,
                  arguments: Mapping[str, Any],
                  runs: list[tuple[adapter.TaskRun, list[Artifact], list[Artifact]]],
                  site: str, settings: Any, result: ImportResult) -> None:
        """The pipeline run's own execution: the run's state (a run whose exit handler
        succeeded after a failed task is ``failed``), times and arguments."""
        from cmf_core.openlineage.emit import get_emitter
        from cmf_core.openlineage.times import parse_time

        state = str(_get(run, "state") or "")
        status = _STATES.get(state, ExecutionStatus.RUNNING)
        start = _get(run, "created_at") or _get(run, "scheduled_at")
        end = _get(run, "finished_at")
        started = parse_time(start, "run created_at") if start else None
        ended = parse_time(end, "run finished_at") if end and status.is_terminal else None
        error = None
        if status in (ExecutionStatus.FAILED, ExecutionStatus.ABORTED):
            failed = [r.task for r, _, _ in runs if r.status is ExecutionStatus.FAILED]
            message = (_get(run, "error") or {}).get("message")
            error = message or (f"{state}: {', '.join(failed)} failed" if failed else state)
        props = {"kfp.imported_from": "kfp-api", "kfp.state": state,
                 **run_link(self.ui_host, run_key)}
        if _get(run, "display_name"):
            props["kfp.display_name"] = _get(run, "display_name")
        _send(adapter.pipeline_run_events(
            pipeline, run_key, site, status=status, started_at=started,
            ended_at=ended or started, params=arguments, properties=props, error=error),
            get_emitter(settings), result)
        result.run_execution = adapter.run_uuid(run_key)
