"""Reading a compiled KFP pipeline (IR ``PipelineSpec`` as a camelCase dict).

Shared by :mod:`cmf_kubeflow.tracking` (which executor runs which task, which tasks run inside a
loop) and :mod:`cmf_kubeflow.importer` (how each task's inputs are wired).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmf_core.errors import InvalidInputError

ITERATORS = ("parameterIterator", "artifactIterator")


def load_documents(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pipeline spec and the platform spec (``{}`` if none) of a compiled IR YAML file."""
    import yaml

    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    except FileNotFoundError:
        raise InvalidInputError(f"pipeline file {path} does not exist") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise InvalidInputError(f"pipeline file {path} is not valid YAML: "
                                f"{getattr(e, 'problem', None) or e}{where}") from None
    except (UnicodeDecodeError, IsADirectoryError) as e:
        raise InvalidInputError(f"pipeline file {path} is not a YAML text file: {e}") from None
    if not docs:
        raise InvalidInputError(f"pipeline file {path} is empty")
    return docs[0], (docs[1] if len(docs) > 1 else {})


def load_spec(pipeline: Any) -> dict[str, Any]:
    """The IR spec of a pipeline function, YAML path, ``PipelineSpec`` or dict (``{}`` for None)."""
    if pipeline is None:
        return {}
    if isinstance(pipeline, Mapping):
        return dict(pipeline)
    if isinstance(pipeline, (str, os.PathLike)):
        return load_documents(Path(pipeline))[0]
    from google.protobuf import json_format
    from google.protobuf.message import Message

    if isinstance(pipeline, Message):
        return json_format.MessageToDict(pipeline)
    graph = getattr(getattr(getattr(pipeline, "component_spec", None), "implementation", None),
                    "graph", None)
    if graph is not None:
        return json_format.MessageToDict(graph)
    raise InvalidInputError(
        f"cannot read a pipeline spec from a {type(pipeline).__name__}; pass a @dsl.pipeline "
        "function, a compiled pipeline YAML path, a PipelineSpec or its dict"
    )


@dataclass(frozen=True, slots=True)
class SpecTask:
    """A task that runs an executor, with what its inputs are wired to."""

    name: str
    """``taskInfo.name``: the task name KFP shows and the stage name CMF records."""
    component: str
    component_spec: Mapping[str, Any]
    inputs: Mapping[str, Any]
    in_loop: bool
    """Inside a ``ParallelFor`` (its DAG, or one above it, is iterated)."""
    dags: tuple[Mapping[str, Any], ...] = ()
    """The DAG tasks (nested pipelines, loops, conditions) it runs in, outermost first: their
    inputs are what its ``componentInputParameter`` refers to, a loop's ``parameterIterator``
    names its item."""
    retries: int = 0
    """``set_retry``'s ``num_retries`` (``retryPolicy.maxRetryCount``)."""

    @property
    def parents(self) -> tuple[Mapping[str, Any], ...]:
        """The inputs of :attr:`dags`, outermost first."""
        return tuple(d.get("inputs") or {} for d in self.dags)

    @property
    def executor(self) -> str | None:
        return self.component_spec.get("executorLabel")


def _walk(spec: Mapping[str, Any], comp: Mapping[str, Any], in_loop: bool,
          dags: tuple[Mapping[str, Any], ...] = ()
          ) -> Iterator[tuple[str, Mapping[str, Any], bool, tuple[Mapping[str, Any], ...]]]:
    components = spec.get("components") or {}
    for key, task in ((comp.get("dag") or {}).get("tasks") or {}).items():
        looped = in_loop or any(k in task for k in ITERATORS)
        ref = (task.get("componentRef") or {}).get("name") or ""
        child = components.get(ref) or {}
        yield key, task, looped, dags
        if "dag" in child:
            yield from _walk(spec, child, looped, (*dags, task))


def all_tasks(spec: Mapping[str, Any]) -> list[SpecTask]:
    """Every task that runs an executor, in every DAG (names repeat across DAGs: a nested
    pipeline's ``train`` and a loop's ``train`` are two tasks)."""
    components = spec.get("components") or {}
    out: list[SpecTask] = []
    for key, task, looped, dags in _walk(spec, spec.get("root") or {}, False):
        ref = (task.get("componentRef") or {}).get("name") or ""
        cspec = components.get(ref) or {}
        if "executorLabel" in cspec:
            name = (task.get("taskInfo") or {}).get("name") or key
            retries = int((task.get("retryPolicy") or {}).get("maxRetryCount") or 0)
            out.append(SpecTask(name, ref, cspec, task.get("inputs") or {}, looped, dags,
                                retries))
    return out


def spec_tasks(spec: Mapping[str, Any]) -> dict[str, SpecTask]:
    """Task name -> :class:`SpecTask` for every task that runs an executor, in every DAG (of
    tasks with the same name in several DAGs, the last one)."""
    return {task.name: task for task in all_tasks(spec)}


def repeated_names(spec: Mapping[str, Any]) -> set[str]:
    """Names of tasks that run more than once per pipeline run under one name: inside a
    ``ParallelFor``, with retries (``set_retry``: one execution per attempt), or a name several
    DAGs use (a nested pipeline called twice, or whose task is named like one outside it). On a
    cluster their executions are told apart by pod name."""
    tasks = all_tasks(spec)
    uses = Counter(t.name for t in tasks)
    return {t.name for t in tasks if t.in_loop or t.retries or uses[t.name] > 1}


def executor_tasks(spec: Mapping[str, Any]) -> dict[str, list[SpecTask]]:
    """Executor label -> the tasks that run it."""
    out: dict[str, list[SpecTask]] = {}
    for task in all_tasks(spec):
        if task.executor:
            out.setdefault(task.executor, []).append(task)
    return out
