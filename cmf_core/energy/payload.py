"""EnergyRecord <-> plain dict for an OpenLineage custom run facet.

The payload uses OpenLineage's camelCase for its own keys; ``details`` is carried as recorded
(snake_case keys, see :class:`~cmf_core.model.energy.EnergyRecord`). The facet class itself
(``_producer``, ``_schemaURL``) is defined in ``cmf_core/openlineage/facets/``; it wraps this dict.

    {"executionId": "...", "site": "...", "energyKwh": 0.0012, "co2eKg": 0.0004,
     "details": {"components": {"cpu": {"kwh": ..., "method": "rapl", ...}, ...}, "pue": ...}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cmf_core.errors import InvalidInputError

if TYPE_CHECKING:
    from cmf_core.model.energy import EnergyRecord

_KEYS = ("executionId", "site", "energyKwh", "co2eKg", "details")


def to_facet_payload(record: EnergyRecord) -> dict[str, Any]:
    """Plain JSON-ready dict of ``record`` for a custom run facet."""
    from cmf_core import jsonutil

    return {
        "executionId": record.execution_id,
        "site": record.site,
        "energyKwh": record.energy_kwh,
        "co2eKg": record.co2e_kg,
        "details": jsonutil.clean(_thaw(record.details)),
    }


def from_facet_payload(payload: Mapping[str, Any]) -> EnergyRecord:
    """The record back from :func:`to_facet_payload`'s dict; raises naming a missing key."""
    from cmf_core.model.energy import EnergyRecord

    if not isinstance(payload, Mapping):
        raise InvalidInputError(f"energy facet must be a mapping, got {type(payload).__name__}")
    missing = [k for k in _KEYS if k not in payload]
    if missing:
        raise InvalidInputError(
            f"energy facet lacks {', '.join(missing)}; expected keys {', '.join(_KEYS)}"
        )
    try:
        energy, co2e = float(payload["energyKwh"]), float(payload["co2eKg"])
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"energy facet energyKwh/co2eKg must be numbers, got {payload['energyKwh']!r}, "
            f"{payload['co2eKg']!r}"
        ) from None
    return EnergyRecord(
        str(payload["executionId"]), str(payload["site"]), energy, co2e, dict(payload["details"])
    )


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thaw(v) for v in value]
    return value
