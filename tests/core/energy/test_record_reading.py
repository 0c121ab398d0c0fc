"""Energy records are read in bulk (cmf carbon, the web UI's carbon page): their details hold
lists (``notes``), which must not send every record through the slow cleaning path."""

from __future__ import annotations

import pytest

from cmf_core import jsonutil
from cmf_core.errors import InvalidInputError
from cmf_core.model import EnergyRecord, _base

DETAILS = {"components": {"cpu": {"kwh": 0.1, "method": "rapl"}}, "it_kwh": 0.1,
           "notes": ["grid intensity: static default", "PUE 1.2"], "samples": [1, 2.5, None],
           "nested": [{"a": [True, "b"]}]}


def test_details_with_lists_take_the_plain_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(value: object, _depth: int = 0) -> object:
        raise AssertionError("jsonutil.clean called for plain JSON details")

    monkeypatch.setattr(_base.jsonutil, "clean", slow)
    record = EnergyRecord("0190f1b4-8e3c-7a51-9b4e-3f1d2c6a8b70", "site-a", 0.12, 0.04,
                          jsonutil.loads(jsonutil.dumps(DETAILS)))
    assert dict(record.details) == DETAILS
    with pytest.raises(TypeError):  # still read-only
        record.details["notes"] = []  # type: ignore[index]


def test_lists_are_still_checked_and_cleaned() -> None:
    assert _base.frozen_dict({"l": [float("nan"), 1.0]}) == {"l": ["nan", 1.0]}
    assert _base.frozen_dict({"l": [(1, 2)]}) == {"l": [[1, 2]]}
    with pytest.raises(InvalidInputError, match=r"l\[1\]: .*NUL"):
        _base.frozen_dict({"l": ["ok", "a\x00"]})
    with pytest.raises(InvalidInputError, match="too large"):
        _base.frozen_dict({"l": [[10 ** 5000]]})
    deep: list = []
    value = deep
    for _ in range(300):
        value.append([])
        value = value[0]
    with pytest.raises(InvalidInputError, match="levels deep"):
        _base.frozen_dict({"deep": deep})
