"""``cmf_energy``: energy and carbon of an execution."""

from __future__ import annotations

from typing import Any

import attr
from openlineage.client.generated.base import RunFacet

from cmf_core.openlineage.facets._base import CmfFacetMixin, schema_url

KEY = "cmf_energy"


@attr.define
class EnergyRunFacet(CmfFacetMixin, RunFacet):
    energy_kwh: float
    """Energy in kWh, PUE included."""
    co2e_kg: float
    """Emissions in kg CO2-equivalent."""
    details: dict[str, Any] = attr.field(factory=dict)
    """Per-component energy, measuring methods, PUE, grid intensity, renewable share, region."""

    @staticmethod
    def _get_schema() -> str:
        return schema_url("EnergyRunFacet")
