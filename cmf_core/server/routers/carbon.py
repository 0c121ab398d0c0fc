"""CMF REST API: carbon roll-ups (the same data as ``cmf carbon --json``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from cmf_core.carbon.rollup import rollup
from cmf_core.openlineage.times import parse_time
from cmf_core.server.auth import require_read
from cmf_core.server.deps import StoreDep

router = APIRouter(tags=["CMF: carbon"], dependencies=[Depends(require_read)])


@router.get("/api/v1/carbon")
def carbon(
    store: StoreDep,
    pipeline: str | None = None,
    site: Annotated[str | None, Query(description="Only executions run at this site.")] = None,
    since: Annotated[str | None, Query(description="Started at or after (RFC 3339).")] = None,
    until: Annotated[str | None, Query(description="Started before (RFC 3339).")] = None,
    group_by: Literal["stage", "pipeline", "site", "phase", "day"] = "stage",
) -> dict[str, Any]:
    """Energy and emissions per group, split by phase, with the inputs behind them: ``groups``,
    ``total``, ``stages`` (how each stage's phase was found) and ``notes``."""
    return rollup(store, pipeline=pipeline, site=site,
                  since=parse_time(since, "since") if since else None,
                  until=parse_time(until, "until") if until else None,
                  by=group_by).to_dict()
