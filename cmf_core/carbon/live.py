"""Optional live carbon intensity over HTTP (Electricity Maps API v3 shape).

Never used unless a caller constructs a provider and passes it to
:meth:`~cmf_core.energy.Measurement.to_record`; nothing here touches the network at import.
``httpx`` is imported when the provider is first called.

    GET {url}?zone=DE   (header auth-token: <token>)
    -> {"zone": "DE", "carbonIntensity": 312, "datetime": "...", ...}
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from cmf_core.carbon.carbon import LiveIntensity
from cmf_core.errors import CmfError

ELECTRICITY_MAPS_URL = "https://api.electricitymap.org/v3/carbon-intensity/latest"


class CarbonProviderError(CmfError):
    """The live carbon-intensity provider did not answer with a usable value."""


class ElectricityMapsProvider:
    """Latest grid intensity for a zone; raises :class:`CarbonProviderError` on any failure.

    ``timeout_s`` bounds the whole answer, not only each read: a server that sends its body a
    byte at a time is cut off once ``timeout_s`` has passed (a server that trickles its headers
    is bounded by httpx's per-read timeout only). An answer over ``MAX_BYTES`` is refused.
    """

    MAX_BYTES = 1 << 20

    def __init__(
        self, token: str | None = None, url: str = ELECTRICITY_MAPS_URL, timeout_s: float = 2.0
    ) -> None:
        self.token, self.url, self.timeout_s = token, url, timeout_s

    def __call__(self, zone: str) -> LiveIntensity:
        import httpx

        headers = {"auth-token": self.token} if self.token else {}
        where = f"carbon intensity from {self.url} for zone {zone!r}"
        deadline = time.monotonic() + self.timeout_s
        try:
            with httpx.stream(
                "GET", self.url, params={"zone": zone}, headers=headers, timeout=self.timeout_s
            ) as response:
                response.raise_for_status()
                data = bytearray()
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > self.MAX_BYTES:
                        raise CarbonProviderError(
                            f"{where} failed: the answer is over {self.MAX_BYTES} bytes")
                    if time.monotonic() > deadline:
                        raise CarbonProviderError(
                            f"{where} failed: no whole answer within {self.timeout_s:g} s")
        except httpx.HTTPError as e:
            raise CarbonProviderError(f"{where} failed: {e}") from e
        try:
            body: Any = json.loads(data)
        except ValueError as e:
            raise CarbonProviderError(
                f"{where} failed: the answer is not JSON ({e}): {bytes(data[:60])!r}") from e
        if not isinstance(body, dict) or "carbonIntensity" not in body:
            raise CarbonProviderError(
                f"{where} failed: the answer has no carbonIntensity "
                f"(got {_preview(body)})")
        raw = body["carbonIntensity"]
        try:
            value = float(raw) if not isinstance(raw, bool) else math.nan
        except (TypeError, ValueError):
            value = math.nan
        if not 0 <= value < math.inf:  # also False for NaN
            raise CarbonProviderError(
                f"{where} failed: carbonIntensity {_preview(raw)} is not a gCO2e/kWh value "
                "(a finite number >= 0)")
        when = body.get("datetime")
        return LiveIntensity(
            value, f"live: {self.url} zone {zone}" + (f" {when}" if isinstance(when, str) else ""))


def _preview(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
