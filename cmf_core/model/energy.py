"""EnergyRecord: energy and carbon of one execution, with the method behind each number."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cmf_core.errors import InvalidInputError
from cmf_core.identity import check_uuid
from cmf_core.model._base import brief, check_site, frozen_dict
from cmf_core.model._display import Summary

#: ``details["measured"]`` of a record whose energy was not measured at all (the monitor could
#: not read anything): its 0 kWh is no measurement, and roll-ups leave it out
MEASURED_KEY = "measured"


@dataclass(frozen=True, slots=True)
class EnergyRecord(Summary):
    """``details`` holds the per-component energy, methods (rapl / nvml-counter / nvml-power /
    model), PUE, grid intensity, renewable share and region used for the totals."""

    execution_id: str
    site: str
    energy_kwh: float
    co2e_kg: float
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "execution_id", check_uuid(self.execution_id, "execution id"))
        check_site(self.site, f"energy record of execution {self.execution_id}: site")
        for name in ("energy_kwh", "co2e_kg"):
            object.__setattr__(self, name, check_amount(getattr(self, name), name,
                                                        self.execution_id))
        object.__setattr__(self, "details", frozen_dict(self.details, "energy details"))

    def _summary(self) -> str:
        amounts = (f"{self.energy_kwh:.3g} kWh, {self.co2e_kg:.3g} kgCO2e" if self.measured
                   else "not measured")
        return f"EnergyRecord {amounts} @{self.site} (execution {self.execution_id})"

    @property
    def measured(self) -> bool:
        """False when nothing was measured (``details["measured"] is False``, the notes say
        why): the record's 0 kWh is then no measurement and roll-ups leave it out."""
        return self.details.get(MEASURED_KEY) is not False


def check_amount(value: Any, name: str, execution_id: str) -> float:
    """``value`` (``energy_kwh`` or ``co2e_kg`` of the energy record of ``execution_id``) as a
    float, if it is a finite number >= 0; else an :class:`InvalidInputError` naming the record,
    the field and the value."""
    unit = "kWh" if name == "energy_kwh" else "kgCO2e"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInputError(f"energy record of execution {execution_id}: {name} "
                                f"{brief(value)} is not a number")
    try:
        amount = float(value)
    except OverflowError:
        raise InvalidInputError(f"energy record of execution {execution_id}: {name} "
                                f"{brief(value)} is too large") from None
    if not (math.isfinite(amount) and amount >= 0.0):
        raise InvalidInputError(f"energy record of execution {execution_id}: {name} "
                                f"{brief(value)} must be a finite number >= 0 ({unit})")
    return amount
