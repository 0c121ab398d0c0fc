"""CMF REST API: executions, with their inputs, outputs, energy and raw OpenLineage events.

Each execution carries ``lost`` (:data:`~cmf_core.server.shapes.LOST_DOC`), judged on the
server's host as ``cmf executions`` judges it, for the running ones of the rows returned only.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from cmf_core.errors import NotFoundError
from cmf_core.identity import check_uuid
from cmf_core.model import EventType, Execution, ExecutionStatus, run_url
from cmf_core.openlineage.times import parse_query_time
from cmf_core.server import schemas
from cmf_core.server.auth import require_read
from cmf_core.server.deps import DEFAULT_LIMIT, Limit, Offset, SettingsDep, StoreDep, page
from cmf_core.server.schemas import NOT_FOUND, ok
from cmf_core.server.shapes import LOST_DOC, artifact_json, energy_json, executions_json
from cmf_core.store import ExecutionFilter, Store

router = APIRouter(prefix="/api/v1/executions", tags=["CMF: executions"], responses=schemas.ERRORS,
                   dependencies=[Depends(require_read)])


def load_execution(store: Store, execution_id: str) -> Execution:
    """The execution ``execution_id`` (400 if not a UUID, 404 if unknown)."""
    execution = store.get_execution(check_uuid(execution_id, "execution id"))
    if execution is None:
        raise NotFoundError(f"no execution with id {execution_id!r} in this store")
    return execution


@router.get("", response_model=None, responses=ok(schemas.ExecutionPage), description=(
    "Executions by start time, filtered, one page at a time (with the total count).\n\n"
    + LOST_DOC))
def list_executions(
    store: StoreDep,
    settings: SettingsDep,
    pipeline: str | None = None,
    stage: str | None = None,
    site: str | None = None,
    status: Annotated[str | None, Query(description=", ".join(s.value for s in
                                                               ExecutionStatus))] = None,
    since: Annotated[str | None, Query(description="Started at or after (RFC 3339).")] = None,
    until: Annotated[str | None, Query(description="Started before (RFC 3339).")] = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Executions by start time, filtered, one page at a time (with the total count)."""
    where = ExecutionFilter(
        pipeline=pipeline, stage=stage, site=site,
        status=ExecutionStatus.parse(status).value if status else None,
        since=parse_query_time(since or None, "since"),
        until=parse_query_time(until or None, "until"))
    items = store.list_executions(where, limit=limit, offset=offset)
    return page(executions_json(items, settings), limit, offset,
                store.count_executions(where))


@router.get("/{execution_id}", response_model=None,
            responses={**ok(schemas.ExecutionDetail), **NOT_FOUND}, description=(
    "An execution with its input and output artifacts, metrics count and energy record, and "
    "`run_url`: the page of the same run in the orchestrator's UI (Airflow, Prefect, Kubeflow "
    "Pipelines) when the adapter that recorded it knew that UI's address "
    "(`properties[\"cmf.run_url\"]`, an http/https URL only; else null).\n\n" + LOST_DOC))
def get_execution(execution_id: str, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    """An execution with its input and output artifacts, metrics count and energy record."""
    execution = load_execution(store, execution_id)
    events = store.events(execution_ids=[execution.id])
    ids = sorted({e.artifact_id for e in events})
    arts = {a.id: a for a in store.find_artifacts(ids=ids)} if ids else {}
    energy = store.energy([execution.id])
    return {
        **executions_json([execution], settings)[0],
        "inputs": [artifact_json(arts[e.artifact_id]) for e in events
                   if e.type is EventType.INPUT and e.artifact_id in arts],
        "outputs": [artifact_json(arts[e.artifact_id]) for e in events
                    if e.type is EventType.OUTPUT and e.artifact_id in arts],
        "metrics": len(store.metrics([execution.id])),
        "energy": energy_json(energy[0]) if energy else None,
        "run_url": run_url(execution.properties),
    }


@router.get("/{execution_id}/events", response_model=None,
            responses={**ok(schemas.RunEventPage), **NOT_FOUND})
def execution_events(execution_id: str, store: StoreDep, limit: Limit = DEFAULT_LIMIT,
                     offset: Offset = 0) -> dict[str, Any]:
    """The raw OpenLineage events of this run, in arrival order."""
    execution = load_execution(store, execution_id)
    events = store.lineage_events(run_id=execution.id)
    return page([json.loads(e.body) for e in events[offset:offset + limit]], limit, offset,
                len(events))
