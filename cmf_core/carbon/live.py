"""Optional live carbon intensity over HTTP (Electricity Maps API v3 shape).

Never used unless a caller constructs a provider and passes it to
:meth:`~cmf_core.energy.Measurement.to_record`; nothing here touches the network at import.
``httpx`` is imported when the provider is first called.

    GET {url}?zone=DE   (header auth-token: <token>)
    -> {"zone": "DE", "carbonIntensity": 312, "datetime": "...", ...}
"""

from __future__ import annotations

from typing import Any

from cmf_core.carbon.carbon import LiveIntensity
from cmf_core.errors import CmfError

ELECTRICITY_MAPS_URL = "https://api.electricitymap.org/v3/carbon-intensity/latest"


class CarbonProviderError(CmfError):
    """The live carbon-intensity provider did not answer with a usable value."""


class ElectricityMapsProvider:
    """Latest grid intensity for a zone; raises :class:`CarbonProviderError` on any failure."""

    def __init__(
        self, token: str | None = None, url: str = ELECTRICITY_MAPS_URL, timeout_s: float = 2.0
    ) -> None:
        self.token, self.url, self.timeout_s = token, url, timeout_s

    def __call__(self, zone: str) -> LiveIntensity:
        import httpx

        headers = {"auth-token": self.token} if self.token else {}
        try:
            response = httpx.get(
                self.url, params={"zone": zone}, headers=headers, timeout=self.timeout_s
            )
            response.raise_for_status()
            body: Any = response.json()
            value = float(body["carbonIntensity"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
            raise CarbonProviderError(
                f"carbon intensity from {self.url} for zone {zone!r} failed: {e}"
            ) from e
        when = body.get("datetime", "")
        return LiveIntensity(value, f"live: {self.url} zone {zone} {when}".strip())
