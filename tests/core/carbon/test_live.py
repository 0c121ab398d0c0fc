"""The optional live provider, against a real HTTP server on the loopback interface."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cmf_core.carbon import CarbonProviderError, ElectricityMapsProvider, resolve_intensity
from cmf_core.config import load_settings


class _Handler(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("auth-token")))
        if "zone=XX" in self.path:
            self.send_response(500)
            self.end_headers()
            return
        body = json.dumps({"zone": "DE", "carbonIntensity": 312, "datetime": "2026-05-01T10:00Z"})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v3/carbon-intensity/latest"
    finally:
        server.shutdown()
        server.server_close()


def test_live_value_is_fetched_and_recorded_with_its_source(server_url: str) -> None:
    provider = ElectricityMapsProvider(token="t0k", url=server_url)
    grid, notes = resolve_intensity(load_settings(carbon_region="aws:eu-central-1"), provider)
    assert grid.g_per_kwh == 312.0 and grid.year is None and notes == []
    assert grid.source.startswith("live: http://127.0.0.1") and "zone DE" in grid.source
    assert _Handler.seen[-1] == ("/v3/carbon-intensity/latest?zone=DE", "t0k")


def test_provider_errors_name_the_url_and_fall_back(server_url: str) -> None:
    provider = ElectricityMapsProvider(url=server_url)
    with pytest.raises(CarbonProviderError, match=r"zone 'XX' failed.*500"):
        provider("XX")
    closed = ElectricityMapsProvider(url="http://127.0.0.1:9/none", timeout_s=0.5)
    grid, notes = resolve_intensity(load_settings(carbon_region="DE"), closed)
    assert grid.source.startswith("table") and "live carbon intensity unavailable" in notes[0]
