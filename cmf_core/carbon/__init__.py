"""Carbon: facility energy x grid carbon intensity, with the inputs recorded.

``carbon.py`` holds the formula and the order in which inputs are chosen; ``table.py`` reads the
bundled, sourced per-country and per-cloud-region table; ``live.py`` is an optional HTTP
provider that is never used by default.
"""

from cmf_core.carbon.carbon import (
    Footprint,
    IntensityProvider,
    LiveIntensity,
    footprint,
    resolve_intensity,
)
from cmf_core.carbon.live import CarbonProviderError, ElectricityMapsProvider
from cmf_core.carbon.table import GridIntensity, lookup, regions

__all__ = [
    "CarbonProviderError",
    "ElectricityMapsProvider",
    "Footprint",
    "GridIntensity",
    "IntensityProvider",
    "LiveIntensity",
    "footprint",
    "lookup",
    "regions",
    "resolve_intensity",
]
