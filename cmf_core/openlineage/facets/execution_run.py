"""``cmf_execution``: the CMF execution behind a run (pipeline, stage, status, properties)."""

from __future__ import annotations

from typing import Any

import attr
from openlineage.client.generated.base import RunFacet

from cmf_core.openlineage.facets._base import CmfFacetMixin, schema_url

KEY = "cmf_execution"


@attr.define
class ExecutionRunFacet(CmfFacetMixin, RunFacet):
    status: str
    """CMF status: running, completed, failed, aborted or skipped."""
    pipeline: str
    stage: str
    properties: dict[str, Any] = attr.field(factory=dict)
    """Facts set by CMF or an orchestrator adapter."""
    custom_properties: dict[str, Any] = attr.field(factory=dict)
    """The user's own properties."""

    @staticmethod
    def _get_schema() -> str:
        return schema_url("ExecutionRunFacet")
