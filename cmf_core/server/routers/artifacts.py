"""CMF REST API: artifacts, where they live, and their lineage (upstream / downstream)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from cmf_core.errors import NotFoundError
from cmf_core.lineage import Query as LineageQuery
from cmf_core.model import Artifact, EventType
from cmf_core.server import schemas
from cmf_core.server.auth import require_read
from cmf_core.server.deps import DEFAULT_LIMIT, Limit, Offset, StoreDep, page
from cmf_core.server.schemas import NOT_FOUND, ok
from cmf_core.server.shapes import artifact_json, event_json, execution_json, location_json
from cmf_core.store import ExecutionFilter, Store

router = APIRouter(prefix="/api/v1/artifacts", tags=["CMF: artifacts and lineage"],
                   responses=schemas.ERRORS,
                   dependencies=[Depends(require_read)])


def load_artifact(store: Store, artifact_id: str) -> Artifact:
    artifact = store.get_artifact(artifact_id)
    if artifact is None:
        raise NotFoundError(f"no artifact with id {artifact_id!r} in this store; ids are "
                            "digests such as 'sha256:...' (GET /api/v1/artifacts lists them)")
    return artifact


@router.get("", response_model=None, responses=ok(schemas.ArtifactPage))
def list_artifacts(
    store: StoreDep,
    type: str | None = None,
    name: str | None = None,
    pipeline: Annotated[str | None, Query(description="Read or written by this pipeline.")]
    = None,
    site: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Artifacts by creation time, filtered, one page at a time (``total`` is not counted)."""
    found = store.find_artifacts(type=type, name=name, pipeline=pipeline, site=site,
                                 limit=limit + 1, offset=offset)
    return page([artifact_json(a) for a in found[:limit]], limit, offset, None,
                more=len(found) > limit)


@router.get("/{artifact_id}", response_model=None,
            responses={**ok(schemas.ArtifactDetail), **NOT_FOUND})
def get_artifact(artifact_id: str, store: StoreDep) -> dict[str, Any]:
    """An artifact, every place its bytes live, and the executions that wrote and read it."""
    artifact = load_artifact(store, artifact_id)
    events = store.events(artifact_ids=[artifact.id])
    ids = sorted({e.execution_id for e in events})
    execs = {e.id: e for e in store.list_executions(ExecutionFilter(ids=ids))} if ids else {}
    return {
        **artifact_json(artifact),
        "locations": [location_json(loc) for loc in store.artifact_locations(artifact.id)],
        "producers": [execution_json(execs[e.execution_id]) for e in events
                      if e.type is EventType.OUTPUT and e.execution_id in execs],
        "consumers": [execution_json(execs[e.execution_id]) for e in events
                      if e.type is EventType.INPUT and e.execution_id in execs],
    }


@router.get("/{artifact_id}/lineage", response_model=None,
            responses={**ok(schemas.ArtifactLineage), **NOT_FOUND})
def artifact_lineage(
    artifact_id: str,
    store: StoreDep,
    direction: Literal["upstream", "downstream"] = "upstream",
    depth: Annotated[int | None, Query(ge=1, le=1000, description="Hops (all if absent).")]
    = None,
) -> dict[str, Any]:
    """Everything upstream (what produced it) or downstream (what it fed) of an artifact."""
    artifact = load_artifact(store, artifact_id)
    closure = (store.upstream if direction == "upstream" else store.downstream)(artifact.id,
                                                                                 depth)
    exec_ids = sorted(closure.executions)
    art_ids = sorted(closure.artifacts | {artifact.id})
    execs = store.list_executions(ExecutionFilter(ids=exec_ids)) if exec_ids else []
    arts = store.find_artifacts(ids=art_ids)
    events = [e for e in store.events(execution_ids=exec_ids) if e.artifact_id in
              set(art_ids)] if exec_ids else []
    return {
        "artifact": artifact_json(artifact), "direction": direction, "depth": depth,
        "artifacts": [artifact_json(a) for a in arts if a.id != artifact.id],
        "executions": [execution_json(e) for e in execs],
        "edges": [event_json(e) for e in events],
    }


@router.get("/{artifact_id}/provenance", response_model=None,
            responses={**ok(schemas.Provenance), **NOT_FOUND})
def artifact_provenance(artifact_id: str, store: StoreDep) -> dict[str, Any]:
    """All upstream executions (with parameters and scalar metrics) and input artifacts."""
    load_artifact(store, artifact_id)
    return LineageQuery(store).provenance(artifact_id).to_dict()
