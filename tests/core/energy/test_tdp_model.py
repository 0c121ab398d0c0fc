"""CPU power model: the TDP table lookup and the order of its sources."""

from __future__ import annotations

import pytest

from cmf_core.energy.tdp_model import (
    DEFAULT_WATTS_PER_CORE,
    TABLE,
    cpu_model_name,
    lookup_tdp,
    watts_per_core,
)


@pytest.mark.parametrize(
    ("name", "watts"),
    [
        ("Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz", 270 / 40),
        ("AMD EPYC 7763 64-Core Processor", 280 / 64),
        ("Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", 120 / 14),
        ("Intel(R) Core(TM) i9-12900K", 125 / 16),
    ],
)
def test_known_cpus_use_tdp_over_cores(name: str, watts: float) -> None:
    value, source = watts_per_core(None, name)
    assert value == pytest.approx(watts)
    assert source.startswith("tdp table")


def test_longest_match_wins() -> None:
    found = lookup_tdp("Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz")
    assert found is not None and found[:2] == (205.0, 24)


def test_setting_beats_table_and_unknown_cpu_gets_the_default() -> None:
    assert watts_per_core(7.5, "AMD EPYC 7763 64-Core Processor") == (
        7.5,
        "setting cpu_watts_per_core",
    )
    value, source = watts_per_core(None, "Some Future CPU 9000")
    assert value == DEFAULT_WATTS_PER_CORE and "unknown CPU" in source


def test_this_machine_has_a_model_name_and_the_table_names_its_sources() -> None:
    assert cpu_model_name()
    header = TABLE.read_text().split("model,tdp_w")[0]
    assert "Intel ARK" in header and "CC BY 4.0" in header


def test_a_version_suffix_is_a_different_cpu() -> None:
    # the table has the E5-2670 (v1: 8 cores, 115 W) but not the E5-2670 v3 (12 cores, 120 W)
    assert lookup_tdp("Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz") == (115.0, 8, "xeon e5-2670")
    assert lookup_tdp("Intel(R) Xeon(R) CPU E5-2670 v3 @ 2.30GHz") is None
    assert lookup_tdp("Intel(R) Xeon(R) CPU E5-2670 v2 @ 2.50GHz") == (
        115.0,
        10,
        "xeon e5-2670 v2",
    )
