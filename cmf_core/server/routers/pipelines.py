"""CMF REST API: pipelines and their stages."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.convertors import PathConvertor, register_url_convertor

from cmf_core.errors import NotFoundError
from cmf_core.server.auth import require_read
from cmf_core.server.deps import DEFAULT_LIMIT, Limit, Offset, StoreDep, page
from cmf_core.server.shapes import pipeline_json, stage_json
from cmf_core.store import ExecutionFilter


class _NameConvertor(PathConvertor):
    """A pipeline name in a path: it may hold "/" (an OpenLineage job "team/dag.task" is
    pipeline "team/dag"; clients send it as %2F, which the server decodes before routing), but
    is not empty and does not end in "/" (``/pipelines/`` and ``/pipelines/etl/`` stay
    unrouted, as before)."""

    regex = ".*[^/]"


register_url_convertor("cmf_pipeline", _NameConvertor())

router = APIRouter(prefix="/api/v1/pipelines", tags=["CMF: pipelines"],
                   dependencies=[Depends(require_read)])


@router.get("")
def list_pipelines(store: StoreDep, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
                   ) -> dict[str, Any]:
    """Pipelines by name, one page at a time."""
    pipelines = store.list_pipelines()
    return page([pipeline_json(p) for p in pipelines[offset:offset + limit]], limit, offset,
                len(pipelines))


# first: "<name>/stages" would also match "/{name:cmf_pipeline}"
@router.get("/{name:cmf_pipeline}/stages")
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


@router.get("/{name:cmf_pipeline}")
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
