"""CMF REST API: metrics of executions (scalar and stepped)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from cmf_core.identity import check_uuid
from cmf_core.server import schemas
from cmf_core.server.auth import require_read
from cmf_core.server.deps import DEFAULT_LIMIT, Limit, Offset, StoreDep, page
from cmf_core.server.routers.executions import load_execution
from cmf_core.server.schemas import NOT_FOUND, ok
from cmf_core.server.shapes import metric_json

router = APIRouter(tags=["CMF: metrics"],
                   responses=schemas.ERRORS, dependencies=[Depends(require_read)])


def _metrics_page(store: Any, ids: list[str], name: str | None, limit: int, offset: int
                  ) -> dict[str, Any]:
    found, total = store.metrics_page(ids, name, limit, offset)  # one page, not all of them
    return page([metric_json(m) for m in found], limit, offset, total)


@router.get("/api/v1/metrics", response_model=None, responses=ok(schemas.MetricPage))
def list_metrics(
    store: StoreDep,
    execution_id: Annotated[list[str], Query(description="One or more execution ids.")],
    name: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Metrics of the given executions, by execution, name and step."""
    ids = [check_uuid(i, "execution_id") for i in execution_id]
    return _metrics_page(store, ids, name, limit, offset)


@router.get("/api/v1/executions/{execution_id}/metrics", response_model=None,
            responses={**ok(schemas.MetricPage), **NOT_FOUND})
def execution_metrics(execution_id: str, store: StoreDep, name: str | None = None,
                      limit: Limit = DEFAULT_LIMIT, offset: Offset = 0) -> dict[str, Any]:
    """Metrics of one execution."""
    execution = load_execution(store, execution_id)
    return _metrics_page(store, [execution.id], name, limit, offset)
