"""CMF REST API: carbon roll-ups (the same data as ``cmf carbon --json``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from cmf_core.carbon.rollup import rollups
from cmf_core.openlineage.times import parse_query_time
from cmf_core.server import schemas
from cmf_core.server.auth import require_read
from cmf_core.server.deps import StoreDep
from cmf_core.server.schemas import ok

router = APIRouter(tags=["CMF: carbon"],
                   responses=schemas.ERRORS, dependencies=[Depends(require_read)])


GroupBy = Literal["stage", "pipeline", "site", "phase", "day"]


@router.get("/api/v1/carbon", response_model=None, responses=ok(schemas.Carbon))
def carbon(
    store: StoreDep,
    pipeline: str | None = None,
    site: Annotated[str | None, Query(description="Only executions run at this site.")] = None,
    since: Annotated[str | None, Query(description="Started at or after (RFC 3339).")] = None,
    until: Annotated[str | None, Query(description="Started before (RFC 3339).")] = None,
    group_by: GroupBy = "stage",
    also: Annotated[list[GroupBy] | None, Query(description=(
        "More groupings of the same executions, read in the same pass over the store (one "
        "request instead of one per grouping): `also=day` adds `also.day`, the `groups` by "
        "day. Repeat it for more."))] = None,
    store_sites: Annotated[bool, Query(description=(
        "Add `store_sites`: every site that ran an execution in the store, whatever the "
        "filters (from the site index, no pass over the executions)."))] = False,
) -> dict[str, Any]:
    """Energy and emissions per group, split by phase, with the inputs behind them: ``groups``,
    ``total``, ``stages`` (how each stage's phase was found) and ``notes``."""
    found = rollups(store, [group_by, *(also or [])], pipeline=pipeline, site=site,
                    since=parse_query_time(since or None, "since"),
                    until=parse_query_time(until or None, "until"))
    out = found[group_by].to_dict()
    if also:
        out["also"] = {by: {"groups": [g.to_dict() for g in found[by].groups]}
                       for by in dict.fromkeys(also)}
    if store_sites:
        out["store_sites"] = store.execution_sites()
    return out
