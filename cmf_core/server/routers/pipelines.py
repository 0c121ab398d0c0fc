"""CMF REST API: pipelines and their stages."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from cmf_core.errors import NotFoundError
from cmf_core.server.auth import require_read
from cmf_core.server.deps import DEFAULT_LIMIT, Limit, Offset, StoreDep, page
from cmf_core.server.shapes import pipeline_json, stage_json
from cmf_core.store import ExecutionFilter

router = APIRouter(prefix="/api/v1/pipelines", tags=["CMF: pipelines"],
                   dependencies=[Depends(require_read)])


@router.get("")
def list_pipelines(store: StoreDep, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
                   ) -> dict[str, Any]:
    """Pipelines by name, one page at a time."""
    pipelines = store.list_pipelines()
    return page([pipeline_json(p) for p in pipelines[offset:offset + limit]], limit, offset,
                len(pipelines))


@router.get("/{name}")
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


@router.get("/{name}/stages")
def list_stages(name: str, store: StoreDep, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
                ) -> dict[str, Any]:
    """The stages of a pipeline, in creation order."""
    if store.get_pipeline(name) is None:
        raise NotFoundError(f"no pipeline named {name!r}; GET /api/v1/pipelines lists them")
    stages = store.list_stages(name)
    return page([stage_json(s) for s in stages[offset:offset + limit]], limit, offset,
                len(stages))
