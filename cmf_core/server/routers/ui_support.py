"""Routes the web UI reads beyond the resource routers (the CLI and scripts may use them too).

* ``GET /api/v1/graph?pipeline=NAME[&upstream=true][&limit=N]``: a pipeline's whole lineage
  graph in one request: its executions (latest ``limit``, each with its energy and ``lost``
  as in the executions routes), the artifacts they read and wrote, the events between them and
  the sites involved. ``upstream=true`` adds the executions of other pipelines (at any site)
  upstream of the pipeline's inputs, so a provenance chain that started elsewhere is one graph.
* ``GET /api/v1/recommend/tasks?category=&modality=``: the tasks of the recommender's
  knowledge base (the shipped one merged with the runs recorded in this store).
* ``GET /api/v1/recommend?task=ID&k=5&leave_out=false`` (or ``?category=&modality=``): seed
  configurations for a known task, with the similar tasks and runs they come from; the same
  body as ``cmf recommend --json``. ``leave_out=true`` hides the task's own runs, as if it were
  new. A category without a task gives the category's portfolio.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query

from cmf_core.errors import InvalidInputError, NotFoundError
from cmf_core.model import EventType
from cmf_core.server import schemas
from cmf_core.server.auth import require_read
from cmf_core.server.deps import SettingsDep, StoreDep
from cmf_core.server.schemas import NOT_FOUND, ok
from cmf_core.server.shapes import LOST_DOC, artifact_json, event_json, executions_json
from cmf_core.store import ExecutionFilter, Store

if TYPE_CHECKING:
    from cmf_core.recommend import KnowledgeBase

router = APIRouter(tags=["CMF: web UI support"],
                   responses=schemas.ERRORS, dependencies=[Depends(require_read)])

DEFAULT_GRAPH_LIMIT = 2000
MAX_GRAPH_LIMIT = 10_000
MAX_UPSTREAM_INPUTS = 200  # input artifacts whose upstream closure ``upstream=true`` follows
_CHUNK = 500  # ids per store query
T = TypeVar("T")


def _chunked(ids: Sequence[str], fetch: Callable[[list[str]], Iterable[T]]) -> list[T]:
    out: list[T] = []
    for start in range(0, len(ids), _CHUNK):
        out += fetch(list(ids[start:start + _CHUNK]))
    return out


# lineage graph --------------------------------------------------------------------------------
@router.get("/api/v1/graph", response_model=None,
            responses={**ok(schemas.Graph), **NOT_FOUND}, description=(
    "The lineage graph of a pipeline: `executions` (with `energy_kwh`/`co2e_kg`, null when not "
    "measured, and `lost`), `artifacts` (with `role` when one has it: `task_value` for a value "
    "one task handed the next in memory), `edges` (`{execution_id, artifact_id, type}`: INPUT is "
    "artifact -> execution, OUTPUT execution -> artifact), `sites`, `total_executions` and "
    "`truncated` (more executions than `limit`).\n\n" + LOST_DOC))
def pipeline_graph(
    store: StoreDep,
    settings: SettingsDep,
    pipeline: Annotated[str, Query(description="Pipeline name.")],
    upstream: Annotated[bool, Query(
        description="Also the executions of other pipelines upstream of its inputs.")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_GRAPH_LIMIT,
                                description="At most this many (latest) executions of the "
                                            "pipeline.")] = DEFAULT_GRAPH_LIMIT,
) -> dict[str, Any]:
    """The lineage graph of a pipeline (the route's ``description`` says what it holds)."""
    if store.get_pipeline(pipeline) is None:
        raise NotFoundError(f"no pipeline named {pipeline!r}; GET /api/v1/pipelines lists them")
    where = ExecutionFilter(pipeline=pipeline)
    total = store.count_executions(where)
    execs = store.list_executions(where, limit=limit, offset=max(0, total - limit))
    ids = [e.id for e in execs]
    events = _chunked(ids, lambda c: store.events(execution_ids=c))
    extra_edges: list[Any] = []
    if upstream:
        extra, extra_edges = _upstream_of(store, events, set(ids))
        execs = [*extra, *execs]
        ids = [e.id for e in execs]
    edges = [*events, *extra_edges]
    art_ids = sorted({e.artifact_id for e in edges})
    arts = _chunked(art_ids, lambda c: store.find_artifacts(ids=c))
    energy = {r.execution_id: r for r in _chunked(ids, store.energy)}
    measured = {k for k, r in energy.items() if r.measured}  # else null: not measured, not 0
    return {
        "pipeline": pipeline,
        "upstream": upstream,
        "total_executions": total,
        "truncated": total > limit,
        "sites": sorted({e.site for e in execs} | {a.site for a in arts}),
        "executions": [
            {**e_json,
             "energy_kwh": energy[e.id].energy_kwh if e.id in measured else None,
             "co2e_kg": energy[e.id].co2e_kg if e.id in measured else None}
            for e, e_json in zip(execs, executions_json(execs, settings), strict=True)],
        "artifacts": [artifact_json(a) for a in arts],
        "edges": [event_json(e) for e in edges],
    }


def _upstream_of(store: Store, events: list[Any], own: set[str]) -> tuple[list[Any], list[Any]]:
    """Executions outside ``own`` upstream of the inputs of ``own``, and their events within
    those closures (so only the chain that leads into the pipeline is added)."""
    produced_here = {e.artifact_id for e in events if e.type is EventType.OUTPUT}
    inputs = sorted({e.artifact_id for e in events
                     if e.type is EventType.INPUT and e.artifact_id not in produced_here})
    exec_ids: set[str] = set()
    art_ids: set[str] = set()
    for aid in inputs[:MAX_UPSTREAM_INPUTS]:
        closure = store.upstream(aid)
        exec_ids |= closure.executions
        art_ids |= closure.artifacts | {aid}
    exec_ids -= own
    if not exec_ids:
        return [], []
    ordered = sorted(exec_ids)
    execs = _chunked(ordered, lambda c: store.list_executions(ExecutionFilter(ids=c)))
    execs.sort(key=lambda e: (e.started_at, e.id))
    edges = [e for e in _chunked(ordered, lambda c: store.events(execution_ids=c))
             if e.artifact_id in art_ids]
    return execs, edges


# recommendations ------------------------------------------------------------------------------
_kb_lock = threading.Lock()
_kb_cache: dict[str, tuple[int, tuple[KnowledgeBase, frozenset[str]]]] = {}


def _knowledge(store: Store) -> tuple[KnowledgeBase, frozenset[str]]:
    """The shipped knowledge base merged with this store's runs, and the ids of the tasks
    this store has runs of (re-read when the store changes)."""
    from cmf_core.recommend import from_store, shipped

    seq = store.max_seq()
    key = f"{store.kind}:{store.url}"
    with _kb_lock:
        cached = _kb_cache.get(key)
        if cached is not None and cached[0] == seq:
            return cached[1]
    local = from_store(store)
    found = (local.merge(shipped()), frozenset(local.tasks))
    with _kb_lock:
        _kb_cache[key] = (seq, found)
    return found


@router.get("/api/v1/recommend/tasks", response_model=None,
            responses=ok(schemas.RecommendTasks))
def recommend_tasks(
    store: StoreDep,
    category: str | None = None,
    modality: str | None = None,
) -> dict[str, Any]:
    """Tasks of the knowledge base, this store's first, then by name: ``id``, ``name``,
    ``category``, ``modality``, ``group``, ``metric``, ``runs``, ``best_score`` and ``source``
    (``store``, ``shipped`` or ``both``)."""
    from cmf_core.recommend import shipped
    from cmf_core.recommend.task import parse_category, parse_modality

    cat = parse_category(category).value if category else None
    mod = parse_modality(modality).value if modality else None
    kb, local = _knowledge(store)
    remote = shipped().tasks
    items = []
    for t in kb.tasks.values():
        if (cat and t.category.value != cat) or (mod and t.modality.value != mod):
            continue
        runs = kb.runs.get(t.id, [])
        source = ("both" if t.id in local and t.id in remote
                  else "store" if t.id in local else "shipped")
        items.append({"id": t.id, "name": t.name, "category": t.category.value,
                      "modality": t.modality.value, "group": t.group, "metric": t.metric,
                      "runs": len(runs),
                      "best_score": max((r.score for r in runs), default=None),
                      "source": source})
    items.sort(key=lambda i: (i["source"] == "shipped", i["name"], i["id"]))
    return {"items": items, "total": len(items), "knowledge_tasks": len(kb),
            "categories": kb.categories()}


@router.get("/api/v1/recommend", response_model=None,
            responses={**ok(schemas.Recommendation), **NOT_FOUND})
def recommend_for(
    store: StoreDep,
    task: Annotated[str | None, Query(description="Task id (GET /api/v1/recommend/tasks).")]
    = None,
    category: Annotated[str | None, Query(
        description="Without a task: a category's portfolio (classification, ...).")] = None,
    modality: Annotated[str | None, Query(description="tabular, time_series, image or text.")]
    = None,
    k: Annotated[int, Query(ge=1, le=50, description="How many seeds.")] = 5,
    leave_out: Annotated[bool, Query(
        description="Leave the task's own runs out, as for a new task.")] = False,
    threshold: Annotated[float | None, Query(
        ge=0, le=1, description="Similarity threshold (default: calibrated).")] = None,
) -> dict[str, Any]:
    """Seeds for a task with the similar tasks and past runs behind each (the body of
    ``cmf recommend --json``)."""
    from cmf_core.recommend import TaskDescription, recommend

    kb, _ = _knowledge(store)
    if task is not None:
        desc = kb.tasks.get(task)
        if desc is None:
            raise NotFoundError(f"no task {task!r} in the knowledge base; "
                                "GET /api/v1/recommend/tasks lists them")
        if leave_out:
            kb = kb.without(task_ids=[task])
    elif category is not None:
        desc = TaskDescription(name=f"any {category} task", category=category,
                               modality=modality or "tabular")
    else:
        raise InvalidInputError("give task=<id> (GET /api/v1/recommend/tasks lists them) or "
                                "category=<classification|regression|...>")
    rec = recommend(desc, k=k, knowledge=kb, threshold=threshold)
    return {**rec.to_dict(), "leave_out": leave_out}
