"""``cmf_metrics``: metrics of an execution, scalar (no ``step``) and stepped."""

from __future__ import annotations

import attr
from openlineage.client.generated.base import RunFacet

from cmf_core.openlineage.facets._base import CmfFacetMixin, schema_url

KEY = "cmf_metrics"


@attr.define
class MetricPoint:
    name: str
    """Metric name."""
    value: float
    """A finite number."""
    step: int | None = attr.field(default=None)
    """Step of a stepped metric; ``None`` for a scalar."""
    timestamp: float | None = attr.field(default=None)
    """Unix time in seconds when the value was logged."""


@attr.define
class MetricsRunFacet(CmfFacetMixin, RunFacet):
    metrics: list[MetricPoint] = attr.field(factory=list)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MetricsRunFacet")
