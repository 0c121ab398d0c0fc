"""The optional live provider, against a real HTTP server on the loopback interface."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cmf_core.carbon import CarbonProviderError, ElectricityMapsProvider, resolve_intensity
from cmf_core.config import load_settings

_GARBAGE = {  # zone -> a 200 answer with no usable value, and what the error must say
    "LIST": b"[312]", "NULL": b'{"carbonIntensity": null}', "NEG": b'{"carbonIntensity": -5}',
    "TRUE": b'{"carbonIntensity": true}', "NAN": b'{"carbonIntensity": NaN}',
    "HUGE": b'{"carbonIntensity": 1e999}', "HTML": b"<html>busy</html>",
}


class _Handler(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("auth-token")))
        if "zone=XX" in self.path:
            self.send_response(500)
            self.end_headers()
            return
        zone = self.path.rpartition("zone=")[2]
        if zone == "SLOW":  # a proxy that passes the body on a byte at a time, for ~6 s
            body = json.dumps({"carbonIntensity": 312}).encode().ljust(30)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(len(body)):
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                time.sleep(0.2)
            return
        if zone in _GARBAGE:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(_GARBAGE[zone])
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


def test_a_slow_body_is_cut_off_at_the_timeout(server_url: str) -> None:
    # httpx's timeout bounds each read only: a body trickling in a byte every 0.2 s used to
    # hold the task's end for as long as it trickled (~6 s here, with timeout_s=0.5)
    provider = ElectricityMapsProvider(url=server_url, timeout_s=0.5)
    with pytest.raises(CarbonProviderError, match=r"zone 'SLOW' failed: no whole answer "
                                                  r"within 0\.5 s"):
        provider("SLOW")


@pytest.mark.parametrize(("zone", "says"), [
    ("LIST", r"the answer has no carbonIntensity \(got \[312\]\)"),
    ("NULL", r"carbonIntensity null is not a gCO2e/kWh value"),
    ("NEG", r"carbonIntensity -5 is not a gCO2e/kWh value"),
    ("TRUE", r"carbonIntensity true is not a gCO2e/kWh value"),
    ("NAN", r"carbonIntensity NaN is not a gCO2e/kWh value"),
    ("HUGE", r"carbonIntensity Infinity is not a gCO2e/kWh value"),
    ("HTML", r"the answer is not JSON .*<html>busy"),
])
def test_an_unusable_answer_is_an_error_that_says_what_was_wrong(
        server_url: str, zone: str, says: str) -> None:
    # the provider's contract: CarbonProviderError on any failure, never a garbage value
    with pytest.raises(CarbonProviderError, match=f"zone '{zone}' failed: {says}"):
        ElectricityMapsProvider(url=server_url)(zone)
