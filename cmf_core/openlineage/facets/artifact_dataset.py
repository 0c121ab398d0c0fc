"""``cmf_artifact``: the CMF artifact behind a dataset (content digest and type)."""

from __future__ import annotations

from typing import Any

import attr
from openlineage.client.generated.base import DatasetFacet

from cmf_core.openlineage.facets._base import CmfFacetMixin, schema_url

KEY = "cmf_artifact"


@attr.define
class ArtifactDatasetFacet(CmfFacetMixin, DatasetFacet):
    digest: str
    """``sha256:<hex>`` or ``version:<hex>``: the artifact's id."""
    type: str
    """CMF artifact type (Dataset, Model, Metrics, Environment, ...)."""
    name: str | None = attr.field(default=None)
    """CMF artifact name, when it differs from the dataset name."""
    uri: str | None = attr.field(default=None)
    """The URI CMF recorded, when it differs from what namespace and name give back."""
    site: str | None = attr.field(default=None)
    """The CMF site that first recorded the artifact."""
    created_at: float | None = attr.field(default=None)
    """Unix time in seconds when CMF first recorded the artifact."""
    properties: dict[str, Any] = attr.field(factory=dict)
    custom_properties: dict[str, Any] = attr.field(factory=dict)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("ArtifactDatasetFacet")
