"""The bundled per-country and per-cloud-region table."""

from __future__ import annotations

import csv

import pytest

from cmf_core.carbon import lookup, regions
from cmf_core.carbon.table import CLOUD_TABLE, GRID_TABLE
from cmf_core.errors import ConfigError


def test_country_codes_in_either_iso_form_and_any_case() -> None:
    de, deu, lower = lookup("DE"), lookup("deu"), lookup("de")
    assert (de.grid, de.g_per_kwh, de.year) == ("DE", 380.9, 2023)
    assert (deu.grid, deu.g_per_kwh) == (lower.grid, lower.g_per_kwh) == ("DE", 380.9)
    assert de.region == "DE" and deu.region == "deu"


def test_cloud_regions_map_to_their_country_grid() -> None:
    assert lookup("aws:eu-central-1").grid == "DE"
    assert lookup("eu-central-1").g_per_kwh == lookup("DE").g_per_kwh
    assert lookup("azure:westeurope").grid == "NL"
    assert lookup("gcp:us-central1").grid == "US"
    assert lookup("asia-east2").grid == "HK"


def test_unknown_region_names_the_value_and_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"'mars-1'.*ISO 3166.*aws:eu-west-1"):
        lookup("mars-1")


def test_tables_state_source_year_and_licence_and_are_consistent() -> None:
    head = GRID_TABLE.read_text().split("\ncode,")[0]
    assert "Our World in Data" in head and "Ember" in head and "CC BY 4.0" in head
    assert "AWS" in CLOUD_TABLE.read_text().split("\nregion,")[0]
    with GRID_TABLE.open() as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    assert len(rows) > 200
    for row in rows:
        assert 0 <= float(row["g_per_kwh"]) < 1500, row
        assert 2000 <= int(row["year"]) <= 2026, row
        assert row["renewable_share"] == "" or 0 <= float(row["renewable_share"]) <= 1, row
    known = {r["code"] for r in rows}
    with CLOUD_TABLE.open() as fh:
        clouds = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    assert {c["grid"] for c in clouds} <= known
    assert len({c["region"] for c in clouds}) == len(clouds) > 100
    assert "WORLD" in regions() and "aws:us-east-1" in regions()
