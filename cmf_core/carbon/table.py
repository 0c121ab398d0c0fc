"""The bundled grid table: per-country intensity and renewable share, and cloud regions.

``grid_intensity.csv`` and ``cloud_regions.csv`` sit beside this module; their headers name the
source, year and licence. A region is written as an ISO 3166 country code (``DE`` or ``DEU``),
``WORLD``, or a cloud region (``aws:eu-west-1``, or bare ``eu-west-1`` when only one provider
has that name), case-insensitively.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

from cmf_core.errors import ConfigError

HERE = Path(__file__).parent
GRID_TABLE = HERE / "grid_intensity.csv"
CLOUD_TABLE = HERE / "cloud_regions.csv"
TABLE_SOURCE = "Our World in Data / Ember (CC BY 4.0)"


@dataclass(frozen=True, slots=True)
class GridIntensity:
    """Carbon intensity used for a record, and where each number came from."""

    region: str
    grid: str
    g_per_kwh: float
    renewable_share: float | None
    source: str
    year: int | None
    renewable_source: str = ""


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


@functools.cache
def _grids() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for row in _rows(GRID_TABLE):
        out[row["code"].upper()] = row
        out[row["iso3"].upper()] = row
    return out


@functools.cache
def _clouds() -> dict[str, dict[str, str]]:
    return {row["region"].lower(): row for row in _rows(CLOUD_TABLE)}


def regions() -> list[str]:
    """Every region the table knows: country codes, WORLD and provider:region names."""
    return sorted({r["code"] for r in _grids().values()}) + sorted(_clouds())


def lookup(region: str) -> GridIntensity:
    """Table values for ``region``; raises :class:`ConfigError` naming the region and the fix."""
    key = str(region).strip()
    cloud = _cloud_row(key)
    code = cloud["grid"] if cloud else key
    row = _grids().get(code.upper())
    if row is None:
        raise ConfigError(
            f"unknown carbon_region {region!r}: use an ISO 3166 country code (DE or DEU), WORLD, "
            f"or a cloud region such as aws:eu-west-1 (list: {CLOUD_TABLE.name}); or set "
            "CMF_CARBON_INTENSITY"
        )
    share = row["renewable_share"]
    return GridIntensity(
        region=key,
        grid=row["code"],
        g_per_kwh=float(row["g_per_kwh"]),
        renewable_share=float(share) if share else None,
        source=f"table: {TABLE_SOURCE}, {row['name']} {row['year']}",
        year=int(row["year"]),
        renewable_source="table" if share else "",
    )


def _cloud_row(key: str) -> dict[str, str] | None:
    clouds = _clouds()
    low = key.lower()
    if low in clouds:
        return clouds[low]
    if ":" in low:
        return None
    found = [r for name, r in clouds.items() if name.split(":", 1)[1] == low]
    if len(found) > 1:
        names = ", ".join(r["region"] for r in found)
        raise ConfigError(f"carbon_region {key!r} is ambiguous ({names}); write provider:region")
    return found[0] if found else None
