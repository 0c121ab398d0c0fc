"""CMF's custom OpenLineage facets, one module per facet with its JSON Schema beside it.

=================  ========================  ===========================================
key                class                     carries
=================  ========================  ===========================================
``cmf_params``     ``ParamsRunFacet``        parameters / hyperparameters
``cmf_metrics``    ``MetricsRunFacet``       scalar and stepped metrics
``cmf_energy``     ``EnergyRunFacet``        energy (kWh), carbon (kg CO2e), details
``cmf_site``       ``SiteRunFacet``          the site that produced the run
``cmf_execution``  ``ExecutionRunFacet``     pipeline, stage, status, properties
``cmf_artifact``   ``ArtifactDatasetFacet``  artifact digest, type, properties
=================  ========================  ===========================================

Each facet has ``_producer`` (:data:`PRODUCER`) and ``_schemaURL``
(``https://cmf-foundation.dev/spec/facets/1-0-0/<Class>.json#/$defs/<Class>``), so events that
carry them stay valid OpenLineage and can be forwarded to any OpenLineage backend.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from openlineage.client.generated.base import BaseFacet

from cmf_core.openlineage.facets._base import PRODUCER, SCHEMA_BASE, schema_url
from cmf_core.openlineage.facets.artifact_dataset import ArtifactDatasetFacet
from cmf_core.openlineage.facets.energy_run import EnergyRunFacet
from cmf_core.openlineage.facets.execution_run import ExecutionRunFacet
from cmf_core.openlineage.facets.metrics_run import MetricPoint, MetricsRunFacet
from cmf_core.openlineage.facets.params_run import ParamsRunFacet
from cmf_core.openlineage.facets.site_run import SiteRunFacet

CMF_RUN_FACETS: dict[str, type[BaseFacet]] = {
    "cmf_params": ParamsRunFacet,
    "cmf_metrics": MetricsRunFacet,
    "cmf_energy": EnergyRunFacet,
    "cmf_site": SiteRunFacet,
    "cmf_execution": ExecutionRunFacet,
}
CMF_DATASET_FACETS: dict[str, type[BaseFacet]] = {"cmf_artifact": ArtifactDatasetFacet}


def schema_files() -> list[Traversable]:
    """The JSON Schema files of the CMF facets (package data, found offline)."""
    root = resources.files(__name__)
    return sorted((f for f in root.iterdir() if f.name.endswith(".json")), key=lambda f: f.name)


__all__ = [
    "CMF_DATASET_FACETS",
    "CMF_RUN_FACETS",
    "PRODUCER",
    "SCHEMA_BASE",
    "ArtifactDatasetFacet",
    "EnergyRunFacet",
    "ExecutionRunFacet",
    "MetricPoint",
    "MetricsRunFacet",
    "ParamsRunFacet",
    "SiteRunFacet",
    "schema_files",
    "schema_url",
]
