"""EnergyRecord <-> OpenLineage custom run facet payload."""

from __future__ import annotations

import json
import uuid

import pytest

from cmf_core.config import load_settings
from cmf_core.energy import EnergyMonitor, from_facet_payload, to_facet_payload
from cmf_core.errors import InvalidInputError


def test_round_trip_of_a_measured_record() -> None:
    settings = load_settings(carbon_region="aws:eu-central-1", site="cloud-eu")
    m = EnergyMonitor(settings).start().stop()
    record = m.to_record(str(uuid.uuid4()), settings)
    payload = to_facet_payload(record)
    assert set(payload) == {"executionId", "site", "energyKwh", "co2eKg", "details"}
    assert json.loads(json.dumps(payload)) == payload  # plain JSON data
    assert payload["details"]["grid"] == "DE"
    assert from_facet_payload(payload) == record


def test_bad_payloads_name_what_is_wrong() -> None:
    with pytest.raises(InvalidInputError, match="lacks co2eKg"):
        from_facet_payload({"executionId": str(uuid.uuid4()), "site": "a", "energyKwh": 1,
                            "details": {}})
    with pytest.raises(InvalidInputError, match="must be numbers"):
        from_facet_payload({"executionId": str(uuid.uuid4()), "site": "a", "energyKwh": "x",
                            "co2eKg": 1, "details": {}})
