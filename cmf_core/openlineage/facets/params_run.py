"""``cmf_params``: parameters and hyperparameters of an execution."""

from __future__ import annotations

from typing import Any

import attr
from openlineage.client.generated.base import RunFacet

from cmf_core.openlineage.facets._base import CmfFacetMixin, schema_url

KEY = "cmf_params"


@attr.define
class ParamsRunFacet(CmfFacetMixin, RunFacet):
    params: dict[str, Any] = attr.field(factory=dict)
    """Parameter name to JSON value."""

    @staticmethod
    def _get_schema() -> str:
        return schema_url("ParamsRunFacet")
