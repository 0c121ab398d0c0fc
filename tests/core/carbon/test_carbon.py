"""The carbon formula and how its inputs are chosen."""

from __future__ import annotations

import pytest

from cmf_core.carbon import LiveIntensity, footprint, resolve_intensity
from cmf_core.config import load_settings
from cmf_core.energy import Measurement, Reading


def test_gpt3_training_footprint_matches_patterson_et_al_2021() -> None:
    # Patterson et al. 2021 (arXiv 2104.10350), Table 4: GPT-3 used 1,287 MWh at the facility
    # (PUE 1.10) on a 0.429 kgCO2e/kWh grid, emitting 552 tCO2e.
    it_kwh = 1_287_000 / 1.10
    fp = footprint(it_kwh, pue=1.10, g_per_kwh=429.0)
    assert fp.energy_kwh == pytest.approx(1_287_000)
    assert fp.co2e_kg / 1000 == pytest.approx(552, abs=0.5)


def test_table_is_used_by_default_with_its_source() -> None:
    grid, notes = resolve_intensity(load_settings(carbon_region="FR"))
    assert (grid.grid, grid.g_per_kwh, grid.year) == ("FR", 56.0, 2023)
    assert "Our World in Data" in grid.source and "CC BY 4.0" in grid.source
    assert grid.renewable_share == pytest.approx(0.263)
    assert notes == []


def test_site_override_beats_live_value_and_table() -> None:
    def live(zone: str) -> LiveIntensity:
        return LiveIntensity(999.0, "live: test", 0.9)

    settings = load_settings(carbon_region="DE", carbon_intensity=12.5, renewable_share=0.95)
    grid, _ = resolve_intensity(settings, live)
    assert (grid.g_per_kwh, grid.source) == (12.5, "setting carbon_intensity")
    assert (grid.renewable_share, grid.renewable_source) == (0.95, "setting")


def test_live_value_is_used_when_given_and_its_failure_falls_back_to_the_table() -> None:
    asked: list[str] = []

    def live(zone: str) -> LiveIntensity:
        asked.append(zone)
        return LiveIntensity(321.0, "live: test", 0.5)

    grid, _ = resolve_intensity(load_settings(carbon_region="gcp:europe-west1"), live)
    assert asked == ["BE"] and grid.g_per_kwh == 321.0 and grid.renewable_share == 0.5

    def down(zone: str) -> LiveIntensity:
        raise OSError("connection refused")

    grid, notes = resolve_intensity(load_settings(carbon_region="BE"), down)
    assert grid.source.startswith("table") and "connection refused" in notes[0]


def test_unknown_region_falls_back_to_world_with_a_note() -> None:
    grid, notes = resolve_intensity(load_settings(carbon_region="Atlantis"))
    assert grid.grid == "WORLD"
    assert "'Atlantis'" in notes[0] and "used WORLD" in notes[0]
    # the record's region is the one asked for (docs/energy.md), so a roll-up's regions show
    # the typo next to the grid actually used, not a WORLD the site never configured
    assert grid.region == "Atlantis"
    record = Measurement(pid=1, started_at=0.0, duration_s=1.0, cpu_time_s=1.0, components={
        "cpu": Reading("cpu", 3.6e6, "model", {})}).to_record(
            "01a22698-7a8e-7c27-9dcf-a5e3f02e279d", load_settings(carbon_region=" aws:eu-west-9 "))
    assert (record.details["region"], record.details["grid"]) == ("aws:eu-west-9", "WORLD")
    assert record.co2e_kg == pytest.approx(0.4806)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -50.0])
def test_unusable_live_value_falls_back_to_the_table(value: float) -> None:
    def live(zone: str) -> LiveIntensity:
        return LiveIntensity(value, "live: test", 1.5)

    grid, notes = resolve_intensity(load_settings(carbon_region="FR"), live)
    assert (grid.g_per_kwh, grid.renewable_share) == (56.0, pytest.approx(0.263))
    assert grid.source.startswith("table") and "live carbon intensity unavailable" in notes[0]


def test_live_renewable_share_outside_0_1_is_not_used() -> None:
    def live(zone: str) -> LiveIntensity:
        return LiveIntensity(321.0, "live: test", float("nan"))

    grid, notes = resolve_intensity(load_settings(carbon_region="FR"), live)
    assert grid.g_per_kwh == 321.0
    assert grid.renewable_share == pytest.approx(0.263) and grid.renewable_source == "table"
    assert any("renewable share" in n for n in notes)
