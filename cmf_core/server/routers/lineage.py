"""OpenLineage endpoints, compatible with Marquez's API.

* ``POST /api/v1/lineage``: one event (a JSON object) -> 201 once it is durable, 400 naming the
  bad field. A JSON array of events is a batch (as ``POST /api/v1/lineage/batch``).
* ``POST /api/v1/lineage/batch``: a JSON array; each event succeeds or fails on its own. The
  status is 201 when every event was recorded, 207 when some were, 400 when none was; the body
  lists each event's outcome in order.
* ``GET /api/v1/lineage?nodeId=...&depth=N``: Marquez's lineage graph.
* ``GET /api/v1/events/lineage``: raw events as received, Marquez's ``{"events", "totalCount"}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from cmf_core.errors import CmfError, InvalidEventError, InvalidInputError
from cmf_core.openlineage.ingest import IngestResult
from cmf_core.server import schemas
from cmf_core.server.auth import require_read, require_write
from cmf_core.server.body import DEFAULT_MAX_BODY_BYTES, read_json
from cmf_core.server.deps import MAX_LIMIT, Offset, StoreDep
from cmf_core.server.errors import status_for
from cmf_core.server.marquez import DEFAULT_DEPTH, MAX_DEPTH, LineageGraph, events_page
from cmf_core.server.schemas import NOT_FOUND, ok
from cmf_core.server.writer import IngestWriter, Outcome

router = APIRouter(tags=["OpenLineage (Marquez-compatible)"], responses=schemas.ERRORS)

_EVENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "description": "An OpenLineage RunEvent, DatasetEvent or JobEvent (spec 2-0-2), "
                           "or a JSON array of them.",
            "oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}],
        }}},
    }
}
_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "array", "items": {"type": "object"},
            "description": "OpenLineage events (spec 2-0-2), recorded in order."}}},
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": schemas.Error | schemas.BatchResult,
          "description": "Invalid request or event: the message names the bad field. A batch "
                         "none of whose events was recorded answers the batch body, each "
                         "event's error in its `results`."},
    401: {"model": schemas.Error, "description": "Missing or wrong bearer token."},
    413: {"model": schemas.Error, "description": "Body larger than the server accepts."},
    415: {"model": schemas.Error,
          "description": "Body is not JSON (Content-Type / Content-Encoding)."},
    503: {"model": schemas.Error, "description": "Store unavailable or server busy; retry."},
}


def result_json(r: IngestResult) -> dict[str, Any]:
    out: dict[str, Any] = {"eventId": r.event_id, "kind": r.kind.value}
    if r.execution_id is not None:
        out["runId"] = r.execution_id
        out["executionStatus"] = r.status.value if r.status is not None else None
    out["artifactIds"] = list(r.artifact_ids)
    return out


def _outcome_json(index: int, o: Outcome) -> dict[str, Any]:
    if isinstance(o, CmfError):
        return {"index": index, "status": status_for(o), "error": type(o).__name__,
                "message": str(o)}
    return {"index": index, "status": 201, **result_json(o)}


INLINE_EVENTS = 16
"""Requests with more events than this are validated in a worker thread, not the event loop."""


async def _record(writer: IngestWriter, events: list[Any]) -> list[Outcome]:
    """Validate and queue ``events``; their outcomes once the batch holding them is durable."""
    if len(events) > INLINE_EVENTS:
        future = await asyncio.to_thread(writer.submit, events)
    else:
        future = writer.submit(events)
    return await asyncio.wrap_future(future)


async def _batch(writer: IngestWriter, events: list[Any]) -> tuple[int, dict[str, Any]]:
    if not events:
        raise InvalidInputError("the batch is an empty JSON array; send at least one event")
    objects = [e for e in events if isinstance(e, dict)]
    recorded = iter(await _record(writer, objects) if objects else [])
    outcomes: list[Outcome] = [
        next(recorded) if isinstance(e, dict) else InvalidEventError(
            f"invalid OpenLineage event: [{i}] must be a JSON object, not a JSON "
            f"{_json_type(e)}")
        for i, e in enumerate(events)]
    results = [_outcome_json(i, o) for i, o in enumerate(outcomes)]
    accepted = sum(1 for r in results if r["status"] == 201)
    status = 201 if accepted == len(results) else (207 if accepted else 400)
    return status, {"accepted": accepted, "rejected": len(results) - accepted,
                    "results": results}


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number",
            type(None): "null", dict: "object"}.get(type(value), type(value).__name__)


async def post_events(state: Any, headers: Mapping[str, str], chunks: AsyncIterator[bytes],
                      *, batch_route: bool = False) -> tuple[int, dict[str, Any]]:
    """Read, validate and record the events of one POST: ``(status, JSON body)``.

    ``state`` is the ``app.state`` (its ``writer`` and ``max_body_bytes``), ``headers`` the
    request's (lower-case names), ``chunks`` its body. Answers once every accepted event is
    durable. A problem with the request itself, or the one event of a single-event POST, is
    raised as its :class:`~cmf_core.errors.CmfError`; the caller turns it into the error
    response. The token is the caller's to check.
    """
    body = await read_json(headers, chunks,
                           getattr(state, "max_body_bytes", DEFAULT_MAX_BODY_BYTES))
    if isinstance(body, list):
        return await _batch(state.writer, body)
    if batch_route:
        raise InvalidInputError(
            f"the batch body must be a JSON array of events, not a JSON {_json_type(body)}; "
            "POST a single event to /api/v1/lineage")
    if not isinstance(body, dict):
        raise InvalidEventError(
            f"the body must be an OpenLineage event (a JSON object) or an array of events, "
            f"not a JSON {_json_type(body)}")
    (outcome,) = await _record(state.writer, [body])
    if isinstance(outcome, CmfError):
        raise outcome
    return 201, result_json(outcome)


# These routes describe the POST endpoints in OpenAPI and answer them in an app without the
# ingress (cmf_core.server.ingress), which create_app puts in front of them for speed.
@router.post("/api/v1/lineage", status_code=201, dependencies=[Depends(require_write)],
             openapi_extra=_EVENT_BODY, responses={
                 201: {"model": schemas.IngestResult | schemas.BatchResult,
                       "description": "Recorded and durable: what the event became (a JSON "
                                      "array: the batch body, every event recorded)."},
                 207: {"model": schemas.BatchResult,
                       "description": "Batch: some events recorded, some rejected."},
                 **_ERRORS})
async def post_lineage(request: Request) -> JSONResponse:
    """Record one OpenLineage event (or a JSON array of events); 201 once durable."""
    status, body = await post_events(request.app.state, request.headers, request.stream())
    return JSONResponse(body, status_code=status)


@router.post("/api/v1/lineage/batch", status_code=201, dependencies=[Depends(require_write)],
             openapi_extra=_BATCH_BODY, responses={
                 201: {"model": schemas.BatchResult,
                       "description": "Every event recorded and durable."},
                 207: {"model": schemas.BatchResult,
                       "description": "Some events recorded, some rejected."},
                 **_ERRORS})
async def post_lineage_batch(request: Request) -> JSONResponse:
    """Record a JSON array of events; each one is accepted or rejected on its own."""
    status, body = await post_events(request.app.state, request.headers, request.stream(),
                                     batch_route=True)
    return JSONResponse(body, status_code=status)


@router.get("/api/v1/lineage", dependencies=[Depends(require_read)], response_model=None,
            responses={**ok(schemas.MarquezGraph), **NOT_FOUND})
def get_lineage(
    store: StoreDep,
    nodeId: Annotated[str, Query(description="'dataset:<namespace>:<name>' or "
                                             "'job:<namespace>:<name>'")],
    depth: Annotated[int, Query(ge=0, le=MAX_DEPTH, description="Edges from the node.")]
    = DEFAULT_DEPTH,
) -> dict[str, Any]:
    """Marquez's lineage graph around a dataset or job."""
    return LineageGraph(store).graph(nodeId, depth)


@router.get("/api/v1/events/lineage", dependencies=[Depends(require_read)],
            response_model=None, responses=ok(schemas.LineageEvents))
def list_lineage_events(
    store: StoreDep,
    before: Annotated[str | None, Query(description="Only events at or before this "
                                                    "RFC 3339 time.")] = None,
    after: Annotated[str | None, Query(description="Only events at or after this "
                                                   "RFC 3339 time.")] = None,
    sortDirection: Annotated[Literal["asc", "desc"], Query()] = "desc",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Raw OpenLineage events as received, by eventTime (Marquez's response shape)."""
    return events_page(store, before=before, after=after, sort_direction=sortDirection,
                       limit=limit, offset=offset)
