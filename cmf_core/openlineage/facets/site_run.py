"""``cmf_site``: the CMF site whose pipeline produced the run."""

from __future__ import annotations

import attr
from openlineage.client.generated.base import RunFacet

from cmf_core.openlineage.facets._base import CmfFacetMixin, schema_url

KEY = "cmf_site"


@attr.define
class SiteRunFacet(CmfFacetMixin, RunFacet):
    name: str
    """Site name (an HPC centre, a cloud account, an edge box)."""

    @staticmethod
    def _get_schema() -> str:
        return schema_url("SiteRunFacet")
