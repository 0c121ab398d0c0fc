"""CMF REST API: pipelines and their stages."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.convertors import PathConvertor, register_url_convertor

from cmf_core.errors import NotFoundError
from cmf_core.server import schemas
from cmf_core.server.auth import require_read
from cmf_core.server.deps import DEFAULT_LIMIT, Limit, Offset, SettingsDep, StoreDep, page
from cmf_core.server.schemas import NOT_FOUND, ok
from cmf_core.server.shapes import executions_json, pipeline_json, stage_json
from cmf_core.store import ExecutionFilter


class _NameConvertor(PathConvertor):
    """A pipeline name in a path: it may hold "/" (an OpenLineage job "team/dag.task" is
    pipeline "team/dag"; clients send it as %2F, which the server decodes before routing), but
    is not empty and does not end in "/" (``/pipelines/`` and ``/pipelines/etl/`` stay
    unrouted, as before)."""

    regex = ".*[^/]"


register_url_convertor("cmf_pipeline", _NameConvertor())

router = APIRouter(prefix="/api/v1/pipelines", tags=["CMF: pipelines"], responses=schemas.ERRORS,
                   dependencies=[Depends(require_read)])


@router.get("", response_model=None, responses=ok(schemas.PipelinePage))
def list_pipelines(store: StoreDep, settings: SettingsDep, limit: Limit = DEFAULT_LIMIT,
                   offset: Offset = 0,
                   summary: Annotated[bool, Query(description=(
                       "Add each pipeline's number of `executions` and its `last_execution` "
                       "(the latest started, with `lost`), as the web UI's list shows them: "
                       "one request instead of two per pipeline."))] = False,
                   ) -> dict[str, Any]:
    """Pipelines by name, one page at a time."""
    every = store.list_pipelines()
    pipelines = every[offset:offset + limit]
    items = [pipeline_json(p) for p in pipelines]
    if summary:
        for item, p in zip(items, pipelines, strict=True):
            where = ExecutionFilter(pipeline=p.name)
            n = store.count_executions(where)
            last = store.last_execution(where) if n else None
            item["executions"] = n
            item["last_execution"] = executions_json([last], settings)[0] if last else None
    return page(items, limit, offset, len(every))


# first: "<name>/stages" would also match "/{name:cmf_pipeline}"
@router.get("/{name:cmf_pipeline}/stages", response_model=None,
            responses={**ok(schemas.StagePage), **NOT_FOUND})
def list_stages(name: str, store: StoreDep, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
                ) -> dict[str, Any]:
    """The stages of a pipeline, in creation order."""
    if store.get_pipeline(name) is None:
        if store.get_pipeline(f"{name}/stages") is not None:  # a pipeline named ".../stages"
            return get_pipeline(f"{name}/stages", store)
        raise NotFoundError(f"no pipeline named {name!r}; GET /api/v1/pipelines lists them")
    stages = store.list_stages(name)
    return page([stage_json(s) for s in stages[offset:offset + limit]], limit, offset,
                len(stages))


@router.get("/{name:cmf_pipeline}", response_model=None,
            responses={**ok(schemas.PipelineDetail), **NOT_FOUND})
def get_pipeline(name: str, store: StoreDep) -> dict[str, Any]:
    """A pipeline with its stages, the stage graph and its number of executions."""
    pipeline = store.get_pipeline(name)
    if pipeline is None:
        raise NotFoundError(f"no pipeline named {name!r}; GET /api/v1/pipelines lists them")
    return {
        **pipeline_json(pipeline),
        "stages": [stage_json(s) for s in store.list_stages(name)],
        "stage_edges": [list(e) for e in store.stage_edges(name)],
        "executions": store.count_executions(ExecutionFilter(pipeline=name)),
    }
