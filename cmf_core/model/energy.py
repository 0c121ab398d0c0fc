"""EnergyRecord: energy and carbon of one execution, with the method behind each number."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cmf_core.identity import check_uuid
from cmf_core.model._base import frozen_dict


@dataclass(frozen=True, slots=True)
class EnergyRecord:
    """``details`` holds the per-component energy, methods (rapl / nvml-counter / nvml-power /
    model), PUE, grid intensity, renewable share and region used for the totals."""

    execution_id: str
    site: str
    energy_kwh: float
    co2e_kg: float
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "execution_id", check_uuid(self.execution_id, "execution id"))
        object.__setattr__(self, "details", frozen_dict(self.details, "energy details"))
