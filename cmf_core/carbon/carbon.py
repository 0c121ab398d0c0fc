"""The carbon formula and the order in which its inputs are chosen.

    energy_kwh = it_kwh x pue
    co2e_kg    = energy_kwh x intensity_g_per_kwh / 1000

``it_kwh`` is what the meters measured (CPU + RAM + GPU); ``pue`` is the site's power usage
effectiveness (``CMF_PUE``), so ``energy_kwh`` is the energy at the facility meter. Intensity:

1. ``CMF_CARBON_INTENSITY`` when set (a site's contract or its own measurement);
2. else a live value from an :data:`IntensityProvider`, when the caller passes one (never by
   default; a failure falls back to the table with a note);
3. else the bundled table for ``CMF_CARBON_REGION`` (an unknown region falls back to WORLD with
   a note, so a typo never loses a measurement).

The renewable share is ``CMF_RENEWABLE_SHARE`` when set, else the live provider's, else the
table's. It is recorded beside the total, not subtracted from it: the intensity is already the
grid average, renewables included.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cmf_core.carbon.table import GridIntensity, lookup
from cmf_core.errors import ConfigError

if TYPE_CHECKING:
    from cmf_core.config import Settings


@dataclass(frozen=True, slots=True)
class LiveIntensity:
    """What a live provider returns for a grid zone."""

    g_per_kwh: float
    source: str
    renewable_share: float | None = None


IntensityProvider = Callable[[str], LiveIntensity]
"""Called with the grid code (an ISO country code such as ``DE``); may raise."""


@dataclass(frozen=True, slots=True)
class Footprint:
    energy_kwh: float
    co2e_kg: float


def footprint(it_kwh: float, pue: float, g_per_kwh: float) -> Footprint:
    """Facility energy and emissions of ``it_kwh`` of IT energy."""
    energy = it_kwh * pue
    return Footprint(energy, energy * g_per_kwh / 1000.0)


def resolve_intensity(
    settings: Settings, provider: IntensityProvider | None = None
) -> tuple[GridIntensity, list[str]]:
    """The intensity to use for ``settings``, and notes on any fallback taken."""
    notes: list[str] = []
    try:
        grid = lookup(settings.carbon_region)
    except ConfigError as e:
        notes.append(f"{e}; used WORLD")
        # the record keeps the region asked for (a roll-up shows the typo), grid says WORLD
        grid = dataclasses.replace(lookup("WORLD"), region=str(settings.carbon_region).strip())
    if settings.carbon_intensity is not None:
        grid = dataclasses.replace(
            grid, g_per_kwh=settings.carbon_intensity, source="setting carbon_intensity", year=None
        )
    elif provider is not None:
        try:
            live = provider(grid.grid)
            if not 0 <= live.g_per_kwh < math.inf:  # also False for NaN
                raise ValueError(f"{live.source} gave {live.g_per_kwh!r} gCO2e/kWh")
            grid = dataclasses.replace(
                grid, g_per_kwh=live.g_per_kwh, source=live.source, year=None
            )
            if live.renewable_share is not None and not 0 <= live.renewable_share <= 1:
                notes.append(
                    f"live renewable share {live.renewable_share!r} is not in 0..1; "
                    "used the table's"
                )
            elif live.renewable_share is not None:
                grid = dataclasses.replace(
                    grid, renewable_share=live.renewable_share, renewable_source=live.source
                )
        except Exception as e:  # a live value is optional: keep the table's
            notes.append(f"live carbon intensity unavailable ({e}); used the table")
    if settings.renewable_share is not None:
        grid = dataclasses.replace(
            grid, renewable_share=settings.renewable_share, renewable_source="setting"
        )
    return grid, notes
